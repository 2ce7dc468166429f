"""Work done on the other core while dpkg-buildpackage gets going, announced by a status file.

The scripts inside the build (debian/make-venv, debian/uv-pip) wait for the
job's status file and use its output only when it says 0 (contract.py).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from microdeploy.build.fastpath.contract import STATUS_FILE
from microdeploy.fsutil import atomic_write

log = logging.getLogger(__name__)


def succeeded(directory: Path) -> bool:
    """Whether the job of `directory` has ended with return code 0."""
    status = directory / STATUS_FILE
    return status.is_file() and status.read_text(encoding="utf-8").strip() == "0"


def output(job: threading.Thread, directory: Path, pattern: str) -> Path | None:
    """Once `job`, working in `directory`, has ended: its one file there matching `pattern` if it succeeded, else
    None."""
    job.join()
    found = sorted(directory.glob(pattern))
    return found[0] if len(found) == 1 and succeeded(directory) else None


def start(name: str, directory: Path, job: Callable[[], int]) -> threading.Thread:
    """Run `job` on a thread; then write its return code (1 if it raised OSError) to its status file."""

    def run_job() -> None:
        returncode = 1
        try:
            directory.mkdir(parents=True, exist_ok=True)
            returncode = job()
        except OSError as exc:
            log.debug("%s: %s", name, exc)
        finally:
            atomic_write(directory / STATUS_FILE, f"{returncode}\n", durable=False)

    thread = threading.Thread(target=run_job, name=name, daemon=True)
    thread.start()
    return thread
