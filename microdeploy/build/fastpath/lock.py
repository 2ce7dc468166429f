"""A project's uv.lock: what its lock pins is what the package installs.

A project managed with uv commits uv.lock, and its team expects the versions
in it on the hosts, as `uv sync --locked` gives them. The build exports the
lock's runtime dependencies (no development groups, not the project itself,
nothing editable) as a requirements file and fills the dependency layer from
it; the project's wheel then goes in without resolving anything. A lock that
no longer matches pyproject.toml stops the build, as `uv sync --locked` does
in CI: the package would otherwise ship something nobody locked.

Other tools' lock files (Poetry's, PDM's, Pipenv's, pylock.toml) are not
installed from: the build warns that the package gets the newest versions
the project allows, and names the command that writes the locked ones to
requirements.txt, which the build installs first.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from microdeploy.build.fastpath.contract import UV_SETTINGS
from microdeploy.errors import bad_input
from microdeploy.process import Runner, output_tail, run
from microdeploy.pyproject import Pyproject

LOCK_FILE = "uv.lock"
REQUIREMENTS_FILE = "requirements.txt"  # dh_virtualenv installs it first when present
# Other tools' lock files, which the build does not install from, and the command of each tool that writes the
# versions it pins to requirements.txt, which the build installs first (None: no one command for every tool that
# writes the file; pip, PDM and uv write pylock.toml).
OTHER_LOCK_FILES = {
    "poetry.lock": "poetry export --format requirements.txt --output requirements.txt",
    "pdm.lock": "pdm export --format requirements --output requirements.txt",
    "Pipfile.lock": "pipenv requirements > requirements.txt",
    "pylock.toml": None,
}


def is_locked(pyproject: Pyproject) -> bool:
    """Whether the project of `pyproject` has a uv.lock beside its pyproject.toml ([project] is what uv locks)."""
    return bool(pyproject.project) and (pyproject.directory / LOCK_FILE).is_file()


def unused_locks(pyproject: Pyproject) -> list[str]:
    """A warning for each lock file beside pyproject.toml that the build does not install from: without uv.lock
    or requirements.txt, the package gets the newest versions the project allows, not the ones its team locked."""
    project = pyproject.directory
    if is_locked(pyproject) or (project / REQUIREMENTS_FILE).is_file():
        return []
    warnings = []
    for name, export in OTHER_LOCK_FILES.items():
        if (project / name).is_file():
            how = f" ({export})" if export else ""
            warnings.append(f"{name} is not what the package installs: the build resolves the newest versions "
                            f"the project allows. To ship the locked ones, write them to {REQUIREMENTS_FILE}{how} "
                            f"and commit it, or lock with uv ({LOCK_FILE})")
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
