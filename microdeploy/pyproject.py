"""A project's pyproject.toml, read once and checked as it is read.

A build reads it at its start (build/pipeline.py keeps it in the build's
settings) and hands it down: the service model takes `[project]` and
`[tool.microdeploy]` from it, the dependency layer `[project]`'s
dependencies, the project's wheel and its dynamic version the
`[build-system]` table, with PEP 517's fallbacks for what that leaves out.
A file that is not what PEP 517, 518 and 621 describe is refused here, with
the file named (exit status 2), before anything is built.
"""

from __future__ import annotations

import email.message
import email.parser
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from microdeploy.errors import bad_input

FILE = "pyproject.toml"
# PEP 517's fallbacks for a project without [build-system], or without its requires or build-backend.
LEGACY_REQUIRES = ("setuptools>=40.8.0", "wheel")
LEGACY_BACKEND = "setuptools.build_meta:__legacy__"
SETUPTOOLS_BACKENDS = ("setuptools.build_meta", LEGACY_BACKEND)
SHOWN_MAX = 60  # characters of a wrong value's repr in a message


@dataclass(frozen=True)
class BuildSystem:
    """The project's [build-system]: requires, build-backend and backend-path, PEP 517's fallbacks filled in."""

    requires: tuple[str, ...] = LEGACY_REQUIRES
    backend: str = LEGACY_BACKEND
    backend_path: tuple[str, ...] = ()

    @property
    def setuptools(self) -> bool:
        """Whether the backend is setuptools (PEP 517's fallback included)."""
        return self.backend in SETUPTOOLS_BACKENDS


@dataclass(frozen=True)
class Pyproject:
    """A project's pyproject.toml, parsed and checked; empty, with PEP 517's fallbacks, when there is none."""

    path: Path
    found: bool = False
    data: Mapping[str, Any] = field(default_factory=dict)  # the whole file as tomllib parsed it
    project: Mapping[str, Any] = field(default_factory=dict)  # [project]
    build_system: BuildSystem = BuildSystem()
    dependencies: tuple[str, ...] = ()  # [project] dependencies
    dynamic: tuple[str, ...] = ()  # the [project] keys the build backend fills in

    @property
    def directory(self) -> Path:
        """The project directory the file is in (or would be)."""
        return self.path.parent

    @property
    def static_version(self) -> bool:
        """Whether [project] states the version itself (not `dynamic`, not from setup.py or git)."""
        return "version" in self.project and "version" not in self.dynamic

    @property
    def static_dependencies(self) -> bool:
        """Whether [project] lists the project's dependencies itself (not `dynamic`, not from setup.py)."""
        return bool(self.project) and not {"dependencies", "optional-dependencies"} & set(self.dynamic)

    def tool(self, name: str) -> Mapping[str, Any]:
        """The [tool.NAME] table ({} without one)."""
        return table(self.path, table(self.path, self.data, "tool"), name, "tool.")


def read_pyproject(project: Path) -> Pyproject:
    """The pyproject.toml of the project directory `project`, checked; empty when there is none."""
    path = project / FILE
    if not path.is_file():
        return Pyproject(path)
    data = load_toml(path)
    build = table(path, data, "build-system")
    backend = build.get("build-backend", LEGACY_BACKEND)
    if not isinstance(backend, str) or not backend:
        raise bad_input(f"{path}: [build-system] build-backend is {shown(backend)}, not a module name",
                        hint='Name the backend as a string, e.g. build-backend = "setuptools.build_meta"')
    metadata = table(path, data, "project")
    table(path, data, "tool")  # [tool.NAME] is checked when asked for: other tools' tables are theirs
    return Pyproject(
        path, found=True, data=data, project=metadata,
        build_system=BuildSystem(
            requires=strings(path, build, "build-system", "requires", '["setuptools>=61"]', LEGACY_REQUIRES),
            backend=backend,
            backend_path=strings(path, build, "build-system", "backend-path", '["."]'),
        ),
        dependencies=strings(path, metadata, "project", "dependencies", '["flask>=3"]'),
        dynamic=strings(path, metadata, "project", "dynamic", '["version"]'),
    )


def load_toml(path: Path) -> dict[str, Any]:
    """A TOML file, parsed; an unreadable, non-UTF-8 or invalid one is bad input that names it."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise bad_input(f"cannot parse {path}: it is not UTF-8 ({exc.reason} at byte {exc.start})",
                        hint="Save the file as UTF-8, the only encoding TOML allows") from exc
    except OSError as exc:
        raise bad_input(f"cannot read {path}: {exc.strerror}", hint="Make the file readable") from exc
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        hint = "Fix the TOML syntax at the line and column named"
        raise bad_input(f"cannot parse {path}: {exc}", hint=hint) from exc


def table(path: Path, data: Mapping[str, Any], key: str, prefix: str = "") -> Mapping[str, Any]:
    """The table `key` of `data` ({} without one); anything else there is bad input."""
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise bad_input(f"{path}: [{prefix}{key}] is {shown(value)}, not a table",
                        hint=f"Write [{prefix}{key}] as a table of keys and values")
    return value


def strings(path: Path, data: Mapping[str, Any], where: str, key: str, example: str,
            default: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The list of strings `key` of the table `where` (`default` without one); anything else there is bad input."""
    value = data.get(key)
    if value is None:
        return default
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise bad_input(f"{path}: [{where}] {key} is {shown(value)}, not a list of strings",
                        hint=f"Write {key} as a list of strings, e.g. {key} = {example}")
    return tuple(value)


def shown(value: object) -> str:
    """A wrong value for a message: its repr, cut short."""
    text = repr(value)
    return text if len(text) <= SHOWN_MAX else text[:SHOWN_MAX - 3] + "..."


def core_metadata(text: str) -> email.message.Message:
    """The headers of a core metadata file (a wheel's METADATA, an sdist's PKG-INFO)."""
    return email.parser.Parser().parsestr(text, headersonly=True)


def read_pkg_info(project: Path) -> email.message.Message | None:
    """The core metadata headers of an unpacked sdist (its PKG-INFO at the top), or None."""
    path = project / "PKG-INFO"
    if not path.is_file():
        return None
    return core_metadata(path.read_text(encoding="utf-8", errors="replace"))
