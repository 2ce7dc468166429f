"""The machine's Debian mirror for any release: one reading of its deb822 sources for builds, images and check."""

from __future__ import annotations

from pathlib import Path

import pytest

from microdeploy.errors import MicrodeployError
from microdeploy.mirrors import Mirror, debian_mirror, release_mirrors, release_sources

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


# This machine's own file as Debian's images ship it: a comment inside each stanza.
SNAPSHOT_SOURCES = """\
Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
# http://snapshot.debian.org/archive/debian-security/20250520T000000Z
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""

# The key block's lines, as deb822 continues a field (" ." stands for an empty line).
KEY_BLOCK = """
 -----BEGIN PGP PUBLIC KEY BLOCK-----
 .
 mDMEZVhUkhYJKwYBBAHaRw8BAQdAX3v0aNw3n9oYEbZmgBqjW6tX3MZ6a7n1S2dY
 tGfUzm+0IU1pcnJvciBTaWduaW5nIEtleSA8YXB0QGV4YW1wbGUub3JnPoiTBBMW
 =Xq7p
 -----END PGP PUBLIC KEY BLOCK-----"""

# A header of comments (as Ubuntu's and extrepo's files have), an inline
# Signed-By key block with a comment among the fields, a whitespace-only line
# and several blank lines between stanzas, a commented-out stanza at the end.
INLINE_KEY_SOURCES = f"""\
## Debian mirror of this site.
## Key: inline, so that no keyring file has to be shipped first.

Types: deb
URIs: https://mirror.example.org/debian/
# updates: point releases before they are in the release
Suites: bookworm bookworm-updates
Components: main contrib
Signed-By:{KEY_BLOCK}
{'   '}
Types: deb
URIs: https://mirror.example.org/debian-security/
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg


# Types: deb
# URIs: https://mirror.example.org/debian/
# Suites: bookworm-backports
"""


def test_comments_inside_stanzas_are_not_fields(tmp_path: Path) -> None:
    """Debian's own sources file, a comment line inside each stanza, reads as its two archives."""
    sources = tmp_path / "debian.sources"
    sources.write_text(SNAPSHOT_SOURCES)
    keyring = "/usr/share/keyrings/debian-archive-keyring.gpg"
    assert release_mirrors("bookworm", sources) == [
        Mirror("http://deb.debian.org/debian", ("bookworm", "bookworm-updates"), keyring),
        Mirror("http://deb.debian.org/debian-security", ("bookworm-security",), keyring),
    ]


def test_an_inline_signed_by_key_block_is_kept_whole(tmp_path: Path) -> None:
    """A multi-line Signed-By key is the archive's keyring, and the release's sources carry it as deb822 lines."""
    sources = tmp_path / "debian.sources"
    sources.write_text(INLINE_KEY_SOURCES)
    mirrors = release_mirrors("trixie", sources)
    assert mirrors == [
        Mirror("https://mirror.example.org/debian/", ("trixie", "trixie-updates"), KEY_BLOCK),
        Mirror("https://mirror.example.org/debian-security/", ("trixie-security",),
               "/usr/share/keyrings/debian-archive-keyring.gpg"),
    ]
    assert mirrors[0].stanza() == (
        "Types: deb\nURIs: https://mirror.example.org/debian/\nSuites: trixie trixie-updates\nComponents: main\n"
        f"Signed-By:{KEY_BLOCK}\n"
    )
    # What is written for the release reads back as the same archives.
    written = tmp_path / "trixie.sources"
    written.write_text(release_sources("trixie", sources))
    assert release_mirrors("trixie", written) == mirrors


def test_a_file_of_comments_only_has_no_mirror(tmp_path: Path) -> None:
    """Commented-out stanzas are no archive: the missing mirror is reported with the fix."""
    sources = tmp_path / "debian.sources"
    sources.write_text("# Types: deb\n# URIs: http://deb.debian.org/debian\n# Suites: bookworm\n")
    with pytest.raises(MicrodeployError) as info:
        release_mirrors("bookworm", sources)
    assert "no Debian mirror" in info.value.message
    assert info.value.hint == "Configure this machine's Debian mirror there (deb822 format)"
