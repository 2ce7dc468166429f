"""Small helpers shared by the tests (no fixtures here: see conftest.py)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

SYSTEM_PYTHON = "/usr/bin/python3"

# Python lines with which a test service of a Type=notify unit tells systemd
# it is ready (sd_notify(3), without libsystemd): `systemctl start` and
# `restart` return only after them, so what the service did before them
# (bind, write a log line) is done when a test looks. Needs `os` and `socket`.
NOTIFY_READY = """\
address = os.environ["NOTIFY_SOCKET"]
with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
    notify.connect("\\0" + address[1:] if address.startswith("@") else address)
    notify.sendall(b"READY=1")
"""

# The head of the orders-api project that the Hiera tests extend with their own settings.
ORDERS_API_PYPROJECT = """\
[project]
name = "orders-api"
version = "1.4.0"

[tool.microdeploy]
port = 8001
"""


# A sitecustomize that stops the child in its import of MODULE (microdeploy.cli: what pulls in click, jinja2, ...,
# the start-up window; or a module a command imports when it runs), after saying so on stdout: a signal sent once
# that line is read lands there, every time. SIGINT gets Python's own handler, as at a terminal (a shell's
# background job ignores it).
BLOCKING_SITECUSTOMIZE = """\
import os
import signal
import sys
import time


class BlockTheImport:
    def find_spec(self, name, path=None, target=None):
        if name == {module!r}:
            sys.meta_path.remove(self)
            os.write(1, b"importing " + name.encode() + b"\\n")
            time.sleep(600)
        return None


signal.signal(signal.SIGINT, signal.default_int_handler)
sys.meta_path.insert(0, BlockTheImport())
"""


def signalled_while_importing(argv: Sequence[str], signum: signal.Signals, hook_dir: Path,
                              pythonpath: Sequence[Path] = (), module: str = "microdeploy.cli",
                              ) -> subprocess.CompletedProcess[str]:
    """Run `argv` (a microdeploy), send it `signum` while it imports `module` (by default during its start-up),
    and return how it ended.

    The blocking sitecustomize goes into `hook_dir`, put first on PYTHONPATH before `pythonpath`."""
    (hook_dir / "sitecustomize.py").write_text(BLOCKING_SITECUSTOMIZE.format(module=module))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(map(str, [hook_dir, *pythonpath]))}
    with subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, env=env, cwd=hook_dir) as child:
        assert child.stdout is not None
        try:
            assert child.stdout.readline() == f"importing {module}\n"
            child.send_signal(signum)  # by its pid: the child we started
            out, err = child.communicate(timeout=60)
        finally:
            if child.poll() is None:
                child.kill()
    return subprocess.CompletedProcess(list(argv), child.returncode, out, err)


def service_project(path: Path, pyproject: str) -> Path:
    """A service project directory at `path` whose pyproject.toml is `pyproject`."""
    path.mkdir()
    (path / "pyproject.toml").write_text(pyproject)
    return path


def file_bytes(root: Path) -> dict[str, bytes]:
    """Every file under `root` with its bytes, to prove what was (not) written."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_venv(path: Path) -> Path:
    """A fresh virtualenv of the system Python; returns its bin directory."""
    subprocess.run([SYSTEM_PYTHON, "-m", "venv", str(path)], check=True)
    return path / "bin"


def get_json(url: str, timeout: float = 2.0) -> tuple[int, dict[str, object]]:
    """GET a URL on loopback and decode its JSON body."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.status, json.loads(response.read())


def wait_for_json(url: str, process: subprocess.Popen[bytes], timeout: float = 60.0) -> tuple[int, dict[str, object]]:
    """Poll `url` until it answers or `process` dies or `timeout` passes."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited with {process.returncode} before answering {url}")
        try:
            return get_json(url)
        except OSError as exc:
            last_error = exc
            time.sleep(0.2)
    raise AssertionError(f"{url} did not answer within {timeout} s: {last_error}")


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 60.0, interval: float = 0.05) -> None:
    """Poll `condition` on this machine until it holds; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not within {timeout:g} s")
        time.sleep(interval)


def stop(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """Terminate a process we started, by its pid, with a bounded wait."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)


def make_deb(tmp_path: Path, version: str = "1.0-1", depends: str = "python3.11", name: str = "orders-api",
             files: dict[str, str] | None = None, filename: str | None = None) -> Path:
    """A tiny real .deb built with dpkg-deb (named NAME_VERSION_all.deb unless `filename` says otherwise)."""
    tree = tmp_path / f"tree-{name}-{version}"
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "DEBIAN" / "control").write_text(
        f"Package: {name}\nVersion: {version}\nArchitecture: all\nMaintainer: A <a@example.org>\n"
        f"Depends: {depends}\nDescription: test\n test package\n"
    )
    for path, text in (files or {}).items():
        (tree / path).parent.mkdir(parents=True, exist_ok=True)
        (tree / path).write_text(text)
    deb = tmp_path / (filename or f"{name}_{version}_all.deb")
    subprocess.run(["dpkg-deb", "--root-owner-group", "--build", str(tree), str(deb)], check=True, capture_output=True)
    return deb
