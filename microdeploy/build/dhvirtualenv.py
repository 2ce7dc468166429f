"""The dh-virtualenv backend: a service's venv, unit and maintainer scripts in one .deb.

The build copies the project into a build tree, renders debian/ beside it,
starts the fast path's work on the other core (fastpath/), and runs
dpkg-buildpackage (dpkg.py) over the tree.
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from microdeploy.build.cache import default_max_size, prune_after_build
from microdeploy.build.debiandir.context import WSGI_SERVER, BuildFacts, debian_context
from microdeploy.build.debiandir.tree import SOURCE_SUBDIR, copy_source, render_debian
from microdeploy.build.dpkg import collect, dpkg_buildpackage
from microdeploy.build.fastpath.installer import choose_installer
from microdeploy.build.output import BuildResult, output_directory, publish_artifacts
from microdeploy.build.release import source
from microdeploy.build.release.plan import Release, release
from microdeploy.build.release.settings import BuildSettings
from microdeploy.config import ServiceConfig, load_config
from microdeploy.errors import MicrodeployError
from microdeploy.process import Runner, run

log = logging.getLogger(__name__)

PRIVILEGED_PORTS = 1024  # ports below it need CAP_NET_BIND_SERVICE


def python_minor(config: ServiceConfig, runner: Runner = run) -> str:
    """The X.Y of the system interpreter the venv is built with (never a pyenv or venv one)."""
    interpreter = Path("/usr/bin") / config.python
    if not interpreter.exists():
        raise MicrodeployError(
            f"python interpreter {interpreter} not found (from python {config.python!r})",
            hint=f"Install it: sudo apt-get install {config.python} {config.python}-venv",
        )
    # Debian's python3 is a link to python3.X: no need to start it to ask.
    named = re.fullmatch(r"python(\d+\.\d+)", interpreter.resolve().name)
    if named:
        return named.group(1)
    code = "import sys; print('%d.%d' % sys.version_info[:2])"
    return runner([str(interpreter), "-c", code]).stdout.strip()


def plan(settings: BuildSettings, runner: Runner = run) -> tuple[ServiceConfig, BuildFacts, Release]:
    """Validate everything and decide the version before any file is written."""
    project = settings.project.resolve() if settings.project.exists() else settings.project
    source.check_installable(project)
    config = load_config(project, settings.overrides)
    source.check_app(project, config.app)
    if config.port < PRIVILEGED_PORTS:
        log.warning("port %d is below %d: the unit can bind it only where the host grants CAP_NET_BIND_SERVICE "
                    "(the Puppet module's drop-in does, for the port it writes into config.ini)",
                    config.port, PRIVILEGED_PORTS)
    made = release(project, config, settings, runner)
    facts = BuildFacts(
        upstream=made.upstream,
        version=made.version,
        python_minor=python_minor(config, runner),
        distribution=made.distribution,
        epoch=made.epoch,
        license_name=source.project_license(project),
        keep_installers=settings.keep_installers,
    )
    return config, facts, made


def build(settings: BuildSettings, runner: Runner = run) -> BuildResult:
    """Build the service's .deb and put it with its .buildinfo and .changes into the output directory."""
    started = time.monotonic()
    config, facts, made = plan(settings, runner)
    out = output_directory(settings)
    cache_size = default_max_size(settings.environ)
    log.info("building %s %s", config.name, facts.version)
    installer = choose_installer(
        settings.project, name=config.name, python_minor=facts.python_minor, wsgi_server=WSGI_SERVER,
        environ=settings.environ, refresh_layer=settings.refresh_deps, runner=runner,
    )
    facts = replace(facts, installer=installer.kind)
    work = Path(tempfile.mkdtemp(prefix=f"microdeploy-{config.name}.", dir=settings.work_dir))
    try:
        tree = work / f"{config.name}-{facts.upstream.replace(':', '_')}"
        copy_source(settings.project, tree / SOURCE_SUBDIR)
        beside = installer.start_beside(work, tree / SOURCE_SUBDIR, config.name,
                                        f"/usr/bin/python{facts.python_minor}", runner)
        # The rendered debian/ is cached with the installer's other caches (uv's; pip's build uses none).
        render_debian(tree, debian_context(config, facts), made.changelog,
                      cache=installer.cache_root / "debian" if installer.cache_root is not None else None)
        log.info("dpkg-buildpackage (dh-virtualenv) in %s", tree)
        try:
            dpkg_buildpackage(tree, {**settings.environ, **beside.environment}, facts.epoch, runner)
        finally:
            beside.finish()
        artifacts = publish_artifacts(collect(tree.parent, config.name), out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if installer.cache_root is not None:
        prune_after_build(installer.cache_root, cache_size)
    return BuildResult.of(config.name, facts.version, artifacts, started)
