"""How the venv is filled: uv with the shared caches, or dh-virtualenv's own pip.

With uv, debian/make-venv and debian/uv-pip (see debian_templates/) take
their instructions from the environment made here.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from microdeploy.build import background
from microdeploy.build.cache import cache_root, layer_key, prepare_layer, static_dependencies
from microdeploy.build.wheel import UV_ENV, ProjectWheel
from microdeploy.fsutil import atomic_write
from microdeploy.process import Runner, run

# How uv installs into a venv that is packaged (debian/uv-pip uses the same):
# files copied, not hard links into the cache; no bytecode.
UV_INSTALL_ENV = {**UV_ENV, "UV_LINK_MODE": "copy", "UV_COMPILE_BYTECODE": "0"}


@dataclass(frozen=True)
class Beside:
    """Work started beside dpkg-buildpackage, and the variables that point the build at it."""

    environment: dict[str, str]
    jobs: tuple[threading.Thread, ...] = ()

    def join(self) -> None:
        """Wait for every job (each ends by itself: a finished build no longer needs them)."""
        for job in self.jobs:
            job.join()


@dataclass(frozen=True)
class Installer:
    """How the venv is filled: uv with its caches, or dh-virtualenv's pip."""

    kind: str  # "uv" or "pip"
    uv: str | None = None
    cache_root: Path | None = None
    layer: Path | None = None
    wsgi_server: str = ""
    # The layer key covers every dependency the project declares (static in
    # pyproject.toml): installing the project's wheel into the layer then
    # needs no resolution.
    layer_has_dependencies: bool = False

    def environment(self, wheel_dir: Path | None = None, layer_copy: Path | None = None) -> dict[str, str]:
        """Variables debian/make-venv and debian/uv-pip read during the build."""
        if self.uv is None or self.cache_root is None:
            return {}
        env = {
            **UV_ENV,
            "MICRODEPLOY_UV": self.uv,
            "UV_CACHE_DIR": str(self.cache_root / "uv"),
            "MICRODEPLOY_SHLIBDEPS_CACHE": str(self.cache_root / "shlibdeps"),
        }
        if self.layer is not None:
            env["MICRODEPLOY_LAYER"] = str(self.layer)
        if wheel_dir is not None:
            env["MICRODEPLOY_PROJECT_WHEEL"] = str(wheel_dir)
        if layer_copy is not None:
            env["MICRODEPLOY_LAYER_COPY"] = str(layer_copy)
        return env

    def start_beside(self, work: Path, source: Path, name: str, python: str, runner: Runner = run) -> Beside:
        """Start the project's wheel and the layer copy in `work`, on the other core, while the build starts."""
        if self.uv is None or self.cache_root is None:
            return Beside(self.environment())
        wheel_dir = work / "project-wheel"
        wheel = ProjectWheel(uv=self.uv, cache=self.cache_root, name=name, python=python, runner=runner)
        wheel_job = wheel.start(source, wheel_dir)
        copy_job = self.start_layer_copy(work / "layer-copy", (wheel_job, wheel_dir), runner)
        if copy_job is None:
            return Beside(self.environment(wheel_dir), (wheel_job,))
        return Beside(self.environment(wheel_dir, work / "layer-copy"), (wheel_job, copy_job))

    def start_layer_copy(
        self, directory: Path, wheel: tuple[threading.Thread, Path] | None = None, runner: Runner = run
    ) -> threading.Thread | None:
        """Copy the saved dependency layer to directory/venv on another thread, if there is one.

        debian/make-venv then moves it into place instead of copying it while
        dpkg-buildpackage waits (`directory` is on the build tree's filesystem).
        With `wheel` (the project-wheel job and its directory), the project is
        installed into the copy too, once its wheel is there; `installed`
        names that wheel, and debian/uv-pip has nothing left to do.
        """
        saved = self.layer / "venv" if self.layer is not None else None
        if saved is None or not saved.is_dir():
            return None

        def copy() -> int:
            shutil.copytree(saved, directory / "venv", symlinks=True)
            if wheel is not None and self.uv is not None:
                job, wheel_dir = wheel
                job.join()
                built = sorted(wheel_dir.glob("*.whl"))
                if len(built) == 1 and background.succeeded(wheel_dir):
                    python = str(directory / "venv" / "bin" / "python")
                    argv = [self.uv, "pip", "install", "--quiet", "--python", python, str(built[0]), self.wsgi_server]
                    if self.layer_has_dependencies:
                        argv = [self.uv, "pip", "install", "--quiet", "--no-deps", "--python", python, str(built[0])]
                    if runner(argv, env={**UV_INSTALL_ENV, **self.environment()}, check=False).returncode == 0:
                        atomic_write(directory / "installed", built[0].name)
            return 0

        return background.start("layer-copy", directory, copy)


def find_uv(environ: Mapping[str, str]) -> str | None:
    """The uv executable: $MICRODEPLOY_UV, the one installed with microdeploy, or uv on PATH."""
    if environ.get("MICRODEPLOY_UV"):
        return environ["MICRODEPLOY_UV"]
    try:
        from uv import find_uv_bin  # the PyPI package microdeploy depends on
    except ImportError:
        return shutil.which("uv")
    try:
        return str(find_uv_bin())
    except FileNotFoundError:
        return shutil.which("uv")


def uv_version(uv: str, runner: Runner = run) -> str:
    """`uv --version`, part of the layer key."""
    return runner([uv, "--version"]).stdout.strip()


def choose_installer(
    project: Path,
    *,
    name: str,
    python_minor: str,
    wsgi_server: str,
    environ: Mapping[str, str],
    refresh_layer: bool = False,
    runner: Runner = run,
) -> Installer:
    """uv with the shared caches when uv is available, else dh-virtualenv's pip (no caches)."""
    uv = find_uv(environ)
    if uv is None:
        return Installer("pip")
    root = cache_root(environ)
    key = layer_key(
        project, name=name, python_minor=python_minor, wsgi_server=wsgi_server,
        uv_version=uv_version(uv, runner), environ=environ,
    )
    layer = prepare_layer(root, key, refresh=refresh_layer)
    return Installer("uv", uv=uv, cache_root=root, layer=layer, wsgi_server=wsgi_server,
                     layer_has_dependencies=static_dependencies(project))
