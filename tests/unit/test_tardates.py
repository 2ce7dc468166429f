"""The venv's entries dated by their content when microdeploy gzips the package: real dpkg-deb packages, read back
by dpkg-deb, tar and Python."""

from __future__ import annotations

import gzip
import io
import os
import random
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from microdeploy.build.fastpath import datapack, tardates

VENV = "opt/venvs/dated"
SITE = f"{VENV}/lib/python3.11/site-packages"
COMMIT = 1_700_000_000  # SOURCE_DATE_EPOCH of a build (2023)
LATER_COMMIT = 1_750_000_000
FIRST, LAST = tardates.CONTENT_DATES_FROM, tardates.CONTENT_DATES_FROM + tardates.CONTENT_DATES_SPAN


def package_tree(root: Path, app: bytes = b"print('v1')\n") -> Path:
    """A package tree: a venv with a module, a library, a large file, a long name and symlinks, and a doc outside."""
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        "Package: dated\nVersion: 1.0-1\nArchitecture: all\nMaintainer: T <t@example.org>\n"
        "Description: test package\n test package\n", encoding="utf-8")
    site = root / SITE
    for package in ("app", "lib"):
        (site / package).mkdir(parents=True)
    (site / "app" / "__init__.py").write_bytes(app)
    (site / "app" / "views.py").write_bytes(b"VIEWS = 1\n")
    (site / "lib" / "__init__.py").write_bytes(b"LIB = 1\n")
    (site / "lib" / "big.bin").write_bytes(random.Random(1).randbytes(datapack.SHARED_MIN + 1000))
    (site / "lib" / ("long_" + "n" * 120 + ".py")).write_bytes(b"LONG = 1\n")
    (root / VENV / "bin").mkdir(parents=True)
    (root / VENV / "bin" / "python").symlink_to("/usr/bin/python3.11")
    (root / VENV / "lib64").symlink_to("lib")
    (root / "usr" / "share" / "doc" / "dated").mkdir(parents=True)
    (root / "usr" / "share" / "doc" / "dated" / "copyright").write_text("Format: test\n", encoding="utf-8")
    return root


def build(tree: Path, out: Path, epoch: int, cache: Path | None = None) -> dict[str, tarfile.TarInfo]:
    """dpkg-deb -Znone at SOURCE_DATE_EPOCH `epoch`, gzipped by microdeploy; its entries, read by Python's tarfile
    (which checks every header's checksum)."""
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Znone", "--build", str(tree), str(out)], check=True,
                   capture_output=True, env={**os.environ, "SOURCE_DATE_EPOCH": str(epoch)})
    datapack.compress_members(out, 5, cache, venv=VENV)
    data = subprocess.run(["ar", "p", str(out), "data.tar.gz"], check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(data))) as archive:
        return {member.name.removeprefix("./").rstrip("/") or ".": member for member in archive}


def dates(entries: dict[str, tarfile.TarInfo]) -> dict[str, int]:
    return {name: int(member.mtime) for name, member in entries.items()}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, tarfile.TarInfo]]:
    scratch = tmp_path_factory.mktemp("dated")
    deb = scratch / "dated.deb"
    return deb, build(package_tree(scratch / "tree"), deb, COMMIT)


def test_the_venvs_entries_are_dated_by_content_the_rest_by_the_commit(
        built: tuple[Path, dict[str, tarfile.TarInfo]]) -> None:
    deb, entries = built
    inside = {name: member for name, member in entries.items() if name == VENV or name.startswith(VENV + "/")}
    assert {"file", "directory", "symlink", "long name"} <= {
        "file" if member.isfile() else "directory" if member.isdir() else "symlink" if member.issym() else "?"
        for member in inside.values()} | ({"long name"} if any(len(name) > 100 for name in inside) else set())
    assert all(FIRST <= member.mtime < LAST for member in inside.values()), dates(entries)
    app = {inside[name].mtime for name in inside if name == f"{SITE}/app" or name.startswith(f"{SITE}/app/")}
    lib = {inside[name].mtime for name in inside if name == f"{SITE}/lib" or name.startswith(f"{SITE}/lib/")}
    assert len(app) == len(lib) == 1 and app != lib, "one date per directory, for it and what it holds"
    outside = {name: member.mtime for name, member in entries.items() if name not in inside}
    assert outside and set(outside.values()) == {COMMIT}
    # What dpkg unpacks: the same dates on disk.
    unpacked = deb.parent / "unpacked"
    subprocess.run(["dpkg-deb", "-x", str(deb), str(unpacked)], check=True)
    for name in (f"{SITE}/app/views.py", f"{SITE}/lib", "usr/share/doc/dated/copyright"):
        assert os.lstat(unpacked / name).st_mtime == entries[name].mtime, name
    data = subprocess.run(["ar", "p", str(deb), "data.tar.gz"], check=True, capture_output=True).stdout
    listed = subprocess.run(["tar", "-tvzf", "-"], input=data, capture_output=True, check=True, text=False,
                            env={**os.environ, "TZ": "UTC"}).stdout.decode().splitlines()
    views = entries[f"{SITE}/app/views.py"].mtime
    [line] = [line for line in listed if line.endswith("/app/views.py")]
    assert time.strftime("%Y-%m-%d %H:%M", time.gmtime(views)) in line, "GNU tar reads the date"


def test_the_same_content_keeps_its_dates_at_every_commit_and_a_change_redates_its_directory(
        tmp_path: Path, built: tuple[Path, dict[str, tarfile.TarInfo]]) -> None:
    first = dates(built[1])
    again = dates(build(package_tree(tmp_path / "again"), tmp_path / "again.deb", LATER_COMMIT))
    assert {name: date for name, date in again.items() if date != LATER_COMMIT} == {
        name: date for name, date in first.items() if date != COMMIT}, "nothing changed: the venv's dates stay"
    changed = dates(build(package_tree(tmp_path / "changed", app=b"print('v2')\n"), tmp_path / "changed.deb",
                          LATER_COMMIT))
    redated = {name for name in changed if changed[name] != first[name] and changed[name] != LATER_COMMIT}
    assert redated == {f"{SITE}/app/__init__.py", f"{SITE}/app/views.py", f"{SITE}/app"}, \
        "the changed file's directory and what it holds; the directories above it and the rest keep theirs"
    tree = package_tree(tmp_path / "added")
    (tree / SITE / "app" / "new.py").write_bytes(b"")
    added = dates(build(tree, tmp_path / "added.deb", LATER_COMMIT))
    assert {name for name in first if added[name] != first[name] and added[name] != LATER_COMMIT} == {
        f"{SITE}/app/__init__.py", f"{SITE}/app/views.py", f"{SITE}/app"}, "a new file redates its directory"


def test_an_app_only_commit_compresses_again_only_the_runs_that_hold_what_changed(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    build(package_tree(tmp_path / "v1"), tmp_path / "v1.deb", COMMIT, cache)
    before = {path.name for path in cache.iterdir()}
    build(package_tree(tmp_path / "v2", app=b"print('v2')\n"), tmp_path / "v2.deb", LATER_COMMIT, cache)
    new = {path.name for path in cache.iterdir()} - before
    assert len(new) == 2, ("the run of the changed module's directory, and the last run, with the files outside "
                           "the venv (dated by the commit); not the large file nor its header")


def test_no_entry_is_dated_later_than_source_date_epoch(tmp_path: Path) -> None:
    early = FIRST + 1
    entries = build(package_tree(tmp_path / "tree"), tmp_path / "early.deb", early)
    assert {member.mtime for member in entries.values()} <= {FIRST, early}, "each content date held to the commit's"


def test_a_symlink_is_dated_by_its_target(tmp_path: Path) -> None:
    tree = package_tree(tmp_path / "one")
    first = dates(build(tree, tmp_path / "one.deb", COMMIT))
    (tree / VENV / "bin" / "python").unlink()
    (tree / VENV / "bin" / "python").symlink_to("/usr/bin/python3.13")
    second = dates(build(tree, tmp_path / "two.deb", COMMIT))
    assert second[f"{VENV}/bin/python"] != first[f"{VENV}/bin/python"]
    assert second[f"{VENV}/lib64"] == first[f"{VENV}/lib64"]


def test_a_header_redated_has_the_checksum_gnu_tar_writes(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "DEBIAN").mkdir(parents=True)
    member = tree / "file"
    member.write_bytes(b"x")
    subprocess.run(["tar", "--format=gnu", "-cf", str(tmp_path / "at.tar"), "--mtime=@946684900", "-C", str(tree),
                    "file"], check=True)
    subprocess.run(["tar", "--format=gnu", "-cf", str(tmp_path / "now.tar"), "--mtime=@1700000000", "-C",
                    str(tree), "file"], check=True)
    header = memoryview((tmp_path / "now.tar").read_bytes())[:tardates.TAR_BLOCK]
    assert tardates.redated(header, 946684900) == (tmp_path / "at.tar").read_bytes()[:tardates.TAR_BLOCK]


def test_a_name_that_is_not_utf8_is_dated_like_any_other(tmp_path: Path) -> None:
    """A wheel's file whose name is not UTF-8 (dpkg-deb takes it; a newline it refuses itself): read, dated by its
    directory's content, and a change to it redates its directory and nothing else."""
    def tree(root: Path, data: bytes) -> Path:
        built = package_tree(root)
        (built / SITE / "app" / "data").mkdir()
        with open(os.path.join(os.fsencode(built / SITE / "app" / "data"), b"caf\xe9.txt"), "wb") as handle:
            handle.write(data)
        return built

    first = dates(build(tree(tmp_path / "one", b"v1"), tmp_path / "one.deb", COMMIT))
    again = dates(build(tree(tmp_path / "two", b"v1"), tmp_path / "two.deb", LATER_COMMIT))
    changed = dates(build(tree(tmp_path / "three", b"v2"), tmp_path / "three.deb", COMMIT))
    data = f"{SITE}/app/data"
    [odd] = [name for name in first if name.startswith(data + "/")]
    assert FIRST <= first[odd] < LAST and again[odd] == first[odd]
    assert changed[odd] != first[odd] and changed[data] != first[data]
    assert changed[f"{SITE}/app/views.py"] == first[f"{SITE}/app/views.py"]
