"""The three ways the benchmark builds the same service into a .deb.

- reference A: plain dh-virtualenv, debian/ as its tutorial writes it
  (bench/reference/debian), `dpkg-buildpackage -us -uc -b`;
- reference B: `uv venv --relocatable`, `uv pip install`, and nFPM packing the
  tree (no debhelper, no unit, no user, no maintainer scripts);
- microdeploy: `microdeploy build`.

Each build starts from a fresh copy of the service's checkout, as a CI job
would, so no tool reuses a previous build's tree; the caches of each tool
(pip's, uv's, microdeploy's) live in the benchmark's work directory and are
warm after the first round.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from microdeploy.build.fastpath.installer import package_sources
from microdeploy.pyproject import read_pyproject

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
REFERENCE_DEBIAN = BENCH / "reference" / "debian"
VENV_BIN = REPO / ".venv" / "bin"
PACKAGE = "hello-api"
PYTHON = "/usr/bin/python3.11"
BUILD_TIMEOUT = 900.0
GIT = ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.com"]
# Settings of this machine (and of CI) that change what a tool puts into its
# package; a Debian host following the dh-virtualenv tutorial has none of
# them. With PYTHONDONTWRITEBYTECODE, reference A's venv would get pip
# without its bytecode, a smaller package than the tutorial's users get.
NOT_PASSED = ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX", "PYTHONOPTIMIZE")
# Where each tool keeps what it reuses: pip (A), uv (B), microdeploy, and
# microdeploy's build roots of other releases (microdeploy-trixie).
CACHE_VARIABLES = ("PIP_CACHE_DIR", "UV_CACHE_DIR", "MICRODEPLOY_CACHE_DIR", "MICRODEPLOY_ROOTS_DIR")

NFPM_CONFIG = """\
name: {name}
arch: amd64
platform: linux
version: {version}
maintainer: Bench Maintainer <bench@example.com>
description: Benchmark service packed by nFPM (reference B)
depends:
  - python3.11
contents:
  - src: {tree}
    dst: /opt/venvs/{name}
    type: tree
"""


@dataclass(frozen=True)
class Build:
    """One build: which tool, how long, what it made."""

    tool: str
    seconds: float
    deb: Path


class BuildFailed(RuntimeError):
    """A build of the benchmark failed; the message carries the tool's output."""


def run(argv: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None) -> None:
    """Run a build command; raise with its output if it fails."""
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=BUILD_TIMEOUT,
                            stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-30:])
        raise BuildFailed(f"{' '.join(argv)} failed ({result.returncode}):\n{tail}")


def git(checkout: Path, *args: str) -> None:
    """Run git in one of the benchmark's checkouts (the service's, the large app's)."""
    subprocess.run([*GIT, *args], cwd=checkout, check=True, capture_output=True)


def init_checkout(checkout: Path, message: str) -> None:
    """Make `checkout` a git repository with everything in it committed, as the builds' versions come from git."""
    git(checkout, "init", "-q")
    git(checkout, "add", "-A")
    git(checkout, "commit", "-q", "-m", message)


def fresh_copy(service: Path, dest: Path) -> Path:
    """A copy of the service's checkout (with .git, so versions come from it)."""
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(service, dest, symlinks=True)
    return dest


class Builders:
    """The three builders over one work directory (caches, scratch trees, outputs)."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.caches = work / "caches"
        self.env = {
            **os.environ,
            CACHE_VARIABLES[0]: str(self.caches / "pip"),
            CACHE_VARIABLES[1]: str(self.caches / "uv-reference-b"),
            CACHE_VARIABLES[2]: str(self.caches / "microdeploy"),
            CACHE_VARIABLES[3]: str(self.caches / "roots"),
            "UV_SYSTEM_CERTS": "1",  # as microdeploy runs uv: the system's CA store
            "PATH": f"{VENV_BIN}:/usr/sbin:/usr/bin:/sbin:/bin",
        }
        for name in ("VIRTUAL_ENV", *NOT_PASSED):
            self.env.pop(name, None)
        self.counter = 0

    def scratch(self, tool: str) -> Path:
        """A new, empty directory for one build."""
        self.counter += 1
        path = self.work / "scratch" / f"{self.counter:03d}-{tool}"
        path.mkdir(parents=True)
        return path

    def build(self, tool: str, service: Path, cold: bool = False) -> Build:
        """Build `service` with `tool`; the time covers the build only, not the copy of the checkout.

        `cold`: with every cache of the tool empty, as on an ephemeral CI agent.
        """
        scratch = self.scratch(tool)
        env = self.env
        if cold:
            empty = scratch / "empty-caches"
            env = {**self.env, **{name: str(empty / name) for name in CACHE_VARIABLES}}
        if tool == "A":
            return self.reference_a(service, scratch, env)
        if tool == "B":
            return self.reference_b(service, scratch, env)
        if tool == "microdeploy-z6":
            return self.microdeploy(service, scratch, env, "--compression", "xz", "--compression-level", "6",
                                    tool=tool)
        if tool == "microdeploy-trixie":
            # Cold, its build root is made too (mmdebstrap), as on a user's first trixie build.
            return self.microdeploy(service, scratch, env, "--dist", "trixie", tool=tool)
        return self.microdeploy(service, scratch, env)

    def reference_a(self, service: Path, scratch: Path, env: dict[str, str]) -> Build:
        """dh-virtualenv's tutorial: debian/ in the checkout, `dpkg-buildpackage -us -uc -b`."""
        tree = fresh_copy(service, scratch / PACKAGE)
        shutil.copytree(REFERENCE_DEBIAN, tree / "debian")
        started = time.monotonic()
        run(["dpkg-buildpackage", "-us", "-uc", "-b"], cwd=tree, env=env)
        seconds = time.monotonic() - started
        [deb] = scratch.glob(f"{PACKAGE}_*.deb")
        return Build("A", seconds, deb)

    def reference_b(self, service: Path, scratch: Path, env: dict[str, str], package: str = PACKAGE) -> Build:
        """uv into a relocatable venv, nFPM packs it; uv gets the package sources microdeploy gives it (this
        machine's pip index settings, installer.package_sources): both install the same files from the same
        places."""
        env = {**env, **package_sources(read_pyproject(service), env)}
        tree = fresh_copy(service, scratch / "src")
        stage = scratch / "stage" / package
        (scratch / "nfpm.yaml").write_text(NFPM_CONFIG.format(name=package, version="0.1.0", tree=stage))
        started = time.monotonic()
        run(["uv", "venv", "--quiet", "--relocatable", "--python", PYTHON, str(stage)], env=env)
        run(["uv", "pip", "install", "--quiet", "--python", str(stage / "bin" / "python"), str(tree)], env=env)
        run(["nfpm", "package", "--config", str(scratch / "nfpm.yaml"), "--packager", "deb", "--target",
             str(scratch)], env=env)
        seconds = time.monotonic() - started
        [deb] = scratch.glob("*.deb")
        return Build("B", seconds, deb)

    def microdeploy(self, service: Path, scratch: Path, env: dict[str, str], *options: str,
                    tool: str = "microdeploy", package: str = PACKAGE) -> Build:
        """`microdeploy build`, the whole command as a user runs it."""
        tree = fresh_copy(service, scratch / package)
        started = time.monotonic()
        run([str(VENV_BIN / "microdeploy"), "-q", "build", str(tree), "--out", str(scratch / "dist"), *options],
            env=env)
        seconds = time.monotonic() - started
        [deb] = (scratch / "dist").glob("*.deb")
        return Build(tool, seconds, deb)
