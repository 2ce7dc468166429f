"""The fast path of `microdeploy build`: reproducible output, and caches that never serve stale code.

Builds the benchmark's service (bench/service: Flask and gunicorn, pinned)
with the real dpkg-buildpackage, dh-virtualenv and uv, with a cache
directory of the test's own.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import os
import shutil
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from microdeploy.build.fastpath import tardates
from microdeploy.build.fastpath.layer import is_shared
from microdeploy.build.fastpath.systembackend import SYSTEM_SITE, installed
from microdeploy.build.output import BuildResult
from microdeploy.build.pipeline import build
from microdeploy.build.release.settings import BuildSettings
from tests.packages import EPOCH
from tests.qa import deb_members, xz_dictionaries

pytestmark = pytest.mark.integration

SERVICE = Path(__file__).resolve().parents[2] / "bench" / "service"
GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org"]


def checkout(dest: Path) -> Path:
    """A git checkout of the benchmark service at `dest`."""
    shutil.copytree(SERVICE, dest)
    subprocess.run([*GIT, "init", "-q"], cwd=dest, check=True)
    commit(dest, "hello-api")
    return dest


def commit(project: Path, message: str) -> None:
    subprocess.run([*GIT, "add", "-A"], cwd=project, check=True)
    subprocess.run([*GIT, "commit", "-q", "-m", message], cwd=project, check=True)


def build_with(project: Path, out: Path, cache: Path, environ: dict[str, str] | None = None,
               **extra: object) -> BuildResult:
    environ = {**os.environ, "SOURCE_DATE_EPOCH": EPOCH, "MICRODEPLOY_CACHE_DIR": str(cache), **(environ or {})}
    environ.pop("BUILD_NUMBER", None)
    return build(BuildSettings(project=project, out=out, environ=environ, **extra))  # type: ignore[arg-type]


def payload(deb: Path) -> dict[str, bytes]:
    """Path -> bytes of every regular file the package installs."""
    data = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        files = {}
        for member in tar.getmembers():
            extracted = tar.extractfile(member) if member.isfile() else None
            if extracted is not None:
                files[member.name.removeprefix(".")] = extracted.read()
    return files


def tree_bytes(root: Path) -> dict[str, bytes | str]:
    """Relative path -> bytes of every file (a symlink's target) under `root`."""
    return {str(path.relative_to(root)): (os.readlink(path) if path.is_symlink() else path.read_bytes())
            for path in sorted(root.rglob("*")) if path.is_symlink() or path.is_file()}


def tree_state(root: Path) -> dict[str, tuple[bytes | str, int, int]]:
    """Relative path -> (bytes or symlink target, mode, mtime in ns) of every file under `root`."""
    return {path: (data, (status := os.lstat(root / path)).st_mode, status.st_mtime_ns)
            for path, data in tree_bytes(root).items()}


SITE = "/opt/venvs/hello-api/lib/python3.11/site-packages"


@pytest.fixture(scope="module")
def first_build(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, BuildResult]:
    """hello-api built once with an empty cache: (checkout, cache, result)."""
    root = tmp_path_factory.mktemp("caches")
    project = checkout(root / "one" / "hello-api")
    cache = root / "cache"
    return project, cache, build_with(project, root / "dist-one", cache)


def test_two_builds_of_one_commit_in_different_directories_are_byte_identical(
    first_build: tuple[Path, Path, BuildResult], tmp_path: Path
) -> None:
    """Same commit and SOURCE_DATE_EPOCH: the cold build and a warm one elsewhere make the same .deb."""
    project, cache, first = first_build
    layers = list((cache / "layers").glob("*/venv"))
    assert len(layers) == 1, "the first build saves its dependency layer"
    saved = {path.name for path in layers[0].glob("lib/python3.11/site-packages/*")}
    assert {"flask", "gunicorn"} <= saved, "the layer holds the dependencies"
    assert not {name for name in saved if name.startswith("hello_api")}, "and not the project itself"
    assert len(list((cache / "debian").iterdir())) == 1, "and kept its rendered debian/, which the next one copies"
    [environment] = (cache / "build-envs").iterdir()
    assert (environment / "lib" / "python3.11" / "site-packages" / "setuptools").readlink() == \
        SYSTEM_SITE / "setuptools", "the wheel was built with Debian's setuptools, linked into its build environment"
    [wheel_file] = [path for path in payload(first.deb) if path.endswith(".dist-info/WHEEL") and "hello_api" in path]
    generator = f"Generator: bdist_wheel ({installed('wheel').version})"  # python3-wheel's, as Debian 12's asks
    assert generator in payload(first.deb)[wheel_file].decode()
    saved_layer = tree_state(layers[0])
    shared = [path for path in layers[0].rglob("*") if is_shared(os.lstat(path))]
    assert len(shared) > 100, "most of the layer's files are saved to be shared by hard link"
    other = tmp_path / "elsewhere" / "service-copy"
    shutil.copytree(project, other)  # the same commit, with its .git
    second = build_with(other, tmp_path / "dist-two", cache, environ={"DPKG_DEB_THREADS_MAX": "1"})
    assert second.deb.name == first.deb.name
    assert second.deb.read_bytes() == first.deb.read_bytes()
    assert list((cache / "layers").glob("*/venv")) == layers and tree_state(layers[0]) == saved_layer, \
        "the warm build restored the saved layer and left it as it was: bytes, modes and times"
    assert len(list((cache / "debian").iterdir())) == 1 and len(list((cache / "wheels").glob("*/*"))) == 1, \
        "and reused the rendered debian/ and the project's wheel"
    refreshed = build_with(other, tmp_path / "dist-three", cache, refresh_deps=True)
    assert refreshed.deb.read_bytes() == first.deb.read_bytes()


def test_a_layer_saved_before_the_commit_still_gives_the_same_deb(
    first_build: tuple[Path, Path, BuildResult], tmp_path: Path
) -> None:
    """Files older than SOURCE_DATE_EPOCH (a cache filled before the commit) are dated it too, control and the
    files around the venv; the venv's are dated by their content (fastpath/tardates.py), older than the commit."""
    project, cache, first = first_build
    older = int(EPOCH) - 30 * 86400
    for layer in (cache / "layers").glob("*/venv"):
        for path in [layer, *layer.rglob("*")]:
            os.utime(path, (older, older), follow_symlinks=False)
    again = build_with(shutil.copytree(project, tmp_path / "hello-api"), tmp_path / "dist", cache)
    dated: dict[str, set[int]] = {"control": set(), "around the venv": set(), "venv": set()}
    for part in ("--fsys-tarfile", "--ctrl-tarfile"):
        data = subprocess.run(["dpkg-deb", part, str(again.deb)], check=True, capture_output=True).stdout
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            for member in tar.getmembers():
                where = ("control" if part == "--ctrl-tarfile" else
                         "venv" if member.name.startswith("./opt/venvs/hello-api") else "around the venv")
                dated[where].add(int(member.mtime))
    assert dated["control"] == dated["around the venv"] == {int(EPOCH)}
    assert len(dated["venv"]) > 10 and all(
        tardates.CONTENT_DATES_FROM <= date < min(int(EPOCH), older) for date in dated["venv"])
    assert again.deb.read_bytes() == first.deb.read_bytes()


def test_no_build_path_installer_or_cache_trace_is_shipped(first_build: tuple[Path, Path, BuildResult]) -> None:
    """No build directory, checkout, cache path or tool of the build in any shipped file."""
    project, cache, first = first_build
    files = payload(first.deb)
    for needle in (b"/tmp/microdeploy-", str(project).encode(), str(cache).encode(), b"src-project"):
        leaks = [name for name, data in files.items() if needle in data]
        assert leaks == [], f"{needle!r} in {leaks}"
    names = set(files)
    assert "/opt/venvs/hello-api/bin/uv-pip" not in names
    assert not [n for n in names if n.startswith((f"{SITE}/pip/", f"{SITE}/setuptools/", f"{SITE}/wheel/"))]
    assert not [n for n in names if n.endswith(("direct_url.json", "uv_cache.json")) or "__pycache__" in n]
    script = files["/opt/venvs/hello-api/bin/gunicorn"]
    assert script.startswith(b"#!/opt/venvs/hello-api/bin/python")
    # The venv the cold build's layer was made in names the service, as a venv made at /opt/venvs/hello-api
    # (debian/make-venv's, when the fast path is not taken) does: "(venv)" made the two builds' bytes differ.
    assert b"(hello-api) " in files["/opt/venvs/hello-api/bin/activate"]
    assert b"(venv)" not in files["/opt/venvs/hello-api/bin/activate"]


def test_record_files_match_the_shipped_files(first_build: tuple[Path, Path, BuildResult]) -> None:
    """Every RECORD line of a shipped file carries that file's real sha256 and size."""
    check_records(payload(first_build[2].deb))


def test_without_uv_pip_builds_the_same_kind_of_venv_without_installers(
    first_build: tuple[Path, Path, BuildResult], tmp_path: Path
) -> None:
    """MICRODEPLOY_UV="" (no uv): dh-virtualenv's pip fills the venv; prune removes pip and setuptools before
    dh_strip and the parallel steps, the RECORD files match, and the same packages are shipped."""
    project, _, first = first_build
    built = build_with(shutil.copytree(project, tmp_path / "hello-api"), tmp_path / "dist", tmp_path / "cache",
                       environ={"MICRODEPLOY_UV": ""})
    files = payload(built.deb)
    assert not (tmp_path / "cache").exists(), "pip uses no microdeploy cache"
    assert not [n for n in files if n.startswith((f"{SITE}/pip/", f"{SITE}/setuptools/", f"{SITE}/wheel/"))]
    assert not [n for n in files
                if "__pycache__" in n or n.endswith(("direct_url.json", "/bin/uv-pip", "/bin/plain-pip"))]
    assert files["/opt/venvs/hello-api/bin/gunicorn"].startswith(b"#!/opt/venvs/hello-api/bin/python")
    check_records(files)
    assert top_level(files) == top_level(payload(first.deb)) >= {"flask", "gunicorn", "hello_api", "werkzeug"}


def top_level(files: dict[str, bytes]) -> set[str]:
    """The importable top-level names the venv ships (packages and modules, not their metadata)."""
    return {name.removeprefix(f"{SITE}/").split("/")[0].removesuffix(".py")
            for name in files if name.startswith(f"{SITE}/") and ".dist-info/" not in name}


def check_records(files: dict[str, bytes]) -> None:
    """Every RECORD line of a shipped file carries that file's real sha256 and size."""
    records = [name for name in files if name.endswith(".dist-info/RECORD")]
    assert records
    for record in records:
        for path, digest, size in csv.reader(io.StringIO(files[record].decode())):
            shipped = os.path.normpath(f"{SITE}/{path}")
            if shipped == record:
                continue
            data = files[shipped]
            expected = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            assert (digest, size) == (f"sha256={expected}", str(len(data))), shipped


def test_app_and_dependency_changes_reach_the_package(
    first_build: tuple[Path, Path, BuildResult], tmp_path: Path
) -> None:
    """Reused layers and wheels never hide a change: new code after an app commit, a new package after a deps one."""
    built, cache, _ = first_build
    project = shutil.copytree(built, tmp_path / "hello-api")
    greeting = project / "src" / "hello_api" / "greeting.py"
    greeting.write_text('GREETING = "changed greeting"\n')
    (project / "src" / "hello_api" / "wsgi.py").rename(project / "src" / "hello_api" / "app.py")
    (project / "pyproject.toml").write_text((project / "pyproject.toml").read_text().replace(
        'app = "hello_api.wsgi:app"', 'app = "hello_api.app:app"'))
    commit(project, "a new greeting, wsgi.py renamed")
    app_change = payload(build_with(project, tmp_path / "app", cache).deb)
    assert b"changed greeting" in app_change[f"{SITE}/hello_api/greeting.py"]
    assert f"{SITE}/hello_api/app.py" in app_change
    assert f"{SITE}/hello_api/wsgi.py" not in app_change, "a module the commit removed is not shipped"
    assert len(list((cache / "layers").glob("*/venv"))) == 1, "an app-only change reuses the layer"
    assert not list((cache / "uv").glob("archive-v*/*/hello_api")), "uv's cache keeps no build's unpacked project"
    assert not [n for n in app_change if n.startswith(f"{SITE}/six")]

    pyproject = project / "pyproject.toml"
    pinned = '"gunicorn==23.0.0",'
    pyproject.write_text(pyproject.read_text().replace(pinned, pinned + '\n    "six==1.17.0",'))
    commit(project, "depend on six")
    dep_change = payload(build_with(project, tmp_path / "deps", cache).deb)
    assert f"{SITE}/six.py" in dep_change
    assert b"changed greeting" in dep_change[f"{SITE}/hello_api/greeting.py"]
    assert len(list((cache / "layers").glob("*/venv"))) == 2


def test_a_constraint_given_to_uv_reaches_the_package_past_a_saved_layer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """UV_CONSTRAINT, and a new text in its file, make a new layer: a warm cache never ships what they exclude.
    The build's environment counts, for the uv runs beside dpkg-buildpackage too, not microdeploy's own."""
    project = checkout(tmp_path / "hello-api")
    pyproject = project / "pyproject.toml"
    pinned = '"gunicorn==23.0.0",'
    pyproject.write_text(pyproject.read_text().replace(pinned, pinned + '\n    "six",'))
    commit(project, "depend on six, any version")
    cache = tmp_path / "cache"

    def six_version(environ: dict[str, str] | None = None) -> bytes:
        out = tmp_path / f"dist-{len(list(tmp_path.glob('dist-*')))}"
        files = payload(build_with(project, out, cache, environ=environ).deb)
        [line] = [line for line in files[f"{SITE}/six.py"].splitlines() if line.startswith(b"__version__")]
        return line

    newest = six_version()
    constraints = tmp_path / "constraints.txt"
    constraints.write_text("six==1.16.0\n")
    monkeypatch.setenv("UV_CONSTRAINT", str(constraints))  # as the caller's shell sets it
    assert six_version() == b'__version__ = "1.16.0"' != newest
    constraints.write_text("six==1.15.0\n")
    assert six_version() == b'__version__ = "1.15.0"'
    assert len(list((cache / "layers").glob("*/venv"))) == 3
    monkeypatch.delenv("UV_CONSTRAINT")
    other = tmp_path / "other-constraints.txt"
    other.write_text("six==1.14.0\n")
    assert six_version({"UV_CONSTRAINT": str(other)}) == b'__version__ = "1.14.0"', \
        "a library caller's environment, not microdeploy's own, decides what the layer installs"


def test_a_project_with_dynamic_dependencies_stays_out_of_uvs_shared_cache(tmp_path: Path) -> None:
    """setuptools reads the dependencies from a file, so pyproject.toml does not list them: the first build
    installs the project's wheel through debian/uv-pip, the app-only rebuild into the restored layer with a
    resolution. Both ship the project with what it depends on, and neither leaves an unpacked copy of the
    project in uv's shared cache, which would grow by one at every commit."""
    project = checkout(tmp_path / "hello-api")
    pyproject = project / "pyproject.toml"
    text = pyproject.read_text()
    listed = text[text.index("dependencies = ["):text.index("]", text.index("dependencies = [")) + 1]
    pyproject.write_text(text.replace(listed, 'dynamic = ["dependencies"]') +
                         '\n[tool.setuptools.dynamic]\ndependencies = {file = ["requirements.in"]}\n')
    (project / "requirements.in").write_text("flask==3.1.3\ngunicorn==23.0.0\nsix>=1.3\n")
    commit(project, "dynamic dependencies")
    cache = tmp_path / "cache"
    unpacked = "archive-v*/*/hello_api"

    first = payload(build_with(project, tmp_path / "first", cache).deb)
    assert f"{SITE}/flask/__init__.py" in first and f"{SITE}/six.py" in first
    assert f"{SITE}/hello_api/greeting.py" in first
    assert len(list((cache / "layers").glob("*/venv"))) == 1
    assert not list((cache / "uv").glob(unpacked)), "uv's cache keeps no build's unpacked project"

    greeting = project / "src" / "hello_api" / "greeting.py"
    greeting.write_text(greeting.read_text() + '\nCHANGED = "changed greeting"\n')
    commit(project, "change the greeting")
    again = payload(build_with(project, tmp_path / "again", cache).deb)
    assert b"changed greeting" in again[f"{SITE}/hello_api/greeting.py"]
    assert f"{SITE}/flask/__init__.py" in again and f"{SITE}/six.py" in again
    assert len(list((cache / "layers").glob("*/venv"))) == 1, "an app-only change reuses the layer"
    assert not list((cache / "uv").glob(unpacked)), "uv's cache keeps no build's unpacked project"


def vendor_tools(project: Path) -> Path:
    """A setuptools package `tools` (tools.py, VERSION = 1) at the project's vendor/tools; its directory."""
    tools = project / "vendor" / "tools"
    tools.mkdir(parents=True)
    (tools / "pyproject.toml").write_text(
        '[project]\nname = "tools"\nversion = "1.0"\n\n'
        '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n'
    )
    (tools / "tools.py").write_text("VERSION = 1\n")
    return tools


def test_a_vendored_package_in_requirements_txt_is_installed_and_its_changes_reach_the_package(
    first_build: tuple[Path, Path, BuildResult], tmp_path: Path
) -> None:
    """requirements.txt's `./vendor/tools` is the project's vendor/tools; the layer never hides a change in it."""
    built, cache, _ = first_build
    project = shutil.copytree(built, tmp_path / "hello-api")
    tools = vendor_tools(project)
    (project / "requirements.txt").write_text("./vendor/tools\n")
    commit(project, "vendor tools")
    assert payload(build_with(project, tmp_path / "one", cache).deb)[f"{SITE}/tools.py"] == b"VERSION = 1\n"
    (tools / "tools.py").write_text("VERSION = 2\n")
    commit(project, "tools 2")
    assert payload(build_with(project, tmp_path / "two", cache).deb)[f"{SITE}/tools.py"] == b"VERSION = 2\n"


@pytest.mark.parametrize("uv", ["uv", "pip"])
def test_editable_requirements_ship_as_installed_code_not_links_into_the_build_tree(
    first_build: tuple[Path, Path, BuildResult], tmp_path: Path, uv: str
) -> None:
    """requirements.txt as many projects write it for their development setup, `-e .` and `-e ./vendor/tools`:
    with uv or dh-virtualenv's pip, the package ships the project's and the vendored package's modules, and no
    editable install (a .pth or finder pointing into the build tree, gone on the host). The checkout's
    requirements.txt stays as it is."""
    built, cache, _ = first_build
    project = shutil.copytree(built, tmp_path / "hello-api")
    vendor_tools(project)
    requirements = "flask==3.1.3\n-e ./vendor/tools\n-e .\n"
    (project / "requirements.txt").write_text(requirements)
    commit(project, "editable requirements")
    environ = {"MICRODEPLOY_UV": ""} if uv == "pip" else {}
    files = payload(build_with(project, tmp_path / "dist", cache, environ).deb)
    assert files[f"{SITE}/tools.py"] == b"VERSION = 1\n"
    assert f"{SITE}/hello_api/greeting.py" in files
    editable = [name for name in files if "__editable__" in name or name.endswith(".egg-link")]
    assert editable == []
    leaks = [name for name, data in files.items() if b"src-project" in data or b"/tmp/microdeploy-" in data]
    assert leaks == []
    assert (project / "requirements.txt").read_text() == requirements


def test_an_unpacked_sdist_builds_reproducibly_without_source_date_epoch(
    first_build: tuple[Path, Path, BuildResult], tmp_path: Path
) -> None:
    """No git, no SOURCE_DATE_EPOCH: two copies with the same file times make the same .deb, dated by them."""
    _, cache, _ = first_build
    environ = {key: value for key, value in os.environ.items() if key not in ("SOURCE_DATE_EPOCH", "BUILD_NUMBER")}
    environ["MICRODEPLOY_CACHE_DIR"] = str(cache)
    debs = []
    for place in ("here", "there"):
        project = shutil.copytree(SERVICE, tmp_path / place / "hello-api-0.1.0")  # copy2 keeps the times
        debs.append(build(BuildSettings(project=project, out=tmp_path / place / "dist", environ=environ)).deb)
    assert debs[0].read_bytes() == debs[1].read_bytes()
    newest = max(int(p.stat().st_mtime) for p in SERVICE.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    # dpkg-deb dates the archive members SOURCE_DATE_EPOCH; ar prints them in $TZ.
    dates = subprocess.run(["ar", "tv", str(debs[0])], capture_output=True, text=True, check=True,
                           env={**os.environ, "TZ": "UTC"}).stdout
    assert time.strftime("%b %e %H:%M %Y", time.gmtime(newest)) in dates, dates


def test_compression_trades_size_not_contents(
    first_build: tuple[Path, Path, BuildResult], tmp_path: Path
) -> None:
    """The default is gzip; compression xz at level 6 ships the same files, as data.tar.xz (preset 6's 8 MiB
    dictionary), in a smaller package."""
    project, cache, first = first_build
    assert deb_members(first.deb) == ["debian-binary", "control.tar.gz", "data.tar.gz"]
    smaller = build_with(project, tmp_path / "dist", cache, overrides={"compression": "xz", "compression_level": 6})
    assert deb_members(smaller.deb) == ["debian-binary", "control.tar.xz", "data.tar.xz"]
    assert payload(smaller.deb) == payload(first.deb)
    assert smaller.deb.stat().st_size < 0.95 * first.deb.stat().st_size
    assert xz_dictionaries(smaller.deb) == {"8MiB"}


def test_a_project_debians_setuptools_refuses_is_built_with_uvs_from_then_on(tmp_path: Path) -> None:
    """`license = "MIT"` (PEP 639) with setuptools>=61: Debian 12's setuptools 66 refuses the pyproject.toml, so
    the wheel is built in uv's build environment (the newest setuptools, its bytecode compiled for later builds),
    and the next build of the project goes there without trying Debian's first."""
    project = checkout(tmp_path / "hello-api")
    text = (project / "pyproject.toml").read_text()
    (project / "pyproject.toml").write_text(text.replace('requires-python = ">=3.11"\n',
                                                         'requires-python = ">=3.11"\nlicense = "MIT"\n'))
    commit(project, "licensed")
    cache = tmp_path / "cache"
    first = build_with(project, tmp_path / "dist-one", cache)
    files = payload(first.deb)
    [metadata] = [path for path in files if path.endswith("hello_api-0.1.0.dist-info/METADATA")]
    assert "License-Expression: MIT" in files[metadata].decode()
    assert "Generator: setuptools" in files[metadata.replace("METADATA", "WHEEL")].decode()
    environments = {path.name: path for path in (cache / "build-envs").iterdir()}
    [system] = [path for path in environments.values() if list(path.glob("refused-hello-api-*"))]
    [uvs] = [path for path in environments.values() if path != system]
    assert list(uvs.glob("lib/python3.11/site-packages/setuptools/__pycache__/build_meta.*.pyc")), \
        "uv's build environment carries the backend's bytecode, compiled beside the wheel's build"
    (project / "src" / "hello_api" / "extra.py").write_text("EXTRA = 1\n")
    commit(project, "another module")
    [mark] = system.glob("refused-hello-api-*")
    refused_at = mark.stat().st_mtime_ns
    second = build_with(project, tmp_path / "dist-two", cache)
    assert any(path.endswith("hello_api/extra.py") for path in payload(second.deb))
    assert mark.stat().st_mtime_ns == refused_at, "not tried in Debian's again"
