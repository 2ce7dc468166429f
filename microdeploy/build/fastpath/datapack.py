"""The .deb's gzip members, the data one compressed in chunks that later builds reuse.

debian/rules has dpkg-deb write the package with plain control.tar and
data.tar (-Znone); `compress_members` replaces them with control.tar.gz
and data.tar.gz. The data member is one gzip stream whose deflate data is a
run of chunks of the tar, each compressed on its own and ended by a sync
flush, with no reference to an earlier chunk (what pigz --independent
writes): every gzip reader reads it as one stream.

The data of each large file (at least SHARED_MIN bytes: most of a venv's
bytes) is a chunk of its own, and so is each run between them (tar headers
and small files). A chunk is taken from the cache when a build compressed
the same bytes before (deb-chunks/KEY, keyed by the bytes, the level and
zlib's version). The venv's entries are dated by what their directory
holds (tardates.py), so the runs of directories that a commit does not
change are the same bytes at the next build: an app-only rebuild compresses
little more than the runs around the directories it changed. Chunks are compressed on all
cores. The output depends on the tar's bytes, the venv's path and the level
alone, whatever is cached and however many cores there are.
"""

from __future__ import annotations

import bisect
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
from microdeploy.build.fastpath import tardates
from microdeploy.build.fastpath.tardates import TAR_BLOCK
from microdeploy.errors import MicrodeployError
from microdeploy.fsutil import atomic_write

# The compressor this module writes: for it, debian/rules has dpkg-deb leave the members plain.
COMPRESSOR = "gzip"
CHUNKS_KIND = "deb-chunks"
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


def compress_members(deb: Path, level: int, cache: Path | None, venv: str | None = None) -> None:
    """Rewrite `deb` (made with dpkg-deb -Znone) with its control and data members gzipped at `level`.

    `cache` is the directory of the data member's compressed chunks (None:
    compress every chunk, keep none). `venv`: the venv's path in the package
    (no leading /), whose entries are dated by their content. The package is
    read through a map of its pages, and cached chunks are written from maps
    of theirs: a large venv's package would otherwise take more new memory
    than it takes time to compress its changed part.
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
            out.writelines(ar_archive([(member, packed(member.name, data, level, cache, venv))
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


def packed(name: str, data: memoryview, level: int, cache: Path | None, venv: str | None) -> Sequence[Piece]:
    """A member's new data: the tars gzipped, the rest as it is."""
    if name == "control.tar":
        return gzip_member([data], [deflate_chunk(data, level)], level)
    if name == "data.tar":
        chunks, deflated = deflated_data(data, level, cache, venv)
        return gzip_member(chunks, deflated, level)
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


def gzip_member(chunks: Sequence[Piece], deflated: Sequence[Piece], level: int) -> list[Piece]:
    """One gzip member of the data `chunks` (in order), whose deflate data is the chunks `deflated`, in order."""
    extra_flags = 2 if level == 9 else 4 if level == 1 else 0  # the XFL that zlib's own gzip writer sets
    header = struct.pack("<BBBBIBB", 0x1F, 0x8B, GZIP_METHOD_DEFLATE, 0, 0, extra_flags, GZIP_OS_UNIX)
    crc = 0
    for chunk in chunks:
        crc = zlib.crc32(chunk, crc)
    trailer = struct.pack("<II", crc, sum(len(chunk) for chunk in chunks) & 0xFFFFFFFF)
    return [header, *deflated, FINAL_BLOCK, trailer]


def deflate_chunk(chunk: Piece, level: int) -> bytes:
    """Raw deflate data of `chunk` alone, ending byte-aligned and not final."""
    compressor = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS)
    return compressor.compress(chunk) + compressor.flush(zlib.Z_SYNC_FLUSH)


def deflated_data(tar: memoryview, level: int, cache: Path | None,
                  venv: str | None) -> tuple[list[Piece], list[Piece]]:
    """The chunks of `tar` (the venv's headers dated by content), and each deflated, in order: from the cache
    where it holds them, the rest compressed on all cores."""
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        found = list(tardates.members(tar))
        digests = tardates.file_digests(tar, found, pool)
        dates = tardates.content_dates(tar, found, venv, digests) if venv is not None else {}
        headers = {offset: tardates.redated(tar[offset:offset + TAR_BLOCK], date) for offset, date in dates.items()}
        offsets = sorted(headers)
        by_data = {member.data: member for member in found}
        chunks: list[Piece] = []
        keys: list[str] = []
        for start, end, shared in chunks_of(tar):
            member = by_data.get(start)
            if shared and member is not None and member.header in digests:
                # The file's digest, computed for its date, and its size say which bytes the chunk holds.
                chunks.append(tar[start:end])
                keys.append(chunk_key(level, b"file %d " % member.size + digests[member.header]))
            else:
                chunks.append(with_headers(tar, start, end, headers, offsets))
                keys.append("")  # keyed on the pool, below
        runs = [index for index, key in enumerate(keys) if not key]
        run_keys = pool.map(lambda index: chunk_key(level, b"bytes " + hashlib.sha256(chunks[index]).digest()), runs)
        for index, key in zip(runs, run_keys, strict=True):
            keys[index] = key
        found_chunks: dict[int, Piece] = {}
        if cache is not None:
            found_chunks = {index: payload for index, key in enumerate(keys)
                            if (payload := cached(cache / key)) is not None}
        missing = [index for index in range(len(chunks)) if index not in found_chunks]
        made = dict(zip(missing, pool.map(lambda index: deflate_chunk(chunks[index], level), missing), strict=True))
    if cache is not None and made:
        cache.mkdir(parents=True, exist_ok=True)
        for index, deflated in made.items():
            atomic_write(cache / keys[index], hashlib.sha256(deflated).digest() + deflated, durable=False)
    return chunks, [found_chunks[index] if index in found_chunks else made[index] for index in range(len(chunks))]


def with_headers(tar: memoryview, start: int, end: int, headers: dict[int, bytes], offsets: list[int]) -> Piece:
    """The bytes of `tar` from `start` to `end`, with the tar headers at the offsets of `headers` (`offsets`,
    sorted) replaced."""
    inside = offsets[bisect.bisect_left(offsets, start):bisect.bisect_left(offsets, end)]
    if not inside:
        return tar[start:end]
    run = bytearray(tar[start:end])
    for offset in inside:
        run[offset - start:offset - start + TAR_BLOCK] = headers[offset]
    return bytes(run)


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


def chunk_key(level: int, content: bytes) -> str:
    """The cache key of a chunk compressed at `level` by this zlib (another zlib may compress it differently):
    `content` says which bytes the chunk holds."""
    digest = hashlib.sha256(f"deflate-chunk {level} {zlib.ZLIB_RUNTIME_VERSION}\n".encode("ascii"))
    digest.update(content)
    return digest.hexdigest()


def chunks_of(tar: memoryview) -> Iterator[tuple[int, int, bool]]:
    """(start, end, shared) of each chunk of `tar`, in order: shared when it is the data of one large file."""
    run = 0
    for offset, size in tardates.entries(tar):
        if size >= SHARED_MIN:
            start, end = offset + TAR_BLOCK, offset + TAR_BLOCK + tardates.padded(size)
            yield run, start, False
            yield start, end, True
            run = end
    if run < len(tar):
        yield run, len(tar), False
