"""The only module that runs external programs.

Every command is an argv list (never a shell), logged with shlex.join together
with its working directory and return code. A missing tool is reported with
the Debian package that provides it.
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from microdeploy.errors import EXIT_FAILURE, MicrodeployError
from microdeploy.proctree import end_tree

log = logging.getLogger(__name__)

# Which Debian package provides each tool we call, for the "install it" hint.
APT_PACKAGE_OF = {
    "dpkg-buildpackage": "dpkg-dev",
    "dpkg-deb": "dpkg",
    "dpkg-scanpackages": "dpkg-dev",
    "dpkg-parsechangelog": "dpkg-dev",
    "dh": "debhelper",
    "dh_virtualenv": "dh-virtualenv",
    "dh_python3": "dh-python",
    "py2dsc": "python3-stdeb",
    "lintian": "lintian",
    "piuparts": "piuparts",
    "fakeroot": "fakeroot",
    "git": "git",
    "gpg": "gnupg",
    "aptly": "aptly",
    "reprepro": "reprepro",
    "puppet": "puppet-agent",
    "r10k": "r10k",
    "groovy": "groovy",
    "systemd-analyze": "systemd",
    "mmdebstrap": "mmdebstrap",
    "systemd-nspawn": "systemd-container",
    "python3": "python3",
    "sqv": "sqv",
    "dpkg": "dpkg",
    "gpgconf": "gpgconf",
    "gpgv": "gpgv",
    "nsenter": "util-linux",
    "unshare": "util-linux",
    "chroot": "coreutils",
    "ip": "iproute2",
    "ssh-keygen": "openssh-client",
    "tar": "tar",
    "mount": "mount",
    "umount": "mount",
}

TAIL_LINES = 25


@dataclass(frozen=True)
class Result:
    """What a finished command produced."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


class Runner(Protocol):
    """The signature of `run`, so callers can inject a fake in unit tests."""

    def __call__(
        self,
        argv: Sequence[str],
        *,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        check: bool = True,
        input: str | None = None,
        timeout: float | None = None,
        inherit_env: bool = True,
    ) -> Result: ...


def in_environment(runner: Runner, environ: Mapping[str, str]) -> Runner:
    """`runner` with `environ` in place of this process's environment under each command's own `env`."""

    def run_in(argv: Sequence[str], *, cwd: Path | None = None, env: Mapping[str, str] | None = None,
               check: bool = True, input: str | None = None, timeout: float | None = None,
               inherit_env: bool = True) -> Result:
        return runner(argv, cwd=cwd, env={**(environ if inherit_env else {}), **(env or {})}, check=check,
                      input=input, timeout=timeout, inherit_env=False)

    return run_in


def output_tail(text: str, lines: int = TAIL_LINES) -> str:
    """The last `lines` non-empty lines of a tool's output, for error messages."""
    kept = [line for line in text.splitlines() if line.strip()]
    return "\n".join(kept[-lines:])


def require_tools(*tools: str) -> None:
    """Fail with an install hint if any of `tools` is not on PATH."""
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        packages = sorted({APT_PACKAGE_OF.get(tool, tool) for tool in missing})
        raise MicrodeployError(
            f"required tool not found: {', '.join(missing)}",
            hint=f"Install it: sudo apt-get install {' '.join(packages)} (or run `make setup`)",
            exit_code=EXIT_FAILURE,
        )


def run(
    argv: Sequence[str],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    check: bool = True,
    input: str | None = None,
    timeout: float | None = None,
    inherit_env: bool = True,
) -> Result:
    """Run `argv`, capture its output, and raise MicrodeployError if it fails and `check`.

    `env` is added to this process's environment, or replaces it when not `inherit_env`.
    """
    argv = tuple(str(arg) for arg in argv)
    require_tools(argv[0])
    full_env = None if env is None else {**os.environ, **env} if inherit_env else dict(env)
    log.debug("$ %s  (cwd=%s)", shlex.join(argv), cwd or Path.cwd())
    # Not subprocess.run: stopped (Ctrl-C, SIGTERM, a timeout), it kills the tool alone, and the programs the
    # tool started run on, writing into files that the caller is about to remove.
    with subprocess.Popen(
        argv,
        cwd=cwd,
        env=full_env,
        # Never inherit our stdin: a prompt would hang the command.
        stdin=subprocess.DEVNULL if input is None else subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as popen:
        try:
            stdout, stderr = popen.communicate(input, timeout=timeout)
        except BaseException as exc:
            end_tree(popen.pid)
            popen.wait()
            if isinstance(exc, subprocess.TimeoutExpired):
                raise MicrodeployError(
                    f"`{shlex.join(argv)}` did not finish within {timeout} s",
                    hint="Look for a hung process or raise the timeout",
                ) from exc
            raise
    result = Result(argv, popen.returncode, stdout, stderr)
    log.debug("exit %d: %s", result.returncode, argv[0])
    if check and result.returncode != 0:
        raise command_failed(result)
    return result


class Spawned:
    """A program started in the background by `spawn`, in its own session."""

    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        self._popen = popen

    @property
    def pid(self) -> int:
        """Its process id."""
        return self._popen.pid

    @property
    def returncode(self) -> int | None:
        """Its exit status, once it has exited."""
        return self._popen.returncode

    def poll(self) -> int | None:
        """Its exit status, or None while it runs."""
        return self._popen.poll()

    def wait(self, timeout: float) -> bool:
        """Wait (bounded) for it to exit; whether it did."""
        try:
            self._popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    def kill(self) -> None:
        """SIGKILL it (by its pid, which we still own while it is unreaped)."""
        self._popen.kill()


def spawn(argv: Sequence[str], *, output: Path) -> Spawned:
    """Start `argv` in the background in a new session, its stdout and stderr going to `output`.

    The new session (setsid) keeps it from being ended with our terminal or
    process group: on Ctrl-C we tear it down ourselves, in order.
    """
    argv = tuple(str(arg) for arg in argv)
    require_tools(argv[0])
    log.debug("$ %s &  (output to %s)", shlex.join(argv), output)
    with output.open("wb") as handle:
        popen = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
        )
    return Spawned(popen)


# sh's arguments: run them in the background, on no terminal, and print the pid.
DETACHED = '"$@" </dev/null >/dev/null 2>&1 & echo "$!"'


def detach(argv: Sequence[str], *, env: Mapping[str, str] | None = None) -> int:
    """Start `argv` as a daemon is started, in `/`, and return its pid; raise OSError if it could not start.

    A shell that exits at once starts it, so that init, not this process,
    reaps it (nothing here waits for it), in a session of its own, so that
    a terminal's Ctrl-C does not stop it.
    """
    argv = tuple(str(arg) for arg in argv)
    log.debug("$ %s &  (detached)", shlex.join(argv))
    try:
        started = subprocess.run(["/bin/sh", "-c", DETACHED, "sh", *argv], cwd="/", env=env,
                                 stdin=subprocess.DEVNULL, capture_output=True, text=True, start_new_session=True,
                                 check=True)
        return int(started.stdout)
    except (subprocess.CalledProcessError, ValueError) as exc:
        raise OSError(f"cannot start {argv[0]} in the background: {exc}") from exc


def command_failed(result: Result, what: str | None = None, hint: str | None = None) -> MicrodeployError:
    """An error for a failed command that quotes the relevant end of its output."""
    tail = output_tail(result.stderr) or output_tail(result.stdout)
    summary = what or f"`{shlex.join(result.argv)}` failed with exit status {result.returncode}"
    message = f"{summary}\n{_indent(tail)}" if tail else summary
    return MicrodeployError(message, hint=hint, exit_code=EXIT_FAILURE)


def _indent(text: str) -> str:
    return "\n".join(f"    {line}" for line in text.splitlines())


@dataclass(frozen=True)
class Held:
    """A process started by `hold`: it lives until `close`, or until this process ends."""

    popen: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        """Its process id."""
        return self.popen.pid

    def close(self, timeout: float = 30.0) -> None:
        """End it: close the pipe it waits on, then wait (killing it by pid if it lingers)."""
        if self.popen.stdin is not None:
            self.popen.stdin.close()
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()


def hold(argv: Sequence[str]) -> Held:
    """Start `argv` (a program that reads its stdin until it closes, such as cat) with a pipe as its stdin.

    It outlives no one: when this process ends, however, the pipe closes and
    so does it. Its output is discarded.
    """
    argv = tuple(str(arg) for arg in argv)
    require_tools(argv[0])
    log.debug("$ %s &  (held)", shlex.join(argv))
    popen = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return Held(popen)
