"""A project's lock (uv.lock, or PEP 751's pylock.toml): what it pins is what the package installs.

A project managed with uv commits uv.lock, and its team expects the versions
in it on the hosts, as `uv sync --locked` gives them. The build exports the
lock's runtime dependencies (no development groups, not the project itself,
nothing editable) as a requirements file and fills the dependency layer from
it; the project's wheel then goes in without resolving anything. A lock that
no longer matches pyproject.toml stops the build, as `uv sync --locked` does
in CI: the package would otherwise ship something nobody locked.

Without uv.lock, a pylock.toml (pip's, uv's or PDM's) is installed from
the same way, as pylock.py says. Other tools' lock files (Poetry's, PDM's
pdm.lock, Pipenv's) are not: the build warns that the package gets the
newest versions the project allows, and names the command that writes the
locked ones to requirements.txt, which the build installs first.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from microdeploy.build.fastpath import pylock
from microdeploy.build.fastpath.contract import UV_SETTINGS
from microdeploy.build.fastpath.pylock import PYLOCK_FILE
from microdeploy.errors import bad_input
from microdeploy.process import Runner, output_tail, run
from microdeploy.pyproject import Pyproject

log = logging.getLogger(__name__)

LOCK_FILE = "uv.lock"
REQUIREMENTS_FILE = "requirements.txt"  # dh_virtualenv installs it first when present
# Other tools' lock files, which the build does not install from, and the command of each tool that writes the
# versions it pins to requirements.txt, which the build installs first.
OTHER_LOCK_FILES = {
    "poetry.lock": "poetry export --format requirements.txt --output requirements.txt",
    "pdm.lock": "pdm export --format requirements --output requirements.txt",
    "Pipfile.lock": "pipenv requirements > requirements.txt",
}


@dataclass(frozen=True)
class Locked:
    """What the project's lock pins, as the build installs it."""

    install: tuple[str, ...]  # uv pip install's arguments for the locked packages
    constraints: Path  # the versions pinned, as a requirements file, for the build's other installs
    alone: bool = False  # uv takes nothing else beside `install` (a pylock.toml)


def is_locked(pyproject: Pyproject) -> bool:
    """Whether the project of `pyproject` has a uv.lock beside its pyproject.toml ([project] is what uv locks)."""
    return bool(pyproject.project) and (pyproject.directory / LOCK_FILE).is_file()


def lock_file(pyproject: Pyproject) -> str | None:
    """The lock the build installs from with uv: uv.lock, else pylock.toml, else None."""
    if is_locked(pyproject):
        return LOCK_FILE
    return PYLOCK_FILE if (pyproject.directory / PYLOCK_FILE).is_file() else None


def locked_requirements(lock: str, uv: str, source: Path, work: Path, project: str, runner: Runner = run,
                        index: Mapping[str, str] | None = None, extras: tuple[str, ...] = ()) -> Locked | None:
    """What `lock` (lock_file's) of the project at `source` pins, written into `work`; None, with a warning, for a
    pylock.toml the build cannot install from. `project`: the project's distribution name."""
    if lock == LOCK_FILE:
        exported = export_lock(uv, source, work / "locked-requirements.txt", runner, index, extras)
        return Locked(("-r", str(exported)), exported)
    found = pylock.layer_lock(source, work / "pylock", project)
    if isinstance(found, str):
        log.warning("%s is not what the package installs: %s. The build resolves the newest versions the project "
                    "allows; to ship the locked ones, write them to %s and commit it", PYLOCK_FILE, found,
                    REQUIREMENTS_FILE)
        return None
    return Locked(("-r", str(found.lock), *(f"--extra={extra}" for extra in extras)), found.constraints, alone=True)


def unused_locks(pyproject: Pyproject) -> list[str]:
    """A warning for each lock file beside pyproject.toml that the build does not install from: without uv.lock,
    pylock.toml or requirements.txt, the package gets the newest versions the project allows, not the ones its team
    locked."""
    project = pyproject.directory
    if lock_file(pyproject) is not None or (project / REQUIREMENTS_FILE).is_file():
        return []
    warnings = []
    for name, export in OTHER_LOCK_FILES.items():
        if (project / name).is_file():
            warnings.append(f"{name} is not what the package installs: the build resolves the newest versions "
                            f"the project allows. To ship the locked ones, write them to {REQUIREMENTS_FILE} "
                            f"({export}) and commit it, or lock with uv ({LOCK_FILE}) or in a {PYLOCK_FILE}")
    return warnings


def export_lock(uv: str, source: Path, dest: Path, runner: Runner = run, index: Mapping[str, str] | None = None,
                extras: tuple[str, ...] = ()) -> Path:
    """Write the runtime requirements uv.lock pins for the project at `source` (with those of its `extras`) to
    `dest`; exit 2 if the lock is out of date with pyproject.toml (or unreadable). `index`: the package sources of
    the build's other uv runs (pipindex.py), against which uv checks the lock."""
    result = runner(
        [uv, "export", "--quiet", "--locked", "--no-dev", "--no-emit-project", "--no-editable", "--no-hashes",
         "--no-header", "--no-annotate", *(f"--extra={extra}" for extra in extras), "--format", "requirements.txt",
         "--project", str(source), "--output-file", str(dest)],
        env={**UV_SETTINGS, **(index or {})}, check=False,
    )
    if result.returncode != 0:
        raise bad_input(
            f"{LOCK_FILE} cannot be used as it is:\n{output_tail(result.stderr or result.stdout, 10)}",
            hint=f"Run `uv lock` in the project and commit {LOCK_FILE} (the package installs what it pins)",
        )
    return dest
