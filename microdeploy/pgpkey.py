"""What an ASCII-armored OpenPGP key file holds, read without gpg: a public key, and nothing secret.

The APT key goes into Hiera data, which a control repository commits and
every host reads, so a file that also holds a secret key (an .asc that a
secret key was appended to, `gpg --export-secret-keys` output) must be
refused before any of it is written. Armor is RFC 4880's: `-----BEGIN PGP
... BLOCK-----`, header lines, a blank line, base64, an optional `=` CRC line,
and the END line; each block's first packet names what it is.
"""

from __future__ import annotations

import base64
import binascii
import re

_BEGIN = re.compile(r"^-----BEGIN PGP (?P<kind>[A-Z ,/0-9]+)-----[ \t\r]*$", re.MULTILINE)
_PUBLIC = "PUBLIC KEY BLOCK"
# OpenPGP packet tags (RFC 4880 §4.3).
_PUBLIC_KEY_TAG = 6
_SECRET_KEY_TAGS = {5: "a secret key", 7: "a secret subkey"}


def refusal(text: str) -> str | None:
    """Why `text` is not an ASCII-armored public key and nothing else, or None when it is one."""
    blocks = list(_BEGIN.finditer(text))
    if not blocks:
        return "is not an ASCII-armored OpenPGP key (no -----BEGIN PGP PUBLIC KEY BLOCK----- line)"
    for block in blocks:
        if block.group("kind") != _PUBLIC:
            return f"holds a {block.group('kind')}, not only the public key"
        end = text.find(f"-----END PGP {_PUBLIC}-----", block.end())
        if end < 0:
            return "has a public key block without its -----END PGP PUBLIC KEY BLOCK----- line"
        tag = _first_packet_tag(text[block.end():end])
        if tag in _SECRET_KEY_TAGS:
            return f"holds {_SECRET_KEY_TAGS[tag]} in its public key block"
        if tag != _PUBLIC_KEY_TAG:
            return "has a public key block that holds no OpenPGP public key (its data is not one)"
    return None


def _first_packet_tag(body: str) -> int | None:
    """The tag of the first packet of an armored block's body (from the end of its BEGIN line), or None."""
    lines = body.replace("\r\n", "\n").split("\n")[1:]
    if "" in lines:  # armor headers ("Comment: ...") end at the first blank line
        lines = lines[lines.index("") + 1:]
    data = "".join(line.strip() for line in lines if line.strip() and not line.startswith("="))
    try:
        first = base64.b64decode(data, validate=True)[:1]
    except (binascii.Error, ValueError):
        return None
    if not first or not first[0] & 0x80:
        return None
    # A new-format header has the tag in its low six bits; an old-format one in bits 2-5.
    return first[0] & 0x3F if first[0] & 0x40 else (first[0] >> 2) & 0x0F
