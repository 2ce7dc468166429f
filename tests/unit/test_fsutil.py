"""Atomic writes leave either the old state or the new one."""

from __future__ import annotations

from pathlib import Path

import pytest

from microdeploy.fsutil import atomic_write, staged_directory


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
