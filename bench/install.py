"""Install each package on a booted Debian 12 host and time it until the service answers.

References A and B ship no unit: after `dpkg -i`, the benchmark starts the
same gunicorn command line with `systemd-run`, as their users would have to.
microdeploy's package starts its own unit from postinst. The clock runs from
the start of `dpkg -i` to the first 200 of GET /health inside the host.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from microdeploy.testbed.host import Host

PACKAGE = "hello-api"
PORT = 8000
# Polls GET /health from inside the host; prints the body of the first 200.
POLL = f"""
import sys, time, urllib.request
deadline = time.monotonic() + 120
while time.monotonic() < deadline:
    try:
        with urllib.request.urlopen("http://127.0.0.1:{PORT}/health", timeout=1) as answer:
            print(answer.read().decode()); sys.exit(0)
    except OSError:
        time.sleep(0.01)
sys.exit("no answer within 120 s")
"""
REFERENCE_START = [
    "systemd-run", "--unit", "hello-reference", "--quiet",
    f"/opt/venvs/{PACKAGE}/bin/gunicorn", "--bind", f"127.0.0.1:{PORT}", "--workers", "2", "hello_api.wsgi:app",
]


@dataclass(frozen=True)
class Install:
    """How long one install took, and until the service answered."""

    tool: str
    dpkg_seconds: float
    answer_seconds: float


def install_and_answer(host: Host, tool: str, deb: Path) -> Install:
    """`dpkg -i` the package, start the reference services by hand, wait for /health, then purge."""
    target = f"/root/{tool}.deb"
    host.copy_in(deb, target)
    # dpkg syncs what it unpacks; without this, it would also wait for the
    # writeback of whatever the builds (or the previous install) left dirty.
    os.sync()
    started = time.monotonic()
    host.run(["dpkg", "-i", target])
    dpkg_seconds = time.monotonic() - started
    if not tool.startswith("microdeploy"):
        host.run(REFERENCE_START)
    answer = host.run(["python3", "-c", POLL], check=False, timeout=150)
    answer_seconds = time.monotonic() - started
    if answer.returncode != 0 or '"ok"' not in answer.stdout:
        raise RuntimeError(f"{tool}: the installed service did not answer: {answer.stdout}{answer.stderr}")
    if not tool.startswith("microdeploy"):
        host.run(["systemctl", "stop", "hello-reference"], check=False)
    host.run(["dpkg", "--purge", PACKAGE])
    host.run(["rm", "-f", target])
    return Install(tool, dpkg_seconds, answer_seconds)
