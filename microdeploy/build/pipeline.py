"""`microdeploy build`: the backend a build asks for, from a project directory to dist/."""

from __future__ import annotations

from dataclasses import replace

from microdeploy import dists
from microdeploy.build import dhvirtualenv
from microdeploy.build.output import BuildResult
from microdeploy.build.release.settings import BACKENDS, BuildSettings
from microdeploy.build.release.source import check_installable
from microdeploy.config import load_config
from microdeploy.errors import bad_input
from microdeploy.process import Runner, run
from microdeploy.pyproject import read_pyproject


def build_releases(settings: BuildSettings, runner: Runner = run) -> list[BuildResult]:
    """One build per release asked for: --dist (in the overrides), else the config's dist, else this machine's."""
    # The project is checked first: its config is read for `dist`, and a
    # directory that is not a project must say so, not "has no name".
    check_installable(settings.project)
    settings = with_pyproject(settings)
    configured = load_config(settings.project, settings.overrides, settings.pyproject).dist
    return [build(replace(settings, dist=dist.codename), runner) for dist in dists.chosen(configured)]


def with_pyproject(settings: BuildSettings) -> BuildSettings:
    """`settings` with the project's pyproject.toml read: the one time a build reads it."""
    if settings.pyproject is not None:
        return settings
    return replace(settings, pyproject=read_pyproject(settings.project))


def build(settings: BuildSettings, runner: Runner = run) -> BuildResult:
    """Build the .deb and put it with its .buildinfo and .changes into the output directory."""
    settings = with_pyproject(settings)
    if settings.backend == "dh-virtualenv":
        return dhvirtualenv.build(settings, runner)
    if settings.backend == "stdeb":
        # Loaded for libraries only: it loads python-debian, which a service's
        # build needs only once its project wheel has started.
        from microdeploy.build import stdeb

        return stdeb.build(settings, runner)
    raise bad_input(f"unknown build backend {settings.backend!r}", hint=f"Use one of: {', '.join(BACKENDS)}")
