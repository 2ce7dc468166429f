"""Templates and static files of the project's packages that its checkout has and its wheel leaves out.

A Flask app finds its templates and static files beside its modules. In a
checkout (and an editable install) they are there; the package gets what the
project's wheel holds, and setuptools puts a package's non-Python files into
it only when MANIFEST.in (or a plugin such as setuptools-scm) or
`package-data` names them. A pyproject.toml project with neither builds a
wheel without its templates: the service starts, its health route answers,
and its pages fail with TemplateNotFound.
"""

from __future__ import annotations

import os
import zipfile
from collections import Counter
from pathlib import Path, PurePosixPath

from microdeploy.build.imports import NOT_RUN
from microdeploy.process import Runner, run

# Where Flask looks for them beside a module (Flask's and Blueprint's template_folder and static_folder defaults):
# other directories of a package may hold sources of what the wheel carries built (isso's js/, a frontend/).
_FLASK_FOLDERS = {"templates", "static"}
# Sources of files the wheel carries compiled (style sheets, scripts), or not at all.
_SOURCE_ONLY = {".scss", ".sass", ".less", ".ts", ".tsx", ".jsx", ".vue", ".py", ".pyc", ".pyo", ".pyi"}
# Directories of a package the service does not use as it runs: imports.py's, and what tools leave there.
_NOT_RUN = NOT_RUN | {"__pycache__", "node_modules"}
SHOWN = 5  # directories named at most


def missing(wheel: Path, source: Path, runner: Runner = run) -> dict[str, int]:
    """The templates and static folders of the project's packages (`shopweb/templates/`,
    `shopweb/admin/static/`) with files the checkout at `source` tracks and the wheel lacks, and how many."""
    with zipfile.ZipFile(wheel) as archive:
        members = set(archive.namelist())
    packages = {name.split("/", 1)[0] for name in members if "/" in name and ".dist-info/" not in name
                and ".data/" not in name}
    # Flask looks beside a module: a folder counts where the wheel has modules (isso's js/app/templates/ holds
    # scripts of its own).
    modules_in = {str(PurePosixPath(name).parent) for name in members if name.endswith(".py")}
    gaps: Counter[str] = Counter()
    for package in sorted(packages):
        for where in (source / "src" / package, source / package):
            if where.is_dir():
                for relative in _tracked_files(source, where, runner):
                    inside = PurePosixPath(package, *relative.parts)
                    if not _runs_with(relative) or str(inside) in members:
                        continue
                    folder = next(i for i, part in enumerate(relative.parts) if part in _FLASK_FOLDERS)
                    if str(PurePosixPath(package, *relative.parts[:folder])) in modules_in:
                        gaps[f"{PurePosixPath(package, *relative.parts[:folder + 1])}/"] += 1
                break
    return dict(gaps)


def _tracked_files(source: Path, package: Path, runner: Runner) -> list[PurePosixPath]:
    """The files below `package`, relative to it: those git tracks in a checkout, else every file."""
    if (source / ".git").exists():
        listed = runner(["git", "-C", str(source), "ls-files", "-z", "--", str(package.relative_to(source))],
                        check=False)
        if listed.returncode == 0:
            prefix = PurePosixPath(package.relative_to(source).as_posix())
            return [PurePosixPath(name).relative_to(prefix) for name in listed.stdout.split("\0") if name]
    return [PurePosixPath(os.path.relpath(os.path.join(directory, name), package))
            for directory, _, names in os.walk(package) for name in names]


def _runs_with(relative: PurePosixPath) -> bool:
    folders = relative.parts[:-1]
    return (bool(_FLASK_FOLDERS.intersection(folders)) and relative.suffix not in _SOURCE_ONLY
            and not relative.name.startswith(".") and not _NOT_RUN.intersection(folders))


def said(gaps: dict[str, int]) -> str:
    """The build's warning about `gaps` (missing()'s answer, not empty)."""
    where = ", ".join(f"{directory} ({count} file{'s' if count > 1 else ''})"
                      for directory, count in sorted(gaps.items())[:SHOWN])
    more = f" and {len(gaps) - SHOWN} more" if len(gaps) > SHOWN else ""
    return (f"{where}{more}: in the project's checkout but not in its wheel, so not in the package: the service "
            "cannot load them (a Flask app's templates and static files). With setuptools, name them in MANIFEST.in "
            "(graft src/PACKAGE/templates) or [tool.setuptools.package-data]")
