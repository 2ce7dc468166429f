"""The project's wheel beside dpkg-buildpackage: build environment, source digest, reuse, fallback."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from microdeploy import dists
from microdeploy.build.dhvirtualenv import git_state
from microdeploy.build.fastpath.wheel import ProjectWheel, source_digest
from microdeploy.build.release.plan import Settled
from microdeploy.build.release.settings import BuildSettings
from microdeploy.build.release.version import GitState
from microdeploy.process import Result, in_environment
from microdeploy.pyproject import BuildSystem, read_pyproject
from tests.unit.test_build_systembackend import bookworm_site


class FakeUv:
    """Answers uv's commands: `venv` makes bin/python, `build` writes a wheel (or fails), records argv."""

    def __init__(self, *, fail_cached_build: bool = False, fail_all_builds: bool = False,
                 fail_system_build: bool = False, interpreter: str | None = None) -> None:
        self.fail_system_build = fail_system_build  # the build in the environment over the release's packages
        self.interpreter = interpreter  # bin/python links to it (else an empty file)
        self.fail_cached_build = fail_cached_build
        self.fail_all_builds = fail_all_builds
        self.calls: list[tuple[str, ...]] = []
        self.environments: list[dict[str, str] | None] = []  # each call's env, when it replaces this process's

    def __call__(self, argv, *, cwd=None, env=None, check=True, input=None, timeout=None,  # type: ignore[no-untyped-def]
                 inherit_env=True) -> Result:
        argv = tuple(argv)
        self.calls.append(argv)
        self.environments.append(None if inherit_env else dict(env or {}))
        code = 0
        if argv[1] == "venv" or argv[1:4] == ("-m", "venv", "--without-pip"):
            python = Path(argv[-1]) / "bin" / "python"
            python.parent.mkdir(parents=True)
            (Path(argv[-1]) / "lib" / "python3.11" / "site-packages").mkdir(parents=True)
            if self.interpreter is not None:
                python.symlink_to(self.interpreter)
            else:
                python.write_text("")
        elif argv[1] == "build":
            isolated = "--no-build-isolation" not in argv
            in_system = not isolated and in_system_environment(Path(argv[argv.index("--python") + 1]))
            if self.fail_all_builds or (self.fail_cached_build and not isolated) or (self.fail_system_build
                                                                                    and in_system):
                code = 1
            else:
                out = Path(argv[argv.index("--out-dir") + 1])
                (out / "orders_api-1.0-py3-none-any.whl").write_bytes(b"wheel")
        return Result(argv, code, "", "")


def in_system_environment(python: Path) -> bool:
    """Whether `python` is the interpreter of a build environment over the release's packages (its site-packages
    holds links)."""
    return any(path.is_symlink() for path in python.parent.parent.glob("lib/python3.11/site-packages/*"))


def project(tmp_path: Path, requires: str = '["setuptools>=61"]') -> Path:
    source = tmp_path / "src-project"
    (source / "app").mkdir(parents=True)
    (source / "pyproject.toml").write_text(f"[build-system]\nrequires = {requires}\n")
    (source / "app" / "__init__.py").write_text("GREETING = 'hello'\n")
    return source


def produce(tmp_path: Path, uv: FakeUv, source: Path, name: str = "w", system_site: Path | None = None,
            settings: dict[str, str] | None = None) -> Path:
    wheel = ProjectWheel(uv="/opt/uv", cache=tmp_path / "cache", name="orders-api", python="/usr/bin/python3.11",
                         build_system=read_pyproject(source).build_system, runner=uv, system_site=system_site,
                         settings=settings)
    out = tmp_path / name
    wheel.start(source, out).join(timeout=10)
    wheel.wait()  # as the build does once the .deb is made
    wheel.keep()
    return out


def test_the_build_environment_holds_the_projects_build_requirements(tmp_path: Path) -> None:
    """The build system the wheel is given, not a file read again, decides what the build environment installs."""
    uv = FakeUv()
    source = project(tmp_path, '["hatchling"]')
    wheel = ProjectWheel(uv="/opt/uv", cache=tmp_path / "cache", name="orders-api", python="/usr/bin/python3.11",
                         build_system=BuildSystem(requires=("flit_core>=3.9",), backend="flit_core.buildapi"),
                         runner=uv)
    wheel.start(source, tmp_path / "out").join(timeout=10)
    install = next(call for call in uv.calls if call[1:3] == ("pip", "install"))
    assert install[-1] == "flit_core>=3.9"
    assert not any(arg.startswith("--config-setting") for call in uv.calls for arg in call)


def test_source_digest_follows_contents_not_times(tmp_path: Path) -> None:
    """Same files, same digest; a changed byte, a new file or another salt change it."""
    source = project(tmp_path)
    first = source_digest(source, "py3.11")
    (source / "app" / "__init__.py").touch()
    assert source_digest(source, "py3.11") == first
    (source / "app" / "__init__.py").write_text("GREETING = 'hi'\n")
    changed = source_digest(source, "py3.11")
    assert changed != first
    (source / "app" / "extra.py").write_text("")
    assert source_digest(source, "py3.11") not in (first, changed)
    assert source_digest(source, "py3.12") != source_digest(source, "py3.11")
    # A file name that is not UTF-8 (its byte 0xff) counts by its bytes; it was a UnicodeEncodeError.
    (source / os.fsdecode(b"app/bad\xff.txt")).write_text("")
    assert source_digest(source, "py3.11") not in (first, changed)


def test_source_digest_leaves_out_the_link_to_the_checkouts_git(tmp_path: Path) -> None:
    """The .git link names where the checkout is: two checkouts of one commit share the kept wheel (the git state
    is in the salt); a .git below the root is the project's own file and counts."""
    source = project(tmp_path)
    alone = source_digest(source, "py3.11")
    (tmp_path / "here" / ".git").mkdir(parents=True)
    (source / ".git").symlink_to(tmp_path / "here" / ".git")
    assert source_digest(source, "py3.11") == alone
    (source / ".git").unlink()
    (source / ".git").symlink_to(tmp_path / "elsewhere")
    assert source_digest(source, "py3.11") == alone
    (source / "app" / ".git").write_text("gitdir: ../x\n")
    assert source_digest(source, "py3.11") != alone


def compiled(uv: FakeUv) -> tuple[list[tuple[str, ...]], list[tuple[str, ...]]]:
    """The bytecode compilations among uv's calls (they run on a thread of their own), and the other calls."""
    compiles = [call for call in uv.calls if call[1:3] == ("-m", "compileall")]
    return compiles, [call for call in uv.calls if call not in compiles]


def test_first_build_makes_the_build_environment_then_builds_without_isolation(tmp_path: Path) -> None:
    """uv venv + uv pip install of the build requirements once, then `uv build --no-build-isolation` in it, while
    the environment's bytecode is compiled beside the build."""
    uv = FakeUv()
    source = project(tmp_path)
    out = produce(tmp_path, uv, source)
    compiles, (venv, install, build) = compiled(uv)
    assert venv[:5] == ("/opt/uv", "venv", "--quiet", "--python", "/usr/bin/python3.11")
    staging = Path(install[install.index("--python") + 1]).parent.parent
    [environment] = (tmp_path / "cache" / "build-envs").iterdir()  # the staging directory, renamed
    assert staging.parent == environment.parent and staging.name.startswith(f".{environment.name}.")
    assert install[-1] == "setuptools>=61"
    # The backend is imported on every build: its bytecode, compiled once, in the environment as renamed.
    assert compiles == [(str(environment / "bin" / "python"), "-m", "compileall", "-q", "-j", "1",
                         str(environment / "lib" / "python3.11" / "site-packages"))]
    assert build == ("/opt/uv", "build", "--wheel", "--quiet", "--out-dir", str(out), "--no-build-isolation",
                     "--config-setting=--build-option=--compression=stored", "--python",
                     str(environment / "bin" / "python"), str(source))
    assert (out / "returncode").read_text() == "0\n"
    assert [p.name for p in out.glob("*.whl")] == ["orders_api-1.0-py3-none-any.whl"]


def test_a_build_roots_environment_is_reused_though_its_interpreter_is_not_on_this_machine(tmp_path: Path) -> None:
    """For a build root (trixie's python3.13 on Debian 12) bin/python links to an interpreter that exists inside
    the root only: the environment is made once, and the wheel is built in it, not in an isolated one."""
    uv = FakeUv(interpreter="/usr/bin/python3.99-only-in-the-root")
    source = project(tmp_path)
    produce(tmp_path, uv, source, "first")
    (source / "app" / "__init__.py").write_text("GREETING = 'hi'\n")
    produce(tmp_path, uv, source, "second")
    compiles, calls = compiled(uv)
    assert [call[1] for call in calls] == ["venv", "pip", "build", "build"] and len(compiles) == 1
    assert all("--no-build-isolation" in call for call in uv.calls if call[1] == "build")


def test_unchanged_source_reuses_the_kept_wheel_and_a_change_rebuilds(tmp_path: Path) -> None:
    """The second build of the same source runs no uv at all; an app change builds again in the same env."""
    uv = FakeUv()
    source = project(tmp_path)
    produce(tmp_path, uv, source, "first")
    calls = len(uv.calls)
    second = produce(tmp_path, uv, source, "second")
    assert len(uv.calls) == calls
    assert (second / "orders_api-1.0-py3-none-any.whl").read_bytes() == b"wheel"
    # Kept and reused by hard link: the app's megabytes are not written again.
    [kept] = (tmp_path / "cache" / "wheels").rglob("*.whl")
    assert {(path / "orders_api-1.0-py3-none-any.whl").stat().st_ino for path in (tmp_path / "first", second)} \
        == {kept.stat().st_ino}
    (source / "app" / "__init__.py").write_text("GREETING = 'hi'\n")
    produce(tmp_path, uv, source, "third")
    assert [call[1] for call in uv.calls[calls:]] == ["build"]


def test_a_new_wheel_is_kept_only_when_the_build_no_longer_waits_for_it(tmp_path: Path) -> None:
    """The job ends (status written) without putting the wheel into the cache; keep() puts it there."""
    uv = FakeUv()
    wheel = ProjectWheel(uv="/opt/uv", cache=tmp_path / "cache", name="orders-api", python="/usr/bin/python3.11",
                         build_system=BuildSystem(), runner=uv)
    wheel.start(project(tmp_path), tmp_path / "out").join(timeout=10)
    assert (tmp_path / "out" / "returncode").read_text() == "0\n"
    assert not (tmp_path / "cache" / "wheels").exists()
    wheel.keep()
    assert [p.name for p in (tmp_path / "cache" / "wheels").rglob("*.whl")] == ["orders_api-1.0-py3-none-any.whl"]


def test_a_backend_that_needs_isolation_is_built_isolated(tmp_path: Path) -> None:
    """When the cached-environment build fails, uv builds again with isolation for the build's interpreter."""
    uv = FakeUv(fail_cached_build=True)
    source = project(tmp_path)
    out = produce(tmp_path, uv, source)
    assert uv.calls[-1] == ("/opt/uv", "build", "--wheel", "--quiet", "--out-dir", str(out),
                            "--python", "/usr/bin/python3.11", str(source))
    assert (out / "returncode").read_text() == "0\n"


def test_a_broken_project_reports_failure_and_keeps_nothing(tmp_path: Path) -> None:
    """Both builds fail: `returncode` says so (uv-pip then installs the source and shows the error)."""
    uv = FakeUv(fail_all_builds=True)
    out = produce(tmp_path, uv, project(tmp_path))
    assert (out / "returncode").read_text() == "1\n"
    assert not list((tmp_path / "cache" / "wheels").rglob("*.whl"))


def test_only_setuptools_is_asked_for_a_stored_wheel(tmp_path: Path) -> None:
    """setuptools (named, or PEP 517's fallback) stores the wheel's files; another backend gets no setuptools option."""
    hatch = project(tmp_path / "hatch", requires='["hatchling"]')
    with (hatch / "pyproject.toml").open("a") as handle:
        handle.write('build-backend = "hatchling.build"\n')
    uv = FakeUv()
    produce(tmp_path / "hatch", uv, hatch)
    assert not any(arg.startswith("--config-setting") for call in uv.calls for arg in call)


def test_the_git_state_keys_the_kept_wheel_only_where_the_version_may_come_from_git(tmp_path: Path) -> None:
    """A static version: two commits with the same files share the kept wheel; a dynamic one: each commit (and tag)
    has its own, since setuptools-scm writes them into the version."""
    settled = Settled(state=GitState("1.2.0", 3, "abc1234"), revision="1", dist=dists.host_dist(), epoch=0,
                      changes=())
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "shop"\nversion = "1.0"\n')
    assert git_state(BuildSettings(project=tmp_path), settled, {}) == ""
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "shop"\ndynamic = ["version"]\n')
    assert "abc1234" in git_state(BuildSettings(project=tmp_path), settled, {})


def test_the_callers_uv_settings_key_the_build_environment_and_the_kept_wheel(tmp_path: Path) -> None:
    """A constraint on the build requirements (the caller's UV_ variables, layer.callers_uv_settings) makes its own
    build environment and wheel: one made without it is not reused, nor one made with it once it is gone."""
    uv = FakeUv()
    source = project(tmp_path)
    pinned = {"UV_BUILD_CONSTRAINT": "build.txt", "UV_BUILD_CONSTRAINT build.txt": "setuptools<70\n"}

    def produce_with(settings: dict[str, str], out: str) -> None:
        wheel = ProjectWheel(uv="/opt/uv", cache=tmp_path / "cache", name="orders-api", python="/usr/bin/python3.11",
                             build_system=read_pyproject(source).build_system, runner=uv, settings=settings)
        wheel.start(source, tmp_path / out).join(timeout=10)
        wheel.keep()

    def counted(command: str) -> int:
        return sum(1 for call in uv.calls if call[1] == command)

    produce_with({}, "plain")
    produce_with(pinned, "pinned")
    assert (counted("venv"), counted("build")) == (2, 2)
    produce_with(pinned, "pinned-again")
    produce_with({}, "plain-again")
    assert (counted("venv"), counted("build")) == (2, 2), "each reuses its own"
    assert len(list((tmp_path / "cache" / "build-envs").iterdir())) == 2


def test_every_uv_run_of_the_wheel_sees_the_builds_environment_not_this_processs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A library caller's environment (BuildSettings.environ) keys the build environment and the kept wheel, and
    is what their uv runs (and the bytecode's compilation) get, whole, with uv's settings on top."""
    monkeypatch.setenv("UV_OVERRIDE", "/from/microdeploys/own/environment")
    uv = FakeUv()
    wheel = ProjectWheel(uv="/opt/uv", cache=tmp_path / "cache", name="orders-api", python="/usr/bin/python3.11",
                         build_system=BuildSystem(requires=("setuptools>=61",)),
                         runner=in_environment(uv, {"UV_CONSTRAINT": "/from/the/build", "PATH": "/usr/bin"}))
    wheel.start(project(tmp_path), tmp_path / "out").join(timeout=10)
    wheel.wait()
    assert len(uv.calls) == 4  # venv, pip install, compileall, build
    for environment in uv.environments:
        assert environment is not None and environment["UV_CONSTRAINT"] == "/from/the/build"
        assert "UV_OVERRIDE" not in environment and environment["UV_CACHE_DIR"] == str(tmp_path / "cache" / "uv")


def test_the_releases_setuptools_makes_the_build_environment_without_uv_installing_anything(tmp_path: Path) -> None:
    """Debian's setuptools (and wheel) satisfy setuptools>=61: the build environment is a venv without pip of links
    to them, made once (no uv install, no bytecode to compile: the packages carry theirs), and the wheel is built
    in it without isolation; the next source builds in it again."""
    site = bookworm_site(tmp_path / "site")
    uv = FakeUv()
    source = project(tmp_path)
    out = produce(tmp_path, uv, source, "first", system_site=site)
    [environment] = (tmp_path / "cache" / "build-envs").iterdir()
    venv, build = uv.calls
    assert venv[:4] == ("/usr/bin/python3.11", "-m", "venv", "--without-pip")
    assert build == ("/opt/uv", "build", "--wheel", "--quiet", "--out-dir", str(out), "--no-build-isolation",
                     "--config-setting=--build-option=--compression=stored", "--python",
                     str(environment / "bin" / "python"), str(source))
    site_packages = environment / "lib" / "python3.11" / "site-packages"
    assert {path.name: str(path.readlink()) for path in site_packages.iterdir()} == {
        name: f"/usr/lib/python3/dist-packages/{name}" for name in (
            "_distutils_hack", "pkg_resources", "setuptools", "setuptools-66.1.1.egg-info", "wheel",
            "wheel-0.38.4.egg-info")}
    (source / "app" / "__init__.py").write_text("GREETING = 'hi'\n")
    produce(tmp_path, uv, source, "second", system_site=site)
    assert [call[1] for call in uv.calls] == ["-m", "build", "build"]


def test_a_project_the_releases_backend_refuses_builds_in_uvs_environment_from_then_on(tmp_path: Path) -> None:
    """The build over the release's packages fails and uv's succeeds (a pyproject.toml newer than Debian's
    setuptools reads): later builds with the same build files go to uv's build environment straight away; changed
    build files are tried over the release's packages again."""
    site = bookworm_site(tmp_path / "site")
    uv = FakeUv(fail_system_build=True)
    source = project(tmp_path)
    out = produce(tmp_path, uv, source, "first", system_site=site)
    assert (out / "returncode").read_text() == "0\n"
    compiles, calls = compiled(uv)
    assert [call[1] for call in calls] == ["-m", "build", "venv", "pip", "build"] and len(compiles) == 1
    (source / "app" / "__init__.py").write_text("GREETING = 'hi'\n")
    produce(tmp_path, uv, source, "second", system_site=site)
    assert [call[1] for call in compiled(uv)[1][len(calls):]] == ["build"]
    assert not in_system_environment(Path(uv.calls[-1][uv.calls[-1].index("--python") + 1]))
    with (source / "pyproject.toml").open("a") as handle:
        handle.write("# a change of the build files\n")
    before = len(uv.calls)
    produce(tmp_path, uv, source, "third", system_site=site)
    assert [in_system_environment(Path(call[call.index("--python") + 1])) for call in uv.calls[before:]] == [
        True, False]


def test_a_project_that_builds_nowhere_leaves_no_mark(tmp_path: Path) -> None:
    """Both builds fail (the project is broken): nothing says the release's backend refused it, so once fixed it
    is built over the release's packages, as on a machine that never saw the broken commit."""
    site = bookworm_site(tmp_path / "site")
    source = project(tmp_path)
    out = produce(tmp_path, FakeUv(fail_all_builds=True), source, "broken", system_site=site)
    assert (out / "returncode").read_text() == "1\n"
    assert not list((tmp_path / "cache" / "build-envs").glob("*/refused-*"))
    (source / "app" / "__init__.py").write_text("GREETING = 'fixed'\n")
    uv = FakeUv()
    produce(tmp_path, uv, source, "fixed", system_site=site)
    assert [call[1] for call in uv.calls] == ["build"]
    assert in_system_environment(Path(uv.calls[0][uv.calls[0].index("--python") + 1]))


@pytest.mark.parametrize(("requires", "settings", "tool_uv", "system"), [
    ('["setuptools>=61"]', {}, "", True),
    ('["setuptools>=77"]', {}, "", False),  # newer than Debian 12's
    ('["hatchling"]', {}, "", False),  # not in the release (here)
    ('["setuptools>=61"]', {"UV_BUILD_CONSTRAINT": "b.txt", "UV_BUILD_CONSTRAINT b.txt": "setuptools<70\n"}, "", True),
    ('["setuptools>=61"]', {"UV_BUILD_CONSTRAINT": "b.txt", "UV_BUILD_CONSTRAINT b.txt": "setuptools<60\n"}, "", False),
    ('["setuptools>=61"]', {"UV_CONSTRAINT": "c.txt", "UV_CONSTRAINT c.txt": "# pins\nwheel==0.45.1\n"}, "", False),
    ('["setuptools>=61"]', {"UV_CONSTRAINT": "c.txt", "UV_CONSTRAINT c.txt": "-r other.txt\n"}, "", False),
    ('["setuptools>=61"]', {}, 'build-constraint-dependencies = ["setuptools>=70"]', False),
    ('["setuptools>=61"]', {}, 'constraint-dependencies = ["flask<4"]', True),
])
def test_the_releases_packages_are_used_only_where_they_meet_the_requirements_and_constraints(
    tmp_path: Path, requires: str, settings: dict[str, str], tool_uv: str, system: bool
) -> None:
    """What the project requires and what the caller constrains uv's installs to (its constraints files, the
    project's [tool.uv]) hold for the release's packages too; else uv's build environment."""
    site = bookworm_site(tmp_path / "site")
    uv = FakeUv()
    source = project(tmp_path, requires)
    if tool_uv:
        with (source / "pyproject.toml").open("a") as handle:
            handle.write(f"[tool.uv]\n{tool_uv}\n")
    produce(tmp_path, uv, source, system_site=site, settings=settings)
    build = next(call for call in uv.calls if call[1] == "build")
    assert in_system_environment(Path(build[build.index("--python") + 1])) == system
    assert (("pip", "install") in {call[1:3] for call in uv.calls}) != system
