"""What the build needs to know about the project's source: git state, dates, app."""

from __future__ import annotations

import ast
import fnmatch
import os
import re
import time
from collections.abc import Mapping
from pathlib import Path

from packaging.specifiers import InvalidSpecifier, SpecifierSet

from microdeploy import validate
from microdeploy.apptarget import parse_app
from microdeploy.build.release.version import GitState
from microdeploy.errors import bad_input
from microdeploy.process import Runner, run
from microdeploy.pyproject import Pyproject

PROJECT_FILES = ("pyproject.toml", "setup.py", "setup.cfg")
# The build litter of the project's root (VCS data, venvs, caches, outputs of
# earlier builds): never copied into the build tree, never dated. Only at the
# root: below it, a directory called build/ or dist/ is the project's own
# (a package named `build`, a compiled web UI in static/dist/), and what the
# project's wheel holds is for its build backend to decide.
ROOT_LITTER = (
    ".git", ".hg", ".svn", ".venv", "venv", ".tox", ".nox", "dist", "build", "__pycache__",
    "*.egg-info", ".pytest_cache", ".mypy_cache", ".ruff_cache", "node_modules",
)
# Bytecode is never source, at any depth; it dates nothing.
BYTECODE = ("__pycache__", "*.pyc")
# What git (2.35.2 and later) says of a repository another user owns.
UNTRUSTED_REPOSITORY = ("detected dubious ownership", "unsafe repository")
DESCRIBE_RE = re.compile(r"^v?(?P<version>.+)-(?P<count>\d+)-g(?P<sha>[0-9a-f]+)$")


def check_installable(project: Path) -> None:
    """Refuse a directory that is not a Python project, or that has its own debian/."""
    if not project.is_dir():
        raise bad_input(f"project directory not found: {project}", hint="Pass the path of a Python project")
    if not any((project / name).is_file() for name in PROJECT_FILES):
        bare_app = any(project.glob("*.py")) or (project / "requirements.txt").is_file()
        raise bad_input(
            f"{project} is not a Python project (no pyproject.toml, setup.py or setup.cfg)",
            # A Flask app of loose modules and a requirements.txt: the build needs a project to make a wheel of.
            hint=("Add a pyproject.toml ([build-system], and [project] with name, version, dependencies and the "
                  "modules to install); `microdeploy new NAME` writes one to copy from" if bare_app else
                  "Run microdeploy build in the service's directory, or pass its path"),
        )
    if (project / "debian").exists():
        # Ours is rendered from the service model; two debian/ directories would
        # silently disagree, so refuse rather than pick one.
        raise bad_input(
            f"{project} has its own debian/ directory",
            hint="Remove debian/ (microdeploy renders its own), or build it with dpkg-buildpackage directly",
        )


def check_python(pyproject: Pyproject, python_minor: str, codename: str) -> None:
    """Refuse a project whose [project] requires-python excludes every X.Y.* of the Python the package runs on."""
    requires = pyproject.project.get("requires-python")
    if not isinstance(requires, str):
        return
    try:
        allowed = SpecifierSet(requires)
    except InvalidSpecifier as exc:
        raise bad_input(f"{pyproject.path}: [project] requires-python {requires!r} is not a version specifier",
                        hint="Write it as PEP 440 specifiers, e.g. '>=3.11'") from exc
    # The patch release is the host's to pick: X.Y is refused only when neither end of its range is allowed.
    if not any(allowed.contains(f"{python_minor}.{patch}", prereleases=True) for patch in (0, 99)):
        raise bad_input(
            f"{pyproject.path}: requires-python {requires!r} excludes Python {python_minor}, which the package "
            f"runs on ({codename}'s python{python_minor})",
            hint="Build for a release whose Python it accepts (--dist), or widen requires-python",
        )


def is_git_checkout(project: Path, runner: Runner = run) -> bool:
    """True when `project` is inside a git work tree; exit 2 when git refuses it as another user's.

    git will not run in a repository that another user owns (its safe.directory
    check: the repository's config could run commands as whoever builds). The
    build then must not read it as "no git" (a version, a changelog and dates
    from nowhere) nor let the backend's git run in the build's copy of it.
    """
    result = runner(["git", "-C", str(project), "rev-parse", "--is-inside-work-tree"], check=False)
    if result.returncode != 0 and any(words in result.stderr for words in UNTRUSTED_REPOSITORY):
        raise bad_input(
            f"git refuses {project}: the repository belongs to another user than the one building",
            hint=f"Build as the checkout's owner, or trust it: git config --global --add safe.directory {project}",
        )
    return result.returncode == 0 and result.stdout.strip() == "true"


def git_state(project: Path, runner: Runner = run) -> GitState | None:
    """The last release tag and how far HEAD is past it, or None outside git."""
    if not is_git_checkout(project, runner):
        return None
    head = runner(["git", "-C", str(project), "rev-parse", "--short=7", "HEAD"], check=False)
    if head.returncode != 0:
        return None  # a repository without commits
    described = runner(
        ["git", "-C", str(project), "describe", "--tags", "--long", "--match", "v[0-9]*", "--match", "[0-9]*"],
        check=False,
    )
    match = DESCRIBE_RE.match(described.stdout.strip()) if described.returncode == 0 else None
    if match is None:
        return GitState(None, 0, head.stdout.strip())
    return GitState(match["version"], int(match["count"]), match["sha"][:7])


def change_subjects(project: Path, state: GitState | None, runner: Runner = run) -> list[str]:
    """Commit subjects since the last tag (all recent ones without a tag), newest first."""
    if state is None:
        return []
    revisions = ["-n", "30", "HEAD"]
    if state.tag_version is not None:
        tag = runner(["git", "-C", str(project), "describe", "--tags", "--abbrev=0"], check=False).stdout.strip()
        revisions = [f"{tag}..HEAD"] if tag else revisions
    log = runner(["git", "-C", str(project), "log", "--format=%s", *revisions], check=False)
    return [line for line in log.stdout.splitlines() if line.strip()]


def source_date_epoch(project: Path, environ: Mapping[str, str], runner: Runner = run) -> int:
    """SOURCE_DATE_EPOCH if set, else the time of the last commit, else the newest source file's mtime.

    An unpacked sdist keeps its files' times, so it builds reproducibly too.
    """
    if environ.get("SOURCE_DATE_EPOCH"):
        # Up to 8^11 - 1 (the year 2242): the octal mtime of a ustar header, which microdeploy reads in the
        # package's members (fastpath/tardates.py); tar writes later times in base-256.
        return validate.integer("SOURCE_DATE_EPOCH", environ["SOURCE_DATE_EPOCH"], "the environment",
                                0, 8**11 - 1)
    # Outside a git work tree (or in one without commits) git fails and prints nothing.
    result = runner(["git", "-C", str(project), "log", "-1", "--format=%ct"], check=False)
    if result.returncode == 0 and result.stdout.strip().isdigit():
        return int(result.stdout.strip())
    return newest_mtime(project) or int(time.time())


def newest_mtime(project: Path) -> int:
    """The newest modification time of the project's source files (0 if there are none)."""
    newest = 0
    for directory, subdirs, files in os.walk(project):
        at_root = directory == str(project)

        def left_out(name: str, at_root: bool = at_root) -> bool:
            return matches(name, BYTECODE) or (at_root and root_litter(name))

        subdirs[:] = [name for name in subdirs if not left_out(name)]
        for name in files:
            if not left_out(name):
                newest = max(newest, int(os.lstat(os.path.join(directory, name)).st_mtime))
    return newest


def matches(name: str, patterns: tuple[str, ...]) -> bool:
    """Whether a file or directory name matches one of the glob `patterns`."""
    return any(fnmatch.fnmatch(name, pattern) for pattern in patterns)


def root_litter(name: str) -> bool:
    """Whether an entry of the project's root is build litter (ROOT_LITTER), not source."""
    return matches(name, ROOT_LITTER)


def check_app(project: Path, app: str) -> None:
    """Refuse a WSGI target whose module is not in the project or lacks the attribute."""
    target = parse_app(app)
    module, attribute = target.module, target.attribute
    path = find_module(project, module)
    if path is None:
        raise bad_input(
            f"app module {module!r} (from app {app!r}) is not in {project}",
            hint="Set app to the module and attribute of the WSGI app, e.g. --app 'orders_api.wsgi:app'",
        )
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except SyntaxError as exc:
        raise bad_input(f"cannot parse {path}: {exc}", hint="Fix the syntax error") from exc
    names = top_level_names(tree)
    # A star import, or a module __getattr__ (PEP 562), may give any name.
    if attribute not in names and not {"*", "__getattr__"} & names:
        raise bad_input(
            f"app {app!r}: {module} defines no {attribute!r}",
            hint=f"Set app to a name defined in {path.relative_to(project)}",
        )


def find_module(project: Path, module: str) -> Path | None:
    """The file of `module` in a src/ or flat layout, or None."""
    parts = module.split(".")
    for root in (project / "src", project):
        for candidate in (root.joinpath(*parts).with_suffix(".py"), root.joinpath(*parts, "__init__.py")):
            if candidate.is_file():
                return candidate
    return None


def top_level_names(tree: ast.Module) -> set[str]:
    """Names bound at module level: functions, classes, assignments, imports, also inside the module's if, try,
    with and for blocks, and those a function declares `global`; not a function's or a class's own names
    (flaskcode's cli.py binds `app` only inside its factory)."""
    names: set[str] = set()
    definitions = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    comprehensions = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Lambda):
                continue  # its names are its own
            if isinstance(child, definitions):
                names.add(child.name)
                names.update(name for inner in ast.walk(child) if isinstance(inner, ast.Global)
                             for name in inner.names)
                continue
            if isinstance(child, comprehensions):
                # Their variables are their own; an assignment expression in one binds at module level.
                names.update(inner.target.id for inner in ast.walk(child)
                             if isinstance(inner, ast.NamedExpr) and isinstance(inner.target, ast.Name))
                continue
            if isinstance(child, ast.Name) and isinstance(child.ctx, ast.Store):
                names.add(child.id)
            elif isinstance(child, ast.Import | ast.ImportFrom):
                names.update((alias.asname or alias.name).split(".")[0] for alias in child.names)
            elif isinstance(child, ast.ExceptHandler | ast.MatchAs | ast.MatchStar) and child.name:
                names.add(child.name)
            elif isinstance(child, ast.MatchMapping) and child.rest:
                names.add(child.rest)
            visit(child)

    visit(tree)
    return names
