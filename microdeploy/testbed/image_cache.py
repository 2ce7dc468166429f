"""The cache of host images stays bounded: what it holds, and its prune after a check.

`microdeploy check` (and the test suite) keep in CACHE_DIR, per release and
package set, a host image (NAME.tar), its unpacked tree (NAME.tree: the lower
layer every host of that image mounts), a piuparts base (NAME.tar.gz), and
the Debian files the check's APT feed fetched (mirror/). A new microdeploy
recipe, or another package set, makes new images; the old ones are used no
more. Each of those is an entry of this cache, its last use marked on the
NAME.lock file beside it (on the file itself in mirror/), and the cache is
pruned like the build cache (build/cache.py): least recently used first,
never an entry whose lock is held, nor a tree mounted under a host.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path

from microdeploy.build.cache import Entry, due, entries_of, lock_beside, prune_entries, size_setting, touch

from . import CACHE_DIR

IMAGES_KIND = "host-images"
MIRROR_KIND = "mirror"
MIRROR_DIR = "mirror"
IMAGE_SUFFIXES = (".tar", ".tar.gz", ".tree")
MAX_SIZE_VAR = "MICRODEPLOY_IMAGES_MAX_SIZE"
# Two releases' host images and trees with their piuparts bases take about 1.5G.
DEFAULT_MAX_SIZE = "4G"


def mark_used(path: Path) -> None:
    """Note that an image, tree or base is used now."""
    touch(lock_beside(path))


def image_entries(directory: Path = CACHE_DIR, now: float | None = None) -> list[Entry]:
    """Every image, tree and base in `directory`, and every file of its mirror/."""
    now = time.time() if now is None else now
    if not directory.is_dir():
        return []
    images = [path for path in sorted(directory.iterdir())
              if path.name.endswith(IMAGE_SUFFIXES) and not path.is_symlink()]
    mirror = directory / MIRROR_DIR
    files = [path for path in sorted(mirror.iterdir()) if path.is_file()] if mirror.is_dir() else []
    return entries_of(IMAGES_KIND, images, now) + entries_of(MIRROR_KIND, files, now)


def mounted_lower_layers() -> set[str]:
    """The lower layers of the overlays mounted in this mount namespace (the trees of running hosts)."""
    found = set()
    for line in Path("/proc/self/mountinfo").read_text(encoding="utf-8").splitlines():
        for option in line.split(" - ", 1)[-1].split(","):
            if option.startswith("lowerdir="):
                found.update(option.removeprefix("lowerdir=").split(":"))
    return found


def prune(directory: Path = CACHE_DIR, *, max_size: int | None, older_than_days: float | None = None,
          now: float | None = None) -> list[Entry]:
    """Remove images, trees, bases and mirror files, least recently used first; never a tree a host mounts."""
    now = time.time() if now is None else now
    mounted = mounted_lower_layers()
    return prune_entries(image_entries(directory, now), max_size=max_size, older_than_days=older_than_days,
                         now=now, in_use=lambda path: str(path) in mounted)


def prune_after_check(max_size: int, directory: Path = CACHE_DIR) -> list[Entry]:
    """The prune after a check, to `max_size`, at most once in a while."""
    return prune(directory, max_size=max_size) if due(directory) else []


def default_max_size(environ: Mapping[str, str]) -> int:
    """$MICRODEPLOY_IMAGES_MAX_SIZE, else 4G."""
    return size_setting(environ, MAX_SIZE_VAR, DEFAULT_MAX_SIZE)
