"""The builds running with a cache: each marks it for its duration, so that a prune meanwhile keeps what it uses.

A mark is a file at the top of the cache (`.build-ID.running`, not an entry:
cache.py counts directories) whose lock the build holds, dated when the build
began; its lock free, it was left by a build that died.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from microdeploy.errors import bad_input

BUILD_MARK = ".build-{id}.running"


@contextmanager
def build_running(root: Path, started: float | None = None) -> Iterator[None]:
    """Mark the cache `root` as used by a build for the block: a prune meanwhile keeps the entries used since
    the build started (`started`, a time.time(); else now). The mark is a file whose lock the build holds, made
    under another name and renamed once locked, so that a prune never takes a mark being made for one a dead
    build left."""
    unique = f"{os.getpid()}-{threading.get_ident()}"
    making = root / f".build-{unique}.making"
    mark = root / BUILD_MARK.format(id=unique)
    try:
        root.mkdir(parents=True, exist_ok=True)
        handle = making.open("w")
    except OSError as exc:
        raise bad_input(f"cannot use the cache directory {root}: {exc.strerror}",
                        hint="Set MICRODEPLOY_CACHE_DIR to a directory you can write (nothing was built)") from exc
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        if started is not None:
            os.utime(making, (started, started))
        making.rename(mark)
        try:
            yield
        finally:
            mark.unlink(missing_ok=True)


def builds_running_since(root: Path) -> float | None:
    """When the oldest build still running with the cache `root` started, or None; the marks of builds that
    died (their lock free) are removed."""
    since = None
    for mark in root.glob(BUILD_MARK.format(id="*")):
        try:
            with mark.open("a") as handle:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    started = mark.stat().st_mtime
                    since = started if since is None else min(since, started)
                    continue
                mark.unlink(missing_ok=True)
        except OSError:
            continue
    return since
