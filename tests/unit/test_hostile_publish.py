"""Hostile values for `microdeploy publish` and `repo serve`: refused before a repository is touched."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.hostile import assert_refused, cases, ids, invoke, tree

PUBLISH = {
    "--dist": ("bookworm", ()),
    "--component": ("main", ()),
    "--gpg-key": ("DEADBEEF", ()),
    "--keep": ("5", ()),
    "--repo": ("repo", ("hiera", "dpkg", "quotes")),
}
SERVE = {
    "--dist": ("bookworm", ()),
    "--component": ("main", ()),
    "--bind": ("127.0.0.1", ()),
    "--port": ("8080", ()),
}
PUBLISH_CASES = cases(PUBLISH)
SERVE_CASES = [*cases(SERVE), ("--port", "out-of-range", "70000"), ("--port", "negative", "-1")]


@pytest.fixture(scope="module")
def deb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny real .deb (dpkg-deb --build)."""
    root = tmp_path_factory.mktemp("deb")
    (root / "pkg" / "DEBIAN").mkdir(parents=True)
    (root / "pkg" / "DEBIAN" / "control").write_text(
        "Package: mdtest-hostile\nVersion: 1.0-1\nArchitecture: all\nMaintainer: T <t@example.org>\n"
        "Description: test\n test\n")
    subprocess.run(["dpkg-deb", "--root-owner-group", "--build", str(root / "pkg"), str(root / "p.deb")],
                   check=True, capture_output=True, timeout=60)
    return root / "p.deb"


@pytest.mark.parametrize(("flag", "kind", "value"), PUBLISH_CASES, ids=ids(PUBLISH_CASES))
def test_publish_refuses_hostile_values(tmp_path: Path, deb: Path, flag: str, kind: str, value: str) -> None:
    """Each publish option with a hostile value: exit 2, one message, no repository, lock or key made."""
    options = {"--repo": str(tmp_path / "repo"), flag: str(tmp_path / value) if flag == "--repo" else value}
    result = invoke(["publish", str(deb), *(item for pair in options.items() for item in pair)])
    assert_refused(result, {}, tree(tmp_path))


@pytest.mark.parametrize(("flag", "kind", "value"), SERVE_CASES, ids=ids(SERVE_CASES))
def test_repo_serve_refuses_hostile_values(tmp_path: Path, flag: str, kind: str, value: str) -> None:
    """`repo serve` checks --dist/--component like publish, and --bind/--port, before it listens."""
    (tmp_path / "public").mkdir()
    before = tree(tmp_path)
    result = invoke(["repo", "serve", str(tmp_path), flag, value])
    assert_refused(result, before, tree(tmp_path))
    assert "Serving" not in result.output
