"""`microdeploy build`: from a project directory to dist/*.deb, .buildinfo and .changes."""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from microdeploy.build import source
from microdeploy.build.changelog import render_changelog
from microdeploy.build.context import WSGI_SERVER, BuildFacts, debian_context
from microdeploy.build.dhvirtualenv import Artifacts, collect, dpkg_buildpackage
from microdeploy.build.installer import choose_installer
from microdeploy.build.tree import SOURCE_SUBDIR, copy_source, render_debian
from microdeploy.build.version import debian_revision, full_version, upstream_version
from microdeploy.config import ServiceConfig, load_config
from microdeploy.errors import MicrodeployError, bad_input
from microdeploy.fsutil import atomic_write
from microdeploy.process import Runner, run

log = logging.getLogger(__name__)

BACKENDS = ("dh-virtualenv", "stdeb")


@dataclass(frozen=True)
class BuildSettings:
    """Everything `microdeploy build` was asked to do."""

    project: Path
    out: Path | None = None
    overrides: Mapping[str, Any] = field(default_factory=dict)
    revision: str | None = None
    environ: Mapping[str, str] = field(default_factory=dict)
    keep_installers: bool = False
    work_dir: Path | None = None
    refresh_deps: bool = False
    backend: str = "dh-virtualenv"


@dataclass(frozen=True)
class BuildResult:
    """What the build produced."""

    name: str
    version: str
    deb: Path
    buildinfo: Path
    changes: Path
    size: int
    seconds: float

    @classmethod
    def of(cls, name: str, version: str, artifacts: Artifacts, started: float) -> BuildResult:
        """The result of a build that began at `started` (time.monotonic) and put `artifacts` in place."""
        result = cls(
            name=name, version=version, deb=artifacts.deb, buildinfo=artifacts.buildinfo,
            changes=artifacts.changes, size=artifacts.deb.stat().st_size, seconds=time.monotonic() - started,
        )
        log.info("built %s (%d kB)", result.deb, result.size // 1024)
        return result

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly view for --json."""
        return {
            "name": self.name, "version": self.version, "deb": str(self.deb),
            "buildinfo": str(self.buildinfo), "changes": str(self.changes),
            "size": self.size, "seconds": round(self.seconds, 2),
        }


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


@dataclass(frozen=True)
class Release:
    """The version of one build, and what dates and describes it."""

    name: str
    maintainer: str
    upstream: str
    version: str
    distribution: str
    epoch: int
    changes: tuple[str, ...]  # commit subjects, newest first

    @property
    def changelog(self) -> str:
        """debian/changelog, rendered when the build tree is (python-debian is imported then)."""
        return render_changelog(name=self.name, version=self.version, distribution=self.distribution,
                                maintainer=self.maintainer, changes=self.changes, epoch=self.epoch)


def release(project: Path, config: ServiceConfig, settings: BuildSettings, runner: Runner = run) -> Release:
    """Version (project, git, revision), SOURCE_DATE_EPOCH and changes, the same for every backend."""
    state = source.git_state(project, runner)
    upstream = upstream_version(config.version, state)
    version = full_version(upstream, debian_revision(settings.revision, settings.environ.get("BUILD_NUMBER")))
    return Release(
        name=config.name, maintainer=config.maintainer, upstream=upstream, version=version,
        distribution=source.build_distribution(), epoch=source.source_date_epoch(project, settings.environ, runner),
        changes=tuple(source.change_subjects(project, state, runner)),
    )


def output_directory(settings: BuildSettings) -> Path:
    """--out, else PROJECT/dist; refused when it is a file."""
    out = settings.out or settings.project / "dist"
    if out.exists() and not out.is_dir():
        raise bad_input(f"output path {out} is not a directory", hint="Pass a directory with --out")
    return out


def plan(settings: BuildSettings, runner: Runner = run) -> tuple[ServiceConfig, BuildFacts, Release]:
    """Validate everything and decide the version before any file is written."""
    project = settings.project.resolve() if settings.project.exists() else settings.project
    source.check_installable(project)
    config = load_config(project, settings.overrides)
    source.check_app(project, config.app)
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
    if settings.backend != "dh-virtualenv":
        return build_with_backend(settings, runner)
    started = time.monotonic()
    config, facts, made = plan(settings, runner)
    out = output_directory(settings)
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
        beside = replace(installer.start_beside(work, tree / SOURCE_SUBDIR, config.name,
                                                f"/usr/bin/python{facts.python_minor}", runner),
                         staged=tree / "debian" / config.name)
        # The rendered debian/ is cached with the installer's other caches (uv's; pip's build uses none).
        render_debian(tree, debian_context(config, facts), made.changelog,
                      cache=installer.cache_root / "debian" if installer.cache_root is not None else None)
        log.info("dpkg-buildpackage (dh-virtualenv) in %s", tree)
        try:
            dpkg_buildpackage(tree, {**settings.environ, **beside.environment}, facts.epoch, runner,
                              after_binary=beside.after_binary)
        finally:
            beside.join()
        artifacts = publish_artifacts(collect(tree.parent, config.name), out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return BuildResult.of(config.name, facts.version, artifacts, started)


def build_with_backend(settings: BuildSettings, runner: Runner = run) -> BuildResult:
    """Hand the build to another backend: stdeb for pure libraries."""
    if settings.backend == "stdeb":
        # Imported here: the stdeb module builds on this one.
        from microdeploy.build import stdeb

        return stdeb.build(settings, runner)
    raise bad_input(f"unknown build backend {settings.backend!r}", hint=f"Use one of: {', '.join(BACKENDS)}")


def publish_artifacts(built: Artifacts, out: Path) -> Artifacts:
    """Copy the three files into `out`, each atomically, the .deb last."""
    out.mkdir(parents=True, exist_ok=True)
    copied = {}
    for kind in ("buildinfo", "changes", "deb"):
        path: Path = getattr(built, kind)
        atomic_write(out / path.name, path.read_bytes())
        copied[kind] = out / path.name
    return Artifacts(**copied)
