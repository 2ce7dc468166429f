"""The .buildinfo and .changes written beside the package's compression list the finished package's checksums,
and say what dpkg's generators say when they run after it."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest
from debian.deb822 import BuildInfo, Changes

from microdeploy.build import records
from microdeploy.build.dpkg import build_environment, run_build_step

pytestmark = pytest.mark.integration

DEB = "hello_1.0-1_amd64.deb"
CONTROL = """\
Source: hello
Section: misc
Priority: optional
Maintainer: Service Maintainer <maintainer@example.org>
Build-Depends: debhelper-compat (= 13)

Package: hello
Architecture: amd64
Description: a package for the records' test
 Only its name and version matter here.
"""
CHANGELOG = """\
hello (1.0-1) bookworm; urgency=medium

  * Built.

 -- Service Maintainer <maintainer@example.org>  Thu, 01 Jan 2026 00:00:00 +0000
"""
# Lines that differ between two runs of the generators: when they ran, and the build's own path.
WHEN = ("Date:", "Build-Date:", "Build-Path:")


def tree_with_package(root: Path) -> Path:
    """A source tree whose debian/files lists one binary package, and that package (not yet compressed) beside it."""
    tree = root / "hello"
    (tree / "debian").mkdir(parents=True)
    (tree / "debian" / "control").write_text(CONTROL)
    (tree / "debian" / "changelog").write_text(CHANGELOG)
    (tree / "debian" / "files").write_text(f"{DEB} misc optional\n")
    (root / DEB).write_bytes(b"plain package " * 50_000)
    return tree


def runs_in(tree: Path) -> Callable[[list[str]], None]:
    env = build_environment({"PATH": "/usr/bin:/bin"}, 1767225600)
    return lambda argv: run_build_step(argv, tree, env, argv[0])


def without_run_dates(text: str) -> str:
    """`text` without the lines that follow the time of the run: its dates, and in a .changes the .buildinfo's
    checksums (its Build-Date is in them; that they are the file's own is checked above)."""
    return "\n".join(line for line in text.splitlines()
                     if not line.startswith(WHEN) and not line.endswith(".buildinfo"))


def test_records_list_the_finished_package_as_the_generators_would_after_it(tmp_path: Path) -> None:
    tree = tree_with_package(tmp_path / "beside")
    deb = tree.parent / DEB

    def compress() -> None:
        deb.write_bytes(b"the compressed package, other bytes and size")

    records.generate(tree, deb, runs_in(tree), compress)
    buildinfo, changes = tree.parent / "hello_1.0-1_amd64.buildinfo", tree.parent / "hello_1.0-1_amd64.changes"
    assert sorted(path.name for path in tree.parent.iterdir()) == sorted([DEB, buildinfo.name, changes.name, "hello"])
    for path, listed in ((buildinfo, [DEB]), (changes, [DEB, buildinfo.name])):
        record = (BuildInfo if path == buildinfo else Changes)(path.read_text())
        for name in listed:
            data = (tree.parent / name).read_bytes()
            for field, digest in (("Checksums-Sha256", hashlib.sha256), ("Checksums-Sha1", hashlib.sha1)):
                [entry] = [entry for entry in record[field] if entry["name"] == name]
                assert (entry[field.split("-")[1].lower()], int(entry["size"])) == (digest(data).hexdigest(),
                                                                                      len(data)), (path, field)

    # The same generators run after the compression, as dpkg-buildpackage runs them, write the same records.
    after = tree_with_package(tmp_path / "after")
    (after.parent / DEB).write_bytes(b"the compressed package, other bytes and size")
    runs_in(after)(["dpkg-genbuildinfo", "--build=binary"])
    runs_in(after)(["dpkg-genchanges", "--build=binary", "-O../hello_1.0-1_amd64.changes"])
    for name in (buildinfo.name, changes.name):
        assert without_run_dates((tree.parent / name).read_text()) == without_run_dates(
            (after.parent / name).read_text()), name
    assert (tree / "debian" / "files").read_text() == (after / "debian" / "files").read_text()


def test_a_failing_generator_fails_the_build_after_the_compression_ends(tmp_path: Path) -> None:
    tree = tree_with_package(tmp_path)
    (tree / "debian" / "control").write_text("Source: hello\n")  # no Maintainer: a generator stops
    compressed = []
    with pytest.raises(records.MicrodeployError, match=r"dpkg-gen\w+ failed"):
        records.generate(tree, tree.parent / DEB, runs_in(tree), lambda: compressed.append(True))
    assert compressed == [True]

