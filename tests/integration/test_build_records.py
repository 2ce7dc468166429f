"""dpkg's generators, run by debian/rules on a stand-in once dh_gencontrol has named the package, write the
.buildinfo and .changes they write when run after the package is made; records.finish gives them the finished
package's checksums."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest
from debian.deb822 import BuildInfo, Changes

from microdeploy.build import records
from microdeploy.build.dpkg import build_environment, run_build_step
from microdeploy.build.fastpath.contract import STAND_IN_DIR
from tests.unit.test_build_templates import render_rules

pytestmark = pytest.mark.integration

DEB = "orders-api_1.4.0-3_amd64.deb"
# Lines that differ between two runs of the generators: when they ran, and the build's own path.
WHEN = ("Date:", "Build-Date:", "Build-Path:")
ENVIRON = build_environment({"PATH": "/usr/bin:/bin", "DEB_BUILD_OPTIONS": "parallel=2"}, 1767225600)


def named_package(root: Path) -> Path:
    """A rendered build tree in which the real dh_gencontrol has named the package in debian/files."""
    tree = root / "orders-api"
    render_rules(tree, "uv")
    (tree / "debian" / "orders-api").mkdir()
    rules(tree, "gencontrol", "-o", "records", "-o", "shlibdeps", "-o", "installdeb", "-o", "overrides", "-o",
          "venv-copyright")
    assert (tree / "debian" / "files").read_text().startswith(f"{DEB} ")
    return tree


def rules(tree: Path, *targets: str) -> None:
    """Targets of the tree's debian/rules, two jobs at once, as dpkg-buildpackage runs them."""
    subprocess.run(["make", "-j2", "-f", "debian/rules", *targets], cwd=tree, env=ENVIRON, check=True,
                   capture_output=True)


def without_run_dates(text: str) -> str:
    """`text` without the lines that follow the time of the run: its dates, and in a .changes the .buildinfo's
    checksums (its Build-Date is in them; that they are the file's own is checked above)."""
    return "\n".join(line for line in text.splitlines()
                     if not line.startswith(WHEN) and not line.endswith(".buildinfo"))


def test_records_written_beside_the_last_steps_list_the_finished_package_as_after_it(tmp_path: Path) -> None:
    tree = named_package(tmp_path / "beside")
    rules(tree, "buildinfo", "-o", "gencontrol")
    assert {path.name for path in (tree.parent / STAND_IN_DIR).iterdir()} == {
        DEB, "orders-api_1.4.0-3_amd64.buildinfo"}
    deb = tree.parent / DEB
    deb.write_bytes(b"the compressed package, its own bytes and size")
    records.finish(tree, deb)
    buildinfo, changes = (tree.parent / f"orders-api_1.4.0-3_amd64.{kind}" for kind in ("buildinfo", "changes"))
    assert {path.name for path in tree.parent.iterdir()} == {DEB, buildinfo.name, changes.name, "orders-api"}
    for path, listed in ((buildinfo, [DEB]), (changes, [DEB, buildinfo.name])):
        record = (BuildInfo if path == buildinfo else Changes)(path.read_text())
        for name in listed:
            data = (tree.parent / name).read_bytes()
            for field, digest in (("Checksums-Sha256", hashlib.sha256), ("Checksums-Sha1", hashlib.sha1)):
                [entry] = [entry for entry in record[field] if entry["name"] == name]
                assert (entry[field.split("-")[1].lower()], int(entry["size"])) == (digest(data).hexdigest(),
                                                                                      len(data)), (path, field)

    # The generators run after the package is made, outside make, as dpkg-buildpackage runs them, write the same.
    after = named_package(tmp_path / "after")
    (after.parent / DEB).write_bytes(b"the compressed package, its own bytes and size")
    run_build_step(["dpkg-genbuildinfo", "--build=binary"], after, ENVIRON, "dpkg-genbuildinfo")
    run_build_step(["dpkg-genchanges", "--build=binary", "-O../orders-api_1.4.0-3_amd64.changes"], after, ENVIRON,
                   "dpkg-genchanges")
    for name in (buildinfo.name, changes.name):
        assert without_run_dates((tree.parent / name).read_text()) == without_run_dates(
            (after.parent / name).read_text()), name
    assert "MAKEFLAGS" not in buildinfo.read_text()
    assert (tree / "debian" / "files").read_text() == (after / "debian" / "files").read_text()


def test_without_the_generators_records_there_is_an_error_not_a_package_without_records(tmp_path: Path) -> None:
    tree = named_package(tmp_path)
    (tree.parent / DEB).write_bytes(b"package")
    with pytest.raises(records.MicrodeployError, match=r"dpkg-genbuildinfo left 0 .buildinfo files"):
        records.finish(tree, tree.parent / DEB)
