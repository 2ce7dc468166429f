"""Boot a fresh copy of an image with systemd in systemd-nspawn, run commands in it, power it off.

A host's root is an overlay mount: the image unpacked once (shared, never
written) below, the host's own changes in its directory above. That makes a
fresh root in milliseconds instead of an untar of ~12,000 files per boot.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from . import CACHE_DIR, TestbedError, require_tools, run_tool, tail
from .image import unpacked
from .network import Netns

__all__ = [
    "BOOT_TIMEOUT",
    "ROOTS_DIR",
    "RUNNING_STATES",
    "Host",
    "boot",
    "booted_host",
    "reap_stale_hosts",
    "regenerate_ssh_host_keys",
]

log = logging.getLogger(__name__)

# Unpacked roots live beside the cached images (same filesystem, outside the repo).
ROOTS_DIR = CACHE_DIR / "roots"

# `systemctl is-system-running` states of a booted host; "degraded" only means
# some unit failed, which the tests that care inspect themselves.
RUNNING_STATES = frozenset({"running", "degraded"})

# Boot-to-running takes a few seconds; allow for a loaded 2-core machine.
BOOT_TIMEOUT = 90.0
POWEROFF_TIMEOUT = 60.0

# Commands run in a host get a clean, predictable environment instead of the
# test runner's (virtualenv PATH, pip.conf variables, locale, ...).
_HOST_ENV: Mapping[str, str] = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "LANG": "C.UTF-8",
    "TERM": "dumb",
    "DEBIAN_FRONTEND": "noninteractive",
    "SYSTEMD_PAGER": "",
}

# Also the prefix of the root's directory name: keep it a plain hostname.
_HOSTNAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")

# The host's console (nspawn's output) is coloured; error messages are not.
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

# Mounted over inside the booted host (tmpfs, API filesystems): a file put
# there from our side would be hidden under the mount.
# The device nodes nspawn copies from this machine into every host.
_DEVICE_NODES = {"/dev/null": (1, 3), "/dev/zero": (1, 5), "/dev/full": (1, 7),
                 "/dev/random": (1, 8), "/dev/urandom": (1, 9), "/dev/tty": (5, 0)}
_SHADOWED = tuple(PurePosixPath(p) for p in ("/tmp", "/run", "/dev", "/proc", "/sys"))


@dataclass(frozen=True, eq=False)
class Host:
    """A Debian 12 host booted with systemd in systemd-nspawn, owned by this process."""

    name: str
    directory: Path
    process: subprocess.Popen[bytes]
    pid1: int
    netns: Netns | None = None

    @property
    def root(self) -> Path:
        """The host's root filesystem (an overlay mount), as seen from our side."""
        return self.directory / "root"

    @property
    def log_path(self) -> Path:
        """Where systemd-nspawn's output (the host's console) is written."""
        return self.directory / "nspawn.log"

    @property
    def address(self) -> str | None:
        """The host's 10.231.N.2 address, or None on a private (loopback-only) network."""
        return self.netns.address if self.netns else None

    def is_alive(self) -> bool:
        """Whether the systemd-nspawn process is still running."""
        return self.process.poll() is None

    def run(
        self,
        argv: Sequence[str],
        *,
        check: bool = True,
        input: str | None = None,
        timeout: float = 120.0,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run `argv` inside the host (all its namespaces, its root) and capture the output."""
        if not self.is_alive():
            # Its PID 1's number may already belong to another process.
            raise TestbedError(f"host {self.name} is not running; cannot run {argv[0]} in it")
        # -p: in the host's PID namespace, so systemctl and friends see its
        # systemd as PID 1; -r/-w: its root and working directory.
        nsenter = ["nsenter", "-t", str(self.pid1), "-m", "-u", "-i", "-n", "-p", "-r", "-w"]
        # On timeout only nsenter is killed; a command left behind inside dies
        # with the host at poweroff.
        return run_tool(
            [*nsenter, "--", *argv],
            check=check,
            input=input,
            timeout=timeout,
            env={**_HOST_ENV, **(env or {})},
        )

    def wait_until_running(self, timeout: float = BOOT_TIMEOUT) -> str:
        """Wait (bounded) until systemd reports running or degraded; return that state."""
        deadline = time.monotonic() + timeout
        state = "unknown"
        while time.monotonic() < deadline:
            if not self.is_alive():
                raise self._failure("systemd-nspawn exited while booting")
            # Before the host's D-Bus is up this prints "offline" or fails; poll on.
            state = self.run(["systemctl", "is-system-running"], check=False, timeout=15).stdout
            state = state.strip() or "unknown"
            if state in RUNNING_STATES:
                return state
            if state in ("maintenance", "stopping"):
                break
            time.sleep(0.2)
        raise self._failure(f"not running after {timeout:g} s (last state: {state})")

    def copy_in(self, local_path: Path | str, dest: PurePosixPath | str) -> Path:
        """Copy a file or directory to the absolute path `dest` inside the host; return its path here."""
        target = self._path_in_root(dest)
        source = Path(local_path)
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, symlinks=True, dirs_exist_ok=True)
        else:
            shutil.copy2(source, target)
        return target

    def read_file(self, path: PurePosixPath | str) -> str:
        """The text of a file inside the host, as the host sees it (tmpfs and all)."""
        return self.run(["cat", "--", str(path)]).stdout

    def journal(self, unit: str | None = None, lines: int = 100) -> str:
        """The tail of the host's journal for this boot, optionally of one unit."""
        argv = ["journalctl", "--boot", "--no-pager", "--lines", str(lines)]
        if unit:
            argv += ["--unit", unit]
        return self.run(argv, check=False, timeout=30).stdout

    def poweroff(self, timeout: float = POWEROFF_TIMEOUT) -> None:
        """Shut the host down (bounded; killed by pid if it hangs) and remove its root."""
        if self.is_alive():
            with suppress(TestbedError):
                # The command may lose its connection as systemd goes down.
                self.run(["systemctl", "poweroff"], check=False, timeout=30)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                log.warning("host %s did not power off in %g s; killing it", self.name, timeout)
                _kill(self.process, self.pid1)
        _remove_host_directory(self.directory)
        log.info("host %s powered off and removed", self.name)

    def _path_in_root(self, dest: PurePosixPath | str) -> Path:
        """Map an absolute path inside the host to our side, refusing shadowed or escaping ones."""
        inside = PurePosixPath(os.path.normpath(str(dest)))
        if not inside.is_absolute() or inside == PurePosixPath("/"):
            raise TestbedError(f"{dest!r} is not an absolute file path inside the host")
        for shadowed in _SHADOWED:
            if inside == shadowed or shadowed in inside.parents:
                raise TestbedError(
                    f"cannot copy into {inside}: {shadowed} is mounted over inside the "
                    "booted host. Copy into /root or /var/tmp instead."
                )
        target = self.root / inside.relative_to("/")
        # An absolute symlink in the image (e.g. /var/run -> /run) would point
        # out of the root on our side: never write through one.
        if not target.resolve().is_relative_to(self.root.resolve()):
            raise TestbedError(f"{inside} leaves the host's root through a symlink")
        return target

    def _failure(self, what: str) -> TestbedError:
        """A boot error carrying the tail of the nspawn output and of the journal."""
        output = _console_output(self.log_path)
        journal = "(host not running)"
        if self.is_alive():
            try:
                journal = self.journal(lines=60)
                journal += (
                    "\n--- failed units ---\n"
                    + self.run(["systemctl", "--failed", "--no-legend"], check=False, timeout=15).stdout
                )
            except TestbedError as exc:
                journal = f"(journal unavailable: {exc})"
        return TestbedError(
            f"host {self.name}: {what}\n"
            f"--- systemd-nspawn output (tail) ---\n{tail(output)}\n"
            f"--- journal (tail) ---\n{tail(journal, 80)}"
        )


def boot(
    image: Path,
    *,
    name: str | None = None,
    netns: Netns | None = None,
    regenerate_host_keys: bool = False,
    wait: bool = True,
    timeout: float = BOOT_TIMEOUT,
) -> Host:
    """Boot a fresh copy of `image`; wait until it is running unless `wait` is False."""
    require_tools("systemd-nspawn", "nsenter", "tar", "mount", "umount")
    _require_device_nodes()
    name = name or f"mdtb-{secrets.token_hex(4)}"
    if not _HOSTNAME.fullmatch(name):
        raise TestbedError(f"invalid host name {name!r}. Use lower-case letters, digits and dashes.")
    ROOTS_DIR.mkdir(parents=True, exist_ok=True)
    directory = Path(tempfile.mkdtemp(prefix=f"{name}.", dir=ROOTS_DIR))
    started = time.monotonic()
    try:
        _write_owner(directory, None)
        _mount_root(unpacked(image), directory)
        _set_hostname(directory / "root", name)
        if regenerate_host_keys:
            regenerate_ssh_host_keys(directory / "root")
        process = _start_nspawn(directory, name, netns)
        _write_owner(directory, process.pid)
    except BaseException:
        _remove_host_directory(directory)
        raise
    try:
        pid1 = _wait_for_pid1(process, directory / "nspawn.log", timeout)
    except BaseException:
        _kill(process, None)
        _remove_host_directory(directory)
        raise
    host = Host(name=name, directory=directory, process=process, pid1=pid1, netns=netns)
    if wait:
        try:
            host.wait_until_running(timeout)
        except BaseException:
            host.poweroff(timeout=20)
            raise
    log.info(
        "host %s booted in %.1f s (pid1 %d, root %s)",
        name, time.monotonic() - started, pid1, host.root,
    )  # fmt: skip
    return host


def _require_device_nodes() -> None:
    """nspawn copies /dev/null and friends into the host: fail with the fix if one is not a device.

    A `> /dev/null` after something removed the node leaves a regular file,
    and nspawn then only says "/dev/null is not a char or block device".
    """
    for node, (major, minor) in _DEVICE_NODES.items():
        if not Path(node).is_char_device():
            raise TestbedError(
                f"{node} on this machine is not a character device, so no host can boot. "
                f"Restore it as root: rm -f {node} && mknod -m 666 {node} c {major} {minor}"
            )


@contextmanager
def booted_host(
    image: Path,
    *,
    netns: Netns | None = None,
    regenerate_host_keys: bool = False,
    timeout: float = BOOT_TIMEOUT,
) -> Iterator[Host]:
    """A running host for the duration of the block, powered off and removed afterwards."""
    host = boot(image, netns=netns, regenerate_host_keys=regenerate_host_keys, timeout=timeout)
    try:
        yield host
    finally:
        host.poweroff()


def regenerate_ssh_host_keys(root: Path) -> None:
    """Give the unpacked root its own SSH host keys instead of the image's shared ones."""
    for key in (root / "etc" / "ssh").glob("ssh_host_*"):
        key.unlink()
    # `-f` with `-A` is a prefix: the keys land in ROOT/etc/ssh/.
    run_tool(["ssh-keygen", "-A", "-f", str(root)])


def reap_stale_hosts() -> list[Path]:
    """Remove hosts left behind by test sessions that died without teardown; return their dirs."""
    reaped = []
    for directory in sorted(ROOTS_DIR.glob("*/")) if ROOTS_DIR.is_dir() else []:
        owner, nspawn_pid = _read_owner(directory)
        if owner is None or _pid_alive(owner):
            continue
        # Only a systemd-nspawn of this very root is ended, by its pid.
        if nspawn_pid is not None and str(directory / "root") in _read_proc(nspawn_pid, "cmdline"):
            pid1 = next((pid for pid in _children(nspawn_pid) if _ns_pid(pid) == 1), None)
            if pid1 is not None:
                with suppress(ProcessLookupError):
                    os.kill(pid1, signal.SIGKILL)
            _wait_gone(nspawn_pid, 10.0)
            with suppress(ProcessLookupError):
                os.kill(nspawn_pid, signal.SIGKILL)
            _wait_gone(nspawn_pid, 10.0)
        _remove_host_directory(directory)
        log.warning("removed stale host %s of dead session %d", directory.name, owner)
        reaped.append(directory)
    return reaped


def _write_owner(directory: Path, nspawn_pid: int | None) -> None:
    """Record which process owns the host (and its nspawn pid), for reap_stale_hosts."""
    (directory / "owner").write_text(f"{os.getpid()} {nspawn_pid or ''}".strip() + "\n")


def _read_owner(directory: Path) -> tuple[int | None, int | None]:
    """The owning session's pid and the host's nspawn pid, as far as recorded."""
    try:
        fields = [int(field) for field in (directory / "owner").read_text().split()]
    except (OSError, ValueError):
        return None, None
    return (fields[0] if fields else None), (fields[1] if len(fields) > 1 else None)


def _pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (a zombie counts as gone)."""
    state = _status_field(pid, "State")
    return bool(state) and not state.startswith("Z")


def _wait_gone(pid: int, timeout: float) -> None:
    """Wait (bounded) for a process we cannot `wait()` on, i.e. not our child, to exit."""
    deadline = time.monotonic() + timeout
    while _pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)


def _mount_root(tree: Path, directory: Path) -> None:
    """Mount DIRECTORY/root as an overlay: the shared unpacked image below, this host's changes above."""
    upper, work, root = directory / "upper", directory / "work", directory / "root"
    for path in (upper, work, root):
        path.mkdir()
    paths = [str(tree), str(upper), str(work)]
    if any(char in path for path in paths for char in ",:"):
        # They would be read as separators of the mount options.
        raise TestbedError(f"overlay paths must not contain ',' or ':': {paths}")
    options = f"lowerdir={tree},upperdir={upper},workdir={work}"
    try:
        run_tool(["mount", "-t", "overlay", "overlay", "-o", options, str(root)])
    except TestbedError as exc:
        raise TestbedError(
            f"cannot mount the overlay root of a host: {exc}. Keep {ROOTS_DIR} on a filesystem "
            "that overlayfs accepts as upper layer (ext4, xfs; not overlayfs itself)."
        ) from exc


def _set_hostname(root: Path, name: str) -> None:
    """Make the host call itself `name`: mmdebstrap copied the build machine's /etc/hostname."""
    # systemd sets the hostname from /etc/hostname, overriding nspawn's -M.
    (root / "etc" / "hostname").write_text(f"{name}\n")
    # mmdebstrap writes no /etc/hosts; give the host Debian's usual one, with
    # its own name on 127.0.1.1, so `hostname --fqdn`, sudo and friends resolve it.
    (root / "etc" / "hosts").write_text(
        f"127.0.0.1\tlocalhost\n127.0.1.1\t{name}\n::1\tlocalhost ip6-localhost ip6-loopback\n"
    )


def _start_nspawn(directory: Path, name: str, netns: Netns | None) -> subprocess.Popen[bytes]:
    """Start systemd-nspawn booting ROOT in the background; its output goes to nspawn.log."""
    network = [f"--network-namespace-path={netns.path}"] if netns else ["--private-network"]
    argv = [
        "systemd-nspawn", "-q",
        # No machined/D-Bus on this machine: do not register, do not make a scope.
        "--register=no", "--keep-unit",
        # Leave our own /var/log/journal alone.
        "--link-journal=no",
        *network,
        "-D", str(directory / "root"), "-M", name, "-b",
    ]  # fmt: skip
    log.debug("start: %s", " ".join(argv))
    with (directory / "nspawn.log").open("wb") as output:
        # start_new_session is the setsid(1) of TESTING.md: the host must not be
        # torn down with our terminal or process group (Ctrl-C goes to pytest,
        # which then powers the host off cleanly).
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _wait_for_pid1(process: subprocess.Popen[bytes], log_path: Path, timeout: float) -> int:
    """Find the host's PID 1: the child of systemd-nspawn that is PID 1 in its namespace and runs systemd."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = _console_output(log_path)
            raise TestbedError(
                f"systemd-nspawn exited with status {process.returncode} before booting\n"
                f"--- systemd-nspawn output (tail) ---\n{tail(output)}"
            )
        for pid in _children(process.pid):
            # Before the exec of systemd the child is still nspawn's code, with
            # the mounts not yet final: only then is it safe to nsenter.
            if _ns_pid(pid) == 1 and _read_proc(pid, "comm").strip() == "systemd":
                return pid
        time.sleep(0.05)
    raise TestbedError(f"systemd did not start as PID 1 within {timeout:g} s; see {log_path}")


def _console_output(log_path: Path) -> str:
    """systemd-nspawn's output so far, without colour codes or blank lines."""
    try:
        text = log_path.read_text(errors="replace")
    except OSError:
        return "(no output)"
    return "\n".join(line for line in _ANSI_ESCAPE.sub("", text).splitlines() if line.strip())


def _children(pid: int) -> list[int]:
    """PIDs whose parent is `pid` (from /proc, without relying on CONFIG_PROC_CHILDREN)."""
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and _status_field(int(entry.name), "PPid") == str(pid):
            children.append(int(entry.name))
    return children


def _ns_pid(pid: int) -> int | None:
    """The PID of `pid` in its innermost PID namespace."""
    nspid = _status_field(pid, "NSpid")
    return int(nspid.split()[-1]) if nspid else None


def _status_field(pid: int, field: str) -> str:
    """One field of /proc/PID/status ('' when the process is gone)."""
    for line in _read_proc(pid, "status").splitlines():
        key, _, value = line.partition(":")
        if key == field:
            return value.strip()
    return ""


def _read_proc(pid: int, name: str) -> str:
    """/proc/PID/NAME, or '' if the process has gone meanwhile."""
    try:
        return (Path("/proc") / str(pid) / name).read_text()
    except OSError:
        return ""


def _kill(process: subprocess.Popen[bytes], pid1: int | None) -> None:
    """End a host by pid: SIGKILL its PID 1 (which ends its whole PID namespace), then nspawn."""
    if pid1 is None:
        # Not systemd yet, but the namespace's PID 1 may exist: killing only
        # nspawn would orphan it.
        pid1 = next((pid for pid in _children(process.pid) if _ns_pid(pid) == 1), None)
    # Check the parent first so a recycled pid is never hit.
    if pid1 is not None and _status_field(pid1, "PPid") == str(process.pid):
        with suppress(ProcessLookupError):
            os.kill(pid1, signal.SIGKILL)
    with suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)
        return
    process.kill()
    process.wait(timeout=10)


def _remove_host_directory(directory: Path) -> None:
    """Unmount a host's overlay root and delete its directory (only under ROOTS_DIR, only if unmounted)."""
    directory = directory.resolve()
    if directory.parent != ROOTS_DIR.resolve():
        raise TestbedError(f"refusing to remove {directory}: not a test-bed host directory")
    if directory / "root" in _mount_points():
        run_tool(["umount", str(directory / "root")], timeout=60)
    # nspawn mounts in its own namespace; any mount still visible here would
    # let rmtree delete through it into the shared image tree or elsewhere.
    mounts = [m for m in _mount_points() if m == directory or directory in m.parents]
    if mounts:
        raise TestbedError(f"refusing to remove {directory}: still mounted: {mounts}")
    shutil.rmtree(directory, ignore_errors=False)


def _mount_points() -> list[Path]:
    """Mount points of our mount namespace."""
    lines = Path("/proc/self/mountinfo").read_text().splitlines()
    # Field 5 is the mount point, with spaces etc. octal-escaped.
    return [Path(line.split()[4].encode().decode("unicode_escape")) for line in lines]
