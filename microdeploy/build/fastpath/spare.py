"""A ready copy of a dependency layer, kept at a fixed path for the next build.

Copying a layer (hundreds of files) costs about 0.1 s of CPU at the start of
a build, when both cores are busy; a copy made after the previous build, on
a core the tail of that build left idle, only has to be moved. Its fixed
path also lets uv reuse what it learnt about the venv's interpreter (uv keeps
that per interpreter path), which saves starting Python once more before the
project's wheel is installed into it.

    layers/KEY/venv          the saved layer (debian/uv-pip), never changed
    layers/KEY/ready/venv    a copy of it, taken by one build, then made again
    layers/KEY/ready.lock    held by the build that takes the copy
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)

READY = "ready"


def ready_venv(layer: Path) -> Path:
    """Where the ready copy of `layer` lives."""
    return layer / READY / "venv"


@contextmanager
def claimed(layer: Path, near: Path) -> Iterator[Path | None]:
    """The ready copy, held for this build alone; None when there is none, another build holds it, or it is
    on another filesystem than `near` (it could not be moved there).

    The caller moves the copy away before the block ends; whatever is left
    of it then is removed, so a copy is never used twice.
    """
    venv = ready_venv(layer)
    if not venv.is_dir():
        yield None
        return
    with open(layer / f"{READY}.lock", "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield None
            return
        if not venv.is_dir() or venv.stat().st_dev != near.stat().st_dev:
            yield None
            return
        try:
            yield venv
        finally:
            shutil.rmtree(venv, ignore_errors=True)


def refill(layer: Path) -> bool:
    """Copy the saved layer to its ready place unless a copy is there; True if this call made it."""
    saved = layer / "venv"
    if not saved.is_dir() or ready_venv(layer).is_dir():
        return False
    (layer / READY).mkdir(exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".venv.", dir=layer / READY))
    try:
        shutil.copytree(saved, staging / "venv", symlinks=True)
        os.rename(staging / "venv", ready_venv(layer))
        return True
    except OSError as exc:  # another build made it first, or the disk is full: the next build copies
        log.debug("ready layer copy: %s", exc)
        return False
    finally:
        shutil.rmtree(staging, ignore_errors=True)
