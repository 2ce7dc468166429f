"""`make demo`: scaffold a service, build its .deb, publish it signed, and install it on a fresh Debian host.

Each microdeploy step is the real CLI in a child process (`new`, `config`,
`build`, `publish`, `repo serve`). The target host is a root of the release
built for (`--dist`; default this machine's own, Debian 12 here) booted with
systemd in systemd-nspawn (microdeploy.testbed), in its own network namespace:
it reaches only the repository served on our side of its link (10.231.N.1),
and it trusts that repository through `Signed-By:` and the exported keyring,
never `trusted=yes`. The steps that serve the repository to the host, add the
source and check health are the ones the integration tests use
(tests/aptrepo.py, tests/hostcheck.py).

Whatever happens -- success, a failed step, Ctrl-C, SIGTERM -- the host is
powered off, the server stopped (both by pid), the namespace deleted and the
work directory removed (unless --keep).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from subprocess import SubprocessError
from types import FrameType
from typing import Any

from microdeploy import dists
from microdeploy.errors import MicrodeployError
from microdeploy.testbed import CACHE_DIR, file_lock
from microdeploy.testbed.host import boot
from microdeploy.testbed.image import ensure_image
from microdeploy.testbed.network import create_netns, delete_netns, reap_stale_netns
from microdeploy.testbed.procs import reap_stale_hosts
from tests.aptrepo import (
    SOURCES_PATH,
    add_source,
    apt,
    installed_version,
    microdeploy,
    serve_repository,
    stop_gpg_agent,
)
from tests.hostcheck import health

NAME = "orders-api"
STEPS = 9
# A first build resolves and downloads the service's wheels; later ones reuse uv's cache.
BUILD_TIMEOUT = 900.0


class DemoError(RuntimeError):
    """A demo step failed; the message says which and why."""


class Progress:
    """Numbered progress lines with the time since the start, flushed at once (they go to a terminal or a log)."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.number = 0

    def elapsed(self) -> float:
        """Seconds since the demo started."""
        return time.monotonic() - self.started

    def step(self, message: str) -> None:
        """Announce the next step."""
        self.number += 1
        print(f"==> [{self.number}/{STEPS}] {message}   ({self.elapsed():.0f} s)", flush=True)

    @staticmethod
    def detail(text: str) -> None:
        """An indented result line (or block) under the current step."""
        for line in text.rstrip("\n").splitlines():
            print(f"    {line}", flush=True)


def cli(*args: str, cwd: Path | None = None, timeout: float = 120.0) -> str:
    """Run `microdeploy ARGS` (its progress lines go to our stderr); return its stdout or fail with its status."""
    result = microdeploy(*args, cwd=cwd, timeout=timeout, stderr=None)
    if result.returncode != 0:
        raise DemoError(f"`microdeploy {' '.join(args)}` exited with status {result.returncode}")
    return result.stdout


def on_exit(cleanup: ExitStack, message: str, func: Callable[..., Any], *args: Any) -> None:
    """Register `func(*args)` to run at the end (in reverse order), announced by `message`."""
    cleanup.callback(func, *args)
    cleanup.callback(Progress.detail, message)


def run(work: Path, progress: Progress, cleanup: ExitStack, dist: dists.Dist) -> None:
    """The demo's steps for release `dist`; everything they start is registered on `cleanup`."""
    debian = f"Debian {dist.number} ({dist.codename})"
    progress.step(f"{debian} host image for the test bed (cached; the first run builds it with mmdebstrap)")
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with file_lock(CACHE_DIR / "reap.lock"):
        # Leftovers of an earlier run that was killed outright (SIGKILL): owner gone, so ours to remove.
        reap_stale_hosts()
        reap_stale_netns()
    image = ensure_image(suite=dist.codename)
    progress.detail(str(image))

    progress.step(f"microdeploy new {NAME} --no-input")
    progress.detail(cli("new", NAME, "--no-input", cwd=work))
    project = work / NAME
    config = json.loads(cli("config", str(project)))
    port, health_path = int(config["port"]), str(config["health_path"])
    progress.detail(f"service {config['name']} {config['version']}: {config['app']} on port {port}, "
                    f"health check {health_path}")

    progress.step(f"microdeploy build --dist {dist.codename} (dh-virtualenv; another release than this machine's "
                  "in its clean root, made once with mmdebstrap)")
    built = json.loads(cli("build", "--dist", dist.codename, "--json", cwd=project, timeout=BUILD_TIMEOUT))
    deb = project / built["deb"]  # relative to the project when it is under it
    progress.detail(f"{deb.name}: {built['size'] / 1e6:.1f} MB in {built['seconds']:.0f} s")

    repo = work / "repo"
    progress.step(f"microdeploy publish {deb.name} --repo {repo}")
    # publish stops the gpg-agent it starts; this also covers a publish interrupted mid-way.
    on_exit(cleanup, "no gpg-agent left for the repository key", stop_gpg_agent, repo / "state" / "gnupg")
    published = json.loads(cli("publish", str(deb), "--repo", str(repo), "--json"))
    progress.detail(f"signed by a new Ed25519 key {published['key_fingerprint']} ({repo}/state/gnupg)")
    progress.detail(f"public keyring for hosts: {published['keyring']}")

    progress.step("network namespace for the host")
    ns = create_netns()
    on_exit(cleanup, f"network namespace {ns.name} deleted", delete_netns, ns)
    progress.detail(f"{ns.name}: {ns.host_address} (our side) <-> {ns.address} (the host)")

    progress.step(f"microdeploy repo serve {repo} --bind {ns.host_address} --port 0")
    served = cleanup.enter_context(serve_repository(repo, ns.host_address, work / "serve.log"))
    cleanup.callback(Progress.detail, f"repository server (pid {served.process.pid}) stopped")
    progress.detail(f"{served.url} (pid {served.process.pid})")

    progress.step(f"boot a fresh {debian} host with systemd (systemd-nspawn, in the namespace)")
    booted = time.monotonic()
    host = boot(image, netns=ns)
    on_exit(cleanup, f"host {host.name} (systemd-nspawn pid {host.process.pid}) powered off and removed",
            host.poweroff)
    progress.detail(f"host {host.name} at {host.address} is running ({time.monotonic() - booted:.1f} s, "
                    f"systemd pid {host.pid1})")

    progress.step(f"on the host: the repository key and {SOURCES_PATH}, then apt-get update && apt-get install {NAME}")
    add_source(host, served)
    progress.detail(host.read_file(SOURCES_PATH))
    apt(host, "update")
    apt(host, "install", "--no-install-recommends", NAME)
    state = host.run(["systemctl", "is-active", NAME], check=False).stdout.strip()
    progress.detail(f"installed {NAME} {installed_version(host, NAME)}; {NAME}.service is {state}")

    url = f"http://127.0.0.1:{port}{health_path}"
    progress.step(f"on the host: GET {url}")
    answer = health(host, port, health_path)
    progress.detail(json.dumps(answer))


def _interrupt(signum: int, frame: FrameType | None) -> None:
    """SIGTERM and SIGHUP end the demo like Ctrl-C, so that everything is cleaned up."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Run the demo; return the exit status (0 ok, 1 a step failed, 2 not root, 130 interrupted)."""
    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true",
                        help="keep the work directory (service, .deb, repository) instead of removing it")
    parser.add_argument("--dist", choices=list(dists.DISTS), default=dists.host_codename(),
                        help="the Debian release to build for and boot (default: this machine's own)")
    args = parser.parse_args(argv)
    if args.dist not in dists.DISTS:
        parser.error(f"this machine runs {args.dist}: pass --dist with one of {', '.join(dists.DISTS)}")
    if os.geteuid() != 0:
        print("error: the demo boots a host with systemd-nspawn and makes a network namespace: run it as root "
              "(sudo make demo)", file=sys.stderr)
        return 2
    # Ctrl-C raises KeyboardInterrupt even when started with SIGINT ignored (a background job of a script).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)
    progress = Progress()
    work = Path(tempfile.mkdtemp(prefix="microdeploy-demo."))
    status = 1
    cleanup = ExitStack()
    if not args.keep:
        on_exit(cleanup, f"work directory {work} removed", shutil.rmtree, work, True)
    try:
        run(work, progress, cleanup, dists.DISTS[args.dist])
        status = 0
    except KeyboardInterrupt:
        print("\n==> interrupted", file=sys.stderr, flush=True)
        status = 130
    except (DemoError, MicrodeployError, SubprocessError, AssertionError, OSError) as exc:
        print(f"==> demo failed: {exc}", file=sys.stderr, flush=True)
    finally:
        # Let the bounded teardown finish: a second Ctrl-C must not leave a host or namespace behind.
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        print(f"==> cleaning up   ({progress.elapsed():.0f} s)", flush=True)
        try:
            cleanup.close()
            left = "nothing is left running"
        except Exception as exc:
            print(f"==> cleanup failed: {exc}", file=sys.stderr, flush=True)
            left = "cleanup FAILED, see above"
            status = status or 1
    if args.keep:
        print(f"    kept {work}")
    verdict = "done" if status == 0 else "FAILED" if status == 1 else "stopped"
    print(f"==> {verdict} in {progress.elapsed():.0f} s; {left}", flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
