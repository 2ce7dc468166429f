"""The stdeb backend: a pure-Python library as `python3-NAME` for the system interpreter.

Services get their own venv (dh-virtualenv); small libraries that several
services share belong in system Python instead. stdeb's `sdist_dsc` writes a
debian/ directory (pybuild + dh_python3, which maps requires.txt to Debian
package names), microdeploy replaces its changelog with one from the service
model (version, maintainer, SOURCE_DATE_EPOCH), and dpkg-buildpackage builds
the binary package. Compiled code and WSGI apps are refused: they need the venv.
"""

from __future__ import annotations

import ast
import logging
import shutil
import time
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any

from microdeploy import dists
from microdeploy.build import buildroot
from microdeploy.build.debiandir.tree import copy_source, date_tree
from microdeploy.build.dpkg import Artifacts, build_environment, build_jobs, collect, run_build_step
from microdeploy.build.output import BuildResult, move_in, output_directory, prepare_output
from microdeploy.build.release import source
from microdeploy.build.release.license import stated_license
from microdeploy.build.release.plan import release, target
from microdeploy.build.release.settings import BuildSettings
from microdeploy.build.stdeb_debian import LibraryPlan, finish_debian
from microdeploy.build.stdeb_names import debian_package
from microdeploy.build.stdeb_sdist import read_sdist
from microdeploy.config import ServiceConfig, load_config, read_project_file
from microdeploy.errors import MicrodeployError, bad_input
from microdeploy.fsutil import atomic_write, private_directory
from microdeploy.process import Runner, require_tools, run
from microdeploy.pyproject import Pyproject

log = logging.getLogger(__name__)

NAME = "stdeb"
SYSTEM_PYTHON = "/usr/bin/python3"
# py2dsc stands for the stdeb module (both come with python3-stdeb); dh_python3
# and pybuild come with dh-python.
BUILD_TOOLS = ("dpkg-buildpackage", "dh", "dh_python3", "fakeroot", "py2dsc")
# What a build root of another release needs beyond buildroot's packages.
ROOT_PACKAGES = ("python3-all", "python3-setuptools", "python3-stdeb")
# debhelper 13 is bookworm's; stdeb's default (9) is deprecated.
DEBHELPER_COMPAT = "13"
COMPILED_SOURCES = (".c", ".cc", ".cpp", ".cxx", ".pyx")
COMPILED_OBJECTS = (".so", ".pyd")
EXTENSION_CALLS = frozenset({"Extension", "Pybind11Extension", "cythonize", "CTypes", "RustExtension"})
VENV_HINT = "Build it with the default dh-virtualenv backend: drop --backend stdeb"
# What the library itself cannot be built into: dh-virtualenv makes services, not system libraries.
IN_A_SERVICE = ("list it in the dependencies of the service that uses it: the default dh-virtualenv backend "
                "installs its wheel into that service's venv")
LIBRARY_HINT = f"The system python3 gets pure-Python libraries only; {IN_A_SERVICE}"

# Written as setup.py into the build copy of a pyproject-only setuptools
# project: stdeb runs setup.py (the shim also lets Debian 12's setuptools read
# a PEP 639 license string).
SETUP_SHIM = Path(__file__).with_name("setuptools_shim.py")

# Runs setup.py for stdeb 0.10 (Debian 12), which tests for distutils' old
# 'UNKNOWN' placeholder: setuptools 66 returns None for a missing long
# description (stdeb then crashes) or URL (it writes `Homepage: None`).
STDEB_COMPAT = """\
import distutils.dist
import runpy
import sys

import setuptools

metadata = distutils.dist.DistributionMetadata
for getter in ("get_long_description", "get_url"):
    original = getattr(metadata, getter)
    setattr(metadata, getter, lambda self, original=original: original(self) or "UNKNOWN")
sys.argv = sys.argv[1:]
runpy.run_path("setup.py", run_name="__main__")
"""


def check_no_app(project: Path, overrides: Mapping[str, Any], pyproject: Pyproject) -> None:
    """Refuse a project that configures a WSGI app: a service needs its venv and unit."""
    _, tool_table, origin = read_project_file(project, pyproject)
    if "app" in tool_table or overrides.get("app"):
        where = "--app" if overrides.get("app") else f"{origin} key 'app'"
        app = overrides.get("app") or tool_table["app"]
        raise bad_input(
            f"the stdeb backend packages libraries, but {project} configures the WSGI app {app!r} ({where})",
            hint=VENV_HINT,
        )


def check_pure(project: Path, pyproject: Pyproject) -> None:
    """Refuse a project with compiled code: ext_modules, C/C++/Cython sources, a non-setuptools build."""
    setup_py = project / "setup.py"
    if setup_py.is_file():
        calls = extension_markers(setup_py)
        if calls:
            raise bad_input(
                f"{setup_py} builds compiled extensions ({', '.join(sorted(calls))}); "
                "the stdeb backend packages pure-Python libraries only",
                hint=LIBRARY_HINT,
            )
    if "ext-modules" in pyproject.tool("setuptools"):
        raise bad_input(
            f"{pyproject.path} declares [tool.setuptools] ext-modules; "
            "the stdeb backend packages pure-Python libraries only",
            hint=LIBRARY_HINT,
        )
    compiled = compiled_sources(project)
    if compiled:
        shown = ", ".join(str(path.relative_to(project)) for path in compiled[:3])
        raise bad_input(
            f"{project} contains compiled-language sources ({shown}{', ...' if len(compiled) > 3 else ''}); "
            "the stdeb backend packages pure-Python libraries only",
            hint=LIBRARY_HINT,
        )
    backend = pyproject.build_system
    if not setup_py.is_file() and not backend.setuptools:
        raise bad_input(
            f"{pyproject.path} builds with {backend.backend!r}; stdeb builds setuptools projects only",
            hint=f"Switch [build-system] to setuptools.build_meta, or {IN_A_SERVICE}",
        )


def extension_markers(setup_py: Path) -> set[str]:
    """The names in setup.py that declare compiled extensions (an ext_modules argument, Extension(...))."""
    try:
        tree = ast.parse(setup_py.read_text(encoding="utf-8"), filename=str(setup_py))
    except SyntaxError as exc:
        raise bad_input(f"cannot parse {setup_py}: {exc}", hint="Fix the syntax error") from exc
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "ext_modules":
            found.add("ext_modules")
        elif isinstance(node, ast.Call):
            func = node.func
            called = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            if called in EXTENSION_CALLS:
                found.add(f"{called}()")
    return found


def compiled_sources(project: Path) -> list[Path]:
    """C, C++ and Cython sources of the project (outside VCS data, venvs and build outputs)."""
    found = []
    for path in sorted(project.rglob("*")):
        relative = path.relative_to(project).parts
        if source.root_litter(relative[0]) or source.matches(path.name, source.BYTECODE):
            continue
        if path.suffix in COMPILED_SOURCES and path.is_file():
            found.append(path)
    return found


def sdist_argv(dist_dir: Path) -> list[str]:
    """setup.py sdist into our work directory (stdeb would leave a copy in the project)."""
    return [SYSTEM_PYTHON, "setup.py", "--quiet", "sdist", "--dist-dir", str(dist_dir)]


def sdist_dsc_argv(plan: LibraryPlan, dist_dir: Path, sdist: Path) -> list[str]:
    """stdeb's sdist_dsc: debian/ for python3-NAME from setup.py, names and relations from the model."""
    argv = [
        SYSTEM_PYTHON, "-c", STDEB_COMPAT, "setup.py", "--quiet", "--command-packages=stdeb.command", "sdist_dsc",
        "--dist-dir", str(dist_dir), "--use-premade-distfile", str(sdist),
        "--source", plan.source, "--package3", plan.package,
        "--maintainer", plan.config.maintainer, "--suite3", plan.release.distribution,
        "--section", "python", "--compat", DEBHELPER_COMPAT,
    ]  # fmt: skip
    if plan.config.depends:
        argv += ["--depends3", ", ".join(plan.config.depends)]
    if plan.config.build_depends:
        argv += ["--build-depends", ", ".join(plan.config.build_depends)]
    return argv


def dpkg_buildpackage_argv(environ: Mapping[str, str]) -> list[str]:
    """The binary-only, unsigned build of the stdeb tree."""
    return ["dpkg-buildpackage", "--build=binary", "--no-sign", f"--jobs={build_jobs(environ)}"]


def compression_environment(config: ServiceConfig) -> dict[str, str]:
    """compression and its level for stdeb's debian/rules, which is not ours to edit: dpkg-deb reads these
    (dpkg >= 1.21.10)."""
    return {"DPKG_DEB_COMPRESSOR_TYPE": config.compression, "DPKG_DEB_COMPRESSOR_LEVEL": str(config.compression_level)}


def plan(settings: BuildSettings, runner: Runner = run) -> LibraryPlan:
    """Validate the library project and decide its version before any file is written."""
    project = settings.project.resolve() if settings.project.exists() else settings.project
    source.check_installable(project)
    pyproject = settings.project_file()
    check_no_app(project, settings.overrides, pyproject)
    check_pure(project, pyproject)
    config = load_config(project, settings.overrides, pyproject)
    if config.extras:
        # python3-NAME has no venv to install them into: an extra's dependencies are other Debian packages.
        raise bad_input(f"the stdeb backend installs no extras ({', '.join(config.extras)})",
                        hint="Add the Debian packages the extras need to depends, or build a service with its venv "
                             "(drop --backend stdeb)")
    named = bool(settings.overrides.get("name") or pyproject.tool("microdeploy").get("name"))
    return LibraryPlan(config, release(project, config, settings, runner), stated_license(pyproject), named)


def build(settings: BuildSettings, runner: Runner = run) -> BuildResult:
    """Build the library's python3-NAME .deb and put it with its .buildinfo and .changes into the output.

    Here for this machine's own release, else in the release's clean root (as
    the dh-virtualenv backend does).
    """
    dist = target(settings)
    if dist == dists.host_dist() and not settings.clean_root:
        return build_in_root(settings, runner)
    extra = (load_config(settings.project, settings.overrides, settings.project_file()).build_depends
             if settings.project.is_dir() else ())
    with buildroot.cached_root(dist, (*ROOT_PACKAGES, *extra), environ=settings.environ,
                               refresh=settings.refresh_root, runner=runner) as tree:
        return build_in_root(settings, runner, tree)


def build_in_root(settings: BuildSettings, runner: Runner = run, root: Path | None = None) -> BuildResult:
    """Build here (`root` None), or in the build root `root`."""
    started = time.monotonic()
    library = plan(settings, runner)
    library = replace(library, debian_package=debian_package(library.source, root or Path("/")))
    out = output_directory(settings)
    if root is None:
        require_tools(*BUILD_TOOLS)
    staging = prepare_output(out)
    log.info("building %s %s (stdeb)", library.source, library.version)
    work = private_directory(f"microdeploy-{library.source}", settings.work_dir)
    try:
        with ExitStack() as stack:
            if root is not None:
                runner = stack.enter_context(buildroot.entered(root, work, [work], runner))
            library, built = _build_in(work, settings.project, library, settings.environ, runner)
        check_built_pure(built.deb.parent, library.package)
        artifacts = move_in(built, staging, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(staging, ignore_errors=True)
    return BuildResult.of(library.package, library.version, artifacts, started)


def _build_in(work: Path, project: Path, library: LibraryPlan, environ: Mapping[str, str],
              runner: Runner) -> tuple[LibraryPlan, Artifacts]:
    """sdist, sdist_dsc, our changelog, dpkg-buildpackage, all inside `work`; the plan with the library's modules
    (which name its package), and what was built."""
    copy = work / "src"
    copy_source(project, copy)
    setup_py = copy / "setup.py"
    own = setup_py.read_text(encoding="utf-8") if setup_py.is_file() else None
    atomic_write(setup_py, with_shim(own))
    date_tree(copy, library.release.epoch)  # the sdist, and so the package, keeps these times
    env = build_environment(environ, library.release.epoch)
    if library.release.project_version:
        # setuptools-scm's override, which the setup.py shim reads where setuptools-scm is not installed: the
        # library's metadata says its version, not 0.0.0.
        env["SETUPTOOLS_SCM_PRETEND_VERSION"] = library.release.project_version
    dist_dir = work / "deb"
    run_build_step(sdist_argv(work / "sdist"), copy, env, "setup.py sdist", runner)
    sdists = sorted((work / "sdist").glob("*.tar.gz"))
    if len(sdists) != 1:
        raise MicrodeployError(f"expected one source tarball from setup.py sdist, found {len(sdists)}")
    facts = read_sdist(sdists[0])
    library = replace(library, modules=facts.modules, floors=facts.floors)
    run_build_step(sdist_dsc_argv(library, dist_dir, sdists[0]), copy, env, "stdeb sdist_dsc", runner)
    trees = sorted(path.parent.parent for path in dist_dir.glob("*/debian/control"))
    if len(trees) != 1:
        raise MicrodeployError(f"expected one debian/ tree from stdeb in {dist_dir}, found {len(trees)}")
    finish_debian(trees[0] / "debian", library, facts.scripts)
    log.info("dpkg-buildpackage (stdeb) in %s", trees[0])
    run_build_step(dpkg_buildpackage_argv(environ), trees[0], {**env, **compression_environment(library.config)},
                   "dpkg-buildpackage", runner)
    return library, collect(dist_dir, library.package, library.source)


def with_shim(own: str | None) -> str:
    """The build copy's setup.py: the shim (setuptools_shim.py), or the project's own `own` with the shim's patches
    run first (after its `from __future__` imports, which must come first): every step of the build runs setup.py,
    pybuild's too, and Debian 12's setuptools needs them for a PEP 639 pyproject.toml (python-slugify's setup.py is
    a bare `setup()`)."""
    shim = SETUP_SHIM.read_text(encoding="utf-8")
    if own is None:
        return shim
    # The shim's functions, then the patches its __main__ applies before its own setup().
    functions, _, main = shim.partition('\nif __name__ == "__main__":')
    calls = [line.strip() for line in main.splitlines() if line.strip() and line.strip() != "setuptools.setup()"]
    patches = functions.rstrip("\n") + "\n\n\n" + "".join(f"{call}\n" for call in calls) + "\n\n"
    lines = own.splitlines(keepends=True)
    future = [node.end_lineno or node.lineno for node in ast.parse(own).body
              if isinstance(node, ast.ImportFrom) and node.module == "__future__"]
    after = max(future, default=0)
    return "".join(lines[:after]) + patches + "".join(lines[after:])


def check_built_pure(dist_dir: Path, package: str) -> None:
    """Refuse what turned out compiled after all (a Rust or cffi build, a non-pure wheel): nothing is published."""
    staged = [path for path in sorted(dist_dir.glob(f"*/debian/{package}/**/*")) if path.suffix in COMPILED_OBJECTS]
    arch_any = [path for path in dist_dir.glob(f"{package}_*.deb") if not path.name.endswith("_all.deb")]
    if staged or arch_any:
        shown = ", ".join(path.name for path in [*staged, *arch_any][:3])
        raise bad_input(
            f"the build of {package} produced compiled files ({shown}); "
            "the stdeb backend packages pure-Python libraries only",
            hint=LIBRARY_HINT,
        )

