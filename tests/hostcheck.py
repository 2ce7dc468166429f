"""Checks run inside a booted test host (bounded polling, no sleeps without a limit)."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence

from microdeploy.testbed.host import Host


def wait_for(host: Host, argv: Sequence[str], timeout: float = 60.0) -> str:
    """Run `argv` in the host until it succeeds; return its output or fail after `timeout`."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        result = host.run(argv, check=False)
        if result.returncode == 0:
            return result.stdout
        last = result.stdout + result.stderr
        time.sleep(0.5)
    raise AssertionError(f"{' '.join(argv)} did not succeed within {timeout} s: {last}")


def health(host: Host, port: int, path: str, timeout: float = 60.0) -> dict[str, object]:
    """GET the health path inside the host until it answers 200; return the JSON body."""
    body = wait_for(host, ["curl", "-fsS", "--max-time", "5", f"http://127.0.0.1:{port}{path}"], timeout)
    data: dict[str, object] = json.loads(body)
    return data


def main_pid(host: Host, unit: str) -> int:
    """The MainPID systemd reports for `unit` (0 when it is not running)."""
    return int(host.run(["systemctl", "show", "--property=MainPID", "--value", unit]).stdout.strip())


def proc_status(host: Host, pid: int) -> dict[str, str]:
    """/proc/PID/status of a process in the host, as a dict."""
    text = host.run(["cat", f"/proc/{pid}/status"]).stdout
    return {key: value.strip() for key, _, value in (line.partition(":") for line in text.splitlines())}


def install_deb(host: Host, deb_path: str) -> None:
    """apt-get install a .deb that was copied into the host."""
    result = host.run(["apt-get", "install", "-y", "--no-install-recommends", deb_path], check=False, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
