"""The Debian releases microdeploy builds for and serves: names, numbers, Pythons.

A package is built for one release. Its Debian revision ends in `+debN`
(N the release's major version, as Debian's own stable updates do), so the
build of the newer release sorts above the older one's build of the same
commit and a dist-upgrade moves to it; and the suite it is published into is
read back from that suffix.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from microdeploy.errors import bad_input

OS_RELEASE = Path("/etc/os-release")


@dataclass(frozen=True)
class Dist:
    """One Debian release."""

    codename: str
    number: int
    python_minor: str  # the X.Y of its python3

    @property
    def suffix(self) -> str:
        """What ends the Debian revision of a build for this release: +deb12."""
        return f"+deb{self.number}"


DISTS: Mapping[str, Dist] = {
    dist.codename: dist for dist in (Dist("bookworm", 12, "3.11"), Dist("trixie", 13, "3.13"))
}
SUFFIX_RE = re.compile(r"\+deb(?P<number>\d+)$")
# The suite a repository serves and a package is published into unless told otherwise.
DEFAULT_DIST = "bookworm"


def get(codename: str, origin: str = "--dist") -> Dist:
    """The release called `codename`; bad input (naming `origin`) for any other name."""
    dist = DISTS.get(codename)
    if dist is None:
        raise bad_input(
            f"unknown release {codename!r} (from {origin})",
            hint=f"Use one of: {', '.join(DISTS)}",
        )
    return dist


def host_codename(os_release: Path = OS_RELEASE, environ: Mapping[str, str] = os.environ) -> str:
    """The codename of the machine microdeploy runs on (VERSION_CODENAME of os-release)."""
    codename = codename_in(os_release.read_text(encoding="utf-8")) if os_release.is_file() else None
    return codename or environ.get("DEB_DISTRIBUTION", "unstable")


def codename_in(os_release: str) -> str | None:
    """The VERSION_CODENAME of an os-release file's text (its value quoted or not), or None when it has none."""
    match = re.search(r"^VERSION_CODENAME=[\"']?([a-z]+)[\"']?$", os_release, re.M)
    return match.group(1) if match else None


def host_dist(os_release: Path = OS_RELEASE) -> Dist | None:
    """The release of this machine, or None when microdeploy does not know it (unstable, Ubuntu)."""
    return DISTS.get(host_codename(os_release))


def chosen(names: Iterable[str], origin: str = "--dist", os_release: Path = OS_RELEASE) -> tuple[Dist, ...]:
    """The releases to build for, each once, in the order given; none given means this machine's own."""
    wanted = [get(name, origin) for name in dict.fromkeys(names)]
    if wanted:
        return tuple(wanted)
    own = host_dist(os_release)
    if own is None:
        raise bad_input(
            f"this machine runs {host_codename(os_release)!r}, which microdeploy does not build for",
            hint=f"Name the release to build for with --dist ({', '.join(DISTS)})",
        )
    return (own,)


def of_version(version: str) -> Dist | None:
    """The release a package version was built for (its +debN suffix), or None without one."""
    match = SUFFIX_RE.search(version)
    if match is None:
        return None
    return numbered(int(match["number"]))


def numbered(number: int) -> Dist | None:
    """The release with Debian version `number` (12: bookworm), or None."""
    return next((dist for dist in DISTS.values() if dist.number == number), None)


def with_python(minor: str) -> Dist | None:
    """The release whose python3 is `minor` ("3.11": bookworm), or None."""
    return next((dist for dist in DISTS.values() if dist.python_minor == minor), None)
