"""The version setuptools-scm gives a project that lies below the top of its git repository (a monorepo's service).

The build works on a copy of the project (debiandir/tree.copy_source), which
reaches the checkout's git only through a .git at the project's own top. A
project whose [tool.setuptools_scm] looks above itself (root = "../..") finds
no git from the copy, and its backend fails. setuptools-scm is then asked in
the checkout itself, with the project's own configuration and the
setuptools-scm of its build requirements, and the builds of the copy get the
answer as SETUPTOOLS_SCM_PRETEND_VERSION_FOR_<NAME>: setuptools-scm reads it
for that distribution only, so dependencies built from source keep their own.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

from microdeploy.build.fastpath.installer import Installer
from microdeploy.build.release.metadata import requirements_venv
from microdeploy.errors import MicrodeployError
from microdeploy.process import Runner
from microdeploy.pyproject import Pyproject

log = logging.getLogger(__name__)

PRETEND = "SETUPTOOLS_SCM_PRETEND_VERSION"
# Settings that make setuptools-scm write a file (into the checkout): left out, as the question only reads.
WRITES = ("write_to", "write_to_template", "version_file", "version_file_template")
# get_version's keyword arguments are the [tool.setuptools_scm] keys, in every setuptools-scm since 6.
ASK = "import json, sys\nfrom setuptools_scm import get_version\nprint(get_version(**json.loads(sys.argv[1])))\n"


def pretend_variable(name: str) -> str:
    """setuptools-scm's variable for the version of distribution `name` (its own spelling of the name)."""
    return f"{PRETEND}_FOR_{re.sub(r'[-_.]+', '_', name).upper()}"


def uses_setuptools_scm(pyproject: Pyproject) -> bool:
    """Whether the project's version comes from setuptools-scm: a [tool.setuptools_scm] table, even empty."""
    tools = pyproject.data.get("tool")
    return isinstance(tools, Mapping) and "setuptools_scm" in tools and isinstance(pyproject.project.get("name"), str)


def repository_top(pyproject: Pyproject, environ: Mapping[str, str], runner: Runner) -> Path | None:
    """The top of the git work tree the project lies below, when its version must be asked there; else None.

    None also when the caller gives setuptools-scm a version (any
    SETUPTOOLS_SCM_PRETEND_VERSION variable): theirs stands.
    """
    project = pyproject.directory
    if not uses_setuptools_scm(pyproject) or (project / ".git").exists():
        return None  # a .git at the project's top is linked into the copy
    if any(key == PRETEND or key.startswith(f"{PRETEND}_FOR_") for key in environ):
        return None
    result = runner(["git", "-C", str(project), "rev-parse", "--show-toplevel"], check=False)
    if result.returncode != 0 or not result.stdout.strip():
        return None
    top = Path(result.stdout.strip()).resolve()
    return top if top != project.resolve() else None


def scm_options(pyproject: Pyproject) -> dict[str, Any]:
    """get_version's arguments: the project's [tool.setuptools_scm] but what writes files, relative to the project."""
    options = {key.replace("-", "_"): value for key, value in pyproject.tool("setuptools_scm").items()}
    for key in WRITES:
        options.pop(key, None)
    # setuptools-scm takes `root` relative to the directory of `relative_to`, as it does in a build.
    options["relative_to"] = str(pyproject.path.resolve())
    return options


def pretend_version(pyproject: Pyproject, python: Callable[[], Path | None], runner: Runner) -> dict[str, str]:
    """{SETUPTOOLS_SCM_PRETEND_VERSION_FOR_<NAME>: the version setuptools-scm gives the checkout}, or {}.

    `python`: makes (or finds) an interpreter with the project's build
    requirements, setuptools-scm among them. {} when setuptools-scm cannot
    tell either: the build then fails with its words and dpkg.failure_hint's.
    """
    interpreter = python()
    if interpreter is None:
        return {}
    result = runner([str(interpreter), "-c", ASK, json.dumps(scm_options(pyproject))],
                    cwd=pyproject.directory.resolve(), check=False)
    lines = result.stdout.strip().splitlines()
    version = lines[-1].strip() if result.returncode == 0 and lines else None
    try:
        Version(version or "")
    except InvalidVersion:
        version = None
    if version is None:
        log.debug("setuptools-scm gave no version in the checkout: %s", result.stderr.strip())
        return {}
    log.info("version %s from setuptools-scm in the checkout (the project is below the top of its repository)",
             version)
    return {pretend_variable(str(pyproject.project["name"])): version}


def build_requirements_python(installer: Installer, pyproject: Pyproject, name: str, python: str, work: Path,
                              runner: Runner) -> Path | None:
    """An interpreter with the project's build requirements: the cached build environment's (which the project's
    wheel is then built in), else a venv of them in `work`; None if they cannot be installed."""
    maker = installer.project_wheel(name, python, runner)
    if maker is not None:
        environment = maker.build_environment()
        maker.wait()
        return environment / "bin" / "python" if environment is not None else None
    try:
        return requirements_venv(work / "build-requirements", python, None, pyproject.build_system.requires, runner)
    except MicrodeployError as exc:
        log.debug("no venv of the build requirements: %s", exc)
        return None


def checkout_version(pyproject: Pyproject, installer: Installer, name: str, python: str, work: Path,
                     runner: Runner) -> dict[str, str]:
    """pretend_version, asked with the build requirements' interpreter (build_requirements_python), in the
    environment of the build's uv runs (Installer.uv_runner)."""
    requirements = partial(build_requirements_python, installer, pyproject, name, python, work, runner)
    return pretend_version(pyproject, requirements, installer.uv_runner(runner))
