"""Faults an unlucky operator meets: read-only and full file systems, builds killed at any moment.

Each gives a message and an exit status, never a traceback, and leaves the
outputs complete or absent. File systems are a small tmpfs and a read-only
bind mount made (and unmounted) by the test itself.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from microdeploy.build import cache
from tests.aptrepo import CLI_TIMEOUT, microdeploy
from tests.packages import EPOCH, BuiltService
from tests.support import wait_until

pytestmark = pytest.mark.integration


@contextlib.contextmanager
def mounted(target: Path, *options: str) -> Iterator[Path]:
    """Mount something on `target` for the block (a tmpfs, a read-only bind), and unmount it after."""
    target.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", *options, str(target)], check=True, capture_output=True, timeout=30)
    try:
        yield target
    finally:
        # A daemon the block stopped (gpg-agent) may still hold a file there for a moment: umount says busy (32).
        wait_until(lambda: subprocess.run(["umount", str(target)], capture_output=True, timeout=30).returncode == 0,
                   f"umount {target}", timeout=10)


@contextlib.contextmanager
def read_only(directory: Path) -> Iterator[Path]:
    """`directory` bind-mounted read-only onto itself for the block."""
    directory.mkdir(parents=True, exist_ok=True)
    with mounted(directory, "--bind", str(directory)):
        subprocess.run(["mount", "-o", "remount,ro,bind", str(directory)], check=True, capture_output=True,
                       timeout=30)
        yield directory


def no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    """One error message, no Python traceback."""
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr.lower().count("error: ") == 1, result.stderr


def build_env(tmp: Path) -> dict[str, str]:
    """The environment of a CLI build: a fixed SOURCE_DATE_EPOCH and a private TMPDIR (to count leftovers)."""
    tmp.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "SOURCE_DATE_EPOCH": EPOCH, "TMPDIR": str(tmp)}
    env.pop("BUILD_NUMBER", None)
    return env


def test_outputs_on_a_read_only_file_system_are_refused_before_any_work(
        plain_service: BuiltService, tmp_path: Path) -> None:
    """build --out, new --dir, jenkinsfile -o, puppet-data -o and publish --repo there: exit 2, a message."""
    project = plain_service.project
    with read_only(tmp_path / "ro") as ro:
        attempts = {
            "build": ["build", str(project), "--out", str(ro / "dist")],
            "new": ["new", "other-api", "--dir", str(ro / "svc"), "--no-input"],
            "jenkinsfile": ["jenkinsfile", str(project), "-o", str(ro / "Jenkinsfile")],
            "puppet-data": ["puppet-data", str(project), "--version", "1.0-1", "-o", str(ro / "data.yaml")],
            "publish": ["publish", str(plain_service.result.deb), "--repo", str(ro / "repo")],
        }
        for command, argv in attempts.items():
            result = microdeploy(*argv)
            assert result.returncode == 2, (command, result.stderr)
            assert "Read-only file system" in result.stderr, (command, result.stderr)
            no_traceback(result)
        assert list(ro.iterdir()) == []


def test_a_full_file_system_fails_the_build_with_a_message_and_nothing_in_dist(
        plain_service: BuiltService, tmp_path: Path) -> None:
    """--out on a 512 kB tmpfs (the .deb is larger): its copy fails (exit 1), dist/ stays empty, no staging left."""
    with mounted(tmp_path / "small", "-t", "tmpfs", "-o", "size=512k", "tmpfs") as small:
        result = subprocess.run([sys.executable, "-m", "microdeploy", "build", str(plain_service.project),
                                 "--out", str(small / "dist")], env=build_env(tmp_path / "tmp"),
                                capture_output=True, text=True, timeout=CLI_TIMEOUT)
        assert result.returncode == 1, result.stderr
        assert "No space left on device" in result.stderr
        no_traceback(result)
        assert [str(p.relative_to(small)) for p in small.rglob("*")] in ([], ["dist"])  # at most an empty dist/
    assert list((tmp_path / "tmp").iterdir()) == []  # the work directory went too


def test_a_full_file_system_fails_a_publish_and_the_served_repository_stays(tmp_path: Path) -> None:
    """A repository on a small tmpfs that fills up: exit 1, a message, and the previous state still verifies."""
    small = tmp_path / "small"
    tree = tmp_path / "pkg"
    (tree / "DEBIAN").mkdir(parents=True)
    with mounted(small, "-t", "tmpfs", "-o", "size=3m", "tmpfs"):
        try:
            debs = []
            for version, size in (("1.0-1", 1), ("2.0-1", 4 << 20)):
                (tree / "DEBIAN" / "control").write_text(
                    f"Package: mdtest-full\nVersion: {version}\nArchitecture: all\nMaintainer: T <t@example.org>\n"
                    "Section: misc\nPriority: optional\nDescription: test\n test\n")
                (tree / "payload").write_bytes(os.urandom(size))
                debs.append(tmp_path / f"mdtest-full_{version}_all.deb")
                subprocess.run(["dpkg-deb", "-Znone", "--root-owner-group", "--build", str(tree), str(debs[-1])],
                               check=True, capture_output=True, timeout=60)
            first = microdeploy("publish", str(debs[0]), "--repo", str(small / "repo"))
            assert first.returncode == 0, first.stderr
            served = (small / "repo" / "public" / "dists" / "bookworm" / "InRelease").read_bytes()
            full = microdeploy("publish", str(debs[1]), "--repo", str(small / "repo"))
            assert full.returncode == 1, full.stderr
            assert "No space left on device" in full.stderr
            no_traceback(full)
            assert (small / "repo" / "public" / "dists" / "bookworm" / "InRelease").read_bytes() == served
            subprocess.run(["gpgv", "--keyring", str(small / "repo" / "public" / "microdeploy-archive-keyring.gpg"),
                            str(small / "repo" / "public" / "dists" / "bookworm" / "InRelease")],
                           check=True, capture_output=True, timeout=30)
        finally:
            subprocess.run(["gpgconf", "--kill", "all"], env={**os.environ, "GNUPGHOME":
                           str(small / "repo" / "state" / "gnupg")}, check=False, capture_output=True, timeout=30)


def dist_state(dist: Path) -> str:
    """'empty', 'complete' (a .deb with its .buildinfo and .changes) or what is wrong."""
    names = sorted(p.name for p in dist.iterdir()) if dist.is_dir() else []
    if not names:
        return "empty"
    kinds = sorted(name.rsplit(".", 1)[1] for name in names)
    return "complete" if kinds == ["buildinfo", "changes", "deb"] else f"partial: {names}"


def test_a_build_killed_at_any_moment_leaves_dist_complete_or_empty(plain_service: BuiltService,
                                                                    tmp_path: Path) -> None:
    """SIGKILL at 5 moments spread over a build: dist/ is complete or empty, and the next build cleans up."""
    project, dist, tmp = plain_service.project, tmp_path / "dist", tmp_path / "tmp"
    argv = [sys.executable, "-m", "microdeploy", "build", str(project), "--out", str(dist)]
    started = time.monotonic()
    done = subprocess.run(argv, env=build_env(tmp), capture_output=True, text=True, timeout=CLI_TIMEOUT)
    assert done.returncode == 0, done.stderr
    duration = time.monotonic() - started
    for path in dist.iterdir():
        path.unlink()
    seen = []
    for i in range(5):
        child = subprocess.Popen(argv, env=build_env(tmp), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, start_new_session=True)
        if i == 0:
            # The first kill lands once the build has made its work directory, long before it writes
            # dist/: one build is killed mid-way however fast this build runs next to the first one.
            wait_until(lambda: any(tmp.iterdir()), "the build making its work directory")
        else:
            time.sleep(duration * (i + 0.5) / 5)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)  # the group we started: the CLI and dpkg-buildpackage
        child.wait(60)
        state = dist_state(dist)
        staged = [p for p in tmp_path.iterdir() if p.name.startswith(".dist.staging.") and (p / ".files").exists()]
        # A kill between the three renames leaves the list of files, for the next build to undo.
        assert state in ("empty", "complete") or staged, state
        seen.append(state)
        for path in dist.iterdir() if dist.is_dir() else []:
            path.unlink()
    final = subprocess.run(argv, env=build_env(tmp), capture_output=True, text=True, timeout=CLI_TIMEOUT)
    assert final.returncode == 0, final.stderr
    assert dist_state(dist) == "complete"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".dist.")] == []
    assert list(tmp.iterdir()) == [], "work directories of killed builds are removed by the next build"
    assert "empty" in seen, seen


def test_sigterm_to_the_build_alone_ends_its_children_and_removes_its_work(plain_service: BuiltService,
                                                                           tmp_path: Path) -> None:
    """`kill PID` of the CLI alone (as `timeout` or a CI agent stopping a job sends it), while dpkg-buildpackage
    runs: exit status 130, no process of the build left running, no work directory, nothing in dist/. The
    build's children ran on without it, make-venv waiting for ten minutes."""
    project, dist, tmp = plain_service.project, tmp_path / "dist", tmp_path / "tmp"
    argv = [sys.executable, "-m", "microdeploy", "build", str(project), "--out", str(dist)]
    child = subprocess.Popen(argv, env=build_env(tmp), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        wait_until(lambda: bool(descendants(child.pid, "dpkg-buildpackage")), "dpkg-buildpackage running")
        os.kill(child.pid, signal.SIGTERM)
        _, stderr = child.communicate(timeout=120)
        assert child.returncode == 130, stderr
        assert "error: interrupted" in stderr
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)
    # Every process the build started was in its session (started_new_session): none runs once the CLI has
    # exited, so none writes into the work directory after its removal (dh programs did, for a second).
    assert session_members(child.pid) == []
    assert list(tmp.iterdir()) == []
    assert dist_state(dist) == "empty"


def descendants(pid: int, name: str) -> list[int]:
    """The processes below `pid` named `name`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "comm").read_text().strip() == name[:15] and os.getsid(int(entry.name)) == pid:
                    found.append(int(entry.name))
    return found


def session_members(sid: int) -> list[int]:
    """The live processes of session `sid`."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                stat = (entry / "stat").read_text()
                if os.getsid(int(entry.name)) == sid and stat.rsplit(")", 1)[1].split()[0] != "Z":
                    members.append(int(entry.name))
    return members


def test_an_output_directory_that_is_a_file_system_of_its_own_takes_the_build(plain_service: BuiltService,
                                                                              tmp_path: Path) -> None:
    """--out a mount point (a CI job's artifact directory), directly and through a link: the build's three files
    go in, nothing is left beside or inside it. A rename cannot cross file systems: it failed after the whole
    build (`Invalid cross-device link`)."""
    mount = tmp_path / "artifacts"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "microdeploy-test", str(mount)], check=True)
    try:
        (tmp_path / "dist").symlink_to(mount)
        for out in (mount, tmp_path / "dist"):
            argv = [sys.executable, "-m", "microdeploy", "build", str(plain_service.project), "--out", str(out)]
            done = subprocess.run(argv, env=build_env(tmp_path / "tmp"), capture_output=True, text=True,
                                  timeout=CLI_TIMEOUT)
            assert done.returncode == 0, done.stderr
            assert dist_state(mount) == "complete", sorted(p.name for p in mount.iterdir())
            assert sorted(p.name for p in tmp_path.iterdir()) == ["artifacts", "dist", "tmp"]
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_an_output_directory_that_cannot_take_a_file_is_refused_before_the_build(plain_service: BuiltService,
                                                                                 tmp_path: Path) -> None:
    """--out /proc: exit 2 before any work, no staging directory left in /. A cache that is a file: the build
    fails, and no staging directory is left beside --out."""
    argv = [sys.executable, "-m", "microdeploy", "build", str(plain_service.project)]
    before = set(Path("/").iterdir())
    done = subprocess.run([*argv, "--out", "/proc"], env=build_env(tmp_path / "tmp"), capture_output=True,
                          text=True, timeout=CLI_TIMEOUT)
    assert done.returncode == 2, done.stderr
    assert "cannot write" in done.stderr and "dpkg-buildpackage" not in done.stderr
    assert set(Path("/").iterdir()) == before
    (tmp_path / "cache-file").write_text("")
    env = {**build_env(tmp_path / "tmp"), "MICRODEPLOY_CACHE_DIR": str(tmp_path / "cache-file")}
    out = tmp_path / "out" / "dist"
    done = subprocess.run([*argv, "--out", str(out)], env=env, capture_output=True, text=True, timeout=CLI_TIMEOUT)
    assert done.returncode != 0
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_a_prune_while_a_build_runs_leaves_the_build_its_entries(plain_service: BuiltService,
                                                                 tmp_path: Path) -> None:
    """`cache prune --max-size 0` while a cold build with the same cache builds the project's wheel in the build
    environment it has just made: the build succeeds with the package a build left alone makes (it failed, `No
    module named 'setuptools.build_meta'`, or fell back and made another package); after it, the prune empties
    the cache."""
    cache_dir = tmp_path / "cache"
    env = {**build_env(tmp_path / "tmp"), "MICRODEPLOY_CACHE_DIR": str(cache_dir)}
    argv = [sys.executable, "-m", "microdeploy", "build", str(plain_service.project), "--out", str(tmp_path / "dist")]
    prune = [sys.executable, "-m", "microdeploy", "cache", "prune", "--max-size", "0", "--roots-max-size", "100G",
             "--images-max-size", "100G"]
    child = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        wait_until(lambda: any((cache_dir / "build-envs").glob("[!.]*")), "the build environment made")
        pruned = subprocess.run(prune, env=env, capture_output=True, text=True, timeout=CLI_TIMEOUT)
        assert pruned.returncode == 0, pruned.stderr
        _, stderr = child.communicate(timeout=CLI_TIMEOUT)
        assert child.returncode == 0, stderr
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)
    [deb] = (tmp_path / "dist").glob("*.deb")
    assert deb.read_bytes() == plain_service.result.deb.read_bytes()
    subprocess.run(prune, env=env, check=True, capture_output=True, timeout=CLI_TIMEOUT)
    assert cache.entries(cache_dir) == []
