"""The dh-virtualenv backend: a service's venv, unit and maintainer scripts in one .deb.

The build copies the project into a build tree, renders debian/ beside it,
starts the fast path's work on the other core (fastpath/), and runs
dpkg-buildpackage (dpkg.py) over the tree.
"""

from __future__ import annotations

import contextlib
import logging
import re
import shutil
import threading
import time
import zipfile
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

from microdeploy import dists
from microdeploy.build import buildroot, imports, packagedata
from microdeploy.build.cache import default_max_size, start_prune_after_build
from microdeploy.build.debiandir.context import INSTALLERS, WSGI_SERVER, BuildFacts, debian_context
from microdeploy.build.debiandir.requirements import deploy_requirements
from microdeploy.build.debiandir.tree import SOURCE_SUBDIR, copy_source, render_debian
from microdeploy.build.dpkg import Artifacts, collect, dpkg_buildpackage, package_file
from microdeploy.build.fastpath import datapack
from microdeploy.build.fastpath.installer import Beside, Installer, choose_installer
from microdeploy.build.fastpath.layer import check_extras
from microdeploy.build.fastpath.pipindex import local_sources
from microdeploy.build.fastpath.systembackend import site_of
from microdeploy.build.output import BuildResult, move_in, output_directory, prepare_output
from microdeploy.build.release import scmversion, source
from microdeploy.build.release.license import stated_license
from microdeploy.build.release.plan import Release, Settled, release, settle, target
from microdeploy.build.release.settings import BuildSettings
from microdeploy.build.running import build_running
from microdeploy.config import ServiceConfig, load_config
from microdeploy.errors import MicrodeployError, bad_input
from microdeploy.fsutil import private_directory, sync_file, temporary_files_in
from microdeploy.process import Runner, run
from microdeploy.validate import check_not_a_system_package

log = logging.getLogger(__name__)

PRIVILEGED_PORTS = 1024  # ports below it need CAP_NET_BIND_SERVICE
# Where the service's venv is in the package: DH_VIRTUALENV_INSTALL_ROOT (debian/rules) and the name.
VENVS_IN_PACKAGE = "opt/venvs"


def python_minor(config: ServiceConfig, dist: dists.Dist, runner: Runner = run) -> str:
    """The X.Y of the system interpreter the venv is built with (never a pyenv or venv one)."""
    interpreter = Path("/usr/bin") / config.python
    if not interpreter.exists():
        raise missing_python(config, dist, "on this machine")
    # Debian's python3 is a link to python3.X: no need to start it to ask.
    named = re.fullmatch(r"python(\d+\.\d+)", interpreter.resolve().name)
    if named:
        return named.group(1)
    code = "import sys; print('%d.%d' % sys.version_info[:2])"
    return runner([str(interpreter), "-c", code]).stdout.strip()


def root_python(config: ServiceConfig, dist: dists.Dist, tree: Path) -> str:
    """The X.Y of the service's interpreter in a build root."""
    minor = buildroot.python_minor_inside(tree, config.python)
    if minor is None:
        raise missing_python(config, dist, f"in the build root {tree.name}")
    return minor


def missing_python(config: ServiceConfig, dist: dists.Dist, where: str) -> MicrodeployError:
    """The error for a python the build cannot find `where`: bad input (exit 2) when `dist` has no such Python, with
    the release's own Python and the release that has it; a failure with apt's command when `dist` ships it."""
    own = f"python{dist.python_minor}"
    message = f"python interpreter /usr/bin/{config.python} not found {where} (from python {config.python!r})"
    if config.python in ("python3", own):
        # The release ships it: this machine (or root) lacks the package, which apt installs.
        return MicrodeployError(message, hint=f"Install it: sudo apt-get install {own} {own}-venv")
    other = dists.with_python(config.python.removeprefix("python"))
    elsewhere = f", or build for {other.codename} (--dist {other.codename})" if other is not None else ""
    return bad_input(f"{message}: {dist.codename} ships Python {dist.python_minor}, not {config.python}",
                     hint=f"Set python to python3 ({dist.codename}'s {own}){elsewhere}")


def checked(settings: BuildSettings, runner: Runner = run, root: Path | None = None,
            ) -> tuple[Path, ServiceConfig, str, Settled]:
    """The project, its configuration, its Python's X.Y and all of the release but the project's version, checked
    before any file is written (`root`: the build root's tree). The version, which may take the backend's hooks,
    is decided beside the first steps of the build."""
    project = settings.project.resolve() if settings.project.exists() else settings.project
    source.check_installable(project)
    config = load_config(project, settings.overrides, settings.project_file())
    check_not_a_system_package(config.name)
    source.check_app(project, config.app)
    check_extras(settings.project_file(), config.extras)
    if config.port < PRIVILEGED_PORTS:
        log.warning("port %d is below %d: the unit can bind it only where the host grants CAP_NET_BIND_SERVICE "
                    "(the Puppet module's drop-in does, for the port it writes into config.ini)",
                    config.port, PRIVILEGED_PORTS)
    dist = target(settings)
    python = python_minor(config, dist, runner) if root is None else root_python(config, dist, root)
    settled = settle(project, settings, runner)
    source.check_python(settings.project_file(), python, settled.dist.codename)
    return project, config, python, settled


def git_state(settings: BuildSettings, settled: Settled, scm_version: Mapping[str, str]) -> str:
    """Where the checkout stands in git, when the project's version may come from it (the kept wheel's key), with
    the version setuptools-scm gave it in the checkout (scmversion.py), which also says whether it is dirty."""
    return "" if settings.project_file().static_version else repr(settled.state) + "".join(scm_version.values())


def build_facts(settings: BuildSettings, made: Release, python: str, installer: Installer) -> BuildFacts:
    """What the templates need beyond the service config, once the release is decided."""
    return BuildFacts(
        upstream=made.upstream,
        version=made.version,
        python_minor=python,
        distribution=made.distribution,
        epoch=made.epoch,
        license=stated_license(settings.project_file()),
        keep_installers=settings.keep_installers,
        installer=installer.kind,
    )


def build(settings: BuildSettings, runner: Runner = run) -> BuildResult:
    """Build the service's .deb and put it with its .buildinfo and .changes into the output directory.

    A build for this machine's own release runs here; one for another release
    (or with --clean-root) runs in that release's clean root (buildroot.py).
    """
    dist = target(settings)
    if dist == dists.host_dist() and not settings.clean_root:
        return build_in_root(settings, runner)
    # The service's extra build dependencies are part of the root: no build installs into it.
    extra = (load_config(settings.project, settings.overrides, settings.project_file()).build_depends
             if settings.project.is_dir() else ())
    with buildroot.cached_root(dist, extra, environ=settings.environ, refresh=settings.refresh_root,
                               runner=runner) as tree:
        return build_in_root(settings, runner, tree)


def build_in_root(settings: BuildSettings, runner: Runner = run, root: Path | None = None) -> BuildResult:
    """Build on this machine (`root` None), or in the build root `root` (a tree made by buildroot)."""
    started = time.monotonic()
    project, config, python, settled = checked(settings, runner, root)
    out = output_directory(settings)
    staging = prepare_output(out)
    with ExitStack() as cleanup:
        # Whatever ends the build from here (a failure, a cache that is not a directory, Ctrl-C), nothing of it is
        # left beside --out or in the work directory.
        cleanup.callback(shutil.rmtree, staging, ignore_errors=True)
        began = time.time()
        cache_size = default_max_size(settings.environ)
        installer = choose_installer(
            settings.project_file(), name=config.name, python_minor=python, wsgi_server=WSGI_SERVER,
            installers=INSTALLERS if settings.keep_installers else (), extras=config.extras,
            environ=settings.environ, refresh_layer=settings.refresh_deps, runner=runner, dist=settled.dist.codename,
        )
        if installer.cache_root is not None:
            # From here a prune meanwhile (another build's, `cache prune`) keeps what this build uses (the layer
            # choose_installer found included), until its package is in place. pip's builds use no cache.
            cleanup.enter_context(build_running(installer.cache_root, began))
        # A project below the top of its repository whose version setuptools-scm reads from there.
        top = scmversion.repository_top(settings.project_file(), settings.environ, runner)
        work = private_directory(f"microdeploy-{config.name}", settings.work_dir)
        cleanup.callback(shutil.rmtree, work, ignore_errors=True)
        with ExitStack() as stack:
            # The tools' own temporary files go into the work directory, and with it.
            tmp = stack.enter_context(temporary_files_in(work / "tmp"))
            environ = {**settings.environ, "TMPDIR": str(tmp)}
            installer = replace(installer, environ=environ)  # for its uv runs
            build_runner = runner
            if root is not None:
                # Inside, the work directory, the caches, uv and local package sources are at the paths they
                # have here.
                binds = [work, *([installer.cache_root] if installer.cache_root else []),
                         *([Path(installer.uv).resolve().parent] if installer.uv else []),
                         *(local_sources({**settings.environ, **installer.index}) if installer.uv else []),
                         *([(project / ".git").resolve()] if (project / ".git").is_dir() else []),
                         *([top] if top is not None else [])]
                build_runner = stack.enter_context(buildroot.entered(root, work, binds, build_runner))
            scm_version = (scmversion.checkout_version(settings.project_file(), installer, config.name,
                                                       f"/usr/bin/python{python}", work, build_runner)
                           if top is not None else {})
            inside = replace(settings, environ={**environ, **scm_version})
            installer = replace(installer, environ=inside.environ)
            # The tree's name leaves out the version: the project's wheel starts from it before the version is
            # known, and a dynamic version is read from that wheel.
            tree = work / config.name
            copy_source(settings.project, tree / SOURCE_SUBDIR, git=True)
            deploy_requirements(tree / SOURCE_SUBDIR)
            beside = installer.start_beside(work, tree / SOURCE_SUBDIR, config.name, f"/usr/bin/python{python}",
                                            build_runner, git_state=git_state(settings, settled, scm_version),
                                            system_site=site_of(root))
            try:
                made = release(project, config, inside, runner, settled, beside.project_wheel)
                facts = build_facts(settings, made, python, installer)
                log.info("building %s %s", config.name, facts.version)
                built = build_tree(inside, config, facts, made, installer, tree, beside, build_runner)
            finally:
                beside.finish()
        artifacts = move_in(built, staging, out)
    if installer.cache_root is not None:
        start_prune_after_build(installer.cache_root, cache_size)
    return BuildResult.of(config.name, facts.version, artifacts, started)


def build_tree(settings: BuildSettings, config: ServiceConfig, facts: BuildFacts, made: Release,
               installer: Installer, tree: Path, beside: Beside, runner: Runner) -> Artifacts:
    """debian/ rendered into `tree` (which holds the source), dpkg-buildpackage over it; the files it made (beside
    `tree`)."""
    # The rendered debian/ is cached with the installer's other caches (uv's; pip's build uses none).
    render_debian(tree, debian_context(config, facts), made.changelog,
                  cache=installer.cache_root / "debian" if installer.cache_root is not None else None)
    log.info("dpkg-buildpackage (dh-virtualenv) in %s", tree)

    tidying: list[threading.Thread] = []

    def finish_package() -> None:
        deb = package_file(tree.parent, config.name)
        if datapack.writes(config.compression):
            chunks = installer.cache_root / datapack.CHUNKS_KIND if installer.cache_root is not None else None
            datapack.compress_members(deb, config.compression_level, chunks, venv=f"{VENVS_IN_PACKAGE}/{config.name}")
        package_tree = tree / "debian" / config.name
        venv = package_tree / VENVS_IN_PACKAGE / config.name
        site_packages = venv / "lib" / f"python{facts.python_minor}" / "site-packages"
        wheel = beside.project_wheel()
        # What follows (records.finish) reads the package and the generators' records alone.
        tidying.append(start_tidying(deb, [tree / SOURCE_SUBDIR, package_tree], first=lambda: warn_of_the_wheel(
            wheel, site_packages, tree / SOURCE_SUBDIR, facts.python_minor, config.app.partition(":")[0],
            config.depends)))

    try:
        dpkg_buildpackage(tree, {**settings.environ, **beside.environment}, facts.epoch, runner,
                          finish=finish_package, project=settings.project_file().project.get("name"),
                          lock=installer.lock)
    finally:
        for thread in tidying:
            thread.join()
    return collect(tree.parent, config.name)


def warn_of_the_wheel(wheel: Path | None, site_packages: Path, source: Path, python: str, app_module: str,
                      depends: Sequence[str] = ()) -> None:
    """Warn of what the project's wheel leaves out: imports the package's venv cannot satisfy (imports.py), files
    of its packages the checkout has (packagedata.py). pip's builds, which make no wheel of the project, are not
    read."""
    if wheel is None:
        return
    try:
        said = imports.unsatisfied(wheel, site_packages, python, app_module, depends)
        gaps = packagedata.missing(wheel, source)
    except (OSError, zipfile.BadZipFile) as exc:
        log.debug("the project's wheel not read: %s", exc)
        return
    except Exception:  # advice only: a wheel this reading cannot take never fails or untidies the build
        log.debug("the project's wheel not read", exc_info=True)
        return
    for line in said + ([packagedata.said(gaps)] if gaps else []):
        log.warning("%s", line)


def start_tidying(deb: Path, trees: list[Path], first: Callable[[], None] = lambda: None) -> threading.Thread:
    """On a thread: `first`, write `deb` out to disk (its move into the output directory syncs it), then remove
    `trees`."""

    def tidy() -> None:
        first()
        with contextlib.suppress(OSError):
            sync_file(deb)
        for tree in trees:
            shutil.rmtree(tree, ignore_errors=True)

    thread = threading.Thread(target=tidy, name="tidy", daemon=True)
    thread.start()
    return thread
