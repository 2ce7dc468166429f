"""The project's test bed: real Debian 12 hosts booted with systemd in systemd-nspawn.

Layout (see /work/shared/TESTING.md for the facts this is built on):

- ``image``    -- cached mmdebstrap tarballs under /var/cache/microdeploy-tests/
  (target-host images keyed by their package list, the piuparts base)
- ``network``  -- per-host network namespaces with a veth pair (10.231.N.0/24)
- ``host``     -- boot a fresh overlay copy of an image, run commands in it, power it off
- ``fixtures`` -- pytest fixtures over the above (``host_image``, ``boot_host``, ...)

In a test::

    def test_installs(boot_host, tmp_path):
        host = boot_host()                                  # running, removed at teardown
        host.copy_in(deb, "/root/pkg.deb")                  # not /tmp: a tmpfs inside
        host.run(["apt-get", "install", "-y", "/root/pkg.deb"])
        assert host.run(["systemctl", "is-active", "pkg"]).stdout == "active\n"

Hosts are offline: they carry no APT sources, and a namespaced host reaches
only its loopback and our 10.231.N.1 addresses (serve a test repository there).

This module holds what the others share: the error type, the lock and the one
subprocess helper.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import shlex
import shutil
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

__all__ = ["CACHE_DIR", "TestbedError", "file_lock", "require_tools", "run_tool", "tail"]

log = logging.getLogger(__name__)

# Outside the repository on purpose: images are large, shared by every checkout
# and every pytest session on the machine, and must survive `git clean`.
CACHE_DIR = Path("/var/cache/microdeploy-tests")

# Which Debian package provides each tool we call, for the error hint.
_TOOL_PACKAGES: Mapping[str, str] = {
    "mmdebstrap": "mmdebstrap",
    "systemd-nspawn": "systemd-container",
    "nsenter": "util-linux",
    "ip": "iproute2",
    "ssh-keygen": "openssh-client",
    "tar": "tar",
    "mount": "mount",
    "umount": "mount",
    "piuparts": "piuparts",
}


class TestbedError(RuntimeError):
    """A test-bed operation failed; the message says what and how to fix it."""

    # Not a test class, whatever its name says.
    __test__ = False


def require_tools(*tools: str) -> None:
    """Fail (never skip) when a tool the test bed needs is not installed."""
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        packages = sorted({_TOOL_PACKAGES.get(tool, tool) for tool in missing})
        raise TestbedError(
            f"missing tool(s): {', '.join(missing)}. "
            f"Install them: `apt-get install {' '.join(packages)}` (or run `make setup`)."
        )


def run_tool(
    argv: Sequence[str],
    *,
    check: bool = True,
    input: str | None = None,
    timeout: float = 120.0,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run one external command (argv list, bounded) and return its captured output."""
    log.debug("run: %s", shlex.join(argv))
    require_tools(argv[0])
    try:
        result = subprocess.run(
            list(argv),
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=dict(env) if env is not None else None,
            # Never inherit the test runner's stdin: a prompt would hang the suite.
            stdin=None if input is not None else subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        raise TestbedError(f"`{shlex.join(argv)}` did not finish within {timeout:g} s") from exc
    if check and result.returncode != 0:
        raise TestbedError(
            f"`{shlex.join(argv)}` failed with exit status {result.returncode}\n"
            f"--- stdout (tail) ---\n{tail(result.stdout)}\n"
            f"--- stderr (tail) ---\n{tail(result.stderr)}"
        )
    return result


def tail(text: str, lines: int = 40) -> str:
    """The last `lines` lines of `text`, for error messages."""
    return "\n".join(text.splitlines()[-lines:])


@contextmanager
def file_lock(path: Path, timeout: float = 1200.0) -> Iterator[None]:
    """Hold an exclusive flock on `path`, waiting at most `timeout` seconds for it."""
    # The default wait outlasts any sane image build another session may be doing.
    deadline = time.monotonic() + timeout
    with path.open("a") as handle:
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() > deadline:
                    raise TestbedError(
                        f"waited {timeout:g} s for the lock {path}. "
                        "Check for a hung test session or image build (`pgrep -a mmdebstrap`)."
                    ) from exc
                time.sleep(0.5)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
