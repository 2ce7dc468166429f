"""A project's pyproject.toml, read once: its tables, PEP 517's fallbacks, and a broken file refused (exit 2)."""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from microdeploy import pyproject
from microdeploy.build import buildroot, dhvirtualenv, records
from microdeploy.build.fastpath.contract import STAND_IN_DIR
from microdeploy.build.fastpath.installer import Installer
from microdeploy.build.pipeline import build_releases
from microdeploy.build.release.settings import BuildSettings
from microdeploy.config import load_config
from microdeploy.errors import EXIT_BAD_INPUT, MicrodeployError
from microdeploy.process import Result
from microdeploy.pyproject import LEGACY_BACKEND, LEGACY_REQUIRES, BuildSystem, read_pyproject
from tests.hostile import assert_refused, invoke, service, tree

FLIT = """\
[build-system]
requires = ["flit_core>=3.9,<4"]
build-backend = "flit_core.buildapi"
backend-path = ["."]

[project]
name = "shop"
dynamic = ["version"]
dependencies = ["flask>=3", "gunicorn"]

[tool.microdeploy]
port = 8100

[tool.uv]
index-url = "https://mirror.invalid/simple"
"""
# (what is broken, the file's bytes, words the message must hold, the hint's first word)
BROKEN = [
    ("toml-syntax", b"[project\nname = 'x'\n", "cannot parse", "Fix"),
    ("not-utf8", b'[project]\nname = "caf\xe9"\n', "not UTF-8", "Save"),
    ("build-system-not-a-table", b'build-system = "setuptools"\n', "[build-system] is 'setuptools', not a table",
     "Write"),
    ("project-not-a-table", b"project = 3\n", "[project] is 3, not a table", "Write"),
    ("requires-a-string", b'[build-system]\nrequires = "setuptools"\n',
     "[build-system] requires is 'setuptools', not a list of strings", "Write"),
    ("requires-not-strings", b"[build-system]\nrequires = [1, 2]\n", "requires is [1, 2], not a list of strings",
     "Write"),
    ("backend-not-a-string", b'[build-system]\nrequires = []\nbuild-backend = ["setuptools.build_meta"]\n',
     "build-backend is ['setuptools.build_meta'], not a module name", "Name"),
    ("backend-empty", b'[build-system]\nrequires = []\nbuild-backend = ""\n', "build-backend is '', not a module",
     "Name"),
    ("backend-path-a-string", b'[build-system]\nrequires = []\nbackend-path = "."\n',
     "backend-path is '.', not a list of strings", "Write"),
    ("dependencies-a-string", b'[project]\nname = "x"\ndependencies = "flask"\n',
     "[project] dependencies is 'flask', not a list of strings", "Write"),
    ("dynamic-not-a-list", b'[project]\nname = "x"\ndynamic = "version"\n', "dynamic is 'version', not a list",
     "Write"),
    ("long-value-cut-short", b"project = '" + b"x" * 200 + b"'\n", "[project] is 'xxxx", "Write"),
]


def write(project: Path, text: str | bytes) -> Path:
    project.mkdir(parents=True, exist_ok=True)
    path = project / "pyproject.toml"
    if isinstance(text, str):
        path.write_text(text)
    else:
        path.write_bytes(text)
    return project


def refused(project: Path) -> MicrodeployError:
    with pytest.raises(MicrodeployError) as info:
        read_pyproject(project)
    return info.value


def test_a_project_without_pyproject_gets_pep517s_fallbacks(tmp_path: Path) -> None:
    """No pyproject.toml: nothing found, no tables, setuptools' legacy backend and requirements."""
    found = read_pyproject(tmp_path)
    assert (found.found, found.path, found.directory) == (False, tmp_path / "pyproject.toml", tmp_path)
    assert found.build_system == BuildSystem(LEGACY_REQUIRES, LEGACY_BACKEND, ())
    assert found.build_system.setuptools
    assert (found.project, found.dependencies, found.dynamic, found.tool("microdeploy")) == ({}, (), (), {})
    assert not found.static_dependencies


def test_a_valid_file_gives_its_tables_typed(tmp_path: Path) -> None:
    """[build-system] as declared, [project]'s lists as tuples, each [tool.NAME] table."""
    found = read_pyproject(write(tmp_path, FLIT))
    assert found.found
    assert found.build_system == BuildSystem(("flit_core>=3.9,<4",), "flit_core.buildapi", (".",))
    assert not found.build_system.setuptools
    assert found.project["name"] == "shop"
    assert (found.dependencies, found.dynamic) == (("flask>=3", "gunicorn"), ("version",))
    assert found.static_dependencies, "only the version is dynamic"
    assert found.tool("microdeploy") == {"port": 8100}
    assert found.tool("uv") == {"index-url": "https://mirror.invalid/simple"}
    assert found.tool("black") == {}
    assert found.data["tool"]["uv"] == found.tool("uv")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[project]\nname = "x"\n', BuildSystem()),
        ('[build-system]\nrequires = ["setuptools>=61"]\n', BuildSystem(("setuptools>=61",), LEGACY_BACKEND)),
        ('[build-system]\nbuild-backend = "setuptools.build_meta"\n',
         BuildSystem(LEGACY_REQUIRES, "setuptools.build_meta")),
        ("[build-system]\nrequires = []\n", BuildSystem((), LEGACY_BACKEND)),
    ],
    ids=["no-build-system", "no-backend", "no-requires", "empty-requires"],
)
def test_pep517_fallbacks_fill_in_what_build_system_leaves_out(tmp_path: Path, text: str,
                                                               expected: BuildSystem) -> None:
    """Without [build-system], its build-backend or its requires, PEP 517's setuptools defaults stand in."""
    found = read_pyproject(write(tmp_path, text)).build_system
    assert found == expected
    assert found.setuptools


def test_only_setuptools_backends_count_as_setuptools() -> None:
    """setuptools.build_meta and the legacy backend are setuptools; hatchling is not."""
    assert BuildSystem(backend="setuptools.build_meta").setuptools
    assert BuildSystem(backend=LEGACY_BACKEND).setuptools
    assert not BuildSystem(backend="hatchling.build").setuptools


@pytest.mark.parametrize(("kind", "content", "words", "verb"), BROKEN, ids=[case[0] for case in BROKEN])
def test_a_broken_file_is_bad_input_that_names_it(tmp_path: Path, kind: str, content: bytes, words: str,
                                                  verb: str) -> None:
    """Each kind of broken pyproject.toml is one error, exit status 2, naming the file and what is wrong."""
    error = refused(write(tmp_path, content))
    assert error.exit_code == EXIT_BAD_INPUT
    assert str(tmp_path / "pyproject.toml") in error.message
    assert words in error.message
    assert error.hint is not None and error.hint.split()[0] == verb
    assert len(error.message) < 300, "a long value is cut short"


def test_a_tool_table_that_is_not_a_table_is_bad_input(tmp_path: Path) -> None:
    """[tool] written as a value is refused when read; [tool.microdeploy] when the service model asks for it."""
    assert "[tool] is 1, not a table" in refused(write(tmp_path / "a", "tool = 1\n")).message
    assert read_pyproject(write(tmp_path / "c", "[tool]\nblack = 1\n")).tool("uv") == {}, "another tool's business"
    found = read_pyproject(write(tmp_path / "b", '[tool]\nmicrodeploy = "orders-api"\n'))
    with pytest.raises(MicrodeployError) as info:
        load_config(tmp_path / "b")
    assert info.value.exit_code == EXIT_BAD_INPUT
    assert f"{found.path}: [tool.microdeploy] is 'orders-api', not a table" in info.value.message


def test_an_unreadable_file_is_bad_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file that cannot be read (a permission denied) is named with the system's reason."""
    project = write(tmp_path, FLIT)

    def denied(self: Path, encoding: str | None = None) -> str:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_text", denied)
    error = refused(project)
    assert error.exit_code == EXIT_BAD_INPUT
    assert error.message == f"cannot read {project / 'pyproject.toml'}: Permission denied"


def test_a_broken_microdeploy_toml_is_named_the_same_way(tmp_path: Path) -> None:
    """microdeploy.toml beside a setup.py is parsed by the same reader: exit 2, the file named."""
    (tmp_path / "setup.py").write_text("from setuptools import setup\nsetup()\n")
    (tmp_path / "microdeploy.toml").write_bytes(b'name = "caf\xe9"\n')
    with pytest.raises(MicrodeployError) as info:
        load_config(tmp_path)
    assert info.value.exit_code == EXIT_BAD_INPUT
    assert f"cannot parse {tmp_path / 'microdeploy.toml'}: it is not UTF-8" in info.value.message


@pytest.mark.parametrize(
    ("backend", "broken", "words"),
    [
        ("dh-virtualenv", ("[tool.microdeploy]", "[tool.microdeploy"), "cannot parse"),
        ("dh-virtualenv", ('requires = ["setuptools>=61"]', 'requires = "setuptools>=61"'), "not a list of strings"),
        ("stdeb", ('build-backend = "setuptools.build_meta"', "build-backend = 61"), "not a module name"),
    ],
    ids=["toml-syntax", "requires-a-string", "stdeb-backend-a-number"],
)
def test_build_of_a_broken_pyproject_exits_2_and_writes_nothing(tmp_path: Path, backend: str,
                                                                broken: tuple[str, str], words: str) -> None:
    """`microdeploy build` names the broken pyproject.toml, exits 2, and writes nothing: no --out, no cache."""
    project = service(tmp_path)
    pyproject = project / "pyproject.toml"
    text = pyproject.read_text()
    assert broken[0] in text
    pyproject.write_text(text.replace(broken[0], broken[1]))
    before = tree(tmp_path)
    result = invoke(["build", str(project), "--out", str(tmp_path / "dist"), "--backend", backend],
                    env={"MICRODEPLOY_CACHE_DIR": str(tmp_path / "cache")})
    assert_refused(result, before, tree(tmp_path), f"{pyproject}")
    assert words in result.stderr
    assert not (tmp_path / "dist").exists() and not (tmp_path / "cache").exists()


def plain_package() -> bytes:
    """A .deb as dpkg-deb -Znone writes it (debian/rules asks for it; microdeploy gzips its members), empty."""
    members = [("debian-binary", b"2.0\n")]
    for name in ("control.tar", "data.tar"):
        tar = io.BytesIO()
        tarfile.open(fileobj=tar, mode="w").close()
        members.append((name, tar.getvalue()))
    return b"!<arch>\n" + b"".join(
        f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n".encode() + data + b"\n" * (len(data) % 2)
        for name, data in members)


def checksum_lines(paths: list[Path]) -> str:
    """The checksum fields of a .buildinfo or .changes listing `paths`."""
    sums = {path.name: records.Checksums.of(path) for path in paths}
    fields = (("Checksums-Md5", "md5"), ("Checksums-Sha1", "sha1"), ("Checksums-Sha256", "sha256"))
    return "".join(f"{field}:\n" + "".join(f" {getattr(found, kind)} {found.size} {name}\n"
                                            for name, found in sums.items()) for field, kind in fields)


class FakeBuild:
    """Plays dpkg's build steps by writing the files they would, and `uv venv`; uv builds no wheel, git is absent."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.environments: list[dict[str, str]] = []  # what each call's process would see

    def __call__(self, argv: Sequence[str], *, cwd: Path | None = None, env: Mapping[str, str] | None = None,
                 check: bool = True, input: str | None = None, timeout: float | None = None,
                 inherit_env: bool = True) -> Result:
        args = tuple(argv)
        self.calls.append(args)
        self.environments.append({**(os.environ if inherit_env else {}), **(env or {})})
        if args[0] == "/opt/uv" and args[1:] == ("--version",):
            return Result(args, 0, "uv 0.9.0\n", "")
        if args[0] == "/opt/uv" and args[1] == "venv":
            (Path(args[-1]) / "bin").mkdir(parents=True)
            (Path(args[-1]) / "bin" / "python").touch()
        if args[0] == "/opt/uv" and args[1] in ("venv", "pip"):
            return Result(args, 0, "", "")
        if args[0] == "dpkg-buildpackage" and cwd is not None:
            deb = cwd.parent / "orders-api_0.1.0-1_amd64.deb"
            deb.write_bytes(plain_package())
            # debian/rules' dpkg generators: records of a stand-in for the package (records.py).
            stand_ins = cwd.parent / STAND_IN_DIR
            stand_ins.mkdir()
            (stand_ins / deb.name).touch()
            buildinfo = stand_ins / "orders-api_0.1.0-1_amd64.buildinfo"
            buildinfo.write_text(checksum_lines([stand_ins / deb.name]))
            (cwd.parent / "orders-api_0.1.0-1_amd64.changes").write_text(
                checksum_lines([stand_ins / deb.name, buildinfo]))
            return Result(args, 0, "", "")
        if check:
            raise MicrodeployError(f"{args[0]} is not run in this test")
        return Result(args, 1, "", "not run in this test")


def test_every_uv_run_of_a_build_keeps_its_temporary_files_in_the_builds_work_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The uv runs beside dpkg-buildpackage get the build's environment with TMPDIR in its work directory, which
    the build removes (and the next one, after a kill): never the caller's TMPDIR, where they would stay."""
    for directory in ("callers-tmp", "work"):
        (tmp_path / directory).mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp_path / "callers-tmp"))
    environ = {"MICRODEPLOY_UV": "/opt/uv", "MICRODEPLOY_CACHE_DIR": str(tmp_path / "cache"),
               "SOURCE_DATE_EPOCH": "1700000000", "TMPDIR": str(tmp_path / "callers-tmp"), "PATH": "/usr/bin:/bin"}
    runner = FakeBuild()
    build_releases(BuildSettings(project=service(tmp_path), out=tmp_path / "dist", environ=environ,
                                 work_dir=tmp_path / "work"), runner)
    uv_runs = [env for call, env in zip(runner.calls, runner.environments, strict=True)
               if call[0] == "/opt/uv" and call[1:] != ("--version",)]
    assert len(uv_runs) >= 3  # the build environment (venv, install) and the layer's venv at least
    for env in uv_runs:
        assert Path(env["TMPDIR"]).parent.parent == tmp_path / "work", env["TMPDIR"]


def test_a_build_parses_pyproject_toml_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """From the command's settings to dist/, the service model, the license, the layer key and the wheel's build
    system all come from one parse of pyproject.toml."""
    project = service(tmp_path)
    parsed: list[Path] = []
    load = pyproject.load_toml
    monkeypatch.setattr(pyproject, "load_toml", lambda path: parsed.append(path) or load(path))
    environ = {"MICRODEPLOY_UV": "/opt/uv", "MICRODEPLOY_CACHE_DIR": str(tmp_path / "cache"),
               "SOURCE_DATE_EPOCH": "1700000000"}
    settings = BuildSettings(project=project, out=tmp_path / "dist", environ=environ, work_dir=tmp_path)
    runner = FakeBuild()
    [result] = build_releases(settings, runner)
    assert result.deb == tmp_path / "dist" / "orders-api_0.1.0-1_amd64.deb"
    assert parsed == [project / "pyproject.toml"]
    assert any(call[1:3] == ("pip", "install") and call[-1] == "setuptools>=61" for call in runner.calls), \
        "the wheel's build environment gets the [build-system] requires"


def test_the_projects_wheel_starts_before_the_version_is_decided(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The wheel and the layer copy start from the source copy, then the release is decided beside them (the
    backend's version hooks run on a copy of their own); what the release reads besides was checked before."""
    order: list[str] = []
    start_beside, release, settle = Installer.start_beside, dhvirtualenv.release, dhvirtualenv.settle
    monkeypatch.setattr(Installer, "start_beside",
                        lambda self, *args, **kwargs: order.append("wheel") or start_beside(self, *args, **kwargs))
    monkeypatch.setattr(dhvirtualenv, "release", lambda *args, **kwargs: order.append("version") or release(
        *args, **kwargs))
    monkeypatch.setattr(dhvirtualenv, "settle", lambda *args, **kwargs: order.append("checks") or settle(
        *args, **kwargs))
    environ = {"MICRODEPLOY_UV": "/opt/uv", "MICRODEPLOY_CACHE_DIR": str(tmp_path / "cache"),
               "SOURCE_DATE_EPOCH": "1700000000"}
    settings = BuildSettings(project=service(tmp_path), out=tmp_path / "dist", environ=environ, work_dir=tmp_path)
    [result] = build_releases(settings, FakeBuild())
    assert order == ["checks", "wheel", "version"]
    assert result.version == "0.1.0-1+deb12"


def test_a_build_in_a_clean_root_takes_its_packages_from_the_same_parse(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The build root's extra packages (build_depends) come from the pyproject.toml read at the build's start."""
    project = service(tmp_path)
    pyproject_file = project / "pyproject.toml"
    pyproject_file.write_text(pyproject_file.read_text().replace(
        "[tool.microdeploy]\n", '[tool.microdeploy]\nbuild_depends = ["libpq-dev"]\n'))
    parsed: list[Path] = []
    load = pyproject.load_toml
    monkeypatch.setattr(pyproject, "load_toml", lambda path: parsed.append(path) or load(path))
    asked: list[object] = []

    def cached_root(dist: object, extra: object, **options: object) -> None:
        asked.append(extra)
        raise MicrodeployError("no build root in a unit test")

    monkeypatch.setattr(buildroot, "cached_root", cached_root)
    with pytest.raises(MicrodeployError, match="no build root"):
        build_releases(BuildSettings(project=project, clean_root=True, environ={"SOURCE_DATE_EPOCH": "1700000000"}))
    assert asked == [("libpq-dev",)]
    assert parsed == [pyproject_file]


@pytest.mark.parametrize(("text", "static"), [
    ('[project]\nname = "shop"\nversion = "1.0"\n', True),
    ('[project]\nname = "shop"\ndynamic = ["version"]\n', False),
    ("[build-system]\nrequires = ['setuptools']\n", False),
])
def test_a_static_version_is_one_project_states_itself(tmp_path: Path, text: str, static: bool) -> None:
    """[project].version, not dynamic; a setup.py project (no [project]) may take it from anywhere, git included."""
    (tmp_path / "pyproject.toml").write_text(text)
    assert read_pyproject(tmp_path).static_version is static
