"""The .deb's members gzipped by microdeploy: what dpkg, tar and Python read, reused chunks, the same bytes always.

The packages are real ones: dpkg-deb -Znone builds them from small trees
that hold both small files and files large enough to be chunks of their own.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import itertools
import os
import random
import subprocess
import tarfile
from pathlib import Path

import pytest
from debian import debfile

from microdeploy.build.fastpath import datapack, tardates
from microdeploy.errors import MicrodeployError

EPOCH = "1700000000"


def text(seed: int, size: int) -> bytes:
    """`size` bytes of compressible, seed-dependent text, like a venv's sources."""
    words = random.Random(seed).choices(["import", "def", "return", "self", "value", "None", "\n", "    "], k=size)
    return " ".join(words).encode()[:size]


def package_tree(root: Path, app: bytes = b"print('v1')\n", library: bytes | None = None) -> Path:
    """A package tree: DEBIAN/control, small files, two large files (one of them `library`), a long name."""
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        "Package: chunky\nVersion: 1.0-1\nArchitecture: all\nMaintainer: T <t@example.org>\n"
        "Description: test package\n test package\n", encoding="utf-8")
    site = root / "opt" / "venvs" / "chunky" / "lib" / "site-packages"
    (site / "app").mkdir(parents=True)
    (site / "app" / "__init__.py").write_bytes(app)
    for index in range(40):
        (site / f"small_{index:02}.py").write_bytes(text(index, 3000))
    (site / "big_a.bin").write_bytes(library if library is not None else text(100, 600_000))
    (site / "big_b.bin").write_bytes(text(101, datapack.SHARED_MIN + 1))
    (site / ("long_" + "n" * 120 + ".py")).write_bytes(text(102, 200_000))
    return root


def plain_deb(tree: Path, out: Path) -> Path:
    """The package of `tree` as dpkg-deb -Znone writes it, dated like a build."""
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Znone", "--build", str(tree), str(out)], check=True,
                   capture_output=True, env={**os.environ, "SOURCE_DATE_EPOCH": EPOCH})
    return out


def plain_tar(deb: Path) -> bytes:
    """The package's data as dpkg-deb reads it, decompressed."""
    return subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], check=True, capture_output=True).stdout


def member(deb: Path, name: str) -> bytes:
    """One member of the package, as ar stores it."""
    return subprocess.run(["ar", "p", str(deb), name], check=True, capture_output=True).stdout


def packed(tree: Path, at: Path, cache: Path | None, level: int = 5) -> Path:
    """The package of `tree`, built plain and then compressed by microdeploy."""
    deb = plain_deb(tree, at)
    datapack.compress_members(deb, level, cache)
    return deb


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return package_tree(tmp_path_factory.mktemp("tree") / "chunky")


def test_the_members_are_gzip_that_dpkg_tar_and_python_read_as_dpkg_deb_wrote_them(tree: Path, tmp_path: Path) -> None:
    plain = plain_deb(tree, tmp_path / "plain.deb")
    deb = packed(tree, tmp_path / "chunky.deb", tmp_path / "cache")
    assert subprocess.run(["ar", "t", str(deb)], check=True, capture_output=True, text=True).stdout.split() == [
        "debian-binary", "control.tar.gz", "data.tar.gz"]
    assert plain_tar(deb) == plain_tar(plain), "dpkg-deb reads the same data"
    assert gzip.decompress(member(deb, "data.tar.gz")) == member(plain, "data.tar"), "one gzip stream, valid CRC"
    assert gzip.decompress(member(deb, "control.tar.gz")) == member(plain, "control.tar")
    assert subprocess.run(["gzip", "-t"], input=member(deb, "data.tar.gz"), capture_output=True).returncode == 0
    listed = subprocess.run(["tar", "-tzf", "-"], input=member(deb, "data.tar.gz"), check=True,
                            capture_output=True).stdout.decode()
    assert "./opt/venvs/chunky/lib/site-packages/long_" + "n" * 120 + ".py" in listed.splitlines()
    package = debfile.DebFile(str(deb))
    try:
        assert package.data.has_file("./opt/venvs/chunky/lib/site-packages/app/__init__.py"), "python-debian"
    finally:
        package.close()
    assert subprocess.run(["dpkg-deb", "--info", str(deb)], capture_output=True).returncode == 0
    assert deb.stat().st_size < plain.stat().st_size / 2
    header = member(deb, "data.tar.gz")[:10]
    assert header[:4] == b"\x1f\x8b\x08\x00" and header[8:] == b"\x00\x03", "no name, no time, XFL 0, Unix"
    assert not list(tmp_path.glob(".chunky.deb*")), "the plain package is gone"


def test_the_same_tar_gives_the_same_bytes_cached_or_not_on_any_number_of_cores(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    cold = packed(tree, tmp_path / "cold.deb", cache).read_bytes()
    stored = sorted(cache.iterdir())
    chunks = list(datapack.chunks_of(memoryview(plain_tar(tmp_path / "cold.deb"))))
    assert len(stored) == len(chunks) == 7, "each large file's data and each run between them is a cached chunk"
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    warm = packed(tree, tmp_path / "warm.deb", cache).read_bytes()
    assert sorted(cache.iterdir()) == stored, "a warm build stores nothing new"
    monkeypatch.setattr(os, "cpu_count", lambda: 7)
    uncached = packed(tree, tmp_path / "uncached.deb", None).read_bytes()
    assert cold == warm == uncached


def test_a_change_to_a_small_file_compresses_its_run_alone_and_a_new_large_file_adds_one(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    packed(package_tree(tmp_path / "v1"), tmp_path / "v1.deb", cache)
    before = {path.name: path.stat().st_mtime_ns for path in cache.iterdir()}
    os.utime(cache, None)
    second = packed(package_tree(tmp_path / "v2", app=b"print('v2')\n"), tmp_path / "v2.deb", cache)
    assert len({path.name for path in cache.iterdir()} - set(before)) == 1, \
        "an app-only change compresses the run that holds the changed file, nothing else"
    assert gzip.decompress(member(second, "data.tar.gz")) == member(
        plain_deb(package_tree(tmp_path / "v2-plain", app=b"print('v2')\n"), tmp_path / "v2-plain.deb"), "data.tar")
    known = {path.name for path in cache.iterdir()}
    third = packed(package_tree(tmp_path / "v3", library=text(7, 500_000)), tmp_path / "v3.deb", cache)
    assert len({path.name for path in cache.iterdir()} - known) == 3, \
        "the new large file, the run that holds its header, the archive's end (padded to whole records)"
    assert b"print('v1')" in gzip.decompress(member(third, "data.tar.gz"))


def test_a_damaged_cached_chunk_is_compressed_again_not_shipped(tree: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    good = packed(tree, tmp_path / "good.deb", cache).read_bytes()
    chunks = sorted(cache.iterdir(), key=lambda path: path.stat().st_size)
    damaged = bytearray(chunks[-1].read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    chunks[-1].write_bytes(damaged)
    chunks[0].write_bytes(b"")
    chunks[1].write_bytes(chunks[1].read_bytes()[:100])
    assert packed(tree, tmp_path / "again.deb", cache).read_bytes() == good
    assert all(hashlib.sha256(path.read_bytes()[32:]).digest() == path.read_bytes()[:32] for path in chunks), \
        "and stored again"


@pytest.mark.parametrize(("level", "extra_flags"), [(1, 4), (5, 0), (9, 2)])
def test_the_level_is_the_services_and_the_header_says_it(tree: Path, tmp_path: Path, level: int,
                                                           extra_flags: int) -> None:
    deb = packed(tree, tmp_path / "chunky.deb", tmp_path / "cache", level=level)
    data = member(deb, "data.tar.gz")
    assert data[8] == extra_flags
    assert gzip.decompress(data) == plain_tar(deb)


def test_chunks_cover_the_tar_in_order_and_large_files_data_alone(tree: Path, tmp_path: Path) -> None:
    tar = member(plain_deb(tree, tmp_path / "plain.deb"), "data.tar")
    chunks = list(datapack.chunks_of(memoryview(tar)))
    assert chunks[0][0] == 0 and chunks[-1][1] == len(tar)
    assert all(previous[1] == following[0] for previous, following in itertools.pairwise(chunks))
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        large = {member.offset_data: member.size for member in archive if member.size >= datapack.SHARED_MIN}
    assert {start: end for start, end, shared in chunks if shared} == {
        start: start + tardates.padded(size) for start, size in large.items()}
    assert len(large) == 3, "the long name's GNU header entry was walked over, not taken for a file"


def test_a_tar_it_cannot_walk_is_still_packed_whole(tmp_path: Path) -> None:
    broken = b"x" * 700 + bytes(1000)
    assert list(datapack.chunks_of(memoryview(broken))) == [(0, len(broken), False)]


def test_a_package_that_is_not_plain_is_refused_and_left_as_it_was(tree: Path, tmp_path: Path) -> None:
    deb = tmp_path / "gz.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(tree), str(deb)], check=True,
                   capture_output=True)
    before = deb.read_bytes()
    with pytest.raises(MicrodeployError, match="not the plain ones"):
        datapack.compress_members(deb, 5, tmp_path / "cache")
    assert deb.read_bytes() == before and not (tmp_path / "cache").exists()
    junk = tmp_path / "junk.deb"
    junk.write_bytes(b"not an archive")
    with pytest.raises(MicrodeployError, match=r"not a \.deb"):
        datapack.compress_members(junk, 5, None)
    assert junk.read_bytes() == b"not an archive"
