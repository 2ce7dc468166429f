"""The bookkeeping of hosts on this machine: roots, owners, /proc, ending hosts by pid, reaping leftovers.

Everything here ends only what it can prove is ours: a host directory under
ROOTS_DIR whose recorded owner has died, a PID 1 whose parent is that host's
systemd-nspawn.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
from contextlib import suppress
from pathlib import Path

from microdeploy.errors import MicrodeployError
from microdeploy.process import Spawned, run
from microdeploy.proctree import alive, children, wait_ended

from . import CACHE_DIR

__all__ = [
    "ROOTS_DIR",
    "kill_host",
    "mount_root",
    "ns_pid",
    "read_proc",
    "reap_stale_hosts",
    "remove_host_directory",
    "write_owner",
]

log = logging.getLogger(__name__)

# Host roots live beside the cached images (same filesystem, outside any repository).
ROOTS_DIR = CACHE_DIR / "roots"


def write_owner(directory: Path, nspawn_pid: int | None) -> None:
    """Record which process owns the host (and its nspawn pid), for reap_stale_hosts."""
    (directory / "owner").write_text(f"{os.getpid()} {nspawn_pid or ''}".strip() + "\n")


def _read_owner(directory: Path) -> tuple[int | None, int | None]:
    """The owning session's pid and the host's nspawn pid, as far as recorded."""
    try:
        fields = [int(field) for field in (directory / "owner").read_text().split()]
    except (OSError, ValueError):
        return None, None
    return (fields[0] if fields else None), (fields[1] if len(fields) > 1 else None)


def reap_stale_hosts() -> list[Path]:
    """Remove hosts left behind by sessions that died without teardown; return their dirs."""
    reaped = []
    for directory in sorted(ROOTS_DIR.glob("*/")) if ROOTS_DIR.is_dir() else []:
        owner, nspawn_pid = _read_owner(directory)
        if owner is None or alive(owner):
            continue
        # Only a systemd-nspawn of this very root is ended, by its pid.
        if nspawn_pid is not None and str(directory / "root") in read_proc(nspawn_pid, "cmdline"):
            pid1 = next((pid for pid in children(nspawn_pid) if ns_pid(pid) == 1), None)
            if pid1 is not None:
                with suppress(ProcessLookupError):
                    os.kill(pid1, signal.SIGKILL)
            wait_ended([nspawn_pid], 10.0)
            with suppress(ProcessLookupError):
                os.kill(nspawn_pid, signal.SIGKILL)
            wait_ended([nspawn_pid], 10.0)
        remove_host_directory(directory)
        log.warning("removed stale host %s of dead session %d", directory.name, owner)
        reaped.append(directory)
    return reaped


def mount_root(tree: Path, directory: Path) -> None:
    """Mount DIRECTORY/root as an overlay: the shared unpacked image below, this host's changes above."""
    upper, work, root = directory / "upper", directory / "work", directory / "root"
    for path in (upper, work, root):
        path.mkdir()
    paths = [str(tree), str(upper), str(work)]
    if any(char in path for path in paths for char in ",:"):
        # They would be read as separators of the mount options.
        raise MicrodeployError(f"overlay paths must not contain ',' or ':': {paths}")
    options = f"lowerdir={tree},upperdir={upper},workdir={work}"
    try:
        run(["mount", "-t", "overlay", "overlay", "-o", options, str(root)])
    except MicrodeployError as exc:
        raise MicrodeployError(
            f"cannot mount the overlay root of a host: {exc.message}",
            hint=f"Keep {ROOTS_DIR} on a filesystem that overlayfs accepts as upper layer "
            "(ext4, xfs; not overlayfs itself)",
        ) from exc


def ns_pid(pid: int) -> int | None:
    """The PID of `pid` in its innermost PID namespace."""
    nspid = _status_field(pid, "NSpid")
    return int(nspid.split()[-1]) if nspid else None


def _status_field(pid: int, field: str) -> str:
    """One field of /proc/PID/status ('' when the process is gone)."""
    for line in read_proc(pid, "status").splitlines():
        key, _, value = line.partition(":")
        if key == field:
            return value.strip()
    return ""


def read_proc(pid: int, name: str) -> str:
    """/proc/PID/NAME, or '' if the process has gone meanwhile."""
    try:
        return (Path("/proc") / str(pid) / name).read_text()
    except OSError:
        return ""


def kill_host(process: Spawned, pid1: int | None) -> None:
    """End a host by pid: SIGKILL its PID 1 (which ends its whole PID namespace), then nspawn."""
    if pid1 is None:
        # Not systemd yet, but the namespace's PID 1 may exist: killing only
        # nspawn would orphan it.
        pid1 = next((pid for pid in children(process.pid) if ns_pid(pid) == 1), None)
    # Check the parent first so a recycled pid is never hit.
    if pid1 is not None and _status_field(pid1, "PPid") == str(process.pid):
        with suppress(ProcessLookupError):
            os.kill(pid1, signal.SIGKILL)
    if process.wait(timeout=10):
        return
    process.kill()
    process.wait(timeout=10)


def remove_host_directory(directory: Path) -> None:
    """Unmount a host's overlay root and delete its directory (only under ROOTS_DIR, only if unmounted)."""
    directory = directory.resolve()
    if directory.parent != ROOTS_DIR.resolve():
        raise MicrodeployError(f"refusing to remove {directory}: not a host directory of {ROOTS_DIR}")
    if directory / "root" in _mount_points():
        run(["umount", str(directory / "root")], timeout=60)
    # nspawn mounts in its own namespace; any mount still visible here would
    # let rmtree delete through it into the shared image tree or elsewhere.
    mounts = [m for m in _mount_points() if m == directory or directory in m.parents]
    if mounts:
        raise MicrodeployError(f"refusing to remove {directory}: still mounted: {mounts}")
    shutil.rmtree(directory, ignore_errors=False)


def _mount_points() -> list[Path]:
    """Mount points of our mount namespace."""
    lines = Path("/proc/self/mountinfo").read_text().splitlines()
    # Field 5 is the mount point, with spaces etc. octal-escaped.
    return [Path(line.split()[4].encode().decode("unicode_escape")) for line in lines]
