"""A repository directory's generations: each publish's complete state, made beside the served one.

Layout of a repository directory DIR:

    DIR/public -> state/generations/gNNNNNN/published   what is served (one symlink)
    DIR/state/lock                                      flock: one publish at a time
    DIR/state/gnupg/                                    the repository's own key (0700)
    DIR/state/gnupg.retired-FPR/                        an own key rotated out, kept whole (its private key)
    DIR/state/retired-keys/FPR.gpg                      keys rotated out, still exported for a while
    DIR/state/gnupg.new/, retired-keys/FPR.gpg.new      a rotation until its generation is served (rotation.py)
    DIR/state/generations/gNNNNNN/
        aptly.conf  aptly/ (rootDir: db + pool)  published/ (the endpoint)  manifest.json
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from microdeploy.errors import MicrodeployError
from microdeploy.fsutil import atomic_write, held_lock, link_or_copy, sync_directory

# How long the by-hash index files of earlier publishes stay (an apt-get update
# that read InRelease before a publish fetches the indexes it lists after it).
BY_HASH_GRACE = 900.0
# The published keyring hosts use as Signed-By, and its ASCII armour.
KEYRING_NAME = "microdeploy-archive-keyring.gpg"
ARMORED_KEY_NAME = "microdeploy-archive-keyring.asc"
# The ioctl that makes `dest` share `source`'s blocks (btrfs, XFS): linux/fs.h FICLONE.
FICLONE = 0x40049409
LOCK_TIMEOUT = 600.0

_GENERATION = re.compile(r"g([0-9]{6,})")


@dataclass(frozen=True)
class Layout:
    """The paths of a repository directory."""

    root: Path

    @property
    def public(self) -> Path:
        """The served tree (a symlink to the current generation's published/)."""
        return self.root / "public"

    @property
    def state(self) -> Path:
        """Private state: aptly generations, the key, the lock."""
        return self.root / "state"

    @property
    def lock(self) -> Path:
        """The flock that serialises publishes."""
        return self.state / "lock"

    @property
    def gnupghome(self) -> Path:
        """The repository's own GnuPG home (mode 0700)."""
        return self.state / "gnupg"

    @property
    def retired_keys(self) -> Path:
        """Public keyrings of keys rotated out, kept for the transition period."""
        return self.state / "retired-keys"

    @property
    def generations(self) -> Path:
        """Where each publish builds a complete repository state."""
        return self.state / "generations"

    def current(self) -> Path | None:
        """The generation directory `public` points at, or None before the first publish."""
        if not self.public.is_symlink():
            return None
        return (self.public.parent / os.readlink(self.public)).parent


def aptly_config(generation_dir: Path) -> dict[str, Any]:
    """aptly.conf of a generation: its own rootDir and one filesystem endpoint, hard links into it."""
    return {
        "rootDir": str(generation_dir / "aptly"),
        "architectures": [],
        "gpgProvider": "gpg",
        "gpgDisableSign": False,
        "gpgDisableVerify": False,
        "skipContentsPublishing": True,
        "FileSystemPublishEndpoints": {
            "microdeploy": {"rootDir": str(generation_dir / "published"), "linkMethod": "hardlink",
                            "verifyMethod": "md5"},
        },
    }


def clone_generation(source: Path | None, dest: Path) -> None:
    """Make `dest` a private copy of generation `source`: copies of what aptly rewrites, links to .debs."""
    dest.mkdir(parents=True)
    atomic_write(dest / "aptly.conf", json.dumps(aptly_config(dest), indent=2) + "\n")
    if source is None:
        return
    for part in ("aptly", "published"):
        if (source / part).is_dir():
            _copy_tree(source / part, dest / part)
    if (source / "manifest.json").is_file():
        shutil.copy2(source / "manifest.json", dest / "manifest.json")


def _copy_tree(source: Path, dest: Path) -> None:
    """Copy a tree, hard-linking .deb files (never rewritten) and copying the rest (aptly's db, indexes)."""

    def copy(src: str, dst: str) -> object:
        if src.endswith(".deb"):
            link_or_copy(Path(src), Path(dst))
            return dst
        return shutil.copy2(src, dst)

    shutil.copytree(source, dest, symlinks=True, copy_function=copy)


def copy_file(source: Path, dest: Path) -> None:
    """Copy `source` to a new file `dest`: a reflink where the file system shares blocks, else the bytes."""
    with source.open("rb") as src, dest.open("xb") as dst:
        try:
            fcntl.ioctl(dst.fileno(), FICLONE, src.fileno())
        except OSError:
            shutil.copyfileobj(src, dst, 1 << 20)


def by_hash_files(published: Path) -> dict[Path, float]:
    """The index files under the by-hash/ directories of a published tree (relative path -> mtime)."""
    found = {}
    for path in published.glob("dists/*/**/by-hash/*/*"):
        if path.is_file() and not path.is_symlink():
            found[path.relative_to(published)] = path.stat().st_mtime
    return found


def keep_recent_by_hash(earlier: Mapping[Path, float], source: Path, published: Path, now: float) -> None:
    """Link back the by-hash files of `source` that aptly dropped from `published`, while still recent.

    aptly keeps the indexes of the last two publishes; a client that read
    InRelease a few publishes ago may still be fetching what it lists, so
    index files younger than BY_HASH_GRACE seconds stay (hard links, from the
    served generation this one was cloned from).
    """
    for relative, mtime in earlier.items():
        path = published / relative
        if now - mtime < BY_HASH_GRACE and not path.exists() and path.parent.is_dir() \
                and (source / relative).is_file():
            os.link(source / relative, path)


def next_generation(layout: Layout) -> str:
    """The name of the next generation (one more than any there, made or half-made)."""
    numbers = [int(m.group(1)) for p in layout.generations.glob("g*") if (m := _GENERATION.fullmatch(p.name))]
    return f"g{max(numbers, default=0) + 1:06d}"


def swap_public(layout: Layout, generation_dir: Path) -> None:
    """Point `public` at the generation's published tree with one atomic rename."""
    target = os.path.relpath(generation_dir / "published", layout.root)
    tmp = layout.root / f".public.{os.getpid()}.tmp"
    tmp.unlink(missing_ok=True)
    os.symlink(target, tmp)
    try:
        os.replace(tmp, layout.public)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    sync_directory(layout.root)


def not_ours(layout: Layout) -> str | None:
    """What makes an existing directory another tool's rather than a microdeploy repository, or None.

    Publishing there would rename over its `public` (or fail doing so) and mix
    microdeploy's state into its own.
    """
    public, state = layout.public, layout.state
    if public.is_symlink():
        target = os.readlink(public)
        parts = Path(target).parts
        if not (len(parts) == 4 and parts[:2] == ("state", "generations") and _GENERATION.fullmatch(parts[2])
                and parts[3] == "published"):
            return f"{public} is a symbolic link to {target}, not to a generation under state/generations/"
    elif public.exists():
        kind = "directory" if public.is_dir() else "file"
        return f"{public} is a {kind}, where microdeploy keeps a link to the served generation"
    if state.exists() and not state.is_dir():
        return f"{state} is a file, where microdeploy keeps its aptly state and key"
    return None


def served_generations(layout: Layout, current: Path | None) -> list[Path]:
    """The served generation and the one before it (a reader may still be fetching from it)."""
    if current is None:
        return []
    match = _GENERATION.fullmatch(current.name)
    number = int(match.group(1)) if match else 0
    older = [p for p in layout.generations.glob("g*")
             if (m := _GENERATION.fullmatch(p.name)) and int(m.group(1)) < number]
    return [current, *sorted(older)[-1:]]


def prune_generations(layout: Layout, keep: Sequence[Path]) -> None:
    """Remove generations other than `keep` (the served one and its predecessor, for readers mid-download)."""
    wanted = {p.resolve() for p in keep}
    for path in layout.generations.glob("g*"):
        if path.resolve() not in wanted:
            shutil.rmtree(path, ignore_errors=True)


@contextmanager
def repository_lock(path: Path, timeout: float = LOCK_TIMEOUT) -> Iterator[float]:
    """Hold the repository's exclusive flock (waiting at most `timeout` s); yield the seconds waited."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with held_lock(path, timeout, lambda: MicrodeployError(
        f"another publish has held the repository lock {path} for over {timeout:g} s",
        hint="Wait for it to finish, or look for a hung `microdeploy publish`/aptly process",
    )) as waited:
        yield waited
