"""Debian's own package of a Python distribution, from dh-python's data of the archive.

dh-python ships, for each interpreter, a "fallback" file written from the
archive when dh-python itself is built: one line per distribution, with the
Debian package that holds it (`attrs python3-attr`, `PySocks python3-socks`).
dh_python3 reads it to turn a requires.txt name into a Depends, so a library
published under that name is the package other packages' Depends mean, and it
upgrades Debian's package of the same files instead of clashing with them.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

from packaging.utils import canonicalize_name

from microdeploy import validate

# Below the root the library is built in (this machine's, or a release's build root: dh-python is in both).
FALLBACK = Path("usr/share/dh-python/dist/cpython3_fallback")
# A line: the distribution's name, an optional range of Python versions, the Debian dependency, then optional
# version rules after ';' (dh-python's pydist format).
LINE = re.compile(r"(?P<name>[A-Za-z0-9][A-Za-z0-9_.-]*)\s*(?:-?\d\.\d+(?:-(?:\d\.\d+)?)?)?\s*(?P<dependency>[^;]*)")


def debian_package(distribution: str, root: Path = Path("/")) -> str:
    """The package of `distribution` that dh-python's data in `root` names; "" without that data."""
    try:
        text = (root / FALLBACK).read_text(encoding="utf-8")
    except OSError:
        return ""
    return package_of(distribution, text)


def package_of(distribution: str, data: str) -> str:
    """The python3-* package that `data` (a fallback file's text) names for `distribution`; "" when it names none,
    several, a relation that is no plain package name (argparse: `python3 (>= 3.2)`), or a package that holds other
    distributions too (python3-azure holds hundreds), which a package of one library must not replace."""
    wanted = canonicalize_name(distribution)
    holders: defaultdict[str, set[str]] = defaultdict(set)  # package -> the distributions it holds
    for line in data.splitlines():
        found = LINE.match(line.strip())
        if found is not None and not line.lstrip().startswith("#"):
            holders[found["dependency"].strip()].add(canonicalize_name(found["name"]))
    packages = [package for package, names in holders.items() if wanted in names]
    if len(packages) != 1:
        return ""
    [package] = packages
    plain = package.startswith("python3-") and validate.PACKAGE_NAME.pattern.fullmatch(package) is not None
    return package if plain and holders[package] == {wanted} else ""
