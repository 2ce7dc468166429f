"""The release a build makes: its version, date and changes, decided the same way for every backend."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from microdeploy.build.release import source
from microdeploy.build.release.changelog import render_changelog
from microdeploy.build.release.settings import BuildSettings
from microdeploy.build.release.version import debian_revision, full_version, upstream_version
from microdeploy.config import ServiceConfig
from microdeploy.process import Runner, run


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
