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
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from microdeploy.errors import MicrodeployError
from microdeploy.process import Result, Spawned, output_tail, require_tools, run, spawn
from microdeploy.proctree import children

from .image import lower_layer
from .network import Netns
from .procs import (
    ROOTS_DIR,
    kill_host,
    mount_root,
    ns_pid,
    read_proc,
    remove_host_directory,
    write_owner,
)

__all__ = [
    "BOOT_TIMEOUT",
    "RUNNING_STATES",
    "Host",
    "boot",
    "booted_host",
    "regenerate_ssh_host_keys",
]

log = logging.getLogger(__name__)

# `systemctl is-system-running` states of a booted host; "degraded" only means
# some unit failed, which the tests that care inspect themselves.
RUNNING_STATES = frozenset({"running", "degraded"})

# Boot-to-running takes a few seconds; allow for a loaded 2-core machine.
BOOT_TIMEOUT = 90.0
POWEROFF_TIMEOUT = 60.0
_REFUSED_POWEROFF_WAIT = 5.0

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
    process: Spawned
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
    ) -> Result:
        """Run `argv` inside the host (all its namespaces, its root) and capture the output."""
        if not self.is_alive():
            # Its PID 1's number may already belong to another process.
            raise MicrodeployError(f"host {self.name} is not running; cannot run {argv[0]} in it")
        # -p: in the host's PID namespace, so systemctl and friends see its
        # systemd as PID 1; -r/-w: its root and working directory.
        nsenter = ["nsenter", "-t", str(self.pid1), "-m", "-u", "-i", "-n", "-p", "-r", "-w"]
        # On timeout only nsenter is killed; a command left behind inside dies
        # with the host at poweroff.
        return run(
            [*nsenter, "--", *argv],
            check=check,
            input=input,
            timeout=timeout,
            env={**_HOST_ENV, **(env or {})},
            inherit_env=False,
        )

    def wait_until_running(self, timeout: float = BOOT_TIMEOUT) -> str:
        """Wait (bounded) until systemd reports running or degraded; return that state."""
        deadline = time.monotonic() + timeout
        state = "unknown"
        while time.monotonic() < deadline:
            if not self.is_alive():
                raise self._failure("systemd-nspawn exited while booting")
            # Before the host's D-Bus is up this prints "offline" or fails; poll on.
            try:
                state = self.run(["systemctl", "is-system-running"], check=False, timeout=15).stdout
            except MicrodeployError as exc:
                # A PID 1 busy booting on a loaded machine may not answer in
                # time: that is "not yet", bounded by the deadline like the rest.
                state = f"no answer: {exc.message}"
                continue
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

    def journal(self, unit: str | None = None, lines: int = 100, invocation: str | None = None) -> str:
        """The tail of this boot's journal: all of it, a unit's, or one run's of a unit (its `invocation` ID)."""
        argv = ["journalctl", "--boot", "--no-pager", "--lines", str(lines)]
        argv += [f"_SYSTEMD_INVOCATION_ID={invocation}"] if invocation else ["--unit", unit] if unit else []
        return self.run(argv, check=False, timeout=30).stdout

    def poweroff(self, timeout: float = POWEROFF_TIMEOUT) -> None:
        """Shut the host down (bounded; killed by pid if it hangs) and remove its root."""
        if self.is_alive():
            refused = True
            with suppress(MicrodeployError):
                # Forced twice, with no orderly stop of its units (the host is thrown away): its PID 1
                # powers off at once, and every process of its PID namespace dies with it.
                poweroff = ["systemctl", "poweroff", "--force", "--force"]
                refused = self.run(poweroff, check=False, timeout=30).returncode != 0
            if refused:
                # The connection went down with the host's systemd, or it refused:
                # give it a moment, not the full wait.
                timeout = min(timeout, _REFUSED_POWEROFF_WAIT)
            if not self.process.wait(timeout=timeout):
                log.warning("host %s did not power off in %g s; killing it", self.name, timeout)
                kill_host(self.process, self.pid1)
        remove_host_directory(self.directory)
        log.info("host %s powered off and removed", self.name)

    def _path_in_root(self, dest: PurePosixPath | str) -> Path:
        """Map an absolute path inside the host to our side, refusing shadowed or escaping ones."""
        inside = PurePosixPath(os.path.normpath(str(dest)))
        if not inside.is_absolute() or inside == PurePosixPath("/"):
            raise MicrodeployError(f"{dest!r} is not an absolute file path inside the host")
        for shadowed in _SHADOWED:
            if inside == shadowed or shadowed in inside.parents:
                raise MicrodeployError(
                    f"cannot copy into {inside}: {shadowed} is mounted over inside the booted host",
                    hint="Copy into /root or /var/tmp instead",
                )
        target = self.root / inside.relative_to("/")
        # An absolute symlink in the image (e.g. /var/run -> /run) would point
        # out of the root on our side: never write through one.
        if not target.resolve().is_relative_to(self.root.resolve()):
            raise MicrodeployError(f"{inside} leaves the host's root through a symlink")
        return target

    def _failure(self, what: str) -> MicrodeployError:
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
            except MicrodeployError as exc:
                journal = f"(journal unavailable: {exc})"
        return MicrodeployError(
            f"host {self.name}: {what}\n"
            f"--- systemd-nspawn output (tail) ---\n{output_tail(output, 40)}\n"
            f"--- journal (tail) ---\n{output_tail(journal, 80)}"
        )


def boot(
    image: Path,
    *,
    name: str | None = None,
    netns: Netns | None = None,
    regenerate_host_keys: bool = False,
    wait: bool = True,
    timeout: float = BOOT_TIMEOUT,
    booted: Callable[[Host], None] | None = None,
    masked: Sequence[str] = (),
) -> Host:
    """Boot a fresh copy of `image`; wait until it is running unless `wait` is False.

    `booted(host)` is called as soon as the host exists, before any wait: a
    caller that registers its tear-down there loses no host to an interrupt.
    The units of `masked` are masked for this boot (systemd.mask=, the host's
    root left as it is).
    """
    require_tools("systemd-nspawn", "nsenter", "tar", "mount", "umount")
    _require_device_nodes()
    name = name or f"mdtb-{secrets.token_hex(4)}"
    if not _HOSTNAME.fullmatch(name):
        raise MicrodeployError(f"invalid host name {name!r}", hint="Use lower-case letters, digits and dashes")
    ROOTS_DIR.mkdir(parents=True, exist_ok=True)
    directory = Path(tempfile.mkdtemp(prefix=f"{name}.", dir=ROOTS_DIR))
    started = time.monotonic()
    try:
        write_owner(directory, None)
        with lower_layer(image) as tree:
            mount_root(tree, directory)
        _set_hostname(directory / "root", name)
        if regenerate_host_keys:
            regenerate_ssh_host_keys(directory / "root")
        process = _start_nspawn(directory, name, netns, masked)
        write_owner(directory, process.pid)
    except BaseException:
        remove_host_directory(directory)
        raise
    try:
        pid1 = _wait_for_pid1(process, directory / "nspawn.log", timeout)
    except BaseException:
        kill_host(process, None)
        remove_host_directory(directory)
        raise
    host = Host(name=name, directory=directory, process=process, pid1=pid1, netns=netns)
    try:
        if booted is not None:
            # From here on the caller owns the host, even if we are interrupted before returning it.
            booted(host)
            booted = None
        if wait:
            host.wait_until_running(timeout)
        log.info(
            "host %s booted in %.1f s (pid1 %d, root %s)",
            name, time.monotonic() - started, pid1, host.root,
        )  # fmt: skip
    except BaseException:
        if booted is not None or wait:
            host.poweroff(timeout=20)
        raise
    return host


def _require_device_nodes() -> None:
    """nspawn copies /dev/null and friends into the host: fail with the fix if one is not a device.

    A `> /dev/null` after something removed the node leaves a regular file,
    and nspawn then only says "/dev/null is not a char or block device".
    """
    for node, (major, minor) in _DEVICE_NODES.items():
        if not Path(node).is_char_device():
            raise MicrodeployError(
                f"{node} on this machine is not a character device, so no host can boot",
                hint=f"Restore it as root: rm -f {node} && mknod -m 666 {node} c {major} {minor}",
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
    run(["ssh-keygen", "-A", "-f", str(root)])


def _set_hostname(root: Path, name: str) -> None:
    """Make the host call itself `name`: mmdebstrap copied the build machine's /etc/hostname."""
    # systemd sets the hostname from /etc/hostname, overriding nspawn's -M.
    (root / "etc" / "hostname").write_text(f"{name}\n")
    # mmdebstrap writes no /etc/hosts; give the host Debian's usual one, with
    # its own name on 127.0.1.1, so `hostname --fqdn`, sudo and friends resolve it.
    (root / "etc" / "hosts").write_text(
        f"127.0.0.1\tlocalhost\n127.0.1.1\t{name}\n::1\tlocalhost ip6-localhost ip6-loopback\n"
    )


def _start_nspawn(directory: Path, name: str, netns: Netns | None, masked: Sequence[str]) -> Spawned:
    """Start systemd-nspawn booting ROOT in the background; its output goes to nspawn.log."""
    network = [f"--network-namespace-path={netns.path}"] if netns else ["--private-network"]
    argv = [
        "systemd-nspawn", "-q",
        # No machined/D-Bus on this machine: do not register, do not make a scope.
        "--register=no", "--keep-unit",
        # Leave our own /var/log/journal alone.
        "--link-journal=no",
        # nspawn bind-mounts /etc/localtime by default, and installing tzdata
        # in the host then fails to replace it.
        "--timezone=off",
        *network,
        "-D", str(directory / "root"), "-M", name, "-b",
        # The arguments of the host's systemd are its kernel command line.
        *(f"systemd.mask={unit}" for unit in masked),
    ]  # fmt: skip
    # spawn's new session is the setsid(1) of TESTING.md: the host must not be
    # torn down with our terminal or process group (Ctrl-C goes to us, and we
    # power the host off cleanly).
    return spawn(argv, output=directory / "nspawn.log")


def _wait_for_pid1(process: Spawned, log_path: Path, timeout: float) -> int:
    """Find the host's PID 1: the child of systemd-nspawn that is PID 1 in its namespace and runs systemd."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = _console_output(log_path)
            raise MicrodeployError(
                f"systemd-nspawn exited with status {process.returncode} before booting\n"
                f"--- systemd-nspawn output (tail) ---\n{output_tail(output, 40)}"
            )
        for pid in children(process.pid):
            # Before the exec of systemd the child is still nspawn's code, with
            # the mounts not yet final: only then is it safe to nsenter.
            if ns_pid(pid) == 1 and read_proc(pid, "comm").strip() == "systemd":
                return pid
        time.sleep(0.05)
    raise MicrodeployError(f"systemd did not start as PID 1 within {timeout:g} s; see {log_path}")


def _console_output(log_path: Path) -> str:
    """systemd-nspawn's output so far, without colour codes or blank lines."""
    try:
        text = log_path.read_text(errors="replace")
    except OSError:
        return "(no output)"
    return "\n".join(line for line in _ANSI_ESCAPE.sub("", text).splitlines() if line.strip())
