"""This machine's Debian mirror, as its deb822 sources file names it, for any Debian release.

Build roots (build/buildroot.py), host images and piuparts bases
(testbed/image.py) and the APT feed of `check` all fetch another release than
the machine's own from the same mirror: the mirror that serves this machine's
release serves the others too (and its security archive theirs), so a
release's sources are the machine's stanzas with their suites renamed
(bookworm, bookworm-updates, bookworm-security -> trixie, trixie-updates,
trixie-security). No mirror host is ever written into the repository.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from microdeploy import dists
from microdeploy.errors import MicrodeployError

if TYPE_CHECKING:
    from debian.deb822 import Deb822

__all__ = ["SOURCES_FILE", "Mirror", "debian_mirror", "release_mirrors", "release_sources"]

SOURCES_FILE = Path("/etc/apt/sources.list.d/debian.sources")

# A suite of a release: the codename, or its -updates or -security suite (not
# -backports, -proposed-updates: those are not part of a release's base).
_RELEASE_SUITE = re.compile(r"[a-z]+(-updates|-security)?")
_HINT = "Configure this machine's Debian mirror there (deb822 format)"


@dataclass(frozen=True)
class Mirror:
    """One archive of a release on the machine's mirror: its URI, the release's suites there, its keyring."""

    uri: str
    suites: tuple[str, ...]
    # A keyring's path, or an inline key block as deb822 holds it (continuation lines).
    signed_by: str | None = None

    def stanza(self) -> str:
        """The deb822 stanza of this archive (main only, as the machine's)."""
        # python-debian is imported where it is used: the CLI imports this module for every command.
        from debian.deb822 import Deb822

        fields = Deb822({"Types": "deb", "URIs": self.uri, "Suites": " ".join(self.suites), "Components": "main"})
        if self.signed_by:
            fields["Signed-By"] = self.signed_by
        return str(fields.dump())


def release_mirrors(codename: str, sources: Path = SOURCES_FILE) -> list[Mirror]:
    """The archives of release `codename`: the machine's `Types: deb` stanzas, their suites renamed."""
    dists.get(codename, "the release asked for")
    mirrors = []
    for fields in _stanzas(sources):
        suites = fields.get("Suites", "").split()
        mine = [suite for suite in suites if _RELEASE_SUITE.fullmatch(suite)]
        if "deb" not in fields.get("Types", "").split() or not fields.get("URIs") or not mine:
            continue
        renamed = sorted({codename + re.sub(r"^[a-z]+", "", suite, count=1) for suite in mine})
        mirrors.append(Mirror(fields["URIs"].split()[0], tuple(renamed), fields.get("Signed-By") or None))
    if not mirrors:
        raise MicrodeployError(f"no Debian mirror (a `Types: deb` stanza with URIs and Suites) in {sources}",
                               hint=_HINT)
    return mirrors


def release_sources(codename: str, sources: Path = SOURCES_FILE) -> str:
    """A deb822 sources text of release `codename` on the machine's mirrors."""
    return "\n".join(mirror.stanza() for mirror in release_mirrors(codename, sources))


def debian_mirror(sources: Path = SOURCES_FILE) -> str:
    """The URI of the machine's main Debian archive, the one of a release's own suite (e.g. for piuparts)."""
    codename = dists.DEFAULT_DIST
    for mirror in release_mirrors(codename, sources):
        if codename in mirror.suites:
            return mirror.uri
    raise MicrodeployError(f"no stanza of a release's own suite (e.g. `Suites: {codename}`) in {sources}",
                           hint="Add the deb822 stanza of the main Debian archive, with its `URIs:`")


def _stanzas(sources: Path) -> list[Deb822]:
    """The stanzas of a deb822 file (python-debian's parser: comments dropped, continuation lines kept)."""
    try:
        text = sources.read_text(encoding="utf-8")
    except OSError as exc:
        raise MicrodeployError(f"cannot read {sources}: {exc.strerror}", hint=_HINT) from exc
    from debian.deb822 import Deb822

    return list(Deb822.iter_paragraphs(text.splitlines(), use_apt_pkg=False))
