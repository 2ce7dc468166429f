"""Atomic writes (a reader, or a crash, never sees half of an output) and exclusive file locks."""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


def atomic_write(path: Path, data: str | bytes, mode: int = 0o644, *, durable: bool = True) -> None:
    """Write `data` to `path` through a temporary file in the same directory and a rename.

    `durable=False` skips the fsync, for scratch files that a crash may lose
    (a build's status files, removed with its work directory): on a busy
    disk an fsync can stall a few milliseconds.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode() if isinstance(data, str) else data
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.chmod(tmp_name, mode)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


@contextmanager
def staged_directory(dest: Path) -> Iterator[Path]:
    """Yield a temporary sibling of `dest` that becomes `dest` only if the block succeeds.

    `dest` must not exist, or be an empty directory (it is replaced).
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".staging", dir=dest.parent))
    try:
        yield staging
        if dest.is_dir():
            dest.rmdir()  # only an empty directory; a non-empty one raises
        staging.rename(dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


@contextmanager
def exclusive_lock(path: Path, timeout: float, timed_out: Callable[[], Exception],
                   poll: float = 0.1) -> Iterator[float]:
    """Hold an exclusive flock on `path` for the block, waiting at most `timeout` s; yield the seconds waited.

    After `timeout` seconds the error `timed_out()` makes is raised instead.
    """
    started = time.monotonic()
    with path.open("a") as handle:
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() - started > timeout:
                    raise timed_out() from exc
                time.sleep(poll)
        try:
            yield time.monotonic() - started
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
