"""Versions the build reads when pyproject.toml states none: PKG-INFO, [build-system], the order of sources."""

from __future__ import annotations

import os
import sys
import zipfile
from collections.abc import Mapping
from pathlib import Path

import pytest

from microdeploy.build.fastpath.installer import choose_installer
from microdeploy.build.release import metadata, plan
from microdeploy.build.release.settings import BuildSettings
from microdeploy.build.release.version import GitState, upstream_version
from microdeploy.config import validate
from microdeploy.errors import MicrodeployError
from microdeploy.process import Result, run
from microdeploy.pyproject import read_pyproject


def test_sdist_version_reads_pkg_info(tmp_path: Path) -> None:
    """An unpacked sdist's PKG-INFO gives its Version."""
    (tmp_path / "PKG-INFO").write_text("Metadata-Version: 2.1\nName: shop\nVersion: 2.0.1\n\nlong text\n")
    assert metadata.sdist_version(tmp_path) == "2.0.1"
    assert metadata.sdist_version(tmp_path / "missing") is None


def test_project_version_prefers_the_configured_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--version or [project].version wins; the backend is not asked."""
    monkeypatch.setattr(plan, "dynamic_version", lambda *args: pytest.fail("backend asked"))
    config = validate({"name": ("shop", "test"), "version": ("1.2.0", "--version")})
    assert plan.project_version(tmp_path, config, BuildSettings(project=tmp_path)) == "1.2.0"


def test_project_version_from_the_backend_then_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A dynamic version is taken from the backend; setuptools' 0.0.0 means none; a bad one is refused."""
    config = validate({"name": ("shop", "test")})
    settings = BuildSettings(project=tmp_path)
    monkeypatch.setattr(plan, "dynamic_version", lambda *args: ("4.5.6", "PKG-INFO"))
    assert plan.project_version(tmp_path, config, settings) == "4.5.6"
    monkeypatch.setattr(plan, "dynamic_version", lambda *args: ("0.0.0", "the build backend's metadata"))
    assert plan.project_version(tmp_path, config, settings) is None
    monkeypatch.setattr(plan, "dynamic_version", lambda *args: ("not a version", "PKG-INFO"))
    with pytest.raises(MicrodeployError) as caught:
        plan.project_version(tmp_path, config, settings)
    assert caught.value.exit_code == 2


def test_project_version_asks_the_backend_in_the_builds_environment(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The backend's hooks get the build's environment, and with uv pip's index settings as uv's, as the build's
    other uv runs do; without uv, pip reads its own."""
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "shop"\ndynamic = ["version"]\n')
    config = validate({"name": ("shop", "test")})
    given: list[dict[str, str]] = []
    monkeypatch.setattr(plan, "dynamic_version", lambda *args: given.append(dict(args[-1])) or ("4.5.6", "PKG-INFO"))
    environ = {"HOME": str(tmp_path), "PIP_INDEX_URL": "https://pypi.example.org/simple", "SHOP": "1"}
    for uv in ("/opt/uv", ""):
        settings = BuildSettings(project=tmp_path, environ={**environ, "MICRODEPLOY_UV": uv})
        assert plan.project_version(tmp_path, config, settings) == "4.5.6"
    with_uv, without_uv = given
    assert with_uv["SHOP"] == without_uv["SHOP"] == "1"
    assert with_uv["UV_DEFAULT_INDEX"] == "https://pypi.example.org/simple" and "UV_DEFAULT_INDEX" not in without_uv


def test_the_backends_build_environment_is_keyed_by_the_callers_uv_settings_as_the_wheels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hooks' build environment (when the project's wheel gave no version) is made with the caller's
    UV_CONSTRAINT, so its key holds it, as the project wheel's build environment's key does: an environment made
    under a constraint is not taken by a build without it; pip's index settings, mapped for uv, too."""
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "shop"\ndynamic = ["version"]\n')
    (tmp_path / "constraints.txt").write_text("setuptools==68.0\n")
    config = validate({"name": ("shop", "test")})
    keyed: list[dict[str, str]] = []
    monkeypatch.setattr(metadata.ProjectWheel, "build_environment", lambda self: keyed.append(self.settings))
    monkeypatch.setattr(metadata, "sdist_version", lambda project: "1.0")
    environ = {"HOME": str(tmp_path), "PATH": os.environ["PATH"], "MICRODEPLOY_UV": "/opt/uv",
               "MICRODEPLOY_CACHE_DIR": str(tmp_path / "cache"), "UV_CONSTRAINT": "constraints.txt",
               "PIP_INDEX_URL": "https://pypi.example.org/simple"}
    settings = BuildSettings(project=tmp_path, environ=environ)
    assert plan.project_version(tmp_path, config, settings) == "1.0"
    wheels_settings = choose_installer(settings.project_file(), name="shop", python_minor="3.11",
                                       wsgi_server="gunicorn", environ=environ,
                                       runner=lambda argv, **kwargs: Result(tuple(argv), 0, "uv 0.13.9", "")
                                       ).uv_settings
    assert keyed == [wheels_settings]
    assert wheels_settings["UV_CONSTRAINT constraints.txt"] == "setuptools==68.0\n"
    assert wheels_settings["UV_DEFAULT_INDEX"] == "https://pypi.example.org/simple"


def wheel_with(path: Path, entries: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in entries.items():
            archive.writestr(name, text)
    return path


def test_wheel_version_reads_the_dist_info_metadata(tmp_path: Path) -> None:
    """The Version of the wheel's top-level *.dist-info/METADATA; None without exactly one, or for no zip."""
    metadata_text = "Metadata-Version: 2.4\nName: shop\nVersion: 2.26.1\n\nlong text\n"
    good = wheel_with(tmp_path / "shop-2.26.1-py3-none-any.whl",
                      {"shop/__init__.py": "", "shop/vendored/x.dist-info/METADATA": "Version: 9\n",
                       "shop-2.26.1.dist-info/METADATA": metadata_text})
    assert metadata.wheel_version(good) == "2.26.1"
    assert metadata.wheel_version(wheel_with(tmp_path / "none.whl", {"shop/__init__.py": ""})) is None
    (tmp_path / "broken.whl").write_bytes(b"not a zip")
    assert metadata.wheel_version(tmp_path / "broken.whl") is None


def test_dynamic_version_takes_the_wheels_and_asks_the_backend_only_without_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The project's wheel, built by its backend from this source, says the version: the hooks do not run. Without
    a wheel, or one without a version, the backend is asked."""
    asked: list[Path] = []
    monkeypatch.setattr(metadata, "backend_version", lambda project, *args: asked.append(project) or "3.1")
    build_system = read_pyproject(tmp_path).build_system
    wheel = wheel_with(tmp_path / "shop-2.0-py3-none-any.whl", {"shop-2.0.dist-info/METADATA": "Version: 2.0\n"})
    assert metadata.dynamic_version(tmp_path, build_system, sys.executable, None, wheel=wheel) == (
        "2.0", "the project's wheel")
    assert asked == []
    assert metadata.dynamic_version(tmp_path, build_system, sys.executable, None) == (
        "3.1", "the build backend's metadata")
    no_version = wheel_with(tmp_path / "odd.whl", {"odd-1.dist-info/METADATA": "Name: odd\n"})
    assert metadata.dynamic_version(tmp_path, build_system, sys.executable, None, wheel=no_version) == (
        "3.1", "the build backend's metadata")
    assert asked == [tmp_path, tmp_path]


def test_a_vcs_version_is_used_as_it_is() -> None:
    """setuptools-scm's dev+local version already says how far past the tag it is: no second suffix."""
    assert upstream_version("1.2.4.dev3+gabc1234", GitState("1.2.3", 3, "abc1234")) == "1.2.4~~dev3+gabc1234"
    assert upstream_version("1.2.3", GitState("1.2.3", 3, "abc1234")) == "1.2.4~dev3.gabc1234"


BACKEND = '''
import os

def get_requires_for_build_wheel(config_settings=None):
    return {more}

def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    os.mkdir(os.path.join(metadata_directory, "shop-3.1.dist-info"))
    with open(os.path.join(metadata_directory, "shop-3.1.dist-info", "METADATA"), "w") as handle:
        handle.write("Metadata-Version: 2.1\\nName: shop\\nVersion: 3.1\\n")
    return "shop-3.1.dist-info"
'''


@pytest.mark.parametrize("more", [[], ["extra-plugin"]])
def test_the_backend_runs_in_the_cached_build_environment_unless_it_asks_for_more(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, more: list[str]
) -> None:
    """With uv and the cache, the backend's hooks run in the cached build environment and nothing is installed;
    a backend that asks for more requirements gets a venv of its own, as without the cache."""
    project = tmp_path / "shop"
    project.mkdir()
    (project / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["shopbuild"]\nbuild-backend = "backend"\nbackend-path = ["."]\n')
    (project / "backend.py").write_text(BACKEND.format(more=more))
    shared = tmp_path / "cache" / "build-envs" / "k"
    (shared / "bin").mkdir(parents=True)
    (shared / "bin" / "python").symlink_to(sys.executable)
    asked: list[list[str]] = []
    monkeypatch.setattr(metadata.ProjectWheel, "build_environment",
                        lambda self: asked.append(list(self.build_system.requires)) or shared)
    uv_calls: list[tuple[str, ...]] = []

    def runner(argv, *, cwd=None, env=None, check=True, input=None, timeout=None,  # type: ignore[no-untyped-def]
               inherit_env=True) -> Result:
        if argv[0] != "/opt/uv":
            return run(argv, cwd=cwd, env=env, check=check)
        uv_calls.append(tuple(argv))
        if argv[1] == "venv":
            (Path(argv[-1]) / "bin").mkdir(parents=True)
            (Path(argv[-1]) / "bin" / "python").symlink_to(sys.executable)
        return Result(tuple(argv), 0, "", "")

    version = metadata.backend_version(project, read_pyproject(project).build_system, sys.executable, "/opt/uv",
                                       runner, cache=tmp_path / "cache")
    assert version == "3.1"
    assert asked == [["shopbuild"]]
    if more:
        assert [call[1] for call in uv_calls] == ["venv", "pip", "pip"]
        assert uv_calls[1][-1] == "shopbuild" and uv_calls[2][-1] == "extra-plugin"
    else:
        assert uv_calls == [], "the cached build environment is used as it is"


def test_without_uv_what_the_backend_asks_for_is_installed_with_pip(tmp_path: Path) -> None:
    """Without uv (dh-virtualenv's pip), the backend's venv of its own gets what it asks for beyond its build
    requirements from pip, and its version is read (that venv was taken for the shared one, and the build ended
    in a traceback)."""
    project = tmp_path / "shop"
    project.mkdir()
    (project / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["shopbuild"]\nbuild-backend = "backend"\nbackend-path = ["."]\n')
    (project / "backend.py").write_text(BACKEND.format(more=["wheel"]))
    pip_installs: list[tuple[str, ...]] = []

    def runner(argv, *, cwd=None, env=None, check=True, input=None, timeout=None,  # type: ignore[no-untyped-def]
               inherit_env=True) -> Result:
        if argv[1:3] == ["-m", "venv"]:
            (Path(argv[-1]) / "bin").mkdir(parents=True)
            (Path(argv[-1]) / "bin" / "python").symlink_to(sys.executable)
            return Result(tuple(argv), 0, "", "")
        if argv[1:4] == ["-m", "pip", "install"]:
            pip_installs.append(tuple(argv[-1:]))
            return Result(tuple(argv), 0, "", "")
        return run(argv, cwd=cwd, env=env, check=check)

    version = metadata.backend_version(project, read_pyproject(project).build_system, sys.executable, None, runner)
    assert version == "3.1"
    assert pip_installs == [("shopbuild",), ("wheel",)]


def test_the_backends_hooks_run_in_the_builds_environment_not_this_processs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A library caller's environment (BuildSettings.environ) is what the hooks and their venv's uv get."""
    project = tmp_path / "shop"
    project.mkdir()
    (project / "pyproject.toml").write_text(
        '[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n')
    (project / "backend.py").write_text(BACKEND.format(more=[]).replace(
        '"Metadata-Version: 2.1\\nName: shop\\nVersion: 3.1\\n"',
        '"Metadata-Version: 2.1\\nName: shop\\nVersion: " + os.environ["SHOP_VERSION"] + "\\n"'))
    monkeypatch.setenv("SHOP_VERSION", "9.9")  # microdeploy's own environment: not the build's
    uv_environments: list[Mapping[str, str] | None] = []

    def runner(argv, *, cwd=None, env=None, check=True, input=None, timeout=None,  # type: ignore[no-untyped-def]
               inherit_env=True) -> Result:
        if argv[0] != "/opt/uv":
            return run(argv, cwd=cwd, env=env, check=check, inherit_env=inherit_env)
        uv_environments.append(None if inherit_env else env)
        (Path(argv[-1]) / "bin").mkdir(parents=True)
        (Path(argv[-1]) / "bin" / "python").symlink_to(sys.executable)
        return Result(tuple(argv), 0, "", "")

    environ = {"PATH": os.environ["PATH"], "SHOP_VERSION": "4.2", "UV_INDEX_URL": "https://pypi.example.org/simple"}
    version = metadata.backend_version(project, read_pyproject(project).build_system, sys.executable, "/opt/uv",
                                       runner, environ=environ)
    assert version == "4.2"
    [uv_venv] = uv_environments
    assert uv_venv is not None and uv_venv["UV_INDEX_URL"] == "https://pypi.example.org/simple"
