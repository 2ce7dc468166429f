"""The release a build makes: its version, date and changes, decided the same way for every backend."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from microdeploy import dists
from microdeploy.build.cache import cache_root
from microdeploy.build.fastpath.installer import find_uv, package_sources
from microdeploy.build.release import source
from microdeploy.build.release.changelog import render_changelog
from microdeploy.build.release.metadata import dynamic_version
from microdeploy.build.release.settings import BuildSettings
from microdeploy.build.release.version import GitState, debian_revision, full_version, upstream_version
from microdeploy.config import ServiceConfig, check_upstream_version
from microdeploy.process import Runner, run

log = logging.getLogger(__name__)

# What setuptools calls a project that states no version: not a version, so the release tag is asked next.
SETUPTOOLS_PLACEHOLDER = "0.0.0"


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
    project_version: str | None = None  # the project's own version (PEP 440) when it states one

    @property
    def changelog(self) -> str:
        """debian/changelog, rendered when the build tree is (python-debian is imported then)."""
        return render_changelog(name=self.name, version=self.version, distribution=self.distribution,
                                maintainer=self.maintainer, changes=self.changes, epoch=self.epoch)


def target(settings: BuildSettings) -> dists.Dist:
    """The release a build is for: `settings.dist`, else this machine's own."""
    return dists.chosen([settings.dist] if settings.dist else [])[0]


def project_version(project: Path, config: ServiceConfig, settings: BuildSettings, runner: Runner = run,
                    project_wheel: Callable[[], Path | None] | None = None) -> str | None:
    """--version or [project].version, else what the project's wheel, the build backend or an sdist's PKG-INFO
    says (or None).

    `project_wheel`: waits for the project's wheel the build makes beside it, and gives it (None if it failed).
    """
    if config.version is not None:
        return config.version
    uv = find_uv(settings.environ)
    # The build's environment, with pip's index settings for uv as the build's other uv runs get them.
    environ = {**settings.environ, **(package_sources(settings.project_file(), settings.environ) if uv else {})}
    found = dynamic_version(project, settings.project_file().build_system, f"/usr/bin/{config.python}",
                            uv, runner, cache_root(settings.environ),
                            project_wheel() if project_wheel is not None else None, environ)
    if found is None or found[0] == SETUPTOOLS_PLACEHOLDER:
        return None
    version, origin = found
    log.info("version %s (from %s)", version, origin)
    return check_upstream_version(version, origin)


@dataclass(frozen=True)
class Settled:
    """What a release takes from git, the revision and the environment: all of it but the project's version."""

    state: GitState | None  # None outside git
    revision: str
    dist: dists.Dist
    epoch: int
    changes: tuple[str, ...]


def settle(project: Path, settings: BuildSettings, runner: Runner = run) -> Settled:
    """Read and check everything a release needs but the project's version (which may take the backend's hooks)."""
    state = source.git_state(project, runner)
    return Settled(
        state=state,
        revision=debian_revision(settings.revision, settings.environ.get("BUILD_NUMBER")),
        dist=target(settings),
        epoch=source.source_date_epoch(project, settings.environ, runner),
        changes=tuple(source.change_subjects(project, state, runner)),
    )


def release(project: Path, config: ServiceConfig, settings: BuildSettings, runner: Runner = run,
            settled: Settled | None = None, project_wheel: Callable[[], Path | None] | None = None) -> Release:
    """Version (project, git, revision, release), SOURCE_DATE_EPOCH and changes, the same for every backend.

    The revision ends in the release's +debN (a revision given with it is
    not extended twice), and the changelog names the release's codename.
    `settled`: what `settle` read and checked before, else it is read now;
    `project_wheel`: the wheel the build makes beside it, for a dynamic version (project_version).
    """
    settled = settled or settle(project, settings, runner)
    stated = project_version(project, config, settings, runner, project_wheel)
    upstream = upstream_version(stated, settled.state)
    dist = settled.dist
    version = full_version(upstream, settled.revision.removesuffix(dist.suffix) + dist.suffix)
    return Release(
        name=config.name, maintainer=config.maintainer, upstream=upstream, version=version,
        distribution=dist.codename, epoch=settled.epoch, changes=settled.changes, project_version=stated,
    )
