"""A project's uv.lock: what its lock pins is what the package installs.

A project managed with uv commits uv.lock, and its team expects the versions
in it on the hosts, as `uv sync --locked` gives them. The build exports the
lock's runtime dependencies (no development groups, not the project itself,
nothing editable) as a requirements file and fills the dependency layer from
it; the project's wheel then goes in without resolving anything. A lock that
no longer matches pyproject.toml stops the build, as `uv sync --locked` does
in CI: the package would otherwise ship something nobody locked.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from microdeploy.build.fastpath.contract import UV_SETTINGS
from microdeploy.errors import bad_input
from microdeploy.process import Runner, output_tail, run
from microdeploy.pyproject import Pyproject

LOCK_FILE = "uv.lock"


def is_locked(pyproject: Pyproject) -> bool:
    """Whether the project of `pyproject` has a uv.lock beside its pyproject.toml ([project] is what uv locks)."""
    return bool(pyproject.project) and (pyproject.directory / LOCK_FILE).is_file()


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
