"""The cache directory that builds share: where it is, what it holds, and how it stays bounded.

Each kind of entry is reused by later builds, which touch it when they use
it, so an entry's modification time is its last use:

    uv/                   uv's own cache (downloads, wheels): one entry, touched by every uv build
    layers/KEY/           dependency layers (fastpath/layer.py)
    wheels/NAME/DIGEST/   the projects' own wheels (fastpath/wheel.py)
    build-envs/KEY/       venvs holding a project's build requirements, or links to the release's (fastpath/wheel.py)
    debian/KEY/           rendered debian/ directories (debiandir/tree.py)
    shlibdeps/KEY         remembered shlibs:Depends (debian/cached-shlibdeps)
    elf/KEY               ELF files as dh_strip left them (debian/cached-strip), the libraries
                          lintian finds embedded in them, the privacy breaches it finds in
                          web pages and gzip's verdicts on *.gz files (debian/venv-overrides)
    deb-chunks/KEY        chunks of the packages' data members, compressed (fastpath/datapack.py)

The kinds earlier versions of microdeploy kept (RETIRED_KINDS) are one entry
each. Anything else in the directory is not the cache's, and is never an
entry: MICRODEPLOY_CACHE_DIR may name a directory that holds other things
(a home directory, a CI workspace). Names starting with a dot are entries
being written or removed (a prune renames an entry before it deletes it);
they count once they are a day old (a build or a prune that died left
them).

The build roots of other releases (buildroot.py) are a second area with a cap
of its own, since one takes a minute of mmdebstrap to make again: each
directory in the roots directory named as buildroot.py names a root
(CODENAME-DIGEST) is an entry of kind "roots", used by a build while it
holds the shared lock of the NAME.lock file beside it; a use marks that file
(the root itself is an overlay's lower layer, never changed).

Pruning removes whole entries, least recently used first, until the cache
fits its size; a build that finds an entry gone makes it again. An entry
with a lock file beside it is removed only while that lock is free. While
builds run with the cache (each holds the lock of a `.build-*.running` mark
at the top, made when it starts), the entries used since the oldest of them
started are kept whatever the size: a build touches an entry when it starts
using it, and a build environment or layer removed under it fails the build
or changes its package.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import shutil
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from microdeploy.build.running import builds_running_since
from microdeploy.errors import MicrodeployError, bad_input
from microdeploy.process import detach

log = logging.getLogger(__name__)

# How deep below the cache root an entry of each kind is.
KINDS = {"uv": 1, "layers": 2, "wheels": 3, "build-envs": 2, "debian": 2, "shlibdeps": 2, "elf": 2, "deb-chunks": 2}
# Top-level directories earlier versions of microdeploy kept, which nothing reads now.
RETIRED_KINDS = ("uv-versions", "ready")
# A build root's name (buildroot.root_path), or its staging's or prune's dot name.
ROOT_NAME = re.compile(r"\.?[a-z][a-z0-9]*-[0-9a-f]{12}(?:\..+)?")
MAX_SIZE_VAR = "MICRODEPLOY_CACHE_MAX_SIZE"
DEFAULT_MAX_SIZE = "4G"
ROOTS_KIND = "roots"
ROOTS_MAX_SIZE_VAR = "MICRODEPLOY_ROOTS_MAX_SIZE"
DEFAULT_ROOTS_MAX_SIZE = "4G"
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
        root = Path(environ["MICRODEPLOY_CACHE_DIR"])
    else:
        base = environ.get("XDG_CACHE_HOME") or str(Path(environ.get("HOME") or Path.home()) / ".cache")
        root = Path(base) / "microdeploy"
    if root.exists() and not root.is_dir():
        raise bad_input(f"the cache directory {root} is not a directory",
                        hint="Point MICRODEPLOY_CACHE_DIR (or XDG_CACHE_HOME) at a directory")
    return root


def lock_beside(path: Path) -> Path:
    """The lock file beside a cache entry used under a lock (a build root, a host image): NAME.lock."""
    return path.with_name(path.name + ".lock")


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
        if not top.is_dir() or top.is_symlink():
            continue
        if top.name.startswith("."):  # a kind whose prune was interrupted (uv's cache): one entry
            kind = top.name.removeprefix(".").partition(".pruned-")[0]
            if kind in KINDS or kind in RETIRED_KINDS:
                found += entries_of(kind, [top], now)
        elif top.name in KINDS:
            found += entries_of(top.name, _at_depth(top, KINDS[top.name] - 1), now)
        elif top.name in RETIRED_KINDS:
            found += entries_of(top.name, [top], now)
    return found


def root_entries(roots: Path, now: float | None = None) -> list[Entry]:
    """Every build root under `roots` (its directories; the lock files beside them are not entries)."""
    now = time.time() if now is None else now
    if not roots.is_dir():
        return []
    found = (path for path in sorted(roots.iterdir())
             if ROOT_NAME.fullmatch(path.name) and path.is_dir() and not path.is_symlink())
    return entries_of(ROOTS_KIND, found, now)


def entries_of(kind: str, paths: Iterable[Path], now: float) -> list[Entry]:
    """`paths` as entries of `kind`, but a dot-named one (being written) only once it is a day old."""
    found = []
    for path in paths:
        try:
            last_use = path.lstat().st_mtime
        except OSError:
            continue
        with contextlib.suppress(OSError):  # an entry used under a lock is marked on its lock file
            last_use = max(last_use, lock_beside(path).stat().st_mtime)
        if path.name.startswith(".") and now - last_use < STAGING_GRACE:
            continue
        found.append(Entry(kind, path, disk_usage(path), last_use))
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
    """Entries, size and last use per kind: the kinds builds use, then any retired kind found."""
    found = entries(root)
    return summaries(found, [*KINDS, *sorted({entry.kind for entry in found} - set(KINDS))])


def summaries(found: list[Entry], kinds: Iterable[str]) -> list[KindInfo]:
    """The summary of each of `kinds` among the entries `found`."""
    return [summary(kind, [entry for entry in found if entry.kind == kind]) for kind in kinds]


def summary(kind: str, found: list[Entry]) -> KindInfo:
    """How many entries of `kind` there are, their size and their newest use."""
    return KindInfo(kind, len(found), sum(entry.size for entry in found),
                    max((entry.last_use for entry in found), default=None))


def prune(root: Path, *, max_size: int | None = None, older_than_days: float | None = None,
          now: float | None = None) -> list[Entry]:
    """Remove entries unused for `older_than_days`, then the least recently used until the cache holds at most
    `max_size` bytes; return the removed ones. What running builds use stays (build_running)."""
    now = time.time() if now is None else now
    found = entries(root, now)
    since = builds_running_since(root)
    used = {entry.path for entry in found if since is not None and entry.last_use >= since - 1}
    if used:
        log.info("kept %d cache entries that running builds use", len(used))
    return prune_entries(found, max_size=max_size, older_than_days=older_than_days, now=now,
                         in_use=used.__contains__)


def prune_entries(found: list[Entry], *, max_size: int | None, older_than_days: float | None, now: float,
                  in_use: Callable[[Path], bool] = lambda path: False) -> list[Entry]:
    """Remove those of `found` unused for `older_than_days`, then the least recently used until the rest
    holds at most `max_size` bytes; return the removed ones. An entry in use (its lock held, or `in_use`
    says so) stays."""
    total = sum(entry.size for entry in found)
    removed = []
    # Oldest first: the entries unused for too long are the first ones, then as many as the size needs.
    for entry in sorted(found, key=lambda entry: entry.last_use):
        too_old = older_than_days is not None and now - entry.last_use > older_than_days * 86400
        too_big = max_size is not None and total > max_size
        if (too_old or too_big) and _remove(entry.path, in_use):
            removed.append(entry)
            total -= entry.size
    return removed


def _remove(path: Path, in_use: Callable[[Path], bool]) -> bool:
    """Remove an entry, unless a lock file beside it is held (a build is using it) or `in_use` says it is
    used; whether it is gone."""
    doomed = _taken(path, in_use)
    if doomed is None:
        return False
    _delete(doomed)
    return True


def _taken(path: Path, in_use: Callable[[Path], bool]) -> Path | None:
    """The entry renamed out of the way (_out_of_the_way), under its lock when it has one; None if it is in use
    or gone. A build waiting for the lock then finds the entry gone and makes it again."""
    lock = lock_beside(path)
    if not lock.is_file():
        return None if in_use(path) else _out_of_the_way(path)
    with lock.open("a") as handle:  # the lock is released with the handle
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return None
        return None if in_use(path) else _out_of_the_way(path)


def _out_of_the_way(path: Path) -> Path | None:
    """Rename an entry to a dot name before it is deleted, which takes a while: a prune that is interrupted
    (Ctrl-C, a CI job's end) never leaves part of an entry under its own name, for a build to take as whole.
    A later prune removes the dot name. None if the entry is gone already."""
    doomed = path.with_name(f".{path.name}.pruned-{os.getpid()}")
    try:
        path.rename(doomed)
    except FileNotFoundError:
        return None
    return doomed


def _delete(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def default_max_size(environ: Mapping[str, str]) -> int:
    """$MICRODEPLOY_CACHE_MAX_SIZE, else 4G."""
    return size_setting(environ, MAX_SIZE_VAR, DEFAULT_MAX_SIZE)


def default_roots_max_size(environ: Mapping[str, str]) -> int:
    """$MICRODEPLOY_ROOTS_MAX_SIZE, else 4G."""
    return size_setting(environ, ROOTS_MAX_SIZE_VAR, DEFAULT_ROOTS_MAX_SIZE)


def size_setting(environ: Mapping[str, str], variable: str, default: str) -> int:
    """The size in `variable`, else `default`; one that is no size is bad input naming the variable."""
    try:
        return parse_size(environ.get(variable) or default)
    except MicrodeployError as exc:
        raise bad_input(f"{variable}: {exc.message}", hint=exc.hint) from None


def start_prune_after_build(root: Path, max_size: int) -> int | None:
    """The prune after a build, to `max_size`, unless another build pruned in the last few minutes (None then),
    in a process of its own, which the build does not wait for (process.detach); its pid.

    Sizing the cache reads every file's inode (uv's cache holds tens of
    thousands), which would otherwise hold up every build that follows a
    quiet spell after its package is made. A CI job's end that kills the
    prune leaves entries whole or gone (see _out_of_the_way).
    """
    if not due(root):
        return None
    # This microdeploy, wherever it is imported from here, whatever the process's directory.
    here = str(Path(__file__).resolve().parents[2])
    path = os.pathsep.join([here, *filter(None, [os.environ.get("PYTHONPATH")])])
    try:
        return detach([sys.executable, "-m", "microdeploy.build.cache", str(root.resolve()), str(max_size)],
                      env={**os.environ, "PYTHONPATH": path})
    except OSError as exc:  # the package is made: a warning, no failure
        log.warning("the cache %s was not pruned: %s", root, exc)
        return None


def prune_roots(roots: Path, *, max_size: int | None, older_than_days: float | None = None) -> list[Entry]:
    """Remove build roots, least recently used first; never one a build holds."""
    now = time.time()
    return prune_entries(root_entries(roots, now), max_size=max_size, older_than_days=older_than_days, now=now)


def prune_roots_after_build(roots: Path, max_size: int) -> list[Entry]:
    """The prune of the build roots after a build in one, to `max_size`, at most once in a while."""
    return prune_roots(roots, max_size=max_size) if due(roots) else []


def due(directory: Path) -> bool:
    """Whether the last prune of `directory` is a few minutes old; if so, this one is noted as the last."""
    stamp = directory / PRUNE_STAMP
    try:
        if time.time() - stamp.stat().st_mtime < AUTO_PRUNE_INTERVAL:
            return False
    except FileNotFoundError:
        pass
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.touch()
    return True


if __name__ == "__main__":  # start_prune_after_build's process: ROOT MAX_SIZE
    prune(Path(sys.argv[1]), max_size=int(sys.argv[2]))
