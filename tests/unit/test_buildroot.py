"""Build roots of other releases: their sources, names, making, and the commands that enter them."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from microdeploy.build import buildroot, dhvirtualenv
from microdeploy.config import ServiceConfig
from microdeploy.dists import DISTS
from microdeploy.errors import EXIT_BAD_INPUT, EXIT_FAILURE, MicrodeployError
from microdeploy.process import Held, Result

TRIXIE = DISTS["trixie"]
BOOKWORM_SOURCES = """\
Types: deb
# a snapshot comment
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://mirror.example/debian
Suites: bookworm
Components: main
"""


class FakeRunner:
    """Records argv; `mmdebstrap` writes a marker into its target directory (or fails when told)."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.calls: list[tuple[str, ...]] = []
        self.envs: list[dict[str, str]] = []

    def __call__(self, argv, *, cwd=None, env=None, check=True, input=None, timeout=None,  # type: ignore[no-untyped-def]
                 inherit_env=True) -> Result:
        self.calls.append(tuple(argv))
        self.envs.append(dict(env or {}))
        if argv[0] == "mmdebstrap":
            if self.fail:
                raise MicrodeployError("`mmdebstrap ...` failed with exit status 1\n    E: Unable to locate package")
            Path(argv[-2], "marker").write_text(str(len(self.calls)))
        return Result(tuple(argv), 0, "", "")


def test_sources_of_another_release_rename_the_machines_suites(tmp_path: Path) -> None:
    """bookworm, -updates and -security on the machine's mirrors become trixie's; deb-src is left out."""
    sources = tmp_path / "debian.sources"
    sources.write_text(BOOKWORM_SOURCES)
    assert buildroot.sources_for(TRIXIE, sources) == (
        "Types: deb\nURIs: http://mirror.example/debian\nSuites: trixie trixie-updates\nComponents: main\n"
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"
        "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: trixie-security\nComponents: main\n"
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
    )


def test_sources_without_a_mirror_are_refused(tmp_path: Path) -> None:
    """An unreadable sources file or one without a deb stanza names the file and what to configure."""
    with pytest.raises(MicrodeployError, match=r"cannot read .*missing\.sources"):
        buildroot.sources_for(TRIXIE, tmp_path / "missing.sources")
    empty = tmp_path / "empty.sources"
    empty.write_text("# nothing\n")
    with pytest.raises(MicrodeployError, match="no Debian mirror") as info:
        buildroot.sources_for(TRIXIE, empty)
    assert "deb822" in (info.value.hint or "")


def test_a_root_is_named_by_release_and_packages(tmp_path: Path) -> None:
    """Extra build dependencies make another root; their version relations do not."""
    plain = buildroot.root_path(tmp_path, TRIXIE)
    assert plain.parent == tmp_path and plain.name.startswith("trixie-")
    assert buildroot.root_path(tmp_path, TRIXIE, ["libpq-dev"]) != plain
    assert buildroot.root_path(tmp_path, TRIXIE, ["libpq-dev (>= 15)"]) == buildroot.root_path(
        tmp_path, TRIXIE, ["libpq-dev"])
    assert buildroot.root_path(tmp_path, DISTS["bookworm"]) != plain
    assert buildroot.package_names(["libpq-dev (>= 15)", "libfoo1:amd64", " gcc "]) == ["libpq-dev", "libfoo1", "gcc"]


def test_roots_live_in_the_variable_else_var_cache() -> None:
    """$MICRODEPLOY_ROOTS_DIR, else /var/cache/microdeploy/roots."""
    assert buildroot.roots_dir({"MICRODEPLOY_ROOTS_DIR": "/srv/roots"}) == Path("/srv/roots")
    assert buildroot.roots_dir({}) == Path("/var/cache/microdeploy/roots")


def test_a_root_is_made_once_and_remade_on_refresh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """mmdebstrap runs for the first build and with refresh only, with the release's sources and packages."""
    monkeypatch.setattr(buildroot, "SOURCES_FILE", tmp_path / "debian.sources")
    (tmp_path / "debian.sources").write_text(BOOKWORM_SOURCES)
    environ = {"MICRODEPLOY_ROOTS_DIR": str(tmp_path / "roots")}
    runner = FakeRunner()
    for refresh in (False, False, True):
        with buildroot.cached_root(TRIXIE, ["libpq-dev"], environ=environ, refresh=refresh, runner=runner) as tree:
            assert (tree / "marker").is_file()
    made = [call for call in runner.calls if call[0] == "mmdebstrap"]
    assert len(made) == 2
    assert made[0][:3] == ("mmdebstrap", "--quiet", "--variant=apt")
    assert made[0][3] == "--include=" + ",".join(sorted({*buildroot.ROOT_PACKAGES, "libpq-dev"}))
    assert made[0][4] == "trixie"
    assert sorted(p.name for p in (tmp_path / "roots").iterdir()) == [".last-prune", tree.name, tree.name + ".lock"]


def test_a_refresh_that_fails_or_is_interrupted_leaves_the_root_that_was_there(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--refresh-root replaces the root only once the new one is whole: a mirror outage, or Ctrl-C (SIGTERM is
    one for the CLI) during mmdebstrap, leaves the old root in use and no staging directory. The old root was
    removed first, and a killed refresh left no root and its 700 MB half-made one."""
    monkeypatch.setattr(buildroot, "SOURCES_FILE", tmp_path / "debian.sources")
    (tmp_path / "debian.sources").write_text(BOOKWORM_SOURCES)
    environ = {"MICRODEPLOY_ROOTS_DIR": str(tmp_path / "roots")}
    with buildroot.cached_root(TRIXIE, environ=environ, runner=FakeRunner()) as tree:
        made = (tree / "marker").stat().st_ino

    class Interrupted(FakeRunner):
        def __call__(self, argv, **kwargs):  # type: ignore[no-untyped-def]
            if argv[0] == "mmdebstrap":
                Path(argv[-2], "half").write_text("")
                raise KeyboardInterrupt
            return super().__call__(argv, **kwargs)

    for runner, raised in ((FakeRunner(fail=True), MicrodeployError), (Interrupted(), KeyboardInterrupt)):
        with pytest.raises(raised), buildroot.cached_root(TRIXIE, environ=environ, refresh=True, runner=runner):
            pass
        assert (tree / "marker").stat().st_ino == made and not (tree / "half").exists()
        assert sorted(p.name for p in (tmp_path / "roots").iterdir()) == [".last-prune", tree.name,
                                                                          tree.name + ".lock"]
    with buildroot.cached_root(TRIXIE, environ=environ, refresh=True, runner=FakeRunner()) as again:
        assert again == tree and (tree / "marker").stat().st_ino != made  # a refresh that works replaces it


def test_a_build_marks_its_root_used_and_prunes_the_others_to_the_size(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The root used is marked on its lock file; after the build, roots beyond $MICRODEPLOY_ROOTS_MAX_SIZE go,
    least recently used first, and the one just used stays."""
    monkeypatch.setattr(buildroot, "SOURCES_FILE", tmp_path / "debian.sources")
    (tmp_path / "debian.sources").write_text(BOOKWORM_SOURCES)
    roots = tmp_path / "roots"
    old = roots / "trixie-0123456789ab"
    old.mkdir(parents=True)
    (old / "data").write_bytes(b"x" * 64 * 1024)
    (roots / "trixie-0123456789ab.lock").touch()
    os.utime(roots / "trixie-0123456789ab.lock", (time.time() - 86400,) * 2)
    environ = {"MICRODEPLOY_ROOTS_DIR": str(roots), "MICRODEPLOY_ROOTS_MAX_SIZE": "32K"}
    before = time.time()
    with buildroot.cached_root(TRIXIE, environ=environ, runner=FakeRunner()) as tree:
        assert old.is_dir(), "pruned after the build, not while it runs"
        assert tree.with_name(tree.name + ".lock").stat().st_mtime >= before - 1
    assert tree.is_dir() and not old.exists()


def test_a_root_pruned_while_the_build_waits_is_made_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A prune that removes the root between the build's two locks costs one more mmdebstrap, not a failed
    build."""
    monkeypatch.setattr(buildroot, "SOURCES_FILE", tmp_path / "debian.sources")
    (tmp_path / "debian.sources").write_text(BOOKWORM_SOURCES)
    environ = {"MICRODEPLOY_ROOTS_DIR": str(tmp_path / "roots")}
    runner = FakeRunner()
    with buildroot.cached_root(TRIXIE, environ=environ, runner=runner):
        pass
    locked = buildroot.locked
    pruned = []

    def prune_first_shared(path: Path, operation: int):  # type: ignore[no-untyped-def]
        if operation == fcntl.LOCK_SH and not pruned:
            pruned.append(path)
            shutil.rmtree(path.with_name(path.name.removesuffix(".lock")))
        return locked(path, operation)

    monkeypatch.setattr(buildroot, "locked", prune_first_shared)
    with buildroot.cached_root(TRIXIE, environ=environ, runner=runner) as tree:
        assert (tree / "marker").is_file()
    assert pruned and len([call for call in runner.calls if call[0] == "mmdebstrap"]) == 2


def test_a_bad_roots_size_is_refused_before_anything_is_made(tmp_path: Path) -> None:
    """$MICRODEPLOY_ROOTS_MAX_SIZE that is no size: exit 2 naming the variable; no mmdebstrap, no roots."""
    runner = FakeRunner()
    environ = {"MICRODEPLOY_ROOTS_DIR": str(tmp_path / "roots"), "MICRODEPLOY_ROOTS_MAX_SIZE": "plenty"}
    with pytest.raises(MicrodeployError) as info, buildroot.cached_root(TRIXIE, environ=environ, runner=runner):
        pass
    assert info.value.exit_code == 2 and "MICRODEPLOY_ROOTS_MAX_SIZE" in info.value.message
    assert runner.calls == [] and not (tmp_path / "roots").exists()


def test_a_failed_root_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """mmdebstrap failing is one error with its lines and a hint; no half-made root is kept."""
    monkeypatch.setattr(buildroot, "SOURCES_FILE", tmp_path / "debian.sources")
    (tmp_path / "debian.sources").write_text(BOOKWORM_SOURCES)
    environ = {"MICRODEPLOY_ROOTS_DIR": str(tmp_path / "roots")}
    with pytest.raises(MicrodeployError) as info, buildroot.cached_root(
            TRIXIE, environ=environ, runner=FakeRunner(fail=True)):
        pass
    assert "could not make the trixie build root" in info.value.message
    assert "Unable to locate package" in info.value.message
    assert info.value.hint is not None and info.value.hint.startswith("Check")
    assert [p.name for p in (tmp_path / "roots").iterdir() if not p.name.endswith(".lock")] == []


def test_a_command_inside_runs_in_the_namespace_chrooted_with_the_roots_path(tmp_path: Path) -> None:
    """nsenter into the holder's mount namespace, chroot, env --chdir; PATH is the root's, the rest passed."""
    holder = Held(subprocess.Popen(["cat"], stdin=subprocess.PIPE))
    runner = FakeRunner()
    try:
        inside = buildroot.EnteredRoot(tmp_path / "merged", holder, runner)
        inside(["dpkg-buildpackage", "-b"], cwd=tmp_path / "tree", env={"A": "1", "PATH": "/venv/bin"},
               inherit_env=False)
    finally:
        holder.close()
    assert runner.calls == [("nsenter", "-t", str(holder.pid), "-m", "--", "chroot", str(tmp_path / "merged"),
                             "/usr/bin/env", f"--chdir={tmp_path / 'tree'}", "dpkg-buildpackage", "-b")]
    assert runner.envs == [{"A": "1", "PATH": buildroot.PATH_INSIDE}]


def test_the_python_of_a_root_is_read_from_its_links(tmp_path: Path) -> None:
    """python3 -> python3.13 (relative or absolute link) gives 3.13; a missing interpreter gives None."""
    bin_dir = tmp_path / "usr" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python3.13").write_bytes(b"\x7fELF")
    (bin_dir / "python3").symlink_to("python3.13")
    (bin_dir / "python3-abs").symlink_to("/usr/bin/python3.13")
    assert buildroot.python_minor_inside(tmp_path, "python3") == "3.13"
    assert buildroot.python_minor_inside(tmp_path, "python3-abs") == "3.13"
    assert buildroot.python_minor_inside(tmp_path, "python3.11") is None


@pytest.mark.parametrize(
    ("dist", "python", "hint"),
    [
        ("trixie", "python3.11", "hint: Set python to python3 (trixie's python3.13), or build for bookworm "
                                 "(--dist bookworm)"),
        ("bookworm", "python3.13", "hint: Set python to python3 (bookworm's python3.11), or build for trixie "
                                   "(--dist trixie)"),
        ("bookworm", "python3.12", "hint: Set python to python3 (bookworm's python3.11)\n"),
    ],
)
def test_a_python_the_release_does_not_ship_is_bad_input_naming_its_own(
    tmp_path: Path, dist: str, python: str, hint: str
) -> None:
    """A python the release lacks is refused (exit 2) with the release's own Python and the release that has it,
    and no apt-get command: apt cannot install what the release does not ship."""
    (tmp_path / "usr" / "bin").mkdir(parents=True)
    config = ServiceConfig(name="orders-api", app="orders_api.wsgi:app", python=python)
    with pytest.raises(MicrodeployError) as info:
        dhvirtualenv.root_python(config, DISTS[dist], tmp_path)
    assert info.value.exit_code == EXIT_BAD_INPUT
    assert f"{dist} ships Python {DISTS[dist].python_minor}, not {python}" in info.value.message
    assert hint in f"{info.value}\n"
    assert "apt-get" not in str(info.value)


def test_a_python_the_release_ships_but_the_machine_lacks_is_installed_with_apt() -> None:
    """python3.11 missing on a bookworm machine is a failure of the machine (exit 1) with apt's command."""
    config = ServiceConfig(name="orders-api", app="orders_api.wsgi:app", python="python3.11")
    error = dhvirtualenv.missing_python(config, DISTS["bookworm"], "on this machine")
    assert error.exit_code == EXIT_FAILURE
    assert error.hint == "Install it: sudo apt-get install python3.11 python3.11-venv"


def test_a_user_who_is_not_root_is_refused_before_anything_is_made(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without root no mmdebstrap runs and no roots directory appears; the hint says to use sudo."""
    monkeypatch.setattr(buildroot.os, "geteuid", lambda: 1000)
    runner = FakeRunner()
    with pytest.raises(MicrodeployError) as info, buildroot.cached_root(
            TRIXIE, environ={"MICRODEPLOY_ROOTS_DIR": str(tmp_path / "roots")}, runner=runner):
        pass
    assert "building for trixie" in info.value.message and "needs root" in info.value.message
    assert (info.value.hint or "").startswith("Run the build as root (sudo)")
    assert runner.calls == [] and not (tmp_path / "roots").exists()
