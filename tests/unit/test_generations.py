"""Generations of a published repository (microdeploy.generations)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from microdeploy.generations import Layout, swap_public


def test_swap_public_points_public_at_the_generation_and_syncs_the_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """public becomes a relative link to the generation's tree, and the root directory holding it is fsynced."""
    synced: list[int] = []
    monkeypatch.setattr("microdeploy.fsutil.os.fsync", lambda fd: synced.append(os.fstat(fd).st_ino))
    layout = Layout(tmp_path / "repo")
    generation = layout.root / "state" / "generations" / "g000001"
    (generation / "published").mkdir(parents=True)
    swap_public(layout, generation)
    assert os.readlink(layout.public) == "state/generations/g000001/published"
    assert synced == [layout.root.stat().st_ino]


def test_swap_public_over_a_directory_fails_and_leaves_no_temporary_link(tmp_path: Path) -> None:
    """A `public` that is a directory cannot be swapped: the error comes out and no .public.*.tmp stays."""
    layout = Layout(tmp_path / "repo")
    generation = layout.root / "state" / "generations" / "g000001"
    (generation / "published").mkdir(parents=True)
    (layout.public / "dists").mkdir(parents=True)
    with pytest.raises(OSError):
        swap_public(layout, generation)
    assert sorted(p.name for p in layout.root.iterdir()) == ["public", "state"]
