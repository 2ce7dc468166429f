"""dpkg-buildpackage and dpkg's generators over a build tree, for both backends; what a failed build says."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from packaging.utils import canonicalize_name

from microdeploy.build import records
from microdeploy.build.debiandir.context import WSGI_SERVER
from microdeploy.build.fastpath.contract import PACKAGE_BUILT_FILE, PIP_TOOL, PLAIN_PIP_TOOL
from microdeploy.errors import MicrodeployError, bad_input
from microdeploy.process import Result, Runner, output_tail, require_tools, run

log = logging.getLogger(__name__)

BUILD_TOOLS = ("dpkg-buildpackage", "dpkg-checkbuilddeps", "dh", "dh_virtualenv", "fakeroot")
# Lines of a failed build that say why; the rest is debhelper chatter.
# pip's words and uv's ("No solution found", its "cause:" and "help:" lines), and the pip tools' own.
REASON_RE = re.compile(
    r"(ERROR|error:|Error:|Unmet build dependencies|No matching distribution|Could not find a version"
    r"|ResolutionImpossible|No solution found|^\s*(cause|help|hint):|conflict|not found|No such file"
    rf"|ModuleNotFoundError|{PIP_TOOL}:|{PLAIN_PIP_TOOL}:)",
)
RESOLUTION_FAILURES = ("No matching distribution", "ResolutionImpossible", "No solution found")
# uv's and pip's words when the WSGI server microdeploy adds is among the requirements that conflict.
WSGI_CONFLICT = re.compile(rf"(?:you require|The user requested) {re.escape(WSGI_SERVER)}\b")
# The installer's words for a line of the project's requirements file that is not a requirement: uv's, and pip's
# (pip 23's on one line; pip 26's with the line and a caret between the reason and "(from line N of FILE)").
BAD_REQUIREMENT = re.compile(r"Couldn't parse requirement in `(?P<uv>[^`]+)`|Invalid requirement: [^\n]*"
                             r"(?:\n[^\n]*){0,3}?\(from line (?P<line>\d+) of (?P<pip>[^)]+)\)")
# uv's and pip's words when no release of a requirement is on the indexes at all (MLflow 3.18.0 pins an
# mlflow-tracing==3.18.0 that the index did not have yet; a private package on another index).
NOT_ON_INDEX = re.compile(r"there is no version of (?P<uv>[A-Za-z0-9._-]+[^\s,]*)|"
                          r"(?P<unknown>[A-Za-z0-9._-]+) was not found in the package registry|"
                          r"No matching distribution found for (?P<pip>\S+)")
# uv's and pip's words when the package index did not answer: pip goes on to "No matching distribution".
INDEX_FAILURES = ("Failed to fetch:", "could not be queried", "connection broken by", "Could not fetch URL")
# setuptools-scm's words (hatch-vcs quotes them) when it finds no git above the project's copy.
VCS_VERSION_FAILURE = "setuptools-scm was unable to detect version"
# uv's and pip's words when a distribution failed to build from source: a dependency without a wheel for the
# release's Python, or the project itself (uv names a source tree NAME @ file://PATH).
SOURCE_BUILD_FAILURE = re.compile(
    r"Failed to build `(?P<uv>[A-Za-z0-9._-]+)(?:==(?P<version>[^`\s]+))?(?P<tree> @ file://)?"
    r"|Failed building wheel for (?P<pip>[A-Za-z0-9._-]+)")
# A source build's words for something of the system it lacks (a header, a library, a tool, a -dev package):
# Build-Depends help there.
SYSTEM_LACKS = re.compile(
    r"fatal error: \S+: No such file or directory|cannot find -l\S+|not found|Can ?not find|can't find"
    r"|development packages? (?:are|is) installed"
    r"|No such file or directory: '[^']*(?:config|gcc|cc|g\+\+|rustc|cargo)'",
    re.IGNORECASE)
# A source build's words for code that no longer builds for the release's Python, whatever the system has: a
# setuptools feature it dropped (markupsafe 1.0's Feature, PyYAML 5.4.1's cython_sources), a C API it changed
# (psycopg2 2.8.4's lvalue assignment to Py_TYPE).
CODE_NO_LONGER_BUILDS = re.compile(
    r"cannot import name|has no attribute|error: lvalue required|implicit declaration of function"
    r"|error: too (?:few|many) arguments|incompatible pointer type|undeclared \(first use")
# How often the finisher looks for debian/rules' mark that the package is written (seconds).
FINISH_POLL = 0.005
# Variables of the caller's Python that must not leak into the build's interpreters.
SCRUBBED = ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONUSERBASE", "CONDA_PREFIX")
# A calling make's variables (a CI job's `make release`): its jobserver is not debian/rules' own, and
# dpkg-genbuildinfo, run inside debian/rules without make's variables, would not record the same build.
CALLERS_MAKE = ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")


@dataclass(frozen=True)
class Artifacts:
    """The files dpkg-buildpackage produced."""

    deb: Path
    buildinfo: Path
    changes: Path


def build_environment(environ: Mapping[str, str], epoch: int) -> dict[str, str]:
    """The environment of dpkg-buildpackage: system tools first, reproducible, no dbgsym, no caller's make."""
    env = {key: value for key, value in environ.items() if key not in SCRUBBED and key not in CALLERS_MAKE}
    env["PATH"] = "/usr/sbin:/usr/bin:/sbin:/bin"  # never a pyenv or venv python
    env["SOURCE_DATE_EPOCH"] = str(epoch)
    # parallel= is set by dpkg-buildpackage from --jobs (build_jobs).
    env["DEB_BUILD_OPTIONS"] = " ".join(["noautodbgsym", "nocheck", environ.get("DEB_BUILD_OPTIONS", "")]).strip()
    env["LC_ALL"] = "C.UTF-8"
    env["TZ"] = "UTC"
    return env


def build_jobs(environ: Mapping[str, str]) -> str:
    """dpkg-buildpackage's --jobs: the caller's DEB_BUILD_OPTIONS parallel=N (the last one), else auto.

    --jobs replaces parallel= in DEB_BUILD_OPTIONS, so passing auto would
    override a caller who asked for a serial build with parallel=1.
    """
    asked = re.findall(r"(?:^|\s)parallel=(\d+)(?=\s|$)", environ.get("DEB_BUILD_OPTIONS", ""))
    return asked[-1] if asked and int(asked[-1]) > 0 else "auto"


def dpkg_buildpackage(tree: Path, environ: Mapping[str, str], epoch: int, runner: Runner = run,
                      finish: Callable[[], None] | None = None, project: str | None = None,
                      lock: str | None = None) -> None:
    """Build the binary package of `tree`, its .buildinfo and .changes; raise with the relevant lines if it fails.

    dpkg-buildpackage sets up the build environment and runs `debian/rules
    binary` (--rules-target), which also runs dpkg's own generators of the
    .buildinfo and .changes, with the names and contents a whole
    dpkg-buildpackage run gives them (records.py). What is left out is
    `dpkg-source --before-build` and `--after-build`: with no patches in the
    rendered debian/ they have nothing to do but start two more Perl
    programs. `finish`, if given, works on the package (compresses it)
    before its checksums go into the records: from the moment debian/rules
    has written it, while dpkg's generators run on their stand-in (Finisher). `project`: the project's
    distribution name, if known, so that a failure of its own build is told from a dependency's; `lock`: the lock
    file the build installs from, if any (lock.lock_file).
    """
    require_tools(*BUILD_TOOLS)
    env = build_environment(environ, epoch)
    argv = ["dpkg-buildpackage", "--rules-target=binary", "--no-sign", f"--jobs={build_jobs(environ)}"]
    if finish is None:
        run_build_step(argv, tree, env, "dpkg-buildpackage", runner, project, lock)
    else:
        finisher = Finisher(tree / "debian" / PACKAGE_BUILT_FILE, finish)
        built = False
        try:
            run_build_step(argv, tree, env, "dpkg-buildpackage", runner, project, lock)
            built = True
        finally:
            finisher.close(finish_now=built)
    records.finish(tree, single_file(tree.parent, "*.deb"))


class Finisher:
    """Runs `finish` on a thread once `mark` exists (debian/rules makes it when the package is written), beside
    the rest of the build: dpkg's generators, which work on a stand-in for the package."""

    def __init__(self, mark: Path, finish: Callable[[], None]) -> None:
        self.mark = mark
        self.finish = finish
        self.stopped = threading.Event()
        self.finished = False
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._watch, name="finish-package", daemon=True)
        self.thread.start()

    def _watch(self) -> None:
        while not self.stopped.is_set():
            if self.mark.exists():
                try:
                    self.finish()
                except BaseException as exc:  # raised again by close(), in the build's own thread
                    self.error = exc
                self.finished = True
                return
            self.stopped.wait(FINISH_POLL)

    def close(self, finish_now: bool) -> None:
        """Stop watching and wait for a finish under way; with `finish_now`, finish here if it has not been."""
        self.stopped.set()
        self.thread.join()
        if self.error is not None:
            raise self.error
        if finish_now and not self.finished:
            self.finish()


def run_build_step(argv: Sequence[str], cwd: Path, env: Mapping[str, str], what: str, runner: Runner = run,
                   project: str | None = None, lock: str | None = None) -> None:
    """Run one step of a package build in `env` alone; raise with the lines that say why if it fails."""
    raise_if_failed(runner(argv, cwd=cwd, env=env, inherit_env=False, check=False), what, project, lock)


def raise_if_failed(result: Result, what: str, project: str | None = None, lock: str | None = None) -> None:
    """Log a build step's output; raise with the lines that say why if it failed (`project`: the project's
    distribution name, if known, for failure_hint)."""
    output = result.stdout + "\n" + result.stderr
    log.debug("%s output:\n%s", what, output)
    if result.returncode != 0:
        bad = BAD_REQUIREMENT.search(output)
        if bad:  # the project's own file: bad input, as a bad pyproject.toml is
            file = PurePosixPath(bad.group("uv") or bad.group("pip")).name
            raise bad_input(f"{what} failed: the project's {file} holds a line that is not a requirement:\n"
                            f"{relevant_lines(output)}",
                            hint=f"Fix that line of {file} (the installer's words above say where)")
        raise MicrodeployError(
            f"{what} failed (exit status {result.returncode}):\n{relevant_lines(output)}",
            hint=failure_hint(output, project, lock),
        )


def relevant_lines(output: str, limit: int = 20) -> str:
    """The lines of a build log that explain a failure, else its tail."""
    lines = [line for line in output.splitlines() if REASON_RE.search(line)]
    chosen = "\n".join(lines[-limit:]) if lines else output_tail(output, limit)
    return "\n".join(f"    {line}" for line in chosen.splitlines())


def failure_hint(output: str, project: str | None = None, lock: str | None = None) -> str:
    """What to do about the most common build failures; `project`: the project's distribution name, if known;
    `lock`: the lock file the build installs from, if any."""
    if "Unmet build dependencies" in output:
        return "Install the missing build dependencies with apt-get, or fix build_depends"
    if any(words in output for words in INDEX_FAILURES):
        return ("The package index did not answer: check the network and the index the installer uses "
                "(UV_INDEX_URL or PIP_INDEX_URL, pip.conf's index-url), then build again")
    missing = NOT_ON_INDEX.search(output)
    if missing:
        requirement = missing.group("uv") or missing.group("unknown") or missing.group("pip")
        return (f"No release of {requirement} is on the package indexes the installer uses: point it at an index "
                "that has one (UV_INDEX_URL or PIP_INDEX_URL, pip.conf's index-url; a mirror may lag behind PyPI), "
                "or build a version of the project whose requirements are there")
    if any(words in output for words in RESOLUTION_FAILURES):
        if WSGI_CONFLICT.search(output):
            # pytaku 0.7.0 pins gunicorn ^20.
            return (f"The service's unit runs gunicorn, and microdeploy installs {WSGI_SERVER}, which the "
                    "project's own requirement on gunicorn excludes: gunicorn before 21 imports pkg_resources, which "
                    f"setuptools 82 and later no longer have, and would not start. Allow {WSGI_SERVER} in the "
                    "project's dependencies")
        if lock is not None:
            # A pylock.toml carries no record of what it was locked from: the build cannot tell it is stale.
            return (f"Fix the project's dependencies so that the installer (uv or pip) can resolve them within "
                    f"what {lock} pins: if pyproject.toml changed since, lock again and commit {lock}")
        return "Fix the project's dependencies so that the installer (uv or pip) can resolve them"
    built = SOURCE_BUILD_FAILURE.search(output)
    if built:
        name = built.group("uv") or built.group("pip")
        if built.group("tree") or (project is not None and canonicalize_name(name) == canonicalize_name(project)):
            return (f"{name} is the project itself: its build backend failed (its error is above). Fix the project's "
                    "build: a module the build imports belongs in pyproject.toml's build-system.requires, and a "
                    "build that needs a newer Python than the release's is built with --dist for a release that has "
                    "one")
        if SYSTEM_LACKS.search(output) or not CODE_NO_LONGER_BUILDS.search(output):
            return (f"{name} has no wheel for the release's Python and was built from source: give the Debian "
                    "packages its build needs (the -dev packages its error names) with --build-depends or "
                    "build_depends, or pin a version of it that has a wheel")
        # FlaskBB 2.0.2 pins markupsafe==1.0 (setuptools.Feature), opencve 1.5.0 psycopg2-binary==2.8.4 (C API).
        pinned = f" {built.group('version')}" if built.group("version") else ""
        return (f"{name}{pinned} has no wheel for the release's Python, and its code no longer builds from source "
                "(its error is above: a version older than the release's Python usually is): require a version of "
                f"{name} that has a wheel for the release's Python (where the project, or its requirements file, "
                "pins this one, there)")
    if VCS_VERSION_FAILURE in output:
        return ("The build backend takes the version from git, and the build's copy of the project reaches git "
                "only at the top of its repository (a backend that looks above the project, as root = \"../..\" "
                "does, finds none; microdeploy asks setuptools-scm in the checkout for a [tool.setuptools_scm] "
                "table only, not for hatch-vcs's raw-options or setup.py's use_scm_version): set "
                "SETUPTOOLS_SCM_PRETEND_VERSION to the version to build (setuptools-scm and hatch-vcs read it)")
    # --debug is microdeploy's own option, before the command (`microdeploy build --debug` is refused).
    return "Run `microdeploy --debug build ...` and read the full dpkg-buildpackage output"


def collect(directory: Path, package: str, source: str | None = None) -> Artifacts:
    """The .deb of `package`, and the .buildinfo and .changes of the binary build of `source` (default: package)."""
    source = source or package
    return Artifacts(package_file(directory, package), single_file(directory, f"{source}_*.buildinfo"),
                     single_file(directory, f"{source}_*.changes"))


def package_file(directory: Path, package: str) -> Path:
    """The .deb of `package` in `directory`."""
    return single_file(directory, f"{package}_*.deb")


def single_file(directory: Path, pattern: str) -> Path:
    """The one file in `directory` that `pattern` matches."""
    # stdeb also leaves the _source.buildinfo/.changes of a source build: not ours.
    found = [path for path in sorted(directory.glob(pattern)) if not path.stem.endswith("_source")]
    if len(found) != 1:
        raise MicrodeployError(f"expected one {pattern} in {directory}, found {len(found)}")
    return found[0]
