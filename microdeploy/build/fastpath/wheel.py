"""The project's own wheel, made beside dpkg-buildpackage rather than inside it.

It is built on the other core while dpkg-buildpackage gets going, in a build
environment kept in the cache instead of an isolated environment per build:
links to the release's own packages when they satisfy the build-system
requirements (systembackend.py), else the requirements installed once by uv.
The wheel is kept by a digest of the source: rebuilding an unchanged commit
installs the wheel made last time.
debian/uv-pip waits for its status (see jobs.py) and installs the
wheel; when there is none it installs the source, which reports a broken
project the usual way.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import threading
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from microdeploy.build.cache import touch
from microdeploy.build.fastpath import jobs, systembackend
from microdeploy.build.fastpath.contract import UV_CACHE_VAR, UV_SETTINGS
from microdeploy.build.fastpath.pipindex import UV_FILE_VARIABLES
from microdeploy.errors import MicrodeployError
from microdeploy.fsutil import link_or_copy, staged_directory
from microdeploy.process import Runner, run
from microdeploy.pyproject import BuildSystem

log = logging.getLogger(__name__)

# Part of a build environment's key: version 2 environments carry bytecode.
BUILD_ENV_FORMAT = 2
# The wheel is unpacked into the venv straight after, never shipped: setuptools
# stores its files rather than deflating them (for an app with megabytes of
# static files, deflating is most of the wheel's build).
STORED = "--config-setting=--build-option=--compression=stored"
# uv's settings (uv.toml, [tool.uv]) that constrain what it installs, build requirements included.
CONSTRAINT_SETTINGS = ("constraint-dependencies", "build-constraint-dependencies", "override-dependencies")


def source_digest(source: Path, salt: str) -> str:
    """A digest of every file's path and bytes under `source` (and of `salt`), its .git left out.

    The .git link names the checkout's path: the git state is in `salt`.
    """
    digest = hashlib.sha256(salt.encode())
    for path in sorted(source.rglob("*")):
        if path.parent == source and path.name == ".git":
            continue
        # os.fsencode: a file name need not be UTF-8 (its bytes come back from the surrogates).
        if path.is_symlink():
            digest.update(b"L " + os.fsencode(path.relative_to(source)) + b" " + os.fsencode(path.readlink()) + b"\0")
        elif path.is_file():
            digest.update(b"F " + os.fsencode(path.relative_to(source)) + f" {path.stat().st_mode & 0o111}\0".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


class ProjectWheel:
    """Builds (or finds) one project's wheel for one build, in the jobs."""

    def __init__(self, *, uv: str, cache: Path, name: str, python: str, build_system: BuildSystem,
                 runner: Runner = run, git_state: str = "", index: Mapping[str, str] | None = None,
                 settings: Mapping[str, str] | None = None, system_site: Path | None = None) -> None:
        self.uv = uv
        # Where the release's Python packages are, read from here (systembackend.py); None: uv's build
        # environment only.
        self.system_site = system_site
        # Where the checkout stands in git (commit, last tag): part of the kept wheel's key, since a version
        # from git changes with it while the files stay the same.
        self.git_state = git_state
        self.cache = cache
        self.name = name
        self.python = python
        self.build_system = build_system  # the project's, as read at the build's start
        self.runner = runner
        # `index`: where packages come from when uv is given pip's settings (pipindex.py).
        self.env = {**UV_SETTINGS, **(index or {}), UV_CACHE_VAR: str(cache / "uv")}
        # The caller's uv variables that decide what an install gets (constraints, indexes...;
        # layer.callers_uv_settings): the build environment's requirements and so the wheel follow them.
        self.settings = dict(settings or {})
        self.to_keep: tuple[Path, Path] | None = None  # a wheel built now, and where keep() saves it
        self.compiling: threading.Thread | None = None  # the bytecode of a build environment made now

    def start(self, source: Path, wheel_dir: Path) -> threading.Thread:
        """Put the wheel into `wheel_dir` on another thread; its status file says how it ended."""
        return jobs.start("project-wheel", wheel_dir, lambda: self._produce(source, wheel_dir))

    def _produce(self, source: Path, wheel_dir: Path) -> int:
        salt = json.dumps([self.python, list(self.build_system.requires), self.git_state, self.settings],
                          sort_keys=True)
        kept = self.cache / "wheels" / self.name / source_digest(source, salt)
        wheels = list(kept.glob("*.whl"))
        if wheels:
            log.debug("project wheel: reusing %s", wheels[0])
            touch(kept)
            link_or_copy(wheels[0], wheel_dir / wheels[0].name)
            return 0
        returncode = self._build(source, wheel_dir)
        if returncode == 0:
            self.to_keep = (wheel_dir, kept)
        return returncode

    def _build(self, source: Path, wheel_dir: Path) -> int:
        """uv build in the build environment over the release's packages, else in the cached build environment;
        in an isolated one if that fails."""
        build = [self.uv, "build", "--wheel", "--quiet", "--out-dir", str(wheel_dir)]
        stored = [STORED] if self.build_system.setuptools else []

        def built_in(environment: Path) -> bool:
            cached = [*build, "--no-build-isolation", *stored, "--python", str(environment / "bin" / "python"),
                      str(source)]
            return self.runner(cached, env=self.env, check=False).returncode == 0

        mark = refusal(self.name, source)
        system = self.system_environment(source, mark)
        if system is not None and built_in(system):
            return 0
        environment = self.build_environment()
        if environment is not None and built_in(environment):
            if system is not None:
                # The release's backend refuses what uv's builds (a pyproject.toml newer than Debian's setuptools
                # reads): later builds of the same project files go to uv's build environment straight away.
                with contextlib.suppress(OSError):
                    (system / mark).touch()
            return 0
        # Backends that ask for more at build time (get_requires_for_build_wheel) need isolation;
        # a setuptools too old for stored wheels gets its defaults.
        return self.runner([*build, "--python", self.python, str(source)], env=self.env, check=False).returncode

    def constraints(self, source: Path) -> list[str]:
        """The constraints the build's uv is given that may bind build requirements: the lines of the files its
        variables name (the caller's, and pip's, which the settings carry with their text), the project's
        [tool.uv] and uv.toml constraint settings."""
        lines = [line for name in UV_FILE_VARIABLES for path in self.settings.get(name, "").split()
                 for line in self.settings.get(f"{name} {path}", "").splitlines()]
        for table in (toml_table(source / "pyproject.toml", "tool", "uv"), toml_table(source / "uv.toml")):
            for key in CONSTRAINT_SETTINGS:
                lines += [str(entry) for entry in table.get(key, ())]
        return lines

    def system_environment(self, source: Path, mark: str) -> Path | None:
        """The build environment over the release's own packages (systembackend.py), made once: when they satisfy
        the build requirements and the caller's constraints, for a Python named with its version, unless this
        project's build with these build files failed in it (`mark`, refusal())."""
        version = systembackend.python_version(self.python)
        if self.system_site is None or version is None:
            return None
        requires = list(self.build_system.requires)
        dists = systembackend.satisfying(requires, version, self.system_site)
        if dists is None or systembackend.constrained_out(dists, self.constraints(source), version):
            return None
        environment = self.cache / "build-envs" / systembackend.environment_key(self.python, requires, dists)
        if (environment / mark).exists():
            return None
        if is_made(environment):
            touch(environment)
            return environment
        try:
            with staged_directory(environment) as staging:
                self.runner([self.python, "-m", "venv", "--without-pip", str(staging)], env=self.env)
                [site_packages] = staging.glob("lib/python*/site-packages")
                systembackend.link_into(site_packages, dists, self.system_site)
        except (MicrodeployError, ValueError) as exc:
            log.debug("project wheel: no build environment over the release's packages: %s", exc)
            return None
        except OSError:
            return environment if is_made(environment) else None  # another build made it first
        return environment

    def build_environment(self) -> Path | None:
        """A venv with the project's build requirements installed, made once per requirement set and Python.

        Its bytecode is compiled when it is made, on another thread while
        the first wheel is built in it (wait() waits for it): every later
        wheel build imports the backend (setuptools loads several times
        faster from bytecode), and PYTHONDONTWRITEBYTECODE would stop
        Python caching it.
        """
        requires = list(self.build_system.requires)
        key = hashlib.sha256(json.dumps([BUILD_ENV_FORMAT, self.python, sorted(requires), self.settings],
                                        sort_keys=True).encode()).hexdigest()[:16]
        environment = self.cache / "build-envs" / key
        if is_made(environment):
            touch(environment)
            return environment
        try:
            with staged_directory(environment) as staging:
                self.runner([self.uv, "venv", "--quiet", "--python", self.python, str(staging)], env=self.env)
                python = str(staging / "bin" / "python")
                self.runner([self.uv, "pip", "install", "--quiet", "--python", python, *requires], env=self.env)
        except MicrodeployError as exc:
            log.debug("project wheel: no build environment: %s", exc)
            return None
        except OSError:
            return environment if is_made(environment) else None  # another build made it first
        site_packages = [str(path) for path in environment.glob("lib/python*/site-packages")]
        if site_packages:  # one worker: the wheel's build has the other core
            compile_all = [str(environment / "bin" / "python"), "-m", "compileall", "-q", "-j", "1", *site_packages]
            self.compiling = threading.Thread(
                target=lambda: self.runner(compile_all, env=self.env, check=False),
                name="build-env-bytecode", daemon=True)
            self.compiling.start()
        return environment

    def wait(self) -> None:
        """Wait for the bytecode of a build environment made by this object."""
        if self.compiling is not None:
            self.compiling.join()

    def keep(self) -> None:
        """Save a wheel this build made under its source digest for the next build of the same source."""
        if self.to_keep is None:
            return
        wheel_dir, kept = self.to_keep
        wheels = list(wheel_dir.glob("*.whl"))
        if len(wheels) != 1:
            return
        try:
            with staged_directory(kept) as staging:
                link_or_copy(wheels[0], staging / wheels[0].name)
        except OSError:
            pass  # another build kept it first


def toml_table(path: Path, *keys: str) -> Mapping[str, Any]:
    """The table at `keys` of the TOML file `path`; empty when there is none. A file that is no TOML gives a
    constraint that binds (as uv would refuse it, the build environment over the release's packages is not used)."""
    try:
        table: Any = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return {CONSTRAINT_SETTINGS[0]: ["-c unreadable"]}
    for key in keys:
        table = table.get(key, {}) if isinstance(table, dict) else {}
    return table if isinstance(table, dict) else {}


# The files from which setuptools (or another backend) reads the project's metadata and build settings.
BUILD_FILES = ("pyproject.toml", "setup.cfg", "setup.py")


def refusal(name: str, source: Path) -> str:
    """The mark, in a build environment over the release's packages, that its backend refused project `name` with
    these build files (`source`'s) while uv's built it: changed files are tried there again."""
    digest = hashlib.sha256()
    for file_name in BUILD_FILES:
        path = source / file_name
        digest.update(file_name.encode() + b"\0" + (path.read_bytes() if path.is_file() else b"-") + b"\0")
    return f"refused-{name}-{digest.hexdigest()[:16]}"


def is_made(environment: Path) -> bool:
    """Whether the build environment `environment` is there, made whole (staged, then renamed into place).

    Its bin/python is a link to the interpreter, which, for a build root's
    Python, exists inside the root only: the link itself is what counts.
    """
    return os.path.lexists(environment / "bin" / "python")
