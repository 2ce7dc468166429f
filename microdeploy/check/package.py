"""What `check` reads from a .deb before anything runs: name, version, release, overrides, unit."""

from __future__ import annotations

import re
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from microdeploy import dists
from microdeploy.errors import MicrodeployError, bad_input

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
    from debian import arfile, debfile  # python-debian: only when a package is read

    if not path.is_file():
        raise bad_input(f"no such package file: {path}", hint="Pass the .deb that `microdeploy build` wrote")
    try:
        deb = debfile.DebFile(str(path))
    except (debfile.DebError, arfile.ArError, OSError, EOFError) as exc:
        raise _not_a_deb(path, exc) from exc
    try:
        control: Any = deb.debcontrol()
        data = deb.data
        name = str(control["Package"])
        overrides_text = _member(data, f"./usr/share/lintian/overrides/{name}")
        has_unit = any(
            _member_exists(data, f"./{prefix}/systemd/system/{name}.service") for prefix in ("lib", "usr/lib")
        )
        info = DebInfo(
            path=path.absolute(),
            name=name,
            version=str(control["Version"]),
            architecture=str(control.get("Architecture", "all")),
            depends=str(control.get("Depends", "")),
            overrides=tuple(parse_overrides(overrides_text or "")),
            has_unit=has_unit,
        )
    except (debfile.DebError, arfile.ArError, KeyError, OSError, EOFError, tarfile.TarError) as exc:
        raise _not_a_deb(path, exc) from exc
    finally:
        deb.close()
    return info


def _not_a_deb(path: Path, exc: BaseException) -> MicrodeployError:
    """The error for a file that is not a readable .deb."""
    return bad_input(f"{path} is not a readable Debian package: {exc}",
                     hint="Pass a .deb built by dpkg-deb (check it with `dpkg-deb --info`)")


def release_of(info: DebInfo, requested: str | None = None) -> str:
    """The Debian release the package is for: --dist, else its +debNN revision, else its python3.X, else bookworm."""
    if requested is not None:
        return dists.get(requested).codename
    match = _DEB_REVISION.search(info.version.rpartition("-")[2])
    by_number = {dist.number: dist.codename for dist in dists.DISTS.values()}
    by_python = {dist.python_minor: dist.codename for dist in dists.DISTS.values()}
    if match and int(match.group(1)) in by_number:
        return by_number[int(match.group(1))]
    for python in _PYTHON_DEPENDENCY.findall(info.depends):
        if python in by_python:
            return by_python[python]
    return dists.DEFAULT_DIST


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


def _member(data: Any, name: str) -> str | None:
    """A file of the package's data as text, or None when it ships none."""
    if not data.has_file(name):
        return None
    return str(data.get_content(name).decode("utf-8", errors="replace"))


def _member_exists(data: Any, name: str) -> bool:
    """Whether the package's data holds `name`."""
    return bool(data.has_file(name))
