"""How the venv is filled: uv with the shared caches, or dh-virtualenv's own pip.

With uv, debian/make-venv and debian/uv-pip (see debian_templates/) take
their instructions from the environment made here (contract.py).
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from microdeploy.build.cache import cache_root, touch
from microdeploy.build.fastpath import jobs
from microdeploy.build.fastpath.contract import (
    ELF_CACHE_VAR,
    INSTALLED_FILE,
    LAYER_COPY_VAR,
    LAYER_VAR,
    PROJECT_ALONE,
    PROJECT_WHEEL_VAR,
    SHLIBDEPS_CACHE_VAR,
    UV_CACHE_VAR,
    UV_INSTALL_SETTINGS,
    UV_VAR,
    VENV_DIR,
    make_pth_inert,
)
from microdeploy.build.fastpath.layer import (
    Restored,
    callers_uv_settings,
    copy_venv,
    declared_dependencies,
    is_marked,
    layer_key,
    link_venv,
    prepare_layer,
    save_layer,
    uv_configuration,
)
from microdeploy.build.fastpath.lock import (
    LOCK_FILE,
    REQUIREMENTS_FILE,
    Locked,
    lock_file,
    locked_requirements,
    unused_locks,
)
from microdeploy.build.fastpath.pipindex import UV_CONSTRAINT_VARIABLE, pip_variables, shown
from microdeploy.build.fastpath.wheel import ProjectWheel
from microdeploy.fsutil import atomic_write
from microdeploy.process import Runner, in_environment, run
from microdeploy.pyproject import BuildSystem, Pyproject

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Beside:
    """Work started beside dpkg-buildpackage, and the variables that point the build at it."""

    environment: dict[str, str]
    jobs: tuple[threading.Thread, ...] = ()
    wheel: ProjectWheel | None = None
    built: tuple[threading.Thread, Path] | None = None  # the wheel's job and its directory
    # The restored layer, and what it shares with the build tree by hard link.
    layer: Path | None = None
    restored: Restored | None = None

    def project_wheel(self) -> Path | None:
        """The project's wheel (built now or kept from an earlier build) once its job has ended; None without one."""
        return jobs.output(*self.built, "*.whl") if self.built is not None else None

    def finish(self) -> None:
        """Wait for every job (each ends by itself) and for the build environment's bytecode, keep the project's
        wheel for the next build, and drop the layer if a build step wrote to a file it shares with the tree (the
        next build makes it again)."""
        for job in self.jobs:
            job.join()
        if self.wheel is not None:
            self.wheel.wait()
            self.wheel.keep()
        if self.layer is not None and self.restored is not None and not self.restored.intact():
            log.warning("a build step changed a file of the dependency layer %s that the build tree shares "
                        "with the cache; the layer is removed, and the next build makes it again", self.layer.name)
            shutil.rmtree(self.layer, ignore_errors=True)


@dataclass(frozen=True)
class Installer:
    """How the venv is filled: uv with its caches, or dh-virtualenv's pip."""

    kind: str  # "uv" or "pip"
    uv: str | None = None
    cache_root: Path | None = None
    layer: Path | None = None
    wsgi_server: str = ""
    installers: tuple[str, ...] = ()  # pip, setuptools and wheel, with --keep-installers
    extras: tuple[str, ...] = ()  # the project's extras that go in with it (config.extras)
    # The layer key covers every dependency the project declares (static in
    # pyproject.toml): installing the project's wheel into the layer then
    # needs no resolution.
    layer_has_dependencies: bool = False
    # Those dependencies when they install without the project (layer.declared_dependencies):
    # a missing layer is then made beside the build, while the wheel builds.
    dependencies: tuple[str, ...] | None = None
    # The project's lock (uv.lock or pylock.toml; lock.py): the layer holds what it pins, uv.lock's in place of
    # `dependencies`.
    lock: str | None = None
    project: str = ""  # the project's distribution name, which a pylock.toml lists among its packages
    build_system: BuildSystem = field(default_factory=BuildSystem)  # the project's, for its wheel
    # pip's index settings as uv's variables, for every uv run of the build (pipindex.py).
    index: Mapping[str, str] = field(default_factory=dict)
    # The caller's uv variables that decide what an install gets (layer.callers_uv_settings), for the keys of the
    # project's build environment and kept wheel; its UV_CONSTRAINT is joined by a lock's.
    uv_settings: Mapping[str, str] = field(default_factory=dict)
    # The build's environment (BuildSettings.environ, with TMPDIR in its work directory: the build sets it once
    # that exists), which the uv runs beside dpkg-buildpackage see, as dpkg-buildpackage's do: what keys the
    # layer is what makes it. None: this process's.
    environ: Mapping[str, str] | None = None

    def uv_runner(self, runner: Runner) -> Runner:
        """`runner` for the uv runs beside dpkg-buildpackage: in the build's environment with pip's index settings."""
        return in_environment(runner, {**(os.environ if self.environ is None else self.environ), **self.index})

    def environment(self, wheel_dir: Path | None = None, layer_copy: Path | None = None) -> dict[str, str]:
        """Variables debian/make-venv and debian/uv-pip read during the build."""
        if self.uv is None or self.cache_root is None:
            return {}
        env = {
            **UV_INSTALL_SETTINGS,
            **self.index,
            UV_VAR: self.uv,
            UV_CACHE_VAR: str(self.cache_root / "uv"),
            SHLIBDEPS_CACHE_VAR: str(self.cache_root / "shlibdeps"),
            ELF_CACHE_VAR: str(self.cache_root / "elf"),
        }
        if self.layer is not None:
            env[LAYER_VAR] = str(self.layer)
        if wheel_dir is not None:
            env[PROJECT_WHEEL_VAR] = str(wheel_dir)
        if layer_copy is not None:
            env[LAYER_COPY_VAR] = str(layer_copy)
        return env

    def project_wheel(self, name: str, python: str, runner: Runner = run, git_state: str = "",
                      system_site: Path | None = None) -> ProjectWheel | None:
        """The maker of the project's wheel and of its cached build environment; None without uv or a cache."""
        if self.uv is None or self.cache_root is None:
            return None
        return ProjectWheel(uv=self.uv, cache=self.cache_root, name=name, python=python,
                            build_system=self.build_system, runner=self.uv_runner(runner), git_state=git_state,
                            index=self.index, settings=self.uv_settings, system_site=system_site)

    def start_beside(self, work: Path, source: Path, name: str, python: str, runner: Runner = run,
                     git_state: str = "", system_site: Path | None = None) -> Beside:
        """Start the project's wheel and the layer copy in `work`, on the other core, while the build starts.

        `git_state`: where the checkout stands in git, for the kept wheels' key (ProjectWheel); `system_site`:
        the release's Python packages as read from here, which the wheel's build may take its backend from."""
        wheel = self.project_wheel(name, python, runner, git_state, system_site)
        if wheel is None:
            return Beside(self.environment())
        # A lock out of date stops the build here, before anything starts; a saved layer was made from it.
        locked = (locked_requirements(self.lock, wheel.uv, source, work, self.project or name, self.uv_runner(runner),
                                      self.index, self.extras)
                  if self.lock and self.layer is not None and not (self.layer / VENV_DIR).is_dir() else None)
        wheel_dir = work / "project-wheel"
        wheel_job = wheel.start(source, wheel_dir)
        built = (wheel_job, wheel_dir)
        restored = Restored()
        copy_job = (self.start_layer_copy(work / "layer-copy", built, runner, restored)
                    or self.start_layer_fill(work / "layer-copy", source, name, python, built, runner, restored,
                                             locked))
        # If the layer cannot be filled from the lock, uv-pip's own install keeps to what the lock pins.
        environment = {**self.environment(wheel_dir, work / "layer-copy" if copy_job else None), **self.pinned(locked)}
        if copy_job is None:
            return Beside(environment, (wheel_job,), wheel, built)
        return Beside(environment, (wheel_job, copy_job), wheel, built, self.layer, restored)

    def pinned(self, locked: Locked | None) -> dict[str, str]:
        """The variable that keeps a uv install to what the lock pins (with the caller's constraints)."""
        if locked is None:
            return {}
        constraint = self.uv_settings.get(UV_CONSTRAINT_VARIABLE, "")
        return {UV_CONSTRAINT_VARIABLE: " ".join(filter(None, [constraint, str(locked.constraints)]))}

    def start_layer_copy(
        self, directory: Path, wheel: tuple[threading.Thread, Path] | None = None, runner: Runner = run,
        restored: Restored | None = None,
    ) -> threading.Thread | None:
        """Put a copy of the saved dependency layer at directory/venv on another thread, if there is one.

        debian/make-venv then moves it into place instead of copying it while
        dpkg-buildpackage waits (`directory` is on the build tree's filesystem).
        The layer's shared files are hard-linked (layer.link_venv, noted in
        `restored`) when the layer marks them, `directory` is on the cache's
        filesystem and the project is installed without resolving (its
        dependencies are in the layer: nothing of the layer is upgraded in
        place); else the layer is copied.
        With `wheel` (the project-wheel job and its directory), the project is
        installed into the copy too, once its wheel is there; INSTALLED_FILE
        names that wheel, and debian/uv-pip has nothing left to do.
        """
        layer = self.layer
        if layer is None or not (layer / VENV_DIR).is_dir():
            return None

        def copy() -> int:
            venv = directory / VENV_DIR
            linked = False
            if restored is not None and self.layer_has_dependencies and is_marked(layer / VENV_DIR):
                try:
                    link_venv(layer / VENV_DIR, venv, restored)
                    linked = True
                except OSError as exc:
                    log.debug("layer-copy: %s; copying the layer instead", exc)
                    restored.shared.clear()
                    shutil.rmtree(venv, ignore_errors=True)
            if not linked and not copy_venv(layer / VENV_DIR, venv, runner):
                return 1
            installed = self.install_project(venv, wheel, runner)
            if installed is not None:
                atomic_write(directory / INSTALLED_FILE, installed, durable=False)
            return 0

        return jobs.start("layer-copy", directory, copy)

    def start_layer_fill(
        self, directory: Path, source: Path, name: str, python: str, wheel: tuple[threading.Thread, Path],
        runner: Runner = run, restored: Restored | None = None, locked: Locked | None = None,
    ) -> threading.Thread | None:
        """Without a saved layer, make it on another thread when pyproject.toml lists the dependencies, or when
        `locked` (what the project's lock pins, lock.py) does.

        At directory/venv, beside the project's wheel job: the venv as
        debian/make-venv makes it, requirements.txt and then the dependencies
        with the WSGI server installed as debian/uv-pip installs them (from the
        source directory, where uv finds the project's settings). A pylock.toml
        goes in alone, then the rest within the versions it pins. It is saved
        as the layer (moved into the cache and linked back with `restored`,
        layer.save_layer); then the project's wheel goes in, as into a copied
        layer (start_layer_copy), and make-venv and uv-pip take it the same way.
        On a first build the dependencies then download while the wheel builds.
        """
        layer, uv, dependencies = self.layer, self.uv, self.dependencies
        if layer is None or uv is None or (dependencies is None and locked is None) or (layer / VENV_DIR).is_dir():
            return None
        pinned = self.pinned(locked)

        def fill() -> int:
            venv = directory / VENV_DIR
            install = [uv, "pip", "install", "--quiet", "--python", str(venv / "bin" / "python")]
            # The prompt of the venv's activate scripts: the service's, as at /opt/venvs/NAME.
            steps: list[tuple[list[str], Path, Mapping[str, str]]] = [
                ([python, "-m", "venv", "--without-pip", "--prompt", name, str(venv)], source, {})]
            requirements = source / REQUIREMENTS_FILE
            if requirements.is_file():
                requirements = requirements.resolve()
                steps.append(([*install, "-r", str(requirements)], requirements.parent, {}))
            rest = [self.wsgi_server, *self.installers]
            if locked is None:
                steps.append(([*install, *(dependencies or ()), *rest], source, {}))
            elif locked.alone:
                steps.append(([*install, *locked.install], source, {}))
                steps.append(([*install, *(dependencies or ()), *rest], source, pinned))
            else:
                steps.append(([*install, *locked.install, *rest], source, {}))
            uv_run, environment = self.uv_runner(runner), self.environment()
            for argv, cwd, pins in steps:
                returncode = uv_run(argv, cwd=cwd, env={**environment, **pins}, check=False).returncode
                if returncode != 0:
                    return returncode
                make_pth_inert(venv)
            save_layer(venv, layer, runner, restored)
            installed = self.install_project(venv, wheel, runner, pinned)
            if installed is not None:
                atomic_write(directory / INSTALLED_FILE, installed, durable=False)
            return 0

        return jobs.start("layer-fill", directory, fill)

    def install_project(self, venv: Path, wheel: tuple[threading.Thread, Path] | None, runner: Runner,
                        pinned: Mapping[str, str] | None = None) -> str | None:
        """Install the project's wheel into `venv` once its job has ended; the wheel's name, or None if not.
        `pinned`: the lock's constraint (pinned()), for what the wheel needs beyond the layer."""
        if wheel is None or self.uv is None:
            return None
        built = jobs.output(*wheel, "*.whl")
        if built is None:
            return None
        python = ["--python", str(venv / "bin" / "python")]
        # The project alone first, through a cache of its own that uv removes when it is done: uv's shared cache
        # would keep every build's unpacked wheel (an app's megabytes of static files at every commit), and the
        # venv's files can be hard links to the unpacked ones, which nothing else then holds.
        steps = [[self.uv, "pip", "install", "--quiet", *PROJECT_ALONE, *python, str(built)]]
        if not self.layer_has_dependencies:
            # Then what it depends on, resolved, from the shared cache; uv keeps the project it finds installed.
            steps.append([self.uv, "pip", "install", "--quiet", *python, with_extras(str(built), self.extras),
                          self.wsgi_server, *self.installers])
        uv_run, environment = self.uv_runner(runner), {**self.environment(), **(pinned or {})}
        for argv in steps:
            if uv_run(argv, env=environment, check=False).returncode != 0:
                return None
            make_pth_inert(venv)
        return built.name


def with_extras(requirement: str, extras: tuple[str, ...]) -> str:
    """A local requirement (a wheel's path) with `extras`, as pip and uv write it: `app.whl[postgres,ldap]`."""
    return f"{requirement}[{','.join(extras)}]" if extras else requirement


def find_uv(environ: Mapping[str, str]) -> str | None:
    """The uv executable: $MICRODEPLOY_UV, the one installed with microdeploy, or uv on PATH.

    MICRODEPLOY_UV set but empty means no uv: dh-virtualenv's own pip, as
    where microdeploy is installed without uv (its Debian package).
    """
    if UV_VAR in environ:
        return environ[UV_VAR] or None
    try:
        from uv import find_uv_bin  # the PyPI package microdeploy depends on
    except ImportError:
        return shutil.which("uv")
    try:
        return str(find_uv_bin())
    except FileNotFoundError:
        return shutil.which("uv")


def uv_version(uv: str, runner: Runner = run) -> str:
    """`uv --version`: part of the layer key (another uv may resolve differently)."""
    return runner([uv, "--version"]).stdout.strip()


def package_sources(pyproject: Pyproject, environ: Mapping[str, str]) -> dict[str, str]:
    """pip's index settings and constraints as uv's variables for the project of `pyproject`, each unless uv has
    its own (pipindex.py): its variables, its uv.toml files, the project's [tool.uv]."""
    return pip_variables(environ, uv_configuration(pyproject.directory, environ), pyproject.tool("uv"))


def choose_installer(
    pyproject: Pyproject,
    *,
    name: str,
    python_minor: str,
    wsgi_server: str,
    environ: Mapping[str, str],
    installers: tuple[str, ...] = (),
    extras: tuple[str, ...] = (),
    refresh_layer: bool = False,
    runner: Runner = run,
    dist: str = "",
) -> Installer:
    """uv with the shared caches when uv is available, else dh-virtualenv's pip (no caches).

    `pyproject`: the project's pyproject.toml, as the build read it (it knows the project's directory).
    """
    for warning in unused_locks(pyproject):
        log.warning("%s", warning)
    uv = find_uv(environ)
    if uv is None:
        lock = lock_file(pyproject)
        if lock is not None:
            log.warning("%s is not used without uv: dh-virtualenv's pip resolves the dependencies afresh", lock)
        return Installer("pip")
    root = cache_root(environ)
    touch(root / "uv")
    index = package_sources(pyproject, environ)
    if index:
        log.info("uv takes pip's settings: %s", shown(index))
        environ = {**environ, **index}
    key = layer_key(
        pyproject, name=name, python_minor=python_minor, wsgi_server=wsgi_server, installers=installers,
        extras=extras, uv_version=uv_version(uv, runner), environ=environ, dist=dist,
    )
    layer = prepare_layer(root, key, refresh=refresh_layer)
    lock = lock_file(pyproject)
    return Installer("uv", uv=uv, cache_root=root, layer=layer, wsgi_server=wsgi_server, installers=installers,
                     extras=extras, layer_has_dependencies=pyproject.static_dependencies or lock == LOCK_FILE,
                     dependencies=declared_dependencies(pyproject, extras), lock=lock,
                     project=str(pyproject.project.get("name") or name),
                     build_system=pyproject.build_system, index=index,
                     uv_settings=callers_uv_settings(pyproject.directory, environ))
