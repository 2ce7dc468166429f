"""The .deb's gzip members, the data one compressed in chunks that later builds reuse.

debian/rules has dpkg-deb write the package with plain control.tar and
data.tar (-Znone); `compress_members` replaces them with control.tar.gz
and data.tar.gz. The data member is one gzip stream whose deflate data is a
run of chunks of the tar, each compressed on its own and ended by a sync
flush, with no reference to an earlier chunk (what pigz --independent
writes): every gzip reader reads it as one stream.

The data of each large file (at least SHARED_MIN bytes: most of a venv's
bytes) is a chunk of its own, taken from the cache when a build compressed
the same bytes before (deb-chunks/KEY, keyed by the bytes, the level and
zlib's version); the runs between them (tar headers, which carry the
build's dates, and small files) are compressed at every build. So an
app-only rebuild compresses little more than its small files. Chunks are
compressed on all cores. The output depends on the tar's bytes and the
level alone, whatever is cached and however many cores there are.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import struct
import zlib
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from debian import arfile

from microdeploy.build.cache import touch
from microdeploy.errors import MicrodeployError
from microdeploy.fsutil import atomic_write

# The compressor this module writes: for it, debian/rules has dpkg-deb leave the members plain.
COMPRESSOR = "gzip"
CHUNKS_KIND = "deb-chunks"
TAR_BLOCK = 512
ZERO_BLOCK = bytes(TAR_BLOCK)  # two of them end a tar archive
# A file's data makes a chunk of its own from this size on. Each chunk starts
# without the 32 KiB of history deflate refers back to; from this size on,
# what that costs stays within 0.1% of the package's size.
SHARED_MIN = 128 << 10
GZIP_METHOD_DEFLATE = 8
GZIP_OS_UNIX = 3
# An empty fixed-Huffman block with BFINAL set: the end of the deflate data.
FINAL_BLOCK = b"\x03\x00"
AR_MAGIC = b"!<arch>\n"
AR_HEADER_SIZE = 60
DIGEST_SIZE = 32  # a cached chunk starts with the SHA-256 of the rest
# What the new package is written from: new bytes, or views of the old package and of cached chunks.
Piece = bytes | memoryview
# The members of a .deb that dpkg-deb -Znone writes, and their names once compressed.
PLAIN_MEMBERS = {"debian-binary": "debian-binary", "control.tar": "control.tar.gz", "data.tar": "data.tar.gz"}


def writes(compression: str) -> bool:
    """Whether this module compresses a package of `compression`: then debian/rules leaves its members plain."""
    return compression == COMPRESSOR


def compress_members(deb: Path, level: int, cache: Path | None) -> None:
    """Rewrite `deb` (made with dpkg-deb -Znone) with its control and data members gzipped at `level`.

    `cache` is the directory of the data member's compressed chunks (None:
    compress every chunk, keep none). The package is read through a map of
    its pages, and cached chunks are written from maps of theirs: a large
    venv's package would otherwise take more new memory than it takes time
    to compress its changed part.
    """
    try:
        members = arfile.ArFile(str(deb)).getmembers()
    except (arfile.ArError, OSError) as exc:
        raise MicrodeployError(f"{deb} is not a .deb that dpkg-deb wrote: {exc}") from exc
    names = [member.name for member in members]
    if names != list(PLAIN_MEMBERS):
        raise MicrodeployError(f"{deb} has the members {names}, not the plain ones of dpkg-deb -Znone")
    plain = deb.with_name(f".{deb.name}.plain")
    deb.rename(plain)  # not replaced by a rename: ext4 would write the new file out at once
    try:
        with plain.open("rb") as handle:
            mapped = memoryview(mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ))
        with deb.open("xb") as out:
            out.writelines(ar_archive([(member, packed(member.name, data, level, cache))
                                       for member, data in zip(members, member_data(mapped, members), strict=True)]))
    except BaseException:
        deb.unlink(missing_ok=True)
        plain.rename(deb)
        raise
    plain.unlink()


def member_data(archive: memoryview, members: Sequence[arfile.ArMember]) -> Iterator[memoryview]:
    """The data of each member of an ar archive, in order: each follows its 60-byte header, on an even offset."""
    offset = len(AR_MAGIC)
    for member in members:
        start = offset + AR_HEADER_SIZE
        yield archive[start:start + member.size]
        offset = start + member.size + member.size % 2


def packed(name: str, data: memoryview, level: int, cache: Path | None) -> Sequence[Piece]:
    """A member's new data: the tars gzipped, the rest as it is."""
    if name == "control.tar":
        return gzip_member(data, [deflate_chunk(data, level)], level)
    if name == "data.tar":
        return gzip_member(data, deflated_data(data, level, cache), level)
    return [data]


def ar_archive(parts: Sequence[tuple[arfile.ArMember, Sequence[Piece]]]) -> Iterator[Piece]:
    """The bytes of an ar archive of `parts`: each member's time, owner and mode as before, its new name and data."""
    yield AR_MAGIC
    for member, blocks in parts:
        size = sum(len(block) for block in blocks)
        name = PLAIN_MEMBERS[member.name]
        fmode = member.fmode.decode("ascii").strip()
        yield (f"{name:<16}{member.mtime:<12}{member.owner:<6}{member.group:<6}{fmode:<8}{size:<10}`\n"
               .encode("ascii"))
        yield from blocks
        if size % 2:
            yield b"\n"


def gzip_member(data: memoryview, deflated: Sequence[Piece], level: int) -> list[Piece]:
    """One gzip member of `data`, whose deflate data is the chunks `deflated`, in order."""
    extra_flags = 2 if level == 9 else 4 if level == 1 else 0  # the XFL that zlib's own gzip writer sets
    header = struct.pack("<BBBBIBB", 0x1F, 0x8B, GZIP_METHOD_DEFLATE, 0, 0, extra_flags, GZIP_OS_UNIX)
    trailer = struct.pack("<II", zlib.crc32(data), len(data) & 0xFFFFFFFF)
    return [header, *deflated, FINAL_BLOCK, trailer]


def deflate_chunk(chunk: memoryview, level: int) -> bytes:
    """Raw deflate data of `chunk` alone, ending byte-aligned and not final."""
    compressor = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS)
    return compressor.compress(chunk) + compressor.flush(zlib.Z_SYNC_FLUSH)


def deflated_data(tar: memoryview, level: int, cache: Path | None) -> list[Piece]:
    """The chunks of `tar` deflated, in order: large files' data from the cache where it holds them, the rest
    compressed on all cores (and the large files' data stored)."""
    chunks = [(tar[start:end], shared) for start, end, shared in chunks_of(tar)]
    keys = {index: chunk_key(chunk, level) for index, (chunk, shared) in enumerate(chunks) if shared}
    found: dict[int, Piece] = {}
    if cache is not None:
        found = {index: payload for index, key in keys.items() if (payload := cached(cache / key)) is not None}
    missing = [index for index in range(len(chunks)) if index not in found]
    with ThreadPoolExecutor(max_workers=max(1, min(len(missing), os.cpu_count() or 1))) as pool:
        made = dict(zip(missing, pool.map(lambda index: deflate_chunk(chunks[index][0], level), missing),
                        strict=True))
    if cache is not None and keys.keys() - found.keys():
        cache.mkdir(parents=True, exist_ok=True)
        for index in keys.keys() - found.keys():
            atomic_write(cache / keys[index], hashlib.sha256(made[index]).digest() + made[index], durable=False)
    return [found[index] if index in found else made[index] for index in range(len(chunks))]


def cached(path: Path) -> memoryview | None:
    """A cached chunk's compressed bytes, mapped, checked against the digest stored before them; None if absent
    or damaged."""
    try:
        with path.open("rb") as handle:
            stored = memoryview(mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ))
    except (OSError, ValueError):  # ValueError: an empty file, which cannot be mapped
        return None
    digest, payload = stored[:DIGEST_SIZE], stored[DIGEST_SIZE:]
    if hashlib.sha256(payload).digest() != digest:
        return None
    touch(path)
    return payload


def chunk_key(chunk: memoryview, level: int) -> str:
    """The cache key of a chunk compressed at `level` by this zlib (another zlib may compress it differently)."""
    digest = hashlib.sha256(f"deflate-chunk {level} {zlib.ZLIB_RUNTIME_VERSION}\n".encode("ascii"))
    digest.update(chunk)
    return digest.hexdigest()


def chunks_of(tar: memoryview) -> Iterator[tuple[int, int, bool]]:
    """(start, end, shared) of each chunk of `tar`, in order: shared when it is the data of one large file."""
    run = 0
    for offset, size in entries(tar):
        if size >= SHARED_MIN:
            start, end = offset + TAR_BLOCK, offset + TAR_BLOCK + padded(size)
            yield run, start, False
            yield start, end, True
            run = end
    if run < len(tar):
        yield run, len(tar), False


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
