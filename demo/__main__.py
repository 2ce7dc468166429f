"""Run the demo: scaffold a service, install it, and show its health answer."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from tests.support import free_port, make_venv, stop, wait_for_json

REPO = Path(__file__).resolve().parents[1]
MICRODEPLOY = REPO / ".venv/bin/microdeploy"


def step(message: str) -> None:
    """Print a progress line."""
    print(f"==> {message}", flush=True)


def main() -> int:
    """The demo, as far as microdeploy goes today."""
    with tempfile.TemporaryDirectory(prefix="microdeploy-demo.") as tmp:
        work = Path(tmp)
        step("microdeploy new orders-api")
        subprocess.run([str(MICRODEPLOY), "new", "orders-api", "--no-input"], cwd=work, check=True)
        step("pip install ./orders-api[test] into a new virtualenv")
        bin_dir = make_venv(work / "venv")
        subprocess.run([str(bin_dir / "pip"), "install", "-q", "./orders-api[test]"], cwd=work, check=True)
        step("the service's own tests")
        subprocess.run([str(bin_dir / "pytest"), "-q", "-p", "no:cacheprovider"], cwd=work / "orders-api", check=True)
        port = free_port()
        step(f"gunicorn on 127.0.0.1:{port}")
        server = subprocess.Popen(
            [str(bin_dir / "gunicorn"), "--bind", f"127.0.0.1:{port}", "orders_api.application:create_app()"],
            cwd=work, env={"ORDERS_API_LOGGING__DIR": tmp, "PATH": "/usr/bin:/bin"},
        )
        try:
            status, body = wait_for_json(f"http://127.0.0.1:{port}/health", server)
        finally:
            stop(server)
        step(f"GET /health -> {status} {body}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
