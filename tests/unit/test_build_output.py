"""The output directory gets a build's three files together or nothing (microdeploy.build.output)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from microdeploy.build.dpkg import Artifacts
from microdeploy.build.output import LIST, PREVIOUS, move_in, prepare_output, recover, staging_prefix
from microdeploy.errors import EXIT_BAD_INPUT, MicrodeployError

NAMES = ("svc_1.0-1_amd64.deb", "svc_1.0-1_amd64.buildinfo", "svc_1.0-1_amd64.changes")


def built(tmp_path: Path, content: str = "new") -> Artifacts:
    """Three files as dpkg-buildpackage leaves them in its work directory."""
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    for name in NAMES:
        (work / name).write_text(f"{content} {name}")
    return Artifacts(work / NAMES[0], work / NAMES[1], work / NAMES[2])


def dead_pid() -> int:
    """The pid of a process that has exited (a killed build)."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_move_in_puts_all_three_files_and_nothing_else(tmp_path: Path) -> None:
    """After a build dist/ holds exactly the three files, and no staging directory is left beside it."""
    out = tmp_path / "dist"
    staging = prepare_output(out)
    result = move_in(built(tmp_path), staging, out)
    assert sorted(p.name for p in out.iterdir()) == sorted(NAMES)
    assert result.deb == out / NAMES[0]
    assert not staging.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dist", "work"]


def test_the_files_are_linked_in_and_synced_or_copied_from_another_file_system(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On one file system each file moves in as a hard link, synced, mode 0644; where links fail, as a copy."""
    made = built(tmp_path)
    os.chmod(made.deb, 0o600)
    synced: list[int] = []
    fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(os.fstat(fd).st_ino) or fsync(fd))
    linked = move_in(made, prepare_output(tmp_path / "dist"), tmp_path / "dist")
    assert os.stat(linked.deb).st_ino == os.stat(made.deb).st_ino and os.stat(linked.deb).st_nlink == 2
    assert os.stat(linked.deb).st_mode & 0o777 == 0o644
    assert os.stat(made.deb).st_ino in synced and os.stat(made.changes).st_ino in synced

    def cross_device(source: object, target: object) -> None:
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", cross_device)
    copied = move_in(made, prepare_output(tmp_path / "other"), tmp_path / "other")
    assert os.stat(copied.deb).st_ino != os.stat(made.deb).st_ino
    assert [path.read_text() for path in (copied.deb, copied.buildinfo, copied.changes)] == [
        f"new {name}" for name in NAMES]


def test_a_move_cut_short_is_undone_by_the_next_build(tmp_path: Path) -> None:
    """A killed build's half-moved files go, and the file they replaced comes back."""
    out = tmp_path / "dist"
    out.mkdir()
    (out / NAMES[2]).write_text("old changes")
    leftover = tmp_path / f"{staging_prefix(out)}.{dead_pid()}.abc"
    leftover.mkdir()
    # The killed build had listed its files, kept the old .changes, moved .buildinfo and .changes in.
    (leftover / LIST).write_text("\n".join(NAMES[1:] + NAMES[:1]) + "\n")
    os.link(out / NAMES[2], leftover / (NAMES[2] + PREVIOUS))
    for name in NAMES[1:]:  # renamed in: new inodes
        (tmp_path / "moving").write_text(f"new {name}")
        os.replace(tmp_path / "moving", out / name)
    (leftover / NAMES[0]).write_text("new deb, not moved yet")
    recover(out)
    assert sorted(p.name for p in out.iterdir()) == [NAMES[2]]
    assert (out / NAMES[2]).read_text() == "old changes"
    assert not leftover.exists()


def test_a_complete_move_is_kept_and_its_staging_removed(tmp_path: Path) -> None:
    """A build killed after its last rename left a complete set: it stays."""
    out = tmp_path / "dist"
    out.mkdir()
    for name in NAMES:
        (out / name).write_text(name)
    leftover = tmp_path / f"{staging_prefix(out)}.{dead_pid()}.abc"
    leftover.mkdir()
    (leftover / LIST).write_text("\n".join(NAMES) + "\n")
    recover(out)
    assert sorted(p.name for p in out.iterdir()) == sorted(NAMES)
    assert not leftover.exists()


def test_a_running_build_s_staging_is_left_alone(tmp_path: Path) -> None:
    """Staging directories of live processes (a parallel build) are not touched."""
    out = tmp_path / "dist"
    alive = tmp_path / f"{staging_prefix(out)}.{os.getppid()}.abc"
    alive.mkdir()
    recover(out)
    assert alive.is_dir()


def test_an_output_path_that_is_a_file_is_bad_input(tmp_path: Path) -> None:
    """--out naming a file is refused with exit 2 before the build."""
    (tmp_path / "dist").write_text("")
    with pytest.raises(MicrodeployError) as info:
        prepare_output(tmp_path / "dist")
    assert info.value.exit_code == EXIT_BAD_INPUT


def test_an_output_under_proc_is_bad_input() -> None:
    """--out where nothing can be created (/proc) is refused with exit 2 before the build."""
    with pytest.raises(MicrodeployError) as info:
        prepare_output(Path("/proc/microdeploy-dist"))
    assert info.value.exit_code == EXIT_BAD_INPUT
    assert "cannot write" in info.value.message


def test_move_in_syncs_the_output_directory_after_the_renames(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The last fsync of a move is the output directory's, so the three renames are on disk together."""
    synced: list[int] = []
    monkeypatch.setattr("microdeploy.fsutil.os.fsync", lambda fd: synced.append(os.fstat(fd).st_ino))
    out = tmp_path / "dist"
    move_in(built(tmp_path), prepare_output(out), out)
    assert synced[-1] == out.stat().st_ino
