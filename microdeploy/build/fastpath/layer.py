"""The services' dependency layers in the cache: their keys, and their directories.

A dependency layer is a finished venv of a service without the service
itself, saved by the first build (debian/uv-pip) and restored by the next
(debian/make-venv) when nothing that decides the dependencies changed. An
app-only change then costs one project install instead of a venv.

Most of a layer's files (the wheels' modules and data) no build step ever
writes to; microdeploy saves them marked as shared (SHARED_MODE,
SHARED_MTIME) and a restore hard-links them into the build tree instead of
copying them, because creating thousands of files is what a restore of a
large venv spends its time on. The rest is copied, as every build changes it:
bin/, pyvenv.cfg, RECORD files, scripts and ELF files. After the build,
`Restored.intact` tells whether the shared files are still as saved.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from microdeploy.build.cache import touch
from microdeploy.build.fastpath.contract import UV_CACHE_VAR, UV_INSTALL_SETTINGS, VENV_DIR
from microdeploy.build.fastpath.lock import REQUIREMENTS_FILE, lock_file
from microdeploy.build.fastpath.pipindex import UV_FILE_VARIABLES
from microdeploy.errors import bad_input
from microdeploy.fsutil import staged_directory
from microdeploy.process import Runner, run
from microdeploy.pyproject import Pyproject, read_pkg_info

# Files whose whole text decides the dependencies when pyproject.toml does not
# declare them statically (setup.py projects, dynamic dependencies).
DECLARATION_FILES = ("pyproject.toml", "setup.py", "setup.cfg")
# A shared file's mode is what dh_fixperms makes of it, and its mtime is later
# than any commit's date: dpkg-deb clamps it to the build's SOURCE_DATE_EPOCH,
# so no build step changes either (debian/rules touches only older files).
SHARED_MODE = 0o644
SHARED_MTIME_NS = 4_102_444_800 * 10**9  # 2100-01-01
# uv's own configuration files (uv.toml), which decide indexes, resolution strategy, constraints and overrides as
# much as the variables do: the user's, then the first of the system's (uv's own search; pip.conf is not read).
UV_SYSTEM_CONFIGS = ("/etc/xdg/uv/uv.toml", "/etc/uv/uv.toml")
# uv's variables that change how it works, not what it installs: where its caches, Pythons and tools are, how it
# reaches indexes (credentials, TLS, timeouts, retries), what it prints; and those every uv run of a build gets from
# microdeploy (contract.UV_INSTALL_SETTINGS). Every other UV_ variable (constraints, overrides, exclude-newer,
# prerelease and resolution choices, binary and build choices, offline) may change what the layer holds.
UV_VARIABLES_NOT_IN_KEY = frozenset({
    UV_CACHE_VAR, *UV_INSTALL_SETTINGS, "UV_NO_CACHE", "UV_CACHE_MAX_AGE", "UV_HTTP_TIMEOUT", "UV_REQUEST_TIMEOUT",
    "UV_HTTP_RETRIES", "UV_CONCURRENT_DOWNLOADS", "UV_CONCURRENT_BUILDS", "UV_CONCURRENT_INSTALLS", "UV_NATIVE_TLS",
    "UV_KEYRING_PROVIDER", "UV_CREDENTIALS_DIR", "UV_NO_WRAP", "UV_LOG_CONTEXT", "UV_STACK_SIZE", "UV_NO_COLOR",
    "UV_PYTHON_INSTALL_DIR", "UV_PYTHON_BIN_DIR", "UV_TOOL_DIR", "UV_TOOL_BIN_DIR", "UV_NO_ENV_FILE", "UV_ENV_FILE",
    "UV_PROJECT_ENVIRONMENT", "UV_NO_HF_TOKEN",
    "UV_CONFIG_FILE", "UV_NO_CONFIG",  # what they decide is in the key as the uv.toml texts (uv_configuration)
})
# Credentials for an index or for publishing: a new password installs the same packages.
UV_CREDENTIALS_RE = re.compile(r"UV_INDEX_\w+_(?:USERNAME|PASSWORD)|UV_PUBLISH_\w+")
# A requirements file line naming another file whose requirements or constraints apply too.
INCLUDE_RE = re.compile(r"^\s*(?:-r|--requirement|-c|--constraint)(?:\s*=\s*|\s+)(?P<path>\S+)")


def declared_dependencies(pyproject: Pyproject, extras: tuple[str, ...] = ()) -> tuple[str, ...] | None:
    """The requirements pyproject.toml lists as the project's dependencies and those of its `extras`, to install
    without the project; None when they are not static (only the built wheel knows them) or one names the project
    itself (an extra of its own, which only the wheel can satisfy)."""
    if not pyproject.static_dependencies:
        return None
    wanted = (*pyproject.dependencies, *extras_dependencies(pyproject, extras))
    itself = canonicalize_name(str(pyproject.project.get("name", "")))
    if any(requirement_name(requirement) == itself for requirement in wanted):
        return None
    return wanted


def extras_dependencies(pyproject: Pyproject, extras: tuple[str, ...]) -> list[str]:
    """The requirements of the project's `extras` (normalised names), as its static optional-dependencies list
    them; exit 2 for an extra it does not declare (check_extras)."""
    groups = optional_dependencies(pyproject)
    check_extras(pyproject, extras)
    return [str(requirement) for extra in extras for requirement in groups[extra] or ()]


def optional_dependencies(pyproject: Pyproject) -> dict[str, Any]:
    """[project.optional-dependencies] by normalised extra name."""
    declared = pyproject.project.get("optional-dependencies") or {}
    return {canonicalize_name(str(name)): group for name, group in declared.items()} if isinstance(
        declared, Mapping) else {}


def check_extras(pyproject: Pyproject, extras: tuple[str, ...]) -> None:
    """Exit 2 for an extra the project does not declare where a build can tell before it starts: static
    optional-dependencies, else an unpacked sdist's Provides-Extra (pip and uv would only warn, and install the
    project without it). A checkout whose extras only its backend knows (setup.py) is not checked."""
    if pyproject.static_dependencies:
        declared, where = set(optional_dependencies(pyproject)), f"[project.optional-dependencies] of {pyproject.path}"
    else:
        headers = read_pkg_info(pyproject.directory)
        provided = (headers.get_all("Provides-Extra") or []) if headers is not None else []
        if not provided:
            return
        declared, where = {canonicalize_name(str(extra)) for extra in provided}, "its PKG-INFO's Provides-Extra"
    missing = [extra for extra in extras if extra not in declared]
    if missing:
        names = ", ".join(sorted(declared)) or "none"
        raise bad_input(f"the project has no extra {', '.join(missing)} ({where} has {names})",
                        hint="Set extras (or --extra) to names the project declares")


def requirement_name(requirement: str) -> str:
    """The normalised project name of a PEP 508 requirement ("" when it is not one)."""
    try:
        return canonicalize_name(Requirement(requirement).name)
    except InvalidRequirement:
        return ""


def dependency_declarations(pyproject: Pyproject) -> dict[str, str]:
    """What decides the dependencies of the project of `pyproject`, as text; a version bump or code change is not
    in it."""
    project = pyproject.directory
    found: dict[str, str] = {}
    if pyproject.static_dependencies:
        # The key then holds every dependency, and a restored layer has all that the project's wheel declares.
        table = pyproject.project
        static = {
            "dependencies": table.get("dependencies", []),
            "optional-dependencies": table.get("optional-dependencies", {}),
            "requires-python": table.get("requires-python"),
            "build-system": pyproject.data.get("build-system", {}),
            "tool.uv": pyproject.tool("uv"),
        }
        found["pyproject.toml"] = json.dumps(static, sort_keys=True)
    else:
        for name in DECLARATION_FILES:
            if (project / name).is_file():
                found[name] = (project / name).read_text(encoding="utf-8", errors="replace")
    lock = lock_file(pyproject)
    if lock is not None:
        found[lock] = (project / lock).read_text(encoding="utf-8", errors="replace")
    # uv installs what requirements.txt pulls in but never removes what it stops pulling in.
    for path, text in requirement_files(project / REQUIREMENTS_FILE):
        found[label(project, path)] = text
    return found


def requirement_files(first: Path) -> Iterator[tuple[Path, str]]:
    """A requirements file and every file it includes (-r, -c), relative to the including one; each once."""
    pending, seen = [first], set()
    while pending:
        path = Path(os.path.normpath(pending.pop(0)))
        if path in seen or not path.is_file():
            continue
        seen.add(path)
        text = path.read_text(encoding="utf-8", errors="replace")
        yield path, text
        for line in text.splitlines():
            match = INCLUDE_RE.match(line)
            if match and "://" not in match["path"]:
                pending.append(path.parent / match["path"])


def label(project: Path, path: Path) -> str:
    """`path` relative to the project when it is inside it, else absolute."""
    try:
        return path.relative_to(project).as_posix()
    except ValueError:
        return str(path)


LAYER_FORMAT = 3


def layer_key(
    pyproject: Pyproject, *, name: str, python_minor: str, wsgi_server: str, uv_version: str,
    environ: Mapping[str, str], dist: str = "", installers: tuple[str, ...] = (), extras: tuple[str, ...] = (),
) -> str:
    """A name for the dependency layer that changes whenever the installed dependencies could.

    `dist`, the release the build is for, is part of it: a layer's compiled
    wheels are linked against that release's libraries.
    """
    inputs = {
        # 2: the venv's activate scripts name the service (--prompt), not "venv". 3: its .pth files inert
        # (make_pth_inert), where a layer of 2 may hold what one changed.
        "format": LAYER_FORMAT,
        "declarations": dependency_declarations(pyproject),
        "python": python_minor,
        "wsgi_server": wsgi_server,
        "uv": uv_version,
        "uv-config": uv_configuration(pyproject.directory, environ),
        "uv-variables": callers_uv_settings(pyproject.directory, environ),
    }
    # Each only when set: the layers of builds without them keep their names.
    if installers:
        inputs["installers"] = list(installers)
    if extras:
        inputs["extras"] = list(extras)
    digest = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()
    return f"{name}-{dist + '-' if dist else ''}py{python_minor}-{digest[:16]}"


def callers_uv_settings(project: Path, environ: Mapping[str, str]) -> dict[str, str]:
    """The caller's UV_ variables that may change what uv installs, with the text of the files they name (a
    relative path is the project's: uv runs in the project's copy)."""
    found: dict[str, str] = {}
    for name, value in environ.items():
        if not name.startswith("UV_") or name in UV_VARIABLES_NOT_IN_KEY or UV_CREDENTIALS_RE.fullmatch(name):
            continue
        found[name] = value
        for path in value.split() if name in UV_FILE_VARIABLES else ():
            named = project / path
            found[f"{name} {path}"] = named.read_text(encoding="utf-8", errors="replace") if named.is_file() else ""
    return found


def uv_configuration(project: Path, environ: Mapping[str, str]) -> dict[str, str]:
    """The text of each uv.toml the build's uv reads, by whose it is: $UV_CONFIG_FILE alone when set; else the
    project's, the user's and the first system one; none with $UV_NO_CONFIG. (Labels, not paths: two checkouts of
    one project share a layer.)"""
    if environ.get("UV_NO_CONFIG"):
        return {}
    if environ.get("UV_CONFIG_FILE"):
        found = {"UV_CONFIG_FILE": Path(environ["UV_CONFIG_FILE"])}
    else:
        user_dir = Path(environ.get("XDG_CONFIG_HOME") or Path(environ.get("HOME", "/")) / ".config")
        xdg_dirs = [Path(entry) / "uv" / "uv.toml" for entry in environ.get("XDG_CONFIG_DIRS", "").split(":") if entry]
        system = next((path for path in [*xdg_dirs, *map(Path, UV_SYSTEM_CONFIGS)] if path.is_file()), None)
        found = {"project": project / "uv.toml", "user": user_dir / "uv" / "uv.toml",
                 **({"system": system} if system else {})}
    return {label: path.read_text(encoding="utf-8", errors="replace") for label, path in found.items()
            if path.is_file()}


def prepare_layer(root: Path, key: str, *, refresh: bool) -> Path:
    """The directory of the layer `key`, marked as used now; emptied with `refresh`."""
    layer = root / "layers" / key
    if refresh:
        shutil.rmtree(layer, ignore_errors=True)
    layer.mkdir(parents=True, exist_ok=True)
    touch(layer)
    return layer


def save_layer(venv: Path, layer: Path, runner: Runner = run, restored: Restored | None = None) -> None:
    """Keep `venv` as the layer's venv, written once and never changed; the first writer wins.

    Without `restored`, a copy of `venv` is kept. With it, `venv` itself moves
    into the cache (one rename, when both are on one filesystem) and is
    restored in its place from the saved layer (link_venv, noted in
    `restored`), so a first build creates each shared file once. Raises
    OSError when `venv` moved but could not be restored.
    """
    moved = False
    try:
        with staged_directory(layer / VENV_DIR) as staging:
            if restored is not None:
                try:
                    venv.rename(staging)  # replaces the empty staging directory
                    moved = True
                except OSError:
                    pass  # another filesystem: copied below
            if not moved and not copy_venv(venv, staging, runner):
                raise OSError(f"cp could not copy {venv}")
            mark_shared(staging)
    except OSError:
        pass  # another build saved it first, or the cache is not writable: the next build makes it
    if moved and restored is not None:
        link_venv(layer / VENV_DIR, venv, restored)  # whichever build's layer was saved


def copy_venv(venv: Path, dest: Path, runner: Runner = run) -> bool:
    """Copy `venv` to `dest` (made, or filled when it is an empty directory); whether cp succeeded.

    cp, not shutil.copytree: a venv of compiled wheels has thousands of
    files, and copying them one by one in Python competes for the
    interpreter with the build's main thread and the wheel's job.
    """
    return runner(["cp", "-a", "--reflink=auto", "-T", "--", str(venv), str(dest)], check=False).returncode == 0


def mark_shared(venv: Path) -> None:
    """Mark the files of `venv` that no build step writes to as shared: mode SHARED_MODE, mtime SHARED_MTIME_NS.

    Those are the regular files under lib/ that are not executable (dh_fixperms
    and finalize-venv change modes), not scripts or modules with a "#!" line
    (finalize-venv rewrites it), not ELF files or static libraries (dh_strip,
    whose strip writes into a file with several links) and not RECORD files
    (rewritten with the shipped files' hashes).
    """
    for directory, _, files in os.walk(venv / "lib"):
        for name in files:
            path = os.path.join(directory, name)
            status = os.lstat(path)
            if not stat.S_ISREG(status.st_mode) or status.st_mode & 0o7111 or name == "RECORD":
                continue
            with open(path, "rb") as handle:
                if handle.read(8).startswith((b"#!", b"\x7fELF", b"!<arch>\n")):
                    continue
            os.chmod(path, SHARED_MODE)
            os.utime(path, ns=(SHARED_MTIME_NS, SHARED_MTIME_NS))


def is_shared(status: os.stat_result) -> bool:
    """Whether a file of a saved layer is marked as shared (mark_shared), by its lstat."""
    return (stat.S_ISREG(status.st_mode) and stat.S_IMODE(status.st_mode) == SHARED_MODE
            and status.st_mtime_ns == SHARED_MTIME_NS)


def is_marked(venv: Path) -> bool:
    """Whether a saved layer's files are marked as shared, by one dist-info METADATA file (always shared when
    marked); layers saved unmarked (by debian/uv-pip, or by an older microdeploy) are copied whole, with cp."""
    for metadata in venv.glob("lib/python3*/site-packages/*.dist-info/METADATA"):
        return is_shared(os.lstat(metadata))
    return False


@dataclass
class Restored:
    """A layer's venv restored into a build tree: the layer's files it shares by hard link."""

    shared: list[str] = field(default_factory=list)

    def intact(self) -> bool:
        """Whether every shared file is still marked as shared: a step that wrote to one changed its mtime."""
        for path in self.shared:
            try:
                if not is_shared(os.lstat(path)):
                    return False
            except FileNotFoundError:
                continue  # the cache was pruned meanwhile: nothing of it is left to spoil
        return True


def link_venv(venv: Path, dest: Path, restored: Restored) -> None:
    """Restore `venv` at `dest` (made): shared files hard-linked, everything else copied with its metadata.

    Raises OSError when a file can be neither linked nor copied, e.g. EXDEV
    when `dest` is on another filesystem than the cache.
    """
    dest.mkdir(mode=stat.S_IMODE(venv.stat().st_mode))
    for directory, subdirs, files in os.walk(venv):
        target = os.path.join(dest, os.path.relpath(directory, venv))
        for name in subdirs + files:
            source, copy = os.path.join(directory, name), os.path.join(target, name)
            status = os.lstat(source)
            if stat.S_ISLNK(status.st_mode):
                os.symlink(os.readlink(source), copy)
            elif stat.S_ISDIR(status.st_mode):
                os.mkdir(copy, mode=stat.S_IMODE(status.st_mode))
            elif is_shared(status):
                os.link(source, copy)
                restored.shared.append(source)
            else:
                shutil.copy2(source, copy, follow_symlinks=False)
