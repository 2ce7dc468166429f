"""A child process and everything below it, read from /proc, and how to end them all.

A tool that we stop is not the whole of what runs: dpkg-buildpackage runs
make, dh and the dh_* programs, and these keep writing into the build tree
after their parent is killed. Ending a tool means ending its tree, before
whatever it wrote is removed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

# How long the programs of a tree get to exit on SIGTERM before SIGKILL.
GRACE_SECONDS = 5.0


def parents() -> dict[int, int]:
    """Every live process's parent, by pid."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                # Field 4 of stat is the parent; the command name before it may hold spaces and parentheses.
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if fields[0] != "Z":
                    found[int(entry.name)] = int(fields[1])
    return found


def children(pid: int) -> list[int]:
    """The live processes whose parent is `pid`."""
    return [child for child, parent in parents().items() if parent == pid]


def descendants(pid: int) -> list[int]:
    """The live processes below `pid`, parents before their children."""
    below: dict[int, list[int]] = {}
    for child, parent in parents().items():
        below.setdefault(parent, []).append(child)
    found, level = [], below.get(pid, [])
    while level:
        found.extend(level)
        level = [child for parent in level for child in below.get(parent, [])]
    return found


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie, which has exited, does not)."""
    return _identity(pid) is not None


def end_tree(pid: int, grace: float = GRACE_SECONDS) -> None:
    """End `pid` (our child, still unreaped) and every process below it: the tree is stopped first, so that no
    program starts another or dies leaving orphans we cannot find; then SIGTERM to each, and SIGKILL to whatever
    still runs after `grace` seconds. Returns once none of them runs, or after a further bounded wait."""
    tree: dict[int, str] = {}
    while True:
        # A program may start another between our reading /proc and stopping it: read again until no new one.
        new = {member: identity for member in [pid, *descendants(pid)] if member not in tree
               and (identity := _identity(member)) is not None}
        if not new:
            break
        for member, identity in new.items():
            _signal(member, identity, signal.SIGSTOP)
        tree.update(new)
    for member, identity in tree.items():
        _signal(member, identity, signal.SIGTERM)
        _signal(member, identity, signal.SIGCONT)
    if not _wait_gone(tree, grace):
        for member, identity in tree.items():
            _signal(member, identity, signal.SIGKILL)
        _wait_gone(tree, grace)


def wait_ended(pids: list[int], timeout: float) -> bool:
    """Wait (bounded) until none of `pids` runs, processes we cannot `wait()` on too; whether none does."""
    return _wait_gone({pid: identity for pid in pids if (identity := _identity(pid)) is not None}, timeout)


def _identity(pid: int) -> str | None:
    """The start time of process `pid` (field 22 of its stat: clock ticks after boot), which tells it from a later
    process given the same pid; None once it has exited (a zombie too)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[19] if len(fields) > 19 and fields[0] != "Z" else None


def _signal(pid: int, identity: str, signum: int) -> None:
    """Send `signum` to `pid` if it is still the process it was (a pid that was freed may have been given again)."""
    if _identity(pid) == identity:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


def _wait_gone(processes: dict[int, str], timeout: float) -> bool:
    """Wait (bounded) until none of `processes` (pid: identity) runs; whether none does."""
    deadline = time.monotonic() + timeout
    while any(_identity(pid) == identity for pid, identity in processes.items()):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True
