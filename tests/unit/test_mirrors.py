"""The machine's Debian mirror for any release: one reading of its deb822 sources for builds, images and check."""

from __future__ import annotations

from pathlib import Path

import pytest

from microdeploy.errors import MicrodeployError
from microdeploy.mirrors import Mirror, debian_mirror, release_mirrors

# Fields in any order (deb822 does not fix it), a backports suite, a deb-src stanza.
SOURCES = """\
URIs: http://mirror.example/debian
Types: deb
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
Suites: bookworm bookworm-updates bookworm-backports

Suites: bookworm
Types: deb-src
URIs: http://mirror.example/debian

Components: main
Suites: bookworm-security
URIs: http://mirror.example/debian-security
Types: deb
"""


def test_release_mirrors_rename_the_machines_suites(tmp_path: Path) -> None:
    """trixie's archives are the machine's deb stanzas with trixie's suites; backports and deb-src are left out."""
    sources = tmp_path / "debian.sources"
    sources.write_text(SOURCES)
    assert release_mirrors("trixie", sources) == [
        Mirror("http://mirror.example/debian", ("trixie", "trixie-updates"),
               "/usr/share/keyrings/debian-archive-keyring.gpg"),
        Mirror("http://mirror.example/debian-security", ("trixie-security",)),
    ]
    assert debian_mirror(sources) == "http://mirror.example/debian"


def test_an_unknown_release_is_bad_input(tmp_path: Path) -> None:
    """A release microdeploy does not know is exit 2, before the sources file is read."""
    with pytest.raises(MicrodeployError) as info:
        release_mirrors("buster", tmp_path / "missing.sources")
    assert info.value.exit_code == 2 and "buster" in str(info.value)
