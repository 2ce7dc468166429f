"""What a library's sdist (setuptools' NAME.egg-info in it) says of the package stdeb makes of it: the top-level
modules it installs, which name the package (stdeb_debian.package_name), the requirements that carry a version,
which its Depends keep (stdeb_debian.versioned_depends), and its programs, which get lintian's overrides
(stdeb_debian.lintian_overrides)."""

from __future__ import annotations

import configparser
import tarfile
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement

# What a requirement given to dh_python3 in debian/rules (single-quoted, in make) must not hold.
UNSAFE_IN_RULES = frozenset("'$\\`")


@dataclass(frozen=True)
class SdistFacts:
    """What the sdist says."""

    modules: tuple[str, ...] = ()  # top-level modules, each a module or a regular package; () if not known so
    floors: tuple[str, ...] = ()  # unconditional requirements with a version specifier, as written
    scripts: tuple[str, ...] = ()  # the programs it installs in /usr/bin (its entry points), sorted


def read_sdist(sdist: Path) -> SdistFacts:
    """The facts of the sdist at `sdist`; none where it cannot be read (stdeb's sdist_dsc, which reads it next,
    says what is wrong with it)."""
    try:
        with tarfile.open(sdist) as tar:
            members = tar.getnames()
            top_level, requires, entry_points = (egg_info_file(tar, members, name) for name in (
                "top_level.txt", "requires.txt", "entry_points.txt"))
    except (tarfile.TarError, OSError):
        return SdistFacts()
    return SdistFacts(regular_modules(top_level, members), floors(requires), programs(entry_points))


def egg_info_file(tar: tarfile.TarFile, members: list[str], name: str) -> str:
    """The text of the one NAME.egg-info/`name` at the sdist's top or one directory down (src/); "" if none."""
    found = [member for member in members if member.endswith(f".egg-info/{name}") and member.count("/") <= 3]
    handle = tar.extractfile(found[0]) if len(found) == 1 else None
    return handle.read().decode("utf-8", "replace") if handle is not None else ""


def regular_modules(top_level: str, members: list[str]) -> tuple[str, ...]:
    """The names top_level.txt lists, when each is a module or a regular package in the sdist (at its top or one
    directory down); () otherwise: a namespace package, whose name other libraries share."""
    modules = tuple(sorted({line.strip() for line in top_level.splitlines() if line.strip()}))
    inside = [tuple(member.split("/")[1:]) for member in members]  # below the sdist's top directory

    def regular(module: str) -> bool:
        return any((path[-1:] == (f"{module}.py",) and len(path) <= 2)
                   or (path[-2:] == (module, "__init__.py") and len(path) <= 3) for path in inside)

    return modules if modules and all(regular(module) for module in modules) else ()


def floors(requires: str) -> tuple[str, ...]:
    """The requirements of requires.txt's first section (those of every install: the later [sections] are extras
    and markers) that carry a version specifier, normalised."""
    found = []
    for line in requires.splitlines():
        if line.strip().startswith("["):
            break
        try:
            requirement = Requirement(line.strip())
        except InvalidRequirement:
            continue
        text = str(requirement)
        if requirement.specifier and requirement.url is None and requirement.marker is None and not (
                UNSAFE_IN_RULES & set(text)):
            found.append(text)
    return tuple(found)


def programs(entry_points: str) -> tuple[str, ...]:
    """The console and GUI scripts of an entry_points.txt, sorted."""
    parser = configparser.ConfigParser(delimiters=("=",), interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(entry_points)
    return tuple(sorted({name for section in ("console_scripts", "gui_scripts") if parser.has_section(section)
                         for name in parser[section]}))
