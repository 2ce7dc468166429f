"""A project's pylock.toml (PEP 751): what it pins is what the package installs, when uv installs.

pip (`pip lock`), uv (`uv export --format pylock.toml`) and PDM write a
pylock.toml that lists the project itself (a directory entry, `path =
"."`, often editable) beside its dependencies. uv installs a pylock.toml
alone and exactly as it is, its directory entries too. So the dependency
layer is filled from a copy without the project's entries (LAYER_LOCK,
in the build's work directory, the rest of the file as it was), and the
versions it pins are the constraints of the build's other installs (the
WSGI server, the project's wheel with anything the lock lacks).

A lock this cannot use that way (one that installs from a relative path,
which the copy would not reach; its packages not written as [[packages]]
tables) is not installed from: the build says why and resolves, as without
a lock. A pylock.toml that is not TOML, or of a lock-version other than
1.x, is bad input (PEP 751: an installer refuses a major version it does
not know).
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from microdeploy.errors import bad_input

PYLOCK_FILE = "pylock.toml"
LAYER_LOCK = "pylock.layer.toml"  # uv takes pylock.toml or pylock.NAME.toml, NAME without dots
CONSTRAINTS = "pylock-constraints.txt"
# A table header of the [[packages]] array, and one of a table inside a package ([packages.directory],
# [[packages.wheels]], [packages.wheels.hashes]).
PACKAGE_HEADER = re.compile(r"\[\[\s*packages\s*\]\]\s*(#.*)?")
INSIDE_PACKAGE = re.compile(r"\[\[?\s*packages\s*\.")
TABLE_HEADER = re.compile(r"\[")
WRITE_AGAIN = "Write it again with the tool that locked the project (pip lock, uv export, PDM's export)"
# Marker variables of PEP 751 that a requirements file cannot hold.
LOCK_ONLY_MARKERS = re.compile(r"\b(extras|dependency_groups)\b")


@dataclass(frozen=True)
class LayerLock:
    """The lock uv fills the layer from, and the versions it pins as a constraints file."""

    lock: Path
    constraints: Path


def read(path: Path) -> tuple[str, dict[str, Any]]:
    """The pylock.toml at `path`, as text and as data; exit 2 if it is not TOML, not of lock-version 1, or its
    packages no tables."""
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise bad_input(f"{path.name} is not a TOML file: {exc}", hint=WRITE_AGAIN) from exc
    version = str(data.get("lock-version", ""))
    if version.split(".")[0] != "1":
        raise bad_input(f"{path.name} has lock-version {version or '(none)'}: the build reads lock-version 1.x",
                        hint="Write it again with a tool that writes PEP 751's lock-version 1.0")
    packages = data.get("packages", [])
    if not isinstance(packages, list) or not all(isinstance(package, dict) for package in packages):
        raise bad_input(f"{path.name}'s packages are not an array of tables (PEP 751)", hint=WRITE_AGAIN)
    return text, data


def is_own(package: Mapping[str, Any], project: str) -> bool:
    """Whether the lock's `package` is the project itself: its name, or the lock's own directory."""
    directory = package.get("directory")
    here = isinstance(directory, dict) and os.path.normpath(str(directory.get("path", ""))) == "."
    return here or canonicalize_name(str(package.get("name", ""))) == canonicalize_name(project)


def relative_paths(value: Any) -> Iterator[str]:
    """Every relative `path` in a package's tables (directory, archive, sdist, wheels)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "path" and isinstance(item, str) and not os.path.isabs(item):
                yield item
            else:
                yield from relative_paths(item)
    elif isinstance(value, list):
        for item in value:
            yield from relative_paths(item)


def runs(text: str) -> list[tuple[bool, list[str]]]:
    """The lines of a pylock.toml in runs: (True, one [[packages]] table with its sub-tables) or (False, the rest:
    top-level keys, other tables)."""
    found: list[tuple[bool, list[str]]] = [(False, [])]
    for line in text.splitlines(keepends=True):
        stripped = line.strip()
        if PACKAGE_HEADER.fullmatch(stripped):
            found.append((True, [line]))
        elif TABLE_HEADER.match(stripped) and not INSIDE_PACKAGE.match(stripped):
            found.append((False, [line]))
        else:
            found[-1][1].append(line)
    return found


def without_own_packages(text: str, project: str) -> str:
    """`text` (a pylock.toml) without the [[packages]] tables of the project itself; each table is read alone."""
    kept: list[str] = []
    for package, lines in runs(text):
        if package and is_own(tomllib.loads("".join(lines))["packages"][0], project):
            continue
        kept.extend(lines)
    return "".join(kept)


def layer_lock(source: Path, dest: Path, project: str) -> LayerLock | str:
    """Write the layer's lock and its constraints into `dest` from `source`'s pylock.toml; or why it cannot be."""
    path = source / PYLOCK_FILE
    text, data = read(path)
    packages = data.get("packages", [])
    others = [package for package in packages if not is_own(package, project)]
    local = sorted({found for package in others for found in relative_paths(package)})
    if local:
        return f"it installs from a path relative to it ({', '.join(local)})"
    try:
        filtered = without_own_packages(text, project)
        same = tomllib.loads(filtered) == {**data, "packages": others}
    except (tomllib.TOMLDecodeError, KeyError, IndexError):
        same = False
    if not same:
        return "its packages are not written as [[packages]] tables"
    dest.mkdir(parents=True, exist_ok=True)
    (dest / LAYER_LOCK).write_text(filtered, encoding="utf-8")
    (dest / CONSTRAINTS).write_text("".join(f"{line}\n" for line in constraint_lines(others)), encoding="utf-8")
    return LayerLock(dest / LAYER_LOCK, dest / CONSTRAINTS)


def constraint_lines(packages: list[dict[str, Any]]) -> list[str]:
    """`NAME==VERSION` for each package the lock pins by version; with its marker where a name has several entries
    (none where that marker needs what only a lock knows, extras or dependency groups)."""
    names = [canonicalize_name(str(package.get("name", ""))) for package in packages]
    lines = []
    for name, package in zip(names, packages, strict=True):
        if "version" not in package:
            continue
        pin = f"{name}=={package['version']}"
        if names.count(name) > 1:
            marker = str(package.get("marker", ""))
            if not marker or LOCK_ONLY_MARKERS.search(marker):
                continue
            pin += f" ; {marker}"
        lines.append(pin)
    return lines
