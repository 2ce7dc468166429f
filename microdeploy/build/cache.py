"""The cache directory every build shares, and how its entries are dropped."""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path


def cache_root(environ: Mapping[str, str]) -> Path:
    """$MICRODEPLOY_CACHE_DIR, else $XDG_CACHE_HOME/microdeploy, else ~/.cache/microdeploy."""
    if environ.get("MICRODEPLOY_CACHE_DIR"):
        return Path(environ["MICRODEPLOY_CACHE_DIR"])
    base = environ.get("XDG_CACHE_HOME") or str(Path(environ.get("HOME") or Path.home()) / ".cache")
    return Path(base) / "microdeploy"


def prune_oldest(directory: Path, keep: int) -> list[Path]:
    """Remove all but the `keep` most recently used entries of a cache directory; return the removed ones.

    Dot-named entries are another build's staging directories, not entries yet.
    """
    entries = sorted((p for p in directory.iterdir() if p.is_dir() and not p.name.startswith(".")),
                     key=lambda p: p.stat().st_mtime, reverse=True)
    removed = entries[keep:]
    for old in removed:
        shutil.rmtree(old, ignore_errors=True)
    return removed
