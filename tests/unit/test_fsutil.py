"""Atomic writes leave either the old state or the new one."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from microdeploy.fsutil import atomic_write, link_or_copy, staged_directory, sync_directory


def test_atomic_write_replaces_and_sets_mode(tmp_path: Path) -> None:
    """The file gets the new content and mode; no temporary file is left."""
    target = tmp_path / "out" / "file.txt"
    atomic_write(target, "one")
    atomic_write(target, "two", mode=0o600)
    assert target.read_text() == "two"
    assert target.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in target.parent.iterdir()] == ["file.txt"]


def test_only_durable_writes_are_synced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Outputs are fsynced before the rename; scratch files (durable=False) are renamed into place unsynced."""
    synced: list[int] = []
    monkeypatch.setattr("microdeploy.fsutil.os.fsync", synced.append)
    atomic_write(tmp_path / "returncode", "{}", durable=False)
    assert synced == []
    assert (tmp_path / "returncode").read_text() == "{}"
    atomic_write(tmp_path / "out.deb", b"deb")
    assert len(synced) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.deb", "returncode"]


def test_staged_directory_leaves_nothing_on_failure(tmp_path: Path) -> None:
    """An exception inside the block removes the staging directory and creates no target."""
    with pytest.raises(RuntimeError), staged_directory(tmp_path / "svc") as staging:
        (staging / "half.txt").write_text("half")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_staged_directory_replaces_an_empty_directory(tmp_path: Path) -> None:
    """An existing empty directory is filled."""
    (tmp_path / "svc").mkdir()
    with staged_directory(tmp_path / "svc") as staging:
        (staging / "a").write_text("a")
    assert [p.name for p in tmp_path.iterdir()] == ["svc"]
    assert (tmp_path / "svc" / "a").read_text() == "a"


def test_private_directories_of_dead_processes_are_swept(tmp_path: Path) -> None:
    """A work directory left by a killed process goes when the next one is made; a live one stays."""
    import subprocess

    from microdeploy.fsutil import private_directory

    child = subprocess.Popen(["true"])
    child.wait()
    dead = tmp_path / f"microdeploy-svc.{child.pid}.x1"
    live = tmp_path / f"microdeploy-svc.{os.getppid()}.x2"
    dead.mkdir()
    live.mkdir()
    made = private_directory("microdeploy-svc", tmp_path)
    assert made.stat().st_mode & 0o777 == 0o700
    assert not dead.exists() and live.exists() and made.name.startswith(f"microdeploy-svc.{os.getpid()}.")


def test_a_staged_directory_follows_the_umask(tmp_path: Path) -> None:
    """The directory made from the staging one is 0755 under umask 022 (not mkdtemp's 0700)."""
    old = os.umask(0o022)
    try:
        with staged_directory(tmp_path / "svc") as staging:
            (staging / "f").write_text("x")
    finally:
        os.umask(old)
    assert (tmp_path / "svc").stat().st_mode & 0o777 == 0o755


def test_check_writable_refuses_dangling_links_and_proc(tmp_path: Path) -> None:
    """An output that is a dangling link, or in /proc, is bad input (exit 2)."""
    from microdeploy.errors import EXIT_BAD_INPUT, MicrodeployError
    from microdeploy.fsutil import check_writable

    (tmp_path / "link").symlink_to(tmp_path / "nowhere" / "x")
    for path in (tmp_path / "link", Path("/proc/self/nope/file")):
        with pytest.raises(MicrodeployError) as info:
            check_writable(path, "file")
        assert info.value.exit_code == EXIT_BAD_INPUT
    check_writable(tmp_path / "new" / "file", "file")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link"]


def test_check_writable_refuses_a_path_below_a_dangling_link(tmp_path: Path) -> None:
    """A path whose directory-to-be is a dangling link (`--repo LINK` checks LINK/state) is bad input, naming it."""
    from microdeploy.errors import EXIT_BAD_INPUT, MicrodeployError
    from microdeploy.fsutil import check_writable

    (tmp_path / "repo").symlink_to(tmp_path / "gone")
    with pytest.raises(MicrodeployError) as info:
        check_writable(tmp_path / "repo" / "state", "--repo")
    assert info.value.exit_code == EXIT_BAD_INPUT
    assert f"--repo {tmp_path / 'repo'} is a dangling symbolic link (to {tmp_path / 'gone'})" in info.value.message
    assert info.value.hint is not None and info.value.hint.startswith("Create the directory it points to")


def test_temporary_files_go_where_they_are_told_for_the_block(tmp_path: Path) -> None:
    """Inside the block TMPDIR and tempfile point into the directory; after it, back to what they were."""
    import tempfile

    from microdeploy.fsutil import temporary_files_in

    before = (os.environ.get("TMPDIR"), tempfile.gettempdir())
    with temporary_files_in(tmp_path / "work" / "tmp") as inside:
        assert os.environ["TMPDIR"] == str(inside)
        assert Path(tempfile.mkdtemp()).parent == inside
    assert (os.environ.get("TMPDIR"), tempfile.gettempdir()) == before


def test_sync_directory_fsyncs_the_directory_itself(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fd fsynced is the directory's (its renames then survive a crash), and it is closed afterwards."""
    synced: list[tuple[int, int]] = []
    monkeypatch.setattr("microdeploy.fsutil.os.fsync", lambda fd: synced.append((fd, os.fstat(fd).st_ino)))
    sync_directory(tmp_path)
    [(fd, inode)] = synced
    assert inode == tmp_path.stat().st_ino
    with pytest.raises(OSError):
        os.fstat(fd)


def test_link_or_copy_links_on_one_filesystem_and_copies_across(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same filesystem: the same inode, no bytes written; EXDEV (another filesystem): a copy with the mode."""
    source = tmp_path / "made.whl"
    source.write_bytes(b"wheel")
    source.chmod(0o640)
    link_or_copy(source, tmp_path / "linked.whl")
    assert (tmp_path / "linked.whl").stat().st_ino == source.stat().st_ino

    def cross_device(src: object, dst: object) -> None:
        raise OSError(errno.EXDEV, os.strerror(errno.EXDEV), str(src))

    monkeypatch.setattr("microdeploy.fsutil.os.link", cross_device)
    link_or_copy(source, tmp_path / "copied.whl")
    copied = (tmp_path / "copied.whl").stat()
    assert copied.st_ino != source.stat().st_ino
    assert (tmp_path / "copied.whl").read_bytes() == b"wheel" and copied.st_mode & 0o777 == 0o640
