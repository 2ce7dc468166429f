"""The shared build caches: where they live, dependency-layer keys, pruning, and the installer choice."""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import replace
from pathlib import Path
from unittest.mock import patch

import pytest

from microdeploy.build.cache import cache_root
from microdeploy.build.fastpath import jobs
from microdeploy.build.fastpath.contract import PROJECT_ALONE
from microdeploy.build.fastpath.installer import Installer, choose_installer, find_uv, with_extras
from microdeploy.build.fastpath.layer import (
    check_extras,
    declared_dependencies,
    dependency_declarations,
    layer_key,
    prepare_layer,
)
from microdeploy.build.fastpath.lock import export_lock
from microdeploy.errors import MicrodeployError
from microdeploy.process import Result, run
from microdeploy.pyproject import read_pyproject

PYPROJECT = """\
[project]
name = "orders-api"
version = "{version}"
dependencies = [{dependencies}]
"""


def project(tmp_path: Path, version: str = "1.0", dependencies: str = '"flask>=3"') -> Path:
    (tmp_path / "pyproject.toml").write_text(PYPROJECT.format(version=version, dependencies=dependencies))
    (tmp_path / "app.py").write_text("GREETING = 'hello'\n")
    return tmp_path


def key(path: Path, **environ: str) -> str:
    return layer_key(read_pyproject(path), name="orders-api", python_minor="3.11", wsgi_server="gunicorn>=21.2",
                     uv_version="uv 0.9.0", environ=environ)


class FakeRunner:
    """Records argv and answers with a fixed return code and output; `cp` (the layer copy) really runs, unrecorded."""

    def __init__(self, returncode: int = 0, stdout: str = "uv 0.9.0\n") -> None:
        self.returncode = returncode
        self.stdout = stdout
        self.calls: list[tuple[tuple[str, ...], dict[str, str] | None]] = []
        self.inherited: list[bool] = []  # per call: whether `env` was added to this process's environment

    def __call__(self, argv, *, cwd=None, env=None, check=True, input=None, timeout=None,  # type: ignore[no-untyped-def]
                 inherit_env=True) -> Result:
        if argv[0] == "cp":
            return run(argv, check=check)
        self.calls.append((tuple(argv), dict(env) if env is not None else None))
        self.inherited.append(inherit_env)
        return Result(tuple(argv), self.returncode, self.stdout, "")


def test_cache_root_prefers_the_variable_then_xdg_then_home(tmp_path: Path) -> None:
    """$MICRODEPLOY_CACHE_DIR wins, then $XDG_CACHE_HOME/microdeploy, then ~/.cache/microdeploy."""
    assert cache_root({"MICRODEPLOY_CACHE_DIR": "/c", "XDG_CACHE_HOME": "/x", "HOME": "/h"}) == Path("/c")
    assert cache_root({"XDG_CACHE_HOME": "/x", "HOME": "/h"}) == Path("/x/microdeploy")
    assert cache_root({"HOME": "/h"}) == Path("/h/.cache/microdeploy")


def test_layer_key_ignores_code_and_version_changes(tmp_path: Path) -> None:
    """An app-only change or a version bump keeps the layer; the key names the service and Python."""
    before = key(project(tmp_path))
    (tmp_path / "app.py").write_text("GREETING = 'hi'\n")
    project(tmp_path, version="1.1")
    assert key(tmp_path) == before
    assert before.startswith("orders-api-py3.11-")


def test_layer_key_changes_with_dependencies_requirements_and_index(tmp_path: Path) -> None:
    """A new dependency, a requirements.txt, another index, another WSGI server or the installers kept each make a
    new layer."""
    base = key(project(tmp_path))
    assert key(project(tmp_path, dependencies='"flask>=3", "six"')) != base
    project(tmp_path)
    (tmp_path / "requirements.txt").write_text("six==1.17.0\n")
    with_requirements = key(tmp_path)
    assert with_requirements != base
    assert key(tmp_path, UV_DEFAULT_INDEX="https://mirror.invalid/simple") != with_requirements
    other_server = layer_key(read_pyproject(tmp_path), name="orders-api", python_minor="3.11", wsgi_server="waitress",
                             uv_version="uv 0.9.0", environ={})
    assert other_server != with_requirements
    with_installers = layer_key(read_pyproject(tmp_path), name="orders-api", python_minor="3.11",
                                wsgi_server="gunicorn>=21.2", uv_version="uv 0.9.0", environ={},
                                installers=("pip", "setuptools", "wheel"))
    assert with_installers != with_requirements


def test_layer_key_changes_with_the_uv_lock(tmp_path: Path) -> None:
    """A uv.lock is part of the key: a lock that pins other versions makes a new layer."""
    base = key(project(tmp_path))
    (tmp_path / "uv.lock").write_text('version = 1\n[[package]]\nname = "flask"\nversion = "3.1.2"\n')
    locked = key(tmp_path)
    assert locked != base
    (tmp_path / "uv.lock").write_text('version = 1\n[[package]]\nname = "flask"\nversion = "3.1.3"\n')
    assert key(tmp_path) not in (base, locked)


def test_layer_key_follows_uvs_own_configuration_files(tmp_path: Path) -> None:
    """The user's uv.toml, the project's, or $UV_CONFIG_FILE instead of both, each change the layer (indexes,
    strategy, constraints live there); $UV_NO_CONFIG ignores them; two checkouts of one project share the key."""
    checkout = tmp_path / "one"
    checkout.mkdir()
    project(checkout)
    home = tmp_path / "home"
    base = key(checkout, HOME=str(home))
    (home / ".config" / "uv").mkdir(parents=True)
    (home / ".config" / "uv" / "uv.toml").write_text('index-strategy = "unsafe-best-match"\n')
    user = key(checkout, HOME=str(home))
    assert user != base
    assert key(checkout, HOME=str(home), UV_NO_CONFIG="1") == base
    (checkout / "uv.toml").write_text('[[index]]\nurl = "https://mirror.invalid/simple"\ndefault = true\n')
    both = key(checkout, HOME=str(home))
    assert both not in (base, user)
    assert key(shutil.copytree(checkout, tmp_path / "two"), HOME=str(home)) == both
    (tmp_path / "ci.toml").write_text('resolution = "lowest"\n')
    assert key(checkout, HOME=str(home), UV_CONFIG_FILE=str(tmp_path / "ci.toml")) not in (base, user, both)


def test_layer_key_follows_uvs_variables_and_the_files_they_name(tmp_path: Path) -> None:
    """A caller's UV_ variable that changes what uv installs (constraints, overrides, exclude-newer, prerelease,
    binary choices) makes a new layer, and so does new text in a constraint file; credentials, timeouts and
    where uv keeps its cache do not."""
    project(tmp_path)
    base = key(tmp_path)
    (tmp_path / "constraints.txt").write_text("flask==3.0.3\n")
    constrained = key(tmp_path, UV_CONSTRAINT="constraints.txt")
    seen = {base, constrained}
    assert len(seen) == 2
    (tmp_path / "constraints.txt").write_text("flask==3.1.0\n")
    assert key(tmp_path, UV_CONSTRAINT="constraints.txt") not in seen, "the file's text, not only its name"
    (tmp_path / "pins.txt").write_text("flask==3.1.0\n")
    for variable, value in [("UV_OVERRIDE", str(tmp_path / "pins.txt")), ("UV_EXCLUDE_NEWER", "2025-01-01T00:00:00Z"),
                            ("UV_PRERELEASE", "allow"), ("UV_RESOLUTION", "lowest-direct"), ("UV_NO_BINARY", "1"),
                            ("UV_INDEX_STRATEGY", "first-index"), ("UV_OFFLINE", "1")]:
        changed = key(tmp_path, **{variable: value})
        assert changed not in seen, variable
        seen.add(changed)
    for variable, value in [("UV_CACHE_DIR", "/elsewhere"), ("UV_HTTP_TIMEOUT", "300"), ("UV_NATIVE_TLS", "1"),
                            ("UV_INDEX_PRIVATE_USERNAME", "ci"), ("UV_INDEX_PRIVATE_PASSWORD", "s3cret"),
                            ("UV_LINK_MODE", "hardlink"), ("UV_CONCURRENT_DOWNLOADS", "4"), ("PIP_NO_CACHE_DIR", "1")]:
        assert key(tmp_path, **{variable: value}) == base, variable


def test_a_constraint_file_that_is_not_there_yet_counts_once_it_is(tmp_path: Path) -> None:
    """UV_CONSTRAINT naming a missing file (uv then stops, and says so) keys a layer of its own; the file, once
    written, gives another."""
    project(tmp_path)
    missing = key(tmp_path, UV_CONSTRAINT=str(tmp_path / "later.txt"))
    assert missing != key(tmp_path)
    (tmp_path / "later.txt").write_text("flask==3.0.3\n")
    assert key(tmp_path, UV_CONSTRAINT=str(tmp_path / "later.txt")) != missing


def test_layer_key_follows_the_files_requirements_txt_includes(tmp_path: Path) -> None:
    """-r and -c files, nested and relative to the file that names them, are part of the key; a cycle ends."""
    project(tmp_path)
    (tmp_path / "requirements.txt").write_text("-r requirements/base.txt\n")
    (tmp_path / "requirements").mkdir()
    (tmp_path / "requirements" / "base.txt").write_text("flask\n--constraint=constraints.txt\n-r base.txt\n")
    (tmp_path / "requirements" / "constraints.txt").write_text("flask==3.0.0\n")
    before = key(tmp_path)
    assert sorted(dependency_declarations(read_pyproject(tmp_path))) == [
        "pyproject.toml", "requirements.txt", "requirements/base.txt", "requirements/constraints.txt",
    ]
    (tmp_path / "requirements" / "constraints.txt").write_text("flask==3.1.0\n")
    assert key(tmp_path) != before


def test_dynamic_dependencies_hash_the_whole_declaration_files(tmp_path: Path) -> None:
    """setup.py projects (or dynamic dependencies) are keyed on the text of setup.py/setup.cfg/pyproject."""
    (tmp_path / "setup.py").write_text("from setuptools import setup\nsetup(install_requires=['flask'])\n")
    found = dependency_declarations(read_pyproject(tmp_path))
    assert list(found) == ["setup.py"]
    before = key(tmp_path)
    (tmp_path / "setup.py").write_text("from setuptools import setup\nsetup(install_requires=['flask', 'six'])\n")
    assert key(tmp_path) != before


def test_only_dependencies_listed_in_pyproject_are_static(tmp_path: Path) -> None:
    """[project] dependencies are static; dynamic ones, setup.py projects and no pyproject are not."""
    (tmp_path / "listed").mkdir()
    assert read_pyproject(project(tmp_path / "listed")).static_dependencies
    dynamic = tmp_path / "dynamic"
    dynamic.mkdir()
    (dynamic / "pyproject.toml").write_text('[project]\nname = "x"\ndynamic = ["dependencies"]\n')
    assert not read_pyproject(dynamic).static_dependencies
    optional = tmp_path / "optional"
    optional.mkdir()
    (optional / "pyproject.toml").write_text('[project]\nname = "x"\ndynamic = ["optional-dependencies"]\n')
    assert not read_pyproject(optional).static_dependencies
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    (legacy / "setup.py").write_text("from setuptools import setup\nsetup(install_requires=['flask'])\n")
    assert not read_pyproject(legacy).static_dependencies
    (legacy / "pyproject.toml").write_text('[build-system]\nrequires = ["setuptools"]\n')
    assert not read_pyproject(legacy).static_dependencies


def test_prepare_layer_marks_its_use_and_refresh_empties_it(tmp_path: Path) -> None:
    """A layer in use is the most recently used entry; --refresh-deps removes the saved venv."""
    layer = prepare_layer(tmp_path, "svc-a", refresh=False)
    (layer / "venv").mkdir()
    os.utime(layer, (1000, 1000))
    assert prepare_layer(tmp_path, "svc-a", refresh=False) == layer
    assert layer.stat().st_mtime > 1000 and (layer / "venv").is_dir()
    assert prepare_layer(tmp_path, "svc-a", refresh=True) == layer
    assert not (layer / "venv").exists()


def test_without_uv_the_build_uses_pip_and_no_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No uv anywhere: dh-virtualenv's pip, no environment for the helper scripts."""
    monkeypatch.setattr("microdeploy.build.fastpath.installer.find_uv", lambda environ: None)
    runner = FakeRunner()
    installer = choose_installer(read_pyproject(project(tmp_path)), name="orders-api", python_minor="3.11",
                                 wsgi_server="gunicorn", environ={}, runner=runner)
    assert installer == Installer("pip")
    assert installer.environment() == {}
    assert runner.calls == []


def test_the_installer_hands_the_callers_uv_settings_to_the_projects_wheel(tmp_path: Path) -> None:
    """What the layer's key takes from the caller's UV_ variables keys the project's wheel too (start_beside)."""
    environ = {"MICRODEPLOY_UV": "/opt/uv", "MICRODEPLOY_CACHE_DIR": str(tmp_path / "cache"),
               "UV_EXCLUDE_NEWER": "2025-01-01T00:00:00Z", "UV_HTTP_TIMEOUT": "60",
               "PIP_CONFIG_FILE": os.devnull}  # none of this machine's pip settings
    (tmp_path / "p").mkdir()
    installer = choose_installer(read_pyproject(project(tmp_path / "p")), name="orders-api", python_minor="3.11",
                                 wsgi_server="gunicorn", environ=environ, runner=FakeRunner())
    assert installer.uv_settings == {"UV_EXCLUDE_NEWER": "2025-01-01T00:00:00Z"}


def test_with_uv_the_environment_names_uv_its_cache_the_layer_and_the_wheel(tmp_path: Path) -> None:
    """uv from $MICRODEPLOY_UV with its install settings; its cache and the layer under the cache root; the prebuilt
    wheel's directory."""
    runner = FakeRunner()
    environ = {"MICRODEPLOY_UV": "/opt/uv", "MICRODEPLOY_CACHE_DIR": str(tmp_path / "cache"),
               "PIP_CONFIG_FILE": os.devnull}  # none of this machine's pip settings
    (tmp_path / "p").mkdir()
    installer = choose_installer(read_pyproject(project(tmp_path / "p")), name="orders-api", python_minor="3.11",
                                 wsgi_server="gunicorn", environ=environ, runner=runner)
    assert runner.calls == [(("/opt/uv", "--version"), None)]
    assert installer.kind == "uv"
    assert installer.layer is not None and installer.layer.parent == tmp_path / "cache" / "layers"
    assert installer.layer_has_dependencies and installer.dependencies == ('flask>=3',)
    assert installer.environment(tmp_path / "wheel") == {
        "UV_NO_PROGRESS": "1",
        "UV_PYTHON_DOWNLOADS": "never",
        "UV_SYSTEM_CERTS": "1",
        "UV_LINK_MODE": "copy",
        "UV_COMPILE_BYTECODE": "0",
        "MICRODEPLOY_UV": "/opt/uv",
        "UV_CACHE_DIR": str(tmp_path / "cache" / "uv"),
        "MICRODEPLOY_SHLIBDEPS_CACHE": str(tmp_path / "cache" / "shlibdeps"),
        "MICRODEPLOY_ELF_CACHE": str(tmp_path / "cache" / "elf"),
        "MICRODEPLOY_LAYER": str(installer.layer),
        "MICRODEPLOY_PROJECT_WHEEL": str(tmp_path / "wheel"),
    }


def test_find_uv_prefers_the_variable() -> None:
    """$MICRODEPLOY_UV names the uv to use; else the one installed with microdeploy is found."""
    assert find_uv({"MICRODEPLOY_UV": "/somewhere/uv"}) == "/somewhere/uv"
    assert find_uv({"MICRODEPLOY_UV": ""}) is None, "set empty: build with dh-virtualenv's pip"
    found = find_uv({})
    assert found is not None and Path(found).name == "uv"


def test_layer_copy_runs_beside_the_build_and_reports_done(tmp_path: Path) -> None:
    """A saved layer is copied to DIR/venv on another thread, then `returncode` says 0; no layer, no job."""
    installer = Installer("uv", uv="/opt/uv", cache_root=tmp_path / "cache", layer=tmp_path / "cache" / "layers" / "k")
    assert installer.start_layer_copy(tmp_path / "copy") is None
    assert installer.layer is not None
    saved = installer.layer / "venv" / "lib"
    saved.mkdir(parents=True)
    (saved / "module.py").write_text("x = 1\n")
    (saved.parent / "bin").mkdir()
    (saved.parent / "bin" / "python").symlink_to("/usr/bin/python3.11")
    job = installer.start_layer_copy(tmp_path / "copy")
    assert job is not None
    job.join(timeout=10)
    assert (tmp_path / "copy" / "returncode").read_text() == "0\n"
    assert (tmp_path / "copy" / "venv" / "lib" / "module.py").read_text() == "x = 1\n"
    assert os.readlink(tmp_path / "copy" / "venv" / "bin" / "python") == "/usr/bin/python3.11"
    assert installer.environment(layer_copy=tmp_path / "copy")["MICRODEPLOY_LAYER_COPY"] == str(tmp_path / "copy")


def test_a_failed_background_job_reports_failure(tmp_path: Path) -> None:
    """An OSError in the job becomes returncode 1 in `returncode`, so the build does the work itself."""

    def broken() -> int:
        raise OSError("disk full")

    jobs.start("broken", tmp_path / "job", broken).join(timeout=10)
    assert (tmp_path / "job" / "returncode").read_text() == "1\n"


Calls = list[tuple[tuple[str, ...], dict[str, str] | None]]


def install_beside(tmp_path: Path, layer: Path, **options: object) -> Calls:
    """Run the layer copy of `layer` with a built wheel job; the uv commands it ran, with their environments."""
    wheel_dir = tmp_path / "wheel"
    wheel_dir.mkdir()
    (wheel_dir / "orders_api-1.0-py3-none-any.whl").write_bytes(b"")
    wheel_job = jobs.start("wheel", wheel_dir, lambda: 0)
    runner = FakeRunner()
    installer = Installer("uv", uv="/opt/uv", cache_root=tmp_path / "cache", layer=layer, **options)  # type: ignore[arg-type]
    job = installer.start_layer_copy(tmp_path / "copy", (wheel_job, wheel_dir), runner)
    assert job is not None
    job.join(timeout=10)
    return runner.calls


def test_layer_copy_installs_the_project_wheel_once_it_is_built(tmp_path: Path) -> None:
    """With the wheel job given: after the copy, the wheel alone outside uv's shared cache, then its dependencies
    and the WSGI server resolved from that cache; `installed` names the wheel."""
    layer = tmp_path / "cache" / "layers" / "k"
    (layer / "venv" / "bin").mkdir(parents=True)
    [(alone, _), (resolved, env)] = install_beside(tmp_path, layer, wsgi_server="gunicorn>=21")
    python = str(tmp_path / "copy" / "venv" / "bin" / "python")
    wheel = str(tmp_path / "wheel" / "orders_api-1.0-py3-none-any.whl")
    assert alone == ("/opt/uv", "pip", "install", "--quiet", "--no-deps", "--no-cache", "--link-mode", "hardlink",
                     "--python", python, wheel)
    assert resolved == ("/opt/uv", "pip", "install", "--quiet", "--python", python, wheel, "gunicorn>=21")
    assert env is not None and env["UV_LINK_MODE"] == "copy" and env["UV_CACHE_DIR"] == str(tmp_path / "cache" / "uv")
    assert (tmp_path / "copy" / "installed").read_text() == "orders_api-1.0-py3-none-any.whl"


def test_layer_copy_installs_the_wheel_alone_when_the_layer_key_holds_its_dependencies(tmp_path: Path) -> None:
    """Static dependencies (keyed, so in the layer): `--no-deps`, no resolution and no WSGI server request."""
    layer = tmp_path / "cache" / "layers" / "k"
    (layer / "venv" / "bin").mkdir(parents=True)
    [(argv, _)] = install_beside(tmp_path, layer, wsgi_server="gunicorn>=21", layer_has_dependencies=True)
    python = str(tmp_path / "copy" / "venv" / "bin" / "python")
    wheel = str(tmp_path / "wheel" / "orders_api-1.0-py3-none-any.whl")
    assert argv == ("/opt/uv", "pip", "install", "--quiet", "--no-deps", "--no-cache", "--link-mode", "hardlink",
                    "--python", python, wheel)
    assert (tmp_path / "copy" / "installed").read_text() == "orders_api-1.0-py3-none-any.whl"


def test_layer_copy_leaves_the_install_to_the_build_when_the_wheel_failed(tmp_path: Path) -> None:
    """A failed wheel build: the layer is still copied, nothing is installed, `installed` is absent."""
    layer = tmp_path / "cache" / "layers" / "k"
    (layer / "venv").mkdir(parents=True)
    wheel_job = jobs.start("wheel", tmp_path / "wheel", lambda: 1)
    runner = FakeRunner()
    installer = Installer("uv", uv="/opt/uv", cache_root=tmp_path / "cache", layer=layer)
    job = installer.start_layer_copy(tmp_path / "copy", (wheel_job, tmp_path / "wheel"), runner)
    assert job is not None
    job.join(timeout=10)
    assert runner.calls == []
    assert (tmp_path / "copy" / "venv").is_dir()
    assert not (tmp_path / "copy" / "installed").exists()


def test_beside_the_build_pip_starts_nothing_and_uv_starts_the_wheel(tmp_path: Path) -> None:
    """pip: no jobs, no variables. uv without a saved layer: the wheel job only, no MICRODEPLOY_LAYER_COPY."""
    pip = Installer("pip").start_beside(tmp_path, tmp_path / "src", "orders-api", "/usr/bin/python3.11")
    assert pip.environment == {} and pip.jobs == ()
    (tmp_path / "src").mkdir()
    runner = FakeRunner(returncode=1)
    uv = Installer("uv", uv="/opt/uv", cache_root=tmp_path / "cache", layer=tmp_path / "cache" / "layers" / "k")
    beside = uv.start_beside(tmp_path / "work", tmp_path / "src", "orders-api", "/usr/bin/python3.11", runner)
    beside.finish()
    assert len(beside.jobs) == 1
    assert beside.environment["MICRODEPLOY_PROJECT_WHEEL"] == str(tmp_path / "work" / "project-wheel")
    assert "MICRODEPLOY_LAYER_COPY" not in beside.environment
    assert (tmp_path / "work" / "project-wheel" / "returncode").read_text() == "1\n"
    assert beside.project_wheel() is None, "a failed wheel gives no version"
    assert pip.project_wheel() is None


def test_beside_the_build_gives_the_project_wheel_once_its_job_has_ended(tmp_path: Path) -> None:
    """project_wheel() waits for the wheel job and gives the wheel it left, for the version to be read from it."""
    (tmp_path / "src").mkdir()

    def build_slowly(argv, **kwargs):  # type: ignore[no-untyped-def]
        time.sleep(0.2)
        out = Path(argv[argv.index("--out-dir") + 1])
        (out / "orders_api-2.0-py3-none-any.whl").write_bytes(b"PK")
        return Result(tuple(argv), 0, "", "")

    uv = Installer("uv", uv="/opt/uv", cache_root=tmp_path / "cache")
    with patch("microdeploy.build.fastpath.wheel.ProjectWheel.build_environment", return_value=None):
        beside = uv.start_beside(tmp_path / "work", tmp_path / "src", "orders-api", "/usr/bin/python3.11",
                                 build_slowly)
        assert beside.project_wheel() == tmp_path / "work" / "project-wheel" / "orders_api-2.0-py3-none-any.whl"
    beside.finish()


def test_a_locked_project_exports_its_lock_first_and_fills_the_layer_from_it(tmp_path: Path) -> None:
    """uv.lock and no saved layer: `uv export --locked` (runtime dependencies, no project, nothing editable) before
    any job starts, then the layer gets `-r` of that export with the WSGI server."""
    source = tmp_path / "src-project"
    source.mkdir()
    runner = FakeInstaller()
    installer = Installer("uv", uv="/opt/uv", cache_root=tmp_path / "cache", layer=tmp_path / "cache" / "layers" / "k",
                          wsgi_server="gunicorn>=21", layer_has_dependencies=True, lock="uv.lock")
    beside = installer.start_beside(tmp_path / "work", source, "orders-api", "/usr/bin/python3.11", runner)
    beside.finish()
    exported = tmp_path / "work" / "locked-requirements.txt"
    export = runner.calls[0][0]
    assert export[:4] == ("/opt/uv", "export", "--quiet", "--locked")
    assert {"--no-dev", "--no-emit-project", "--no-editable", "--no-hashes"} <= set(export)
    assert export[export.index("--project") + 1] == str(source)
    assert export[export.index("--output-file") + 1] == str(exported)
    fill = [argv for argv, _ in runner.calls if "-r" in argv]
    assert fill == [("/opt/uv", "pip", "install", "--quiet", "--python", str(tmp_path / "work" / "layer-copy" / "venv"
                                                                             / "bin" / "python"),
                     "-r", str(exported), "gunicorn>=21")]
    # Should the layer not be filled, uv-pip's install in the build keeps to the lock, and to the caller's file.
    assert beside.environment["UV_CONSTRAINT"] == str(exported)
    assert (installer.layer / "venv").is_dir(), "filled: the next build restores it and exports nothing"
    caller = replace(installer, uv_settings={"UV_CONSTRAINT": "/etc/constraints.txt"},
                     layer=tmp_path / "cache" / "layers" / "k2",
                     index={"UV_INDEX": "https://private.example/simple"})
    beside = caller.start_beside(tmp_path / "again", source, "orders-api", "/usr/bin/python3.11", runner)
    beside.finish()
    again = tmp_path / "again" / "locked-requirements.txt"
    assert beside.environment["UV_CONSTRAINT"] == f"/etc/constraints.txt {again}"
    [(_, export_env)] = [call for call in runner.calls if call[0][1] == "export" and str(again) in call[0]]
    assert export_env is not None and export_env["UV_INDEX"] == "https://private.example/simple", \
        "uv checks the lock against the build's package sources"
    unlocked = replace(installer, lock=None, layer=tmp_path / "cache" / "layers" / "k3").start_beside(
        tmp_path / "free", source, "orders-api", "/usr/bin/python3.11", runner)
    unlocked.finish()
    assert "UV_CONSTRAINT" not in unlocked.environment


def test_a_pylock_goes_into_the_layer_alone_without_the_project_then_the_rest_within_its_pins(tmp_path: Path) -> None:
    """pylock.toml (pip's, in tests/data) and no saved layer: the layer gets `-r` of its copy without the project
    (uv takes a pylock.toml alone, with the service's extras), then the declared dependencies and the WSGI server
    with its versions as constraints, beside the caller's; the project's wheel goes in under them too."""
    source = tmp_path / "src-project"
    source.mkdir()
    shutil.copyfile(Path(__file__).resolve().parents[1] / "data" / "pylock" / "pip-lock.toml", source / "pylock.toml")
    wheel_dir = tmp_path / "work" / "project-wheel"
    runner = FakeInstaller()
    installer = Installer("uv", uv="/opt/uv", cache_root=tmp_path / "cache", layer=tmp_path / "cache" / "layers" / "k",
                          wsgi_server="gunicorn>=21", dependencies=("flask>=3",), lock="pylock.toml",
                          project="hello-api", extras=("postgres",),
                          uv_settings={"UV_CONSTRAINT": "/etc/constraints.txt"})
    with patch("microdeploy.build.fastpath.wheel.ProjectWheel.build_environment", return_value=None), \
            patch("microdeploy.build.fastpath.wheel.ProjectWheel._build",
                  lambda self, source, out: (out / "hello_api-0.1.0-py3-none-any.whl").write_bytes(b"") and 0):
        beside = installer.start_beside(tmp_path / "work", source, "hello-api", "/usr/bin/python3.11", runner)
        beside.finish()
    layer_lock = tmp_path / "work" / "pylock" / "pylock.layer.toml"
    pins = tmp_path / "work" / "pylock" / "pylock-constraints.txt"
    assert "hello-api" not in layer_lock.read_text() and "flask==3.1.3" in pins.read_text()
    python = ("--python", str(tmp_path / "work" / "layer-copy" / "venv" / "bin" / "python"))
    wheel = str(wheel_dir / "hello_api-0.1.0-py3-none-any.whl")
    installs = [(argv, env) for argv, env in runner.calls if argv[:3] == ("/opt/uv", "pip", "install")]
    assert [argv for argv, _ in installs] == [
        ("/opt/uv", "pip", "install", "--quiet", *python, "-r", str(layer_lock), "--extra=postgres"),
        ("/opt/uv", "pip", "install", "--quiet", *python, "flask>=3", "gunicorn>=21"),
        ("/opt/uv", "pip", "install", "--quiet", *PROJECT_ALONE, *python, wheel),
        ("/opt/uv", "pip", "install", "--quiet", *python, f"{wheel}[postgres]", "gunicorn>=21"),
    ]
    constraints = [env.get("UV_CONSTRAINT") if env else None for _, env in installs]
    assert constraints == [None] + [f"/etc/constraints.txt {pins}"] * 3
    assert beside.environment["UV_CONSTRAINT"] == f"/etc/constraints.txt {pins}", "and uv-pip's install, if needed"


def test_a_stale_lock_stops_the_build_before_any_job_starts(tmp_path: Path) -> None:
    """`uv export --locked` failing (pyproject.toml changed, the lock not): exit status 2 with uv's reason and the
    command that mends it; no wheel job, no layer."""
    source = tmp_path / "src-project"
    source.mkdir()

    def stale(argv, **kwargs):  # type: ignore[no-untyped-def]
        return Result(tuple(argv), 1, "", "error: The lockfile at `uv.lock` needs to be updated\n")

    installer = Installer("uv", uv="/opt/uv", cache_root=tmp_path / "cache", layer=tmp_path / "cache" / "layers" / "k",
                          lock="uv.lock")
    with pytest.raises(MicrodeployError) as caught:
        installer.start_beside(tmp_path / "work", source, "orders-api", "/usr/bin/python3.11", stale)
    assert caught.value.exit_code == 2
    assert "needs to be updated" in str(caught.value) and "uv lock" in (caught.value.hint or "")
    assert not (tmp_path / "work").exists()


class FakeInstaller(FakeRunner):
    """Records argv and cwd; `-m venv` makes bin/python, and `uv pip install` of a wheel puts the project in."""

    def __init__(self, fail_on: str = "") -> None:
        super().__init__()
        self.fail_on = fail_on
        self.cwds: list[Path | None] = []

    def __call__(self, argv, *, cwd=None, env=None, check=True, input=None, timeout=None,  # type: ignore[no-untyped-def]
                 inherit_env=True) -> Result:
        self.cwds.append(cwd)
        result = super().__call__(argv, cwd=cwd, env=env, check=check, inherit_env=inherit_env)
        if self.fail_on and self.fail_on in argv:
            return Result(tuple(argv), 1, "", "")
        if argv[1:3] == ["-m", "venv"]:
            (Path(argv[-1]) / "bin").mkdir(parents=True)
            (Path(argv[-1]) / "bin" / "python").symlink_to("/usr/bin/python3.11")
        elif str(argv[-1]).endswith(".whl"):
            python = Path(argv[argv.index("--python") + 1])
            (python.parent.parent / "orders_api.py").write_text("GREETING = 'hello'\n")
        return result


def fill_beside(tmp_path: Path, runner: FakeInstaller, wheel_code: int = 0,
                environ: dict[str, str] | None = None) -> tuple[Installer, Path]:
    """Run the layer fill for a project with static dependencies and no saved layer; the installer and the source.

    `environ`: the build's environment (None: this process's)."""
    source = tmp_path / "src-project"
    source.mkdir(exist_ok=True)
    wheel_dir = tmp_path / "wheel"
    wheel_dir.mkdir()
    (wheel_dir / "orders_api-1.0-py3-none-any.whl").write_bytes(b"")
    wheel_job = jobs.start("wheel", wheel_dir, lambda: wheel_code)
    installer = Installer("uv", uv="/opt/uv", cache_root=tmp_path / "cache", layer=tmp_path / "cache" / "layers" / "k",
                          wsgi_server="gunicorn>=21", layer_has_dependencies=True, dependencies=("flask>=3", "click"),
                          environ=environ)
    job = installer.start_layer_fill(tmp_path / "copy", source, "orders-api", "/usr/bin/python3.11",
                                     (wheel_job, wheel_dir), runner)
    assert job is not None
    job.join(timeout=10)
    return installer, source


def test_the_layer_fill_runs_uv_in_the_builds_environment_not_this_processs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What keys the layer (the build's UV_ variables) is what its uv runs see: the build's whole environment,
    with the build's own settings on top, not microdeploy's process environment."""
    monkeypatch.setenv("UV_OVERRIDE", "/from/microdeploys/own/environment")
    runner = FakeInstaller()
    fill_beside(tmp_path, runner, environ={"UV_CONSTRAINT": "/from/the/build", "PATH": "/usr/bin"})
    uv_runs = [(env, inherited) for (argv, env), inherited in zip(runner.calls, runner.inherited, strict=True)
               if argv[0] == "/opt/uv"]
    assert len(uv_runs) == 2  # the dependencies, then the project's wheel
    for env, inherited in uv_runs:
        assert not inherited and env is not None
        assert env["UV_CONSTRAINT"] == "/from/the/build" and "UV_OVERRIDE" not in env
        assert env["UV_LINK_MODE"] == "copy" and env["PATH"] == "/usr/bin"


def test_without_a_saved_layer_the_dependencies_are_installed_and_saved_beside_the_build(tmp_path: Path) -> None:
    """Static dependencies and no layer: a venv as make-venv makes it, the dependencies and the WSGI server
    installed from the source directory, saved as the layer without the project, then the wheel installed."""
    runner = FakeInstaller()
    installer, source = fill_beside(tmp_path, runner)
    venv = tmp_path / "copy" / "venv"
    python = str(venv / "bin" / "python")
    wheel = str(tmp_path / "wheel" / "orders_api-1.0-py3-none-any.whl")
    assert [call[0] for call in runner.calls] == [
        ("/usr/bin/python3.11", "-m", "venv", "--without-pip", "--prompt", "orders-api", str(venv)),
        ("/opt/uv", "pip", "install", "--quiet", "--python", python, "flask>=3", "click", "gunicorn>=21"),
        ("/opt/uv", "pip", "install", "--quiet", "--no-deps", "--no-cache", "--link-mode", "hardlink", "--python",
         python, wheel),
    ]
    assert runner.cwds[:2] == [source, source]
    install_env = runner.calls[1][1]
    assert install_env is not None and install_env["UV_LINK_MODE"] == "copy"
    assert (tmp_path / "copy" / "returncode").read_text() == "0\n"
    assert (tmp_path / "copy" / "installed").read_text() == "orders_api-1.0-py3-none-any.whl"
    assert (venv / "orders_api.py").is_file(), "the build gets the project"
    assert installer.layer is not None
    saved = installer.layer / "venv"
    assert os.readlink(saved / "bin" / "python") == "/usr/bin/python3.11"
    assert not (saved / "orders_api.py").exists(), "the layer is saved without the project"
    assert installer.start_layer_fill(tmp_path / "again", source, "orders-api", "/usr/bin/python3.11",
                                      (jobs.start("w", tmp_path / "w", lambda: 0), tmp_path / "w")) is None, \
        "once saved, the layer is copied (start_layer_copy), not made again"


def test_the_layer_fill_installs_requirements_txt_first_from_its_directory(tmp_path: Path) -> None:
    """requirements.txt goes in before the dependencies, from its own directory, as debian/uv-pip installs it."""
    (tmp_path / "src-project").mkdir()
    (tmp_path / "src-project" / "requirements.txt").write_text("./vendor/tools\n")
    runner = FakeInstaller()
    _, source = fill_beside(tmp_path, runner)
    venv_python = str(tmp_path / "copy" / "venv" / "bin" / "python")
    assert runner.calls[1][0] == ("/opt/uv", "pip", "install", "--quiet", "--python", venv_python,
                                  "-r", str(source / "requirements.txt"))
    assert runner.cwds[1] == source
    assert runner.calls[2][0][-3:] == ("flask>=3", "click", "gunicorn>=21")


def test_a_failed_dependency_install_leaves_the_layer_and_the_install_to_the_build(tmp_path: Path) -> None:
    """uv fails to install the dependencies: the job says so, no layer is saved and the wheel is not installed."""
    runner = FakeInstaller(fail_on="gunicorn>=21")
    installer, _ = fill_beside(tmp_path, runner)
    assert (tmp_path / "copy" / "returncode").read_text() == "1\n"
    assert installer.layer is not None and not (installer.layer / "venv").exists()
    assert not (tmp_path / "copy" / "installed").exists()
    assert len(runner.calls) == 2


def test_the_layer_fill_saves_the_layer_even_when_the_wheel_failed(tmp_path: Path) -> None:
    """A failed wheel build: the dependencies are saved and the copy is ready; uv-pip installs the project."""
    runner = FakeInstaller()
    installer, _ = fill_beside(tmp_path, runner, wheel_code=1)
    assert (tmp_path / "copy" / "returncode").read_text() == "0\n"
    assert installer.layer is not None and (installer.layer / "venv" / "bin" / "python").is_symlink()
    assert not (tmp_path / "copy" / "installed").exists()


def test_without_static_dependencies_nothing_is_made_beside_the_build(tmp_path: Path) -> None:
    """Dependencies only the wheel knows (dynamic, setup.py, an extra of the project's own): no layer fill; the
    build saves the layer itself."""
    installer = Installer("uv", uv="/opt/uv", cache_root=tmp_path / "cache", layer=tmp_path / "cache" / "layers" / "k")
    wheel = (jobs.start("w", tmp_path / "w", lambda: 0), tmp_path / "w")
    assert installer.start_layer_fill(tmp_path / "copy", tmp_path, "orders-api", "/usr/bin/python3.11", wheel) is None
    (tmp_path / "dynamic").mkdir()
    (tmp_path / "dynamic" / "pyproject.toml").write_text(
        '[project]\nname = "x"\nversion = "1"\ndynamic = ["dependencies"]\n')
    assert declared_dependencies(read_pyproject(tmp_path / "dynamic")) is None
    (tmp_path / "listed").mkdir()
    assert declared_dependencies(read_pyproject(project(tmp_path / "listed"))) == ("flask>=3",)
    (tmp_path / "itself").mkdir()
    (tmp_path / "itself" / "pyproject.toml").write_text(
        '[project]\nname = "Orders_API"\nversion = "1"\ndependencies = ["flask", "orders-api[postgres]"]\n')
    assert read_pyproject(tmp_path / "itself").static_dependencies
    assert declared_dependencies(read_pyproject(tmp_path / "itself")) is None, "an extra of its own needs the wheel"


def test_extras_add_their_dependencies_and_name_another_layer(tmp_path: Path) -> None:
    """The service's extras (normalised names) add what [project.optional-dependencies] lists for them to what the
    layer installs beside the build, and to its key; no extras keep the key they had; an extra the project does not
    declare exits 2 (pip and uv would only warn)."""
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "shop"\nversion = "1"\ndependencies = ["flask>=3"]\n'
        '[project.optional-dependencies]\nPostgres = ["psycopg2-binary>=2.9"]\nldap = ["python-ldap", "shop-auth"]\n')
    pyproject = read_pyproject(tmp_path)
    assert declared_dependencies(pyproject, ("postgres",)) == ("flask>=3", "psycopg2-binary>=2.9")
    assert declared_dependencies(pyproject, ("ldap", "postgres")) == (
        "flask>=3", "python-ldap", "shop-auth", "psycopg2-binary>=2.9")
    with pytest.raises(MicrodeployError) as caught:
        declared_dependencies(pyproject, ("postgres", "redis"))
    assert caught.value.exit_code == 2
    assert "the project has no extra redis" in str(caught.value) and "has ldap, postgres)" in str(caught.value)
    # Extras only a setup.py knows: an unpacked sdist's PKG-INFO names them; a checkout is left to the backend.
    (tmp_path / "pyproject.toml").unlink()
    check_extras(read_pyproject(tmp_path), ("redis",))
    (tmp_path / "PKG-INFO").write_text("Metadata-Version: 2.1\nName: shop\nProvides-Extra: Postgres\n")
    check_extras(read_pyproject(tmp_path), ("postgres",))
    with pytest.raises(MicrodeployError) as caught:
        check_extras(read_pyproject(tmp_path), ("redis",))
    assert "no extra redis (its PKG-INFO's Provides-Extra has postgres)" in str(caught.value)

    def keyed(extras: tuple[str, ...]) -> str:
        return layer_key(pyproject, name="shop", python_minor="3.11", wsgi_server="gunicorn>=21.2",
                         uv_version="uv 0.9.0", environ={}, extras=extras)

    assert keyed(()) == layer_key(pyproject, name="shop", python_minor="3.11", wsgi_server="gunicorn>=21.2",
                                  uv_version="uv 0.9.0", environ={})
    assert len({keyed(()), keyed(("postgres",)), keyed(("ldap",))}) == 3


def test_the_project_goes_in_with_its_extras_beside_the_build(tmp_path: Path) -> None:
    """Without a layer of every dependency, the project's wheel is installed as WHEEL[extras], so uv resolves the
    extras' dependencies too; a lock is exported with each extra."""
    wheel = "/w/shop-1-py3-none-any.whl"
    assert with_extras(wheel, ("ldap", "postgres")) == f"{wheel}[ldap,postgres]"
    assert with_extras(wheel, ()) == wheel
    calls: list[list[str]] = []

    def recorder(argv, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(list(argv))
        return Result(tuple(argv), 0, "", "")

    export_lock("/opt/uv", tmp_path, tmp_path / "req.txt", recorder, extras=("ldap", "postgres"))
    assert [arg for arg in calls[0] if arg.startswith("--extra")] == ["--extra=ldap", "--extra=postgres"]
