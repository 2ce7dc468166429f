"""The project's version when pyproject.toml does not state it: the build backend's, or an sdist's.

A dynamic version (setuptools-scm, `attr:` in setup.cfg, hatch-vcs, flit's
`__version__`) is known to the project's build backend alone. Where the
build makes the project's wheel beside dpkg-buildpackage (uv), the version is
that wheel's. Otherwise the backend is asked through its PEP 517 hook
`prepare_metadata_for_build_wheel` (pyproject_hooks; backends without it
build a wheel instead), in a venv with the project's
build requirements, on a copy of the project (setuptools writes
`*.egg-info` into the source tree; the checkout stays as it is). With uv and
microdeploy's cache, the venv is the cached build environment the project's
wheel is built in (fastpath/wheel.py): made once, with bytecode, instead of
a fresh venv that installs and compiles the backend at every build. An
unpacked sdist also states its version in PKG-INFO.
"""

from __future__ import annotations

import email.message
import logging
import os
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from microdeploy.build.debiandir.tree import copy_source
from microdeploy.build.fastpath.contract import UV_SETTINGS
from microdeploy.build.fastpath.layer import callers_uv_settings
from microdeploy.build.fastpath.wheel import ProjectWheel
from microdeploy.errors import MicrodeployError
from microdeploy.process import Runner, in_environment, run
from microdeploy.pyproject import BuildSystem, core_metadata, read_pkg_info

log = logging.getLogger(__name__)


def metadata_version(text: str) -> str | None:
    """The `Version:` of a core metadata file (METADATA, PKG-INFO), if it has one."""
    return version_of(core_metadata(text))


def version_of(headers: email.message.Message) -> str | None:
    """The `Version:` of core metadata headers, if they have one."""
    version = headers.get("Version")
    return str(version).strip() if version else None


def wheel_version(wheel: Path) -> str | None:
    """The `Version:` in a wheel's METADATA, or None if it has none or is no wheel."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            names = [name for name in archive.namelist()
                     if name.count("/") == 1 and name.endswith(".dist-info/METADATA")]
            if len(names) != 1:
                return None
            return metadata_version(archive.read(names[0]).decode("utf-8", errors="replace"))
    except (OSError, zipfile.BadZipFile):
        return None


def sdist_version(project: Path) -> str | None:
    """The version in PKG-INFO at the root of an unpacked sdist, or None."""
    headers = read_pkg_info(project)
    return version_of(headers) if headers is not None else None


class SharedEnvironmentTooSmall(Exception):
    """The backend asks for more than the shared build environment holds: a venv of its own is needed."""


def backend_version(project: Path, build_system: BuildSystem, python: str, uv: str | None, runner: Runner = run,
                    cache: Path | None = None, environ: Mapping[str, str] | None = None) -> str | None:
    """The version the project's build backend gives it, or None when the backend cannot tell.

    `build_system`: the project's [build-system]; `cache`: microdeploy's
    cache, whose build environments are used when there is uv; `environ`:
    the build's environment, which every command here gets (None: this
    process's). Its uv variables that decide what an install gets
    (layer.callers_uv_settings) key the shared build environment, as the
    project's wheel keys it.
    """
    if environ is not None:
        runner = in_environment(runner, environ)
    requires, backend, backend_path = list(build_system.requires), build_system.backend, build_system.backend_path
    with tempfile.TemporaryDirectory(prefix="microdeploy-metadata.") as tmp:
        work = Path(tmp)
        copy = work / "project"
        copy_source(project, copy, git=True)  # VCS-based versions (setuptools-scm, hatch-vcs) ask git
        maker = None
        try:
            shared = None
            if uv is not None and cache is not None:
                settings = callers_uv_settings(project, os.environ if environ is None else environ)
                maker = ProjectWheel(uv=uv, cache=cache, name=project.name, python=python, build_system=build_system,
                                     runner=runner, settings=settings)
                shared = maker.build_environment()
            if shared is not None:
                try:
                    return _prepare_metadata(copy, backend, backend_path, shared / "bin" / "python", None,
                                             work / "shared-metadata", runner, shared=True)
                except SharedEnvironmentTooSmall:
                    log.debug("the build backend asks for more requirements: a venv of its own")
            env_python = requirements_venv(work / "env", python, uv, requires, runner)
            return _prepare_metadata(copy, backend, backend_path, env_python, uv, work / "metadata", runner)
        except MicrodeployError as exc:
            log.debug("the build backend did not give a version: %s", exc)
            return None
        finally:
            if maker is not None:
                maker.wait()


def _install(env_python: Path, uv: str | None, requirements: Sequence[str], runner: Runner) -> None:
    if not requirements:
        return
    if uv is not None:
        runner([uv, "pip", "install", "--quiet", "--python", str(env_python), *requirements], env=UV_SETTINGS)
    else:
        runner([str(env_python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *requirements])


def requirements_venv(env: Path, python: str, uv: str | None, requires: Sequence[str], runner: Runner) -> Path:
    """A venv at `env` with the build requirements (uv's when there is uv, else the standard library's with pip);
    its interpreter."""
    if uv is not None:
        runner([uv, "venv", "--quiet", "--python", python, str(env)], env=UV_SETTINGS)
    else:
        runner([python, "-m", "venv", str(env)])
    env_python = env / "bin" / "python"
    _install(env_python, uv, requires, runner)
    return env_python


def _prepare_metadata(
    source: Path, backend: str, backend_path: Sequence[str], env_python: Path, uv: str | None,
    out: Path, runner: Runner, shared: bool = False,
) -> str | None:
    """The backend's version from its metadata hook in `env_python`'s venv.

    What the backend asks for beyond the build requirements is installed
    with `uv` (None: pip), except into the `shared` build environment, which
    is never installed into: there it raises SharedEnvironmentTooSmall.
    """
    # Imported here: only a project with a dynamic version needs it. Debian 12
    # has its predecessor, pep517 (python3-pep517), with the same interface.
    try:
        from pyproject_hooks import BuildBackendHookCaller
    except ImportError:
        from pep517.wrappers import Pep517HookCaller as BuildBackendHookCaller  # type: ignore[no-redef,import-not-found,unused-ignore]

    def hook_runner(cmd: Sequence[str], cwd: str | None = None, extra_environ: Mapping[str, str] | None = None) -> None:
        runner(list(cmd), cwd=Path(cwd) if cwd else None, env=dict(extra_environ or {}))

    caller = BuildBackendHookCaller(str(source), backend, backend_path or None, runner=hook_runner,
                                    python_executable=str(env_python))
    try:
        more = caller.get_requires_for_build_wheel()
        if more and shared:
            raise SharedEnvironmentTooSmall(more)
        _install(env_python, uv, more, runner)
        out.mkdir()
        dist_info = caller.prepare_metadata_for_build_wheel(str(out))
    except SharedEnvironmentTooSmall:
        raise
    except Exception as exc:  # a backend may raise anything; the next source is tried
        raise MicrodeployError(f"build backend {backend}: {exc}") from exc
    metadata = out / dist_info / "METADATA"
    return metadata_version(metadata.read_text(encoding="utf-8")) if metadata.is_file() else None


def dynamic_version(project: Path, build_system: BuildSystem, python: str, uv: str | None, runner: Runner = run,
                    cache: Path | None = None, wheel: Path | None = None,
                    environ: Mapping[str, str] | None = None) -> tuple[str, str] | None:
    """The version and where it came from: the project's wheel, else the build backend's metadata, else the
    sdist's PKG-INFO.

    `wheel`: the project's wheel, built by its backend from this source (fastpath/wheel.py). Its METADATA says
    what the backend's metadata hook would, and reading it spares the hook's copy of the project and processes.
    `environ`: the build's environment, for the hook's commands (backend_version).
    """
    found = wheel_version(wheel) if wheel is not None else None
    if found:
        return found, "the project's wheel"
    found = backend_version(project, build_system, python, uv, runner, cache, environ)
    if found:
        return found, "the build backend's metadata"
    found = sdist_version(project)
    if found:
        return found, "PKG-INFO"
    return None

