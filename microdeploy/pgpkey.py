"""What an ASCII-armored OpenPGP key file holds, read without gpg: public keys, and nothing secret.

The APT key goes into Hiera data, which a control repository commits and
every host reads, so a file that also holds a secret key (an .asc that a
secret key was appended to, `gpg --export-secret-keys` output, secret
packets under a PUBLIC KEY BLOCK label) must be refused before any of it is
written. Armor is RFC 4880's (§6.2): `-----BEGIN PGP ... BLOCK-----`, header
lines, a line that is empty or white space, base64, an optional `=` CRC line
and the END line. The packets inside are walked by their headers (§4.2).
"""

from __future__ import annotations

import base64
import binascii
import re

_BEGIN = re.compile(r"^-----BEGIN PGP (?P<kind>[A-Z ,/0-9]+)-----[ \t\r]*$", re.MULTILINE)
_HEADER = re.compile(r"[A-Za-z-]+: ")
_PUBLIC = "PUBLIC KEY BLOCK"
_END = f"-----END PGP {_PUBLIC}-----"
# OpenPGP packet tags (RFC 4880 §4.3).
_PUBLIC_KEY_TAG = 6
_SECRET_KEY_TAGS = {5: "a secret key", 7: "a secret subkey"}


def refusal(text: str) -> str | None:
    """Why `text` is not ASCII-armored public keys and nothing else, or None when it is."""
    blocks = list(_BEGIN.finditer(text))
    if not blocks:
        return "is not an ASCII-armored OpenPGP key (no -----BEGIN PGP PUBLIC KEY BLOCK----- line)"
    outside, position = [], 0
    for block in blocks:
        if block.group("kind") != _PUBLIC:
            return f"holds a {block.group('kind')}, not only the public key"
        end = text.find(_END, block.end())
        if end < 0:
            return f"has a public key block without its {_END} line"
        outside.append(text[position:block.start()])
        position = end + len(_END)
        tags = _packet_tags(text[block.end():end])
        if tags is None or not tags or tags[0] != _PUBLIC_KEY_TAG:
            return "has a public key block that holds no OpenPGP public key (its data is not one)"
        secret = next((tag for tag in tags if tag in _SECRET_KEY_TAGS), None)
        if secret is not None:
            return f"holds {_SECRET_KEY_TAGS[secret]} in its public key block"
    if "".join([*outside, text[position:]]).strip():
        return "holds text outside its public key blocks"
    return None


def _packet_tags(body: str) -> list[int] | None:
    """The tags of the packets of an armored block's body (from the end of its BEGIN line), or None when it is no
    sequence of OpenPGP packets."""
    lines = body.replace("\r\n", "\n").rstrip().split("\n")[1:]
    blank = next((number for number, line in enumerate(lines) if not line.strip()), None)
    if blank is not None:  # armor headers ("Comment: ...") end at the first blank line
        lines = lines[blank + 1:]
    else:  # no blank line, which gpg reads all the same: the headers are the lines that look like them
        lines = lines[next((n for n, line in enumerate(lines) if not _HEADER.match(line)), len(lines)):]
    data = "".join(line.strip() for line in lines if line.strip() and not line.startswith("="))
    try:
        packets = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return None
    tags, offset = [], 0
    while offset < len(packets):
        walked = _packet(packets, offset)
        if walked is None:
            return None
        tag, offset = walked
        tags.append(tag)
    return tags


def _packet(data: bytes, offset: int) -> tuple[int, int] | None:
    """The tag of the packet at `offset` and the offset after it, or None for a header that is not one."""
    header = data[offset]
    if not header & 0x80:
        return None
    if header & 0x40:  # a new-format header: the tag in its low six bits, then a one-, two- or five-octet length
        tag, first = header & 0x3F, offset + 1
        if first >= len(data):
            return None
        octet = data[first]
        if octet < 192:
            length, start = octet, first + 1
        elif octet < 224:
            length, start = ((octet - 192) << 8) + data[first + 1] + 192 if first + 1 < len(data) else -1, first + 2
        elif octet == 255:
            length, start = int.from_bytes(data[first + 1:first + 5], "big"), first + 5
        else:  # a partial body length: data packets only, never a key's
            return None
    else:  # an old-format header: the tag in bits 2-5, the length's size in bits 0-1
        tag, size = (header >> 2) & 0x0F, (1, 2, 4, 0)[header & 0x03]
        if size == 0:  # an indeterminate length: the rest of the data
            return tag, len(data)
        length, start = int.from_bytes(data[offset + 1:offset + 1 + size], "big"), offset + 1 + size
    end = start + length
    return (tag, end) if length >= 0 and end <= len(data) else None
