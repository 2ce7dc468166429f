"""The machine's Debian mirror for any release: one reading of its deb822 sources for builds, images and check."""

from __future__ import annotations

from pathlib import Path

import pytest

from microdeploy.errors import MicrodeployError
from microdeploy.mirrors import Mirror, debian_mirror, release_mirrors

SOURCES = """\
Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://mirror.example/debian
Suites: bookworm
Components: main

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
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
