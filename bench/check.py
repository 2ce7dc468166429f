"""How long `microdeploy check` takes on the scaffold's package, with the host images already cached.

The package is what a new user gets: `microdeploy new orders-api` built with
`microdeploy build`. A first, uncounted run builds (or finds) the cached
images; each counted run is the command as a user types it, start to exit.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

MICRODEPLOY = [sys.executable, "-m", "microdeploy"]


def scaffold_package(work: Path) -> Path:
    """`microdeploy new orders-api` built into a .deb under `work`; its path."""
    project = work / "check-service" / "orders-api"
    subprocess.run(["rm", "-rf", str(project.parent)], check=True)
    project.parent.mkdir(parents=True)
    subprocess.run([*MICRODEPLOY, "new", "orders-api", "--dir", str(project), "--no-input"], check=True,
                   stdout=subprocess.DEVNULL)
    subprocess.run([*MICRODEPLOY, "build", str(project), "--out", str(project.parent / "dist")], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return next((project.parent / "dist").glob("orders-api_*.deb"))


def timed_check(deb: Path) -> float:
    """Seconds of one `microdeploy check DEB`, which must pass."""
    started = time.monotonic()
    done = subprocess.run([*MICRODEPLOY, "check", str(deb), "--json"], capture_output=True, text=True)
    seconds = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"microdeploy check failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    report = json.loads(done.stdout)
    print(f"check {deb.name}: " + ", ".join(f"{c['name']} {c['seconds']:.1f} s" for c in report["checks"]),
          flush=True)
    return seconds


def check_rounds(work: Path, runs: int) -> list[float]:
    """`runs` timed checks of the scaffold's package, after one uncounted run that warms the image cache."""
    deb = scaffold_package(work)
    timed_check(deb)
    times = []
    for round_number in range(1, runs + 1):
        times.append(timed_check(deb))
        print(f"check round {round_number}: {times[-1]:.1f} s", flush=True)
    return times
