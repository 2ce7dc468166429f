"""Atomic writes (a reader, or a crash, never sees half of an output) and exclusive file locks."""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from microdeploy.errors import bad_input
from microdeploy.validate import control_character, shown


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
        _keep_owner(path, tmp_name)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def _keep_owner(path: Path, replacement: str) -> None:
    """Give `replacement` the owner and group of the file it replaces, as an edit in place keeps them (root
    rewriting a person's file in a control repository); a user who may not is left the file's new owner."""
    try:
        old = os.lstat(path)
    except FileNotFoundError:
        return
    if (old.st_uid, old.st_gid) != (os.geteuid(), os.getegid()):
        with suppress(PermissionError):
            os.chown(replacement, old.st_uid, old.st_gid)


def replace_directory(staging: Path, dest: Path) -> None:
    """Put the directory `staging` at `dest` by renames, replacing a directory there: the old one is moved aside
    first and put back if the new one cannot take its place, then removed. A failure or a kill before the swap
    leaves the old directory whole."""
    if not dest.is_dir():
        staging.rename(dest)
        return
    old = dest.with_name(f".{dest.name}.{os.getpid()}.old")
    dest.rename(old)
    try:
        staging.rename(dest)
    except BaseException:
        old.rename(dest)
        raise
    shutil.rmtree(old, ignore_errors=True)


def sync_directory(path: Path) -> None:
    """fsync the directory `path`, so that the renames into it survive a crash."""
    _fsync(path, os.O_RDONLY | os.O_DIRECTORY)


def sync_file(path: Path) -> None:
    """fsync the file `path`: its data reach the disk (a file written by another process, or linked)."""
    _fsync(path, os.O_RDONLY)


def _fsync(path: Path, flags: int) -> None:
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def link_or_copy(source: Path, dest: Path) -> None:
    """Put the file `source` at `dest`: a hard link where both are on one file system, else a copy.

    For files that neither side changes in place (a wheel, a kept artifact).
    """
    try:
        os.link(source, dest)
    except OSError:
        shutil.copy2(source, dest)


@contextmanager
def staged_directory(dest: Path) -> Iterator[Path]:
    """Yield a temporary sibling of `dest` that becomes `dest` only if the block succeeds.

    `dest` must not exist, or be an empty directory (it is replaced).
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".staging", dir=dest.parent))
    try:
        # mkdtemp makes it 0700; the directory it becomes follows the umask like mkdir's.
        os.chmod(staging, 0o777 & ~process_umask())
        yield staging
        if dest.is_dir():
            dest.rmdir()  # only an empty directory; a non-empty one raises
        staging.rename(dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


@contextmanager
def held_lock(path: Path, timeout: float, timed_out: Callable[[], Exception],
              poll: float = 0.1, *, shared: bool = False) -> Iterator[float]:
    """Hold an exclusive (or `shared`) flock on `path` for the block, waiting at most `timeout` s; yield the
    seconds waited.

    After `timeout` seconds the error `timed_out()` makes is raised instead.
    """
    started = time.monotonic()
    with path.open("a") as handle:
        while True:
            try:
                fcntl.flock(handle.fileno(), (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
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


def process_umask() -> int:
    """The process's umask, read without changing it (Linux's /proc), else by setting it back at once."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def owner_pid(path: Path, prefix: str) -> int | None:
    """The pid in a name made by `private_directory(prefix)` (PREFIX.PID.RANDOM), or None."""
    if not path.name.startswith(prefix + "."):
        return None
    pid, _, _ = path.name[len(prefix) + 1:].partition(".")
    return int(pid) if pid.isdigit() else None


def abandoned(parent: Path, prefix: str) -> list[Path]:
    """Directories `private_directory(prefix)` made in `parent` whose process is gone (killed, crashed)."""
    try:
        entries = list(parent.iterdir())
    except OSError:
        return []
    return sorted(path for path in entries
                  if (pid := owner_pid(path, prefix)) is not None and pid != os.getpid() and not _pid_alive(pid)
                  and path.is_dir() and not path.is_symlink())


def private_directory(prefix: str, parent: Path | None = None) -> Path:
    """A fresh 0700 directory PARENT/PREFIX.PID.RANDOM; those of dead processes with the same prefix are removed."""
    base = Path(parent) if parent is not None else Path(tempfile.gettempdir())
    for leftover in abandoned(base, prefix):
        shutil.rmtree(leftover, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f"{prefix}.{os.getpid()}.", dir=base))


def check_writable(path: Path, what: str) -> None:
    """Refuse (exit 2) an output `path` whose directory cannot take a new file, before any work.

    The check tries it (a temporary file made and removed at once): permission
    bits say nothing for root, a read-only mount or /proc.
    """
    bad = control_character(str(path))
    if bad is not None:
        raise bad_input(f"invalid {what} path {shown(str(path))}: control character {bad}",
                        hint=f"Pass a {what} path without control characters")
    hint = f"Pass a {what} in a directory you can write"
    try:
        # The path or a directory to be made above it may be a link to nothing: making it would fail
        # with "File exists" (a directory cannot be made through a dangling link).
        for candidate in (path, *path.parents):
            if candidate.exists():
                break
            if candidate.is_symlink():
                raise bad_input(f"{what} {candidate} is a dangling symbolic link (to {os.readlink(candidate)})",
                                hint=f"Create the directory it points to, or pass another {what}")
        parent = path.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
    except OSError as exc:  # a name too long, a loop of links
        raise bad_input(f"cannot write {shown(str(path))}: {exc.strerror}", hint=hint) from exc
    if not parent.is_dir():
        raise bad_input(f"cannot write {path}: {parent} is not a directory", hint=hint)
    try:
        fd, probe = tempfile.mkstemp(prefix=".microdeploy-probe.", dir=parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise bad_input(f"cannot write {path}: {parent}: {exc.strerror}", hint=hint) from exc


@contextmanager
def temporary_files_in(directory: Path) -> Iterator[Path]:
    """Point TMPDIR (for every tool started) and Python's tempfile at `directory` for the block.

    A build's tools (pip, setuptools, uv, dpkg) make temporary directories of
    their own; a build killed with SIGKILL cannot remove them, but with them
    inside its own work directory the next build's sweep removes them all.
    """
    directory.mkdir(parents=True, exist_ok=True)
    saved = os.environ.get("TMPDIR")
    saved_tempdir = tempfile.tempdir
    os.environ["TMPDIR"] = str(directory)
    tempfile.tempdir = str(directory)
    try:
        yield directory
    finally:
        tempfile.tempdir = saved_tempdir
        if saved is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = saved
