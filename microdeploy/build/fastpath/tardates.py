"""The entries of a data.tar, and the venv's entries dated by what their directory holds.

dpkg-deb dates every entry of the package SOURCE_DATE_EPOCH, the commit's
time, so at every commit every tar header changes, and with it every run of
small files that datapack compresses. Under the venv, each entry is dated
by its directory's content instead (a directory by its own, a file or
symlink by the one it is in): a time in 2000-2009 derived from the SHA-256
of the names, kinds and contents of the directory's entries (a file's
bytes, a symlink's target, a subdirectory's name alone). A directory that a
commit does not change keeps its headers from build to build; a file that
changes gets a new date, and so does everything in its directory, so
whatever compares dates and sizes (Python's bytecode, an HTTP server's
Last-Modified and ETag, rsync) sees every change. One date per directory
rather than per file: the headers of one directory compress as well as
dpkg-deb's. No date is later than the one dpkg-deb wrote, SOURCE_DATE_EPOCH.
Outside the venv nothing changes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass

TAR_BLOCK = 512
ZERO_BLOCK = bytes(TAR_BLOCK)  # two of them end a tar archive
# GNU tar's entries that hold the next entry's long name or long link target.
LONG_NAME, LONG_LINK = b"L", b"K"
REGULAR, HARD_LINK, SYMLINK, DIRECTORY = (b"0", b"\0", b"7"), b"1", b"2", b"5"
# Header fields: (offset, length).
NAME, MTIME, CHECKSUM, TYPE, LINK_NAME = (0, 100), (136, 12), (148, 8), 156, (157, 100)
CONTENT_DATES_FROM = 946_684_800  # 2000-01-01 UTC
CONTENT_DATES_SPAN = 3653 * 86_400  # ten years: two contents share a date once in 3e8


@dataclass(frozen=True)
class Member:
    """One entry of a tar archive: its header's offset, its name (no leading ./), type, size and link target."""

    header: int
    name: str
    kind: bytes
    size: int
    link: str

    @property
    def data(self) -> int:
        return self.header + TAR_BLOCK


def entries(tar: memoryview) -> Iterator[tuple[int, int]]:
    """The offset and data size of each entry of a tar archive, until its end or the first header it cannot read.

    GNU long names and pax headers are entries of their own here.
    """
    offset = 0
    while offset + TAR_BLOCK <= len(tar):
        header = tar[offset:offset + TAR_BLOCK]
        size = None if header == ZERO_BLOCK else entry_size(header[124:136])
        if size is None:
            return
        yield offset, size
        offset += TAR_BLOCK + padded(size)


def members(tar: memoryview) -> Iterator[Member]:
    """The archive's entries, with GNU long names and link targets read into the entry they belong to."""
    long_name = long_link = None
    for offset, size in entries(tar):
        kind = bytes(tar[offset + TYPE:offset + TYPE + 1])
        data = tar[offset + TAR_BLOCK:offset + TAR_BLOCK + size]
        if kind == LONG_NAME:
            long_name = _text(data)
            continue
        if kind == LONG_LINK:
            long_link = _text(data)
            continue
        name = long_name if long_name is not None else _text(tar[offset:offset + NAME[1]])
        link = long_link if long_link is not None else _text(tar[offset + LINK_NAME[0]:offset + sum(LINK_NAME)])
        long_name = long_link = None
        yield Member(offset, _normal(name), kind, size, _normal(link) if kind == HARD_LINK else link)


def content_dates(tar: memoryview, found: list[Member], venv: str, digests: Mapping[int, bytes]) -> dict[int, int]:
    """The date of each entry under `venv` (a path in the package, no leading ./) whose header says another one,
    by its header's offset.

    `digests`: the SHA-256 of each regular file's data, by its header's offset (file_digests).
    """
    inside = [member for member in found if member.name == venv or member.name.startswith(venv + "/")]
    listings: dict[str, list[bytes]] = {}
    for member in inside:
        if member.name == venv:
            continue
        parent, name = member.name.rsplit("/", 1)
        if member.kind in REGULAR:
            what = digests[member.header]
        elif member.kind == DIRECTORY:
            what = b""  # its own entries date it and what it holds
        else:
            what = member.link.encode("utf-8", "surrogateescape")
        listings.setdefault(parent, []).append(b"%s\0%s\0%s\n" % (name.encode("utf-8", "surrogateescape"),
                                                                   member.kind, what))
    dates = {directory: CONTENT_DATES_FROM + int.from_bytes(
        hashlib.sha256(b"".join(sorted(lines))).digest()[:8], "big") % CONTENT_DATES_SPAN
        for directory, lines in listings.items()}
    empty = CONTENT_DATES_FROM + int.from_bytes(hashlib.sha256(b"").digest()[:8], "big") % CONTENT_DATES_SPAN

    def directory_of(member: Member) -> str:
        return member.name if member.kind == DIRECTORY else member.name.rsplit("/", 1)[0]

    redated = {}
    for member in inside:
        written = header_mtime(tar, member.header)
        date = min(dates.get(directory_of(member), empty), written)
        if date != written:
            redated[member.header] = date
    return redated


def file_digests(tar: memoryview, found: list[Member], pool: Executor) -> dict[int, bytes]:
    """The SHA-256 of each regular file's data, by its header's offset, computed on `pool`'s threads."""
    files = [member for member in found if member.kind in REGULAR]
    hashed = pool.map(lambda member: hashlib.sha256(tar[member.data:member.data + member.size]).digest(), files)
    return dict(zip((member.header for member in files), hashed, strict=True))


def header_mtime(tar: memoryview, header: int) -> int:
    field = bytes(tar[header + MTIME[0]:header + sum(MTIME)]).split(b"\0", 1)[0].strip()
    return int(field, 8) if field else 0


def redated(header: memoryview, date: int) -> bytes:
    """A copy of the tar `header` with the mtime `date` and its checksum computed again (as GNU tar writes both)."""
    block = bytearray(header)
    block[MTIME[0]:sum(MTIME)] = b"%011o\0" % date
    block[CHECKSUM[0]:sum(CHECKSUM)] = b" " * CHECKSUM[1]
    block[CHECKSUM[0]:sum(CHECKSUM)] = b"%06o\0 " % sum(block)
    return bytes(block)


def entry_size(field: memoryview) -> int | None:
    """The size field of a tar header: octal digits, or base-256 when its first byte has the high bit set."""
    if field[0] & 0x80:
        return int.from_bytes(field[1:], "big")
    digits = bytes(field).split(b"\0", 1)[0].strip()
    try:
        return int(digits, 8) if digits else 0
    except ValueError:
        return None


def padded(size: int) -> int:
    """The bytes a tar entry's data of `size` bytes takes: whole blocks."""
    return -(-size // TAR_BLOCK) * TAR_BLOCK


def _text(field: memoryview) -> str:
    return bytes(field).split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def _normal(name: str) -> str:
    """A member's name as a path in the package: without ./ or a trailing slash."""
    name = name[2:] if name.startswith("./") else name
    return name.rstrip("/")
