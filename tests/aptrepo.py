"""A signed APT repository for booted test hosts: publish with the CLI, serve it, point a host at it.

Shared by the integration tests and `make demo` (demo/__main__.py), so both do
these steps the same way:

    data = publish(repo, deb)                                   # `microdeploy publish --json`
    with serve_repository(repo, host.netns.host_address, log) as served:   # `microdeploy repo serve`
        add_source(host, served)                                # keyring + the printed deb822 stanza
        apt(host, "update")
        apt(host, "install", name)
        health(host, port, "/health")                           # tests.hostcheck, from inside the host

Everything runs through the real CLI in a child process, as an operator or CI
would run it; the server is ended by its pid when the block ends, however it ends.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from microdeploy.process import Result
from microdeploy.repo import KEYRING_NAME
from microdeploy.testbed.host import Host
from tests.support import stop, wait_until

__all__ = [
    "CLI_TIMEOUT",
    "ServedRepo",
    "add_source",
    "apt",
    "installed_version",
    "microdeploy",
    "publish",
    "serve_repository",
    "stop_gpg_agent",
]

# aptly and gpg on a loaded 2-core machine; a build takes longer (callers pass their own).
CLI_TIMEOUT = 120.0
# How long a CLI child gets to clean up after Ctrl-C before the next, harder signal.
INTERRUPT_GRACE = 10.0
# apt-get installing a dh-virtualenv package (a whole venv) on a booted host.
APT_TIMEOUT = 300.0
# Where hosts keep the repository's source stanza.
SOURCES_PATH = "/etc/apt/sources.list.d/microdeploy.sources"

# What `microdeploy repo serve` prints once it listens (see cli.repo_serve).
_SERVING = re.compile(r"^Serving .* on (http://\S+/) \(Ctrl-C to stop\)$", re.MULTILINE)
_STANZA = re.compile(r"^Types: deb\n(?:[A-Za-z-]+: .*\n)*?Signed-By: (\S+)\n", re.MULTILINE)


def microdeploy(
    *args: str, timeout: float = CLI_TIMEOUT, cwd: Path | None = None, stderr: int | None = subprocess.PIPE,
) -> subprocess.CompletedProcess[str]:
    """Run the real CLI in a child process (as CI would) and capture its output (stderr too, unless told)."""
    argv = [sys.executable, "-m", "microdeploy", *args]
    with subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=stderr, text=True,
                          stdin=subprocess.DEVNULL) as process:
        try:
            out, err = process.communicate(timeout=timeout)
        except KeyboardInterrupt:
            # subprocess.run would SIGKILL the child after 0.25 s, leaving e.g. a build's
            # temporary tree behind. Let it clean up after its own Ctrl-C first (bounded).
            _end(process)
            raise
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(INTERRUPT_GRACE)
            raise
    return subprocess.CompletedProcess(argv, process.returncode, out, err)


def _end(process: subprocess.Popen[str]) -> None:
    """End a CLI child we started, by its pid: Ctrl-C (if the terminal's did not reach it), bounded, then kill."""
    # A terminal's Ctrl-C reached the child too: it usually exits within a moment.
    for send, grace in ((None, 2.0), (signal.SIGINT, INTERRUPT_GRACE), (signal.SIGKILL, INTERRUPT_GRACE)):
        if send is not None and process.poll() is None:
            process.send_signal(send)
        try:
            process.wait(grace)
            return
        except subprocess.TimeoutExpired:
            continue


def publish(repo: Path, *debs: Path, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """`microdeploy publish --json` into `repo` (which must succeed); return the decoded result."""
    result = microdeploy("publish", *map(str, debs), "--repo", str(repo), "--json", *extra)
    if result.returncode != 0:
        raise AssertionError(f"microdeploy publish exited {result.returncode}:\n{result.stderr}")
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def publish_stopped_while_staging(repo: Path, generation: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`microdeploy publish ARGS --repo REPO` sent SIGTERM while aptly works on `generation`: its incoming/ directory
    exists from staging until aptly has published (a publish that ends first is not signalled)."""
    argv = [sys.executable, "-m", "microdeploy", "publish", *args, "--repo", str(repo)]
    child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    try:
        wait_until(lambda: (repo / "state" / "generations" / generation / "incoming").exists()
                   or child.poll() is not None, "the publish staging its packages", interval=0.005)
        child.send_signal(signal.SIGTERM)  # by its pid: the child we started
        out, err = child.communicate(timeout=CLI_TIMEOUT)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(30)
    return subprocess.CompletedProcess(argv, child.returncode, out, err)


def stop_gpg_agent(gnupghome: Path) -> None:
    """End the gpg-agent a GnuPG home started (gpgconf ends it by its socket, not by name)."""
    if gnupghome.is_dir():
        subprocess.run(["gpgconf", "--kill", "gpg-agent"], env={**os.environ, "GNUPGHOME": str(gnupghome)},
                       check=False, capture_output=True, timeout=30)


@dataclass(frozen=True)
class ServedRepo:
    """A running `microdeploy repo serve`: its URL and the deb822 stanza it printed for hosts."""

    process: subprocess.Popen[bytes]
    url: str
    sources: str
    log: Path

    def stanza(self, suite: str) -> str:
        """The printed stanza for hosts of release `suite` (`repo serve` prints one per served suite)."""
        for match in _STANZA.finditer(self.sources):
            if f"\nSuites: {suite}\n" in match.group(0):
                return match.group(0)
        raise AssertionError(f"repo serve printed no stanza for {suite}:\n{self.sources}")

    @property
    def keyring_path(self) -> str:
        """Where the stanza's `Signed-By:` expects the repository keyring on a host."""
        match = _STANZA.search(self.sources)
        assert match is not None
        return match.group(1)


@contextmanager
def serve_repository(repo: Path, bind: str, log: Path, timeout: float = 60.0) -> Iterator[ServedRepo]:
    """`microdeploy repo serve REPO --bind BIND --port 0` for the block; stopped by its pid afterwards."""
    with log.open("wb") as output:
        # Port 0: the server takes a free port itself and prints it (no race with a port picked here).
        process = subprocess.Popen(
            [sys.executable, "-m", "microdeploy", "repo", "serve", str(repo), "--bind", bind, "--port", "0"],
            stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    try:
        yield _wait_until_serving(process, log, timeout)
    finally:
        stop(process)


def _wait_until_serving(process: subprocess.Popen[bytes], log: Path, timeout: float) -> ServedRepo:
    """Wait (bounded) for the server's URL and stanza in its output, then for the keyring over HTTP."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"microdeploy repo serve exited with {process.returncode}:\n{log.read_text()}")
        text = log.read_text()
        url, stanza = _SERVING.search(text), _STANZA.search(text)
        if url and stanza:
            served = ServedRepo(process, url.group(1), text[stanza.start():], log)
            try:
                with urllib.request.urlopen(served.url + KEYRING_NAME, timeout=2) as response:
                    if response.status == 200:
                        return served
            except OSError:
                pass
        time.sleep(0.1)
    raise AssertionError(f"microdeploy repo serve did not serve within {timeout:g} s:\n{log.read_text()}")


def add_source(host: Host, served: ServedRepo) -> None:
    """Make the served repository the host's only APT source: its keyring for Signed-By, the printed stanza
    for the host's own release (its codename from os-release)."""
    # The host reaches only us: drop whatever sources the image has.
    host.run(["sh", "-c", "rm -f /etc/apt/sources.list /etc/apt/sources.list.d/*"])
    keyring = served.keyring_path
    host.run(["install", "-d", "-m", "0755", os.path.dirname(keyring)])
    # As `repo serve` tells operators: fetch the binary keyring the stanza's Signed-By names.
    host.run(["curl", "-fsS", "--max-time", "30", "-o", keyring, served.url + KEYRING_NAME])
    host.run(["chmod", "0644", keyring])
    codename = host.run(["sh", "-c", ". /etc/os-release && echo $VERSION_CODENAME"]).stdout.strip()
    host.run(["tee", SOURCES_PATH], input=served.stanza(codename))


def apt(host: Host, *args: str, check: bool = True) -> Result:
    """apt-get in the host, non-interactive, bounded."""
    return host.run(["apt-get", "-q", "-y", *args], check=check, timeout=APT_TIMEOUT)


def installed_version(host: Host, name: str) -> str:
    """The version of package `name` that dpkg has installed on the host."""
    return host.run(["dpkg-query", "-W", "-f=${Version}", name]).stdout
