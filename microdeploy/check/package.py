"""What `check` reads from a .deb before anything runs (name, version, release, overrides, unit), and how its
version gets above Debian's."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from debian.debian_support import Version

from microdeploy import dists
from microdeploy.debfile import opened, package_of
from microdeploy.errors import bad_input

__all__ = ["DebInfo", "Override", "read_deb", "release_of"]

# "[package[ type]: ]tag [context]" (lintian's override syntax).
_OVERRIDE = re.compile(r"^(?:[a-z0-9][a-z0-9.+-]*(?:\s+(?:binary|source|udeb))?\s*:\s*)?(\S+)")
# Debian's numbering of its releases, as stable-update revisions carry it (+deb12u1).
_DEB_REVISION = re.compile(r"\+deb(\d+)(?:u\d+)?(?:[.~+]|$)")
# A package that pins python3.X belongs to the release whose python3 that is.
_PYTHON_DEPENDENCY = re.compile(r"(?:^|[,|]\s*)python(3\.\d+)\b")


@dataclass(frozen=True)
class Override:
    """One lintian override the package ships, with the reason its comment gives."""

    tag: str
    reason: str


@dataclass(frozen=True)
class DebInfo:
    """The facts of a .deb that the checks need."""

    path: Path
    name: str
    version: str
    architecture: str
    depends: str
    overrides: tuple[Override, ...]
    has_unit: bool

    @property
    def unit(self) -> str:
        """The systemd unit named after the package."""
        return f"{self.name}.service"


def read_deb(path: Path) -> DebInfo:
    """Read a .deb's control fields and the few files the checks need (exit 2 if it is not a .deb)."""
    if not path.is_file():
        raise bad_input(f"no such package file: {path}", hint="Pass the .deb that `microdeploy build` wrote")
    with opened(path) as deb:
        control = deb.debcontrol()
        package = package_of(control, path)
        data = deb.data
        overrides = f"./usr/share/lintian/overrides/{package.name}"
        overrides_text = data.get_content(overrides, "utf-8", "replace") if data.has_file(overrides) else None
        has_unit = any(data.has_file(f"./{prefix}/systemd/system/{package.name}.service")
                       for prefix in ("lib", "usr/lib"))
    return DebInfo(
        path=path.absolute(),
        name=package.name,
        version=package.version,
        architecture=package.architecture,
        depends=control.get("Depends", ""),
        overrides=tuple(parse_overrides(overrides_text or "")),
        has_unit=has_unit,
    )


def release_of(info: DebInfo, requested: str | None = None) -> str:
    """The Debian release the package is for: --dist, else its +debNN revision, else its python3.X, else bookworm."""
    if requested is not None:
        return dists.get(requested).codename
    match = _DEB_REVISION.search(info.version.rpartition("-")[2])
    found = dists.numbered(int(match.group(1))) if match else None
    for python in _PYTHON_DEPENDENCY.findall(info.depends):
        found = found or dists.with_python(python)
    return found.codename if found else dists.DEFAULT_DIST


def parse_overrides(text: str) -> list[Override]:
    """The overrides of a lintian overrides file, each with the comment lines above it as its reason."""
    overrides: list[Override] = []
    comment: list[str] = []
    after_override = False
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            comment, after_override = [], False
        elif line.startswith("#"):
            # A comment after overrides starts the reason of the next ones.
            if after_override:
                comment, after_override = [], False
            comment.append(line.lstrip("#").strip())
        else:
            after_override = True
            match = _OVERRIDE.match(line)
            tag = match.group(1) if match else line
            overrides.append(Override(tag, " ".join(comment) or "(no reason given)"))
    return overrides


def higher_version_hint(ours: Version, debians: Version) -> str:
    """How to build a version above Debian's `debians`: a revision does it only where the epochs and upstream
    versions are the same (Debian's 1.7.1+dfsg sorts above 1.7.1, whatever either's revision), and a version only
    with Debian's epoch (PEP 440's N!)."""
    if ours.epoch != debians.epoch:
        epoch = debians.epoch
        return f"--version with Debian's epoch or a higher one: Debian's is {epoch} (PEP 440's {epoch}!)"
    if ours.upstream_version == debians.upstream_version:
        return "--version, or --revision above Debian's"
    return (f"--version: no revision puts upstream version {ours.upstream_version} above Debian's "
            f"{debians.upstream_version}")
