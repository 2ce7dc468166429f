"""The project's build requirements taken from the release's own Python packages, when Debian's satisfy them.

Before a first build (an ephemeral CI agent) can build the project's wheel,
a build environment needs the backend: uv would download setuptools and
unpack and compile it, most of a cold build's time before the venv. When
the release's packages (python3-setuptools and python3-wheel, installed by
apt under /usr/lib/python3/dist-packages) satisfy every build requirement,
as pybuild builds Debian's own Python packages, the build environment is a
venv without pip whose site-packages holds symbolic links to those
distributions and to nothing else of the system: the backend sees the
requirements it declared, at the versions the release ships (compiled by
their packages), and a setup.py that imports a module it does not declare
fails here as it would anywhere.

A requirement the release does not satisfy (a newer setuptools, a backend
Debian does not package) leaves it to uv's build environment (wheel.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from importlib.metadata import Distribution, PathDistribution, distributions
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

# Where apt puts the Python distributions of the release's packages (Debian's python3 policy, §1.5).
SYSTEM_SITE = Path("/usr/lib/python3/dist-packages")
# Part of the environment's key: a change of how it is made makes a new one.
FORMAT = 1
# setuptools' get_requires_for_build_wheel hook asks for wheel below 70.1, which took in bdist_wheel.
OWN_BDIST_WHEEL = Version("70.1")
IMPORT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def installed(name: str, site: Path = SYSTEM_SITE) -> Distribution | None:
    """The distribution `name` in `site` (found by its metadata directory's name, as an import would)."""
    return next(iter(distributions(name=name, path=[str(site)])), None)


def satisfying(requires: Sequence[str], python_version: str,
               site: Path = SYSTEM_SITE) -> list[Distribution] | None:
    """The distributions of `site` that satisfy `requires` and what they require in turn, for Python
    `python_version` ("3.11"); None when one is missing, too old or too new, or a requirement is unreadable."""
    if not site.is_dir():
        return None
    environment = {"python_version": python_version, "python_full_version": f"{python_version}.0"}
    chosen: dict[str, Distribution] = {}
    pending = [(text, "") for text in requires]
    while pending:
        text, extra = pending.pop()
        try:
            requirement = Requirement(text)
        except InvalidRequirement:
            return None
        if requirement.marker is not None and not requirement.marker.evaluate({**environment, "extra": extra}):
            continue
        name = canonicalize_name(requirement.name)
        dist = installed(name, site)
        if dist is None or not _within(dist, requirement):
            return None
        if name in chosen:
            continue
        chosen[name] = dist
        for wanted in ("", *requirement.extras):
            pending.extend((text, wanted) for text in dist.requires or ())
        if name == "setuptools" and Version(dist.version) < OWN_BDIST_WHEEL:
            pending.append(("wheel", ""))
    return sorted(chosen.values(), key=lambda dist: canonicalize_name(dist.metadata["Name"]))


def constrained_out(dists: Sequence[Distribution], constraints: Iterable[str], python_version: str) -> bool:
    """Whether a constraint the caller gives uv (a line of a constraints file, an entry of uv's
    constraint settings) excludes the version of one of `dists`; a line that is no requirement (an option, a
    nested file) counts as one that does, since what it says is not read here."""
    environment = {"python_version": python_version, "python_full_version": f"{python_version}.0", "extra": ""}
    versions = {canonicalize_name(dist.metadata["Name"]): dist for dist in dists}
    for line in constraints:
        text = line.split(" #", 1)[0].strip()
        if not text or text.startswith("#"):
            continue
        try:
            constraint = Requirement(text)
        except InvalidRequirement:
            return True
        dist = versions.get(canonicalize_name(constraint.name))
        if dist is not None and (constraint.marker is None or constraint.marker.evaluate(environment)) \
                and not _within(dist, constraint):
            return True
    return False


def _within(dist: Distribution, requirement: Requirement) -> bool:
    try:
        return requirement.specifier.contains(Version(dist.version), prereleases=True)
    except InvalidVersion:
        return False


def top_level(dist: Distribution) -> list[str]:
    """The names directly in site-packages that `dist` says it installed: its modules and packages
    (top_level.txt, else the first part of each RECORD path), whether they are there or not."""
    listed = dist.read_text("top_level.txt")
    if listed is not None:
        return sorted({line.strip() for line in listed.splitlines() if IMPORT_NAME.fullmatch(line.strip())})
    return sorted({path.parts[0] for path in dist.files or ()
                   if path.parts[0] not in ("..", "__pycache__") and not path.parts[0].endswith(".pth")}
                  - {metadata_dir(dist).name})


def metadata_dir(dist: Distribution) -> Path:
    """The .dist-info or .egg-info directory of `dist`."""
    assert isinstance(dist, PathDistribution)
    return Path(str(dist._path))  # importlib's only handle on where the metadata is


def own_names(dist: Distribution, claims: Counter[str]) -> list[str]:
    """What to link for `dist`: its metadata directory, and the modules it names that exist and that no other
    distribution names as well (`claims`: how many name each; Debian's setuptools lists `debian` in its
    top_level.txt, python-debian's package)."""
    site = metadata_dir(dist).parent
    names = [metadata_dir(dist).name]
    for module in top_level(dist):
        if claims[module] == 1:
            names.extend(path.name for path in (site / module, site / f"{module}.py") if os.path.lexists(path))
    return names


def environment_key(python: str, requires: Iterable[str], dists: Sequence[Distribution]) -> str:
    """The cache key of the environment for `python` and `requires` over these distributions' versions."""
    versions = [(canonicalize_name(dist.metadata["Name"]), dist.version) for dist in dists]
    return hashlib.sha256(json.dumps(["system", FORMAT, python, sorted(requires), versions]).encode()).hexdigest()[:16]


def link_into(site_packages: Path, dists: Sequence[Distribution], site: Path = SYSTEM_SITE) -> None:
    """Symbolic links in `site_packages` to what `dists` installed in `site` (read from here), at the path the
    release's interpreter sees them (in a build root, its own)."""
    claims = Counter(module for dist in distributions(path=[str(site)]) for module in top_level(dist))
    for dist in dists:
        for name in own_names(dist, claims):
            (site_packages / name).symlink_to(SYSTEM_SITE / name)


def site_of(root: Path | None) -> Path:
    """Where the release's packages are, read from here: this machine's, or those of the build root `root`."""
    return SYSTEM_SITE if root is None else root / SYSTEM_SITE.relative_to("/")


def python_version(python: str) -> str | None:
    """"3.11" for /usr/bin/python3.11; None for an interpreter named without its version."""
    match = re.fullmatch(r"python(\d+\.\d+)", Path(python).name)
    return match.group(1) if match else None
