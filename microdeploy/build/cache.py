"""The cache directory that builds share: where it is, what it holds, and how it stays bounded.

Each kind of entry is reused by later builds, which touch it when they use
it, so an entry's modification time is its last use:

    uv/                   uv's own cache (downloads, wheels): one entry, touched by every uv build
    layers/KEY/           dependency layers (fastpath/layer.py)
    wheels/NAME/DIGEST/   the projects' own wheels (fastpath/wheel.py)
    build-envs/KEY/       venvs holding a project's build requirements (fastpath/wheel.py)
    debian/KEY/           rendered debian/ directories (debiandir/tree.py)
    shlibdeps/KEY         remembered shlibs:Depends (debian/cached-shlibdeps)
    elf/KEY               ELF files as dh_strip left them (debian/cached-strip), the libraries
                          lintian finds embedded in them (debian/venv-overrides)

Any other directory at the top (left by another version of microdeploy) is
one entry of its own kind. Names starting with a dot are entries being
written; they count once they are a day old (a build that died left them).

Pruning removes whole entries, least recently used first, until the cache
fits its size; a build that finds an entry gone makes it again.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from microdeploy.errors import MicrodeployError, bad_input

# How deep below the cache root an entry of each kind is.
KINDS = {"uv": 1, "layers": 2, "wheels": 3, "build-envs": 2, "debian": 2, "shlibdeps": 2, "elf": 2}
MAX_SIZE_VAR = "MICRODEPLOY_CACHE_MAX_SIZE"
DEFAULT_MAX_SIZE = "4G"
# The prune after a build walks the whole cache; a burst of builds pays for
# one walk, and the cache overshoots its size by at most what they add.
PRUNE_STAMP = ".last-prune"
AUTO_PRUNE_INTERVAL = 600.0
STAGING_GRACE = 86400.0
SIZE_RE = re.compile(r"(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>[KMGT]?)(?:i?B)?", re.IGNORECASE)
UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


@dataclass(frozen=True)
class Entry:
    """One removable unit of the cache."""

    kind: str
    path: Path
    size: int  # bytes on disk
    last_use: float  # seconds since the epoch


@dataclass(frozen=True)
class KindInfo:
    """What the cache holds of one kind."""

    kind: str
    entries: int
    size: int
    last_use: float | None

    def as_dict(self) -> dict[str, object]:
        """A JSON-friendly view for --json."""
        last = None if self.last_use is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.last_use))
        return {"kind": self.kind, "entries": self.entries, "size": self.size, "last_use": last}


def cache_root(environ: Mapping[str, str]) -> Path:
    """$MICRODEPLOY_CACHE_DIR, else $XDG_CACHE_HOME/microdeploy, else ~/.cache/microdeploy."""
    if environ.get("MICRODEPLOY_CACHE_DIR"):
        return Path(environ["MICRODEPLOY_CACHE_DIR"])
    base = environ.get("XDG_CACHE_HOME") or str(Path(environ.get("HOME") or Path.home()) / ".cache")
    return Path(base) / "microdeploy"


def touch(path: Path) -> None:
    """Mark a cache entry as used now (it may have been pruned meanwhile: then nothing to mark)."""
    with contextlib.suppress(OSError):
        os.utime(path)


def parse_size(text: str) -> int:
    """Bytes from `500M`, `4G`, `1.5GiB` or a plain number of bytes."""
    match = SIZE_RE.fullmatch(text.strip())
    if match is None:
        raise bad_input(f"invalid size {text!r}", hint="Give a size such as 500M, 4G or 1.5GiB")
    return int(float(match["number"]) * UNITS[match["unit"].upper()])


def disk_usage(path: Path) -> int:
    """Bytes on disk under `path` (itself included), each inode counted once."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for item in _walk(path):
        try:
            stat = os.lstat(item)
        except OSError:
            continue
        if (stat.st_dev, stat.st_ino) not in seen:
            seen.add((stat.st_dev, stat.st_ino))
            total += stat.st_blocks * 512
    return total


def _walk(path: Path) -> Iterator[str]:
    yield str(path)
    for directory, subdirs, files in os.walk(path):
        for name in [*subdirs, *files]:
            yield os.path.join(directory, name)


def entries(root: Path, now: float | None = None) -> list[Entry]:
    """Every entry of the cache under `root`, each with its size and last use."""
    now = time.time() if now is None else now
    found: list[Entry] = []
    if not root.is_dir():
        return found
    for top in sorted(root.iterdir()):
        if top.name.startswith(".") or not top.is_dir() or top.is_symlink():
            continue
        depth = KINDS.get(top.name, 1)
        for path in _at_depth(top, depth - 1):
            try:
                last_use = path.lstat().st_mtime
            except OSError:
                continue
            if path.name.startswith(".") and now - last_use < STAGING_GRACE:
                continue
            found.append(Entry(top.name, path, disk_usage(path), last_use))
    return found


def _at_depth(directory: Path, depth: int) -> Iterator[Path]:
    if depth == 0:
        yield directory
        return
    try:
        children = sorted(directory.iterdir())
    except OSError:
        return
    for child in children:
        if depth == 1:
            yield child
        elif child.is_dir() and not child.is_symlink():
            yield from _at_depth(child, depth - 1)


def info(root: Path) -> list[KindInfo]:
    """Entries, size and last use per kind: the known kinds first, then any other found."""
    found = entries(root)
    kinds = [*KINDS, *sorted({entry.kind for entry in found} - set(KINDS))]
    result = []
    for kind in kinds:
        mine = [entry for entry in found if entry.kind == kind]
        result.append(KindInfo(kind, len(mine), sum(entry.size for entry in mine),
                               max((entry.last_use for entry in mine), default=None)))
    return result


def prune(root: Path, *, max_size: int | None = None, older_than_days: float | None = None,
          now: float | None = None) -> list[Entry]:
    """Remove entries unused for `older_than_days`, then the least recently used until the cache holds at most
    `max_size` bytes; return the removed ones."""
    now = time.time() if now is None else now
    remaining = sorted(entries(root, now), key=lambda entry: entry.last_use)
    removed = []
    if older_than_days is not None:
        removed = [entry for entry in remaining if now - entry.last_use > older_than_days * 86400]
        remaining = [entry for entry in remaining if entry not in removed]
    if max_size is not None:
        total = sum(entry.size for entry in remaining)
        while remaining and total > max_size:
            oldest = remaining.pop(0)
            removed.append(oldest)
            total -= oldest.size
    for entry in removed:
        if entry.path.is_dir() and not entry.path.is_symlink():
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            entry.path.unlink(missing_ok=True)
    return removed


def default_max_size(environ: Mapping[str, str]) -> int:
    """$MICRODEPLOY_CACHE_MAX_SIZE, else 4G."""
    text = environ.get(MAX_SIZE_VAR) or DEFAULT_MAX_SIZE
    try:
        return parse_size(text)
    except MicrodeployError as exc:
        raise bad_input(f"{MAX_SIZE_VAR}: {exc.message}", hint=exc.hint) from None


def prune_after_build(root: Path, max_size: int) -> list[Entry]:
    """The prune after a build, to `max_size`, unless another build pruned in the last few minutes."""
    stamp = root / PRUNE_STAMP
    try:
        if time.time() - stamp.stat().st_mtime < AUTO_PRUNE_INTERVAL:
            return []
    except FileNotFoundError:
        pass
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.touch()
    return prune(root, max_size=max_size)
