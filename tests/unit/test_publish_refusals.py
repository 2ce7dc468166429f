"""`publish` refusing what it cannot serve (exit 2), and leaving nothing of its own behind when refused or failed."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from microdeploy import repo
from microdeploy.debfile import DebFile, PackageRef, inspect_deb
from microdeploy.errors import EXIT_BAD_INPUT, EXIT_FAILURE, MicrodeployError
from microdeploy.process import Result
from microdeploy.repo import PublishSettings
from microdeploy.repo_plan import ServedPackage, split_new, suite_of
from tests.hostile import tree
from tests.support import make_deb
from tests.unit.test_repo import COLONS, FakeRunner, ok


def failing_aptly(argv: Sequence[str]) -> Result:
    """aptly failing as a full disk makes it fail."""
    raise MicrodeployError(f"`{' '.join(argv)}` failed with exit status 1", exit_code=EXIT_FAILURE)


def own_key_runner() -> FakeRunner:
    """gpg that lists one signing key, dpkg that says amd64, and an aptly that fails."""
    return FakeRunner({("gpg", "--batch", "--with-colons"): ok(COLONS), ("dpkg",): ok("amd64\n"),
                       ("aptly",): failing_aptly})


def refused(settings: PublishSettings, debs: list[Path], runner: FakeRunner | None = None) -> MicrodeployError:
    """The error publish raises for `debs` (it must raise)."""
    with pytest.raises(MicrodeployError) as info:
        repo.publish(settings, debs, runner=runner or own_key_runner())
    return info.value


@pytest.mark.parametrize("found", ["directory", "file", "foreign-link", "foreign-state"])
def test_a_directory_that_another_tool_serves_is_refused_and_left_as_it_was(tmp_path: Path, found: str) -> None:
    """A --repo whose public/ (or state/) is not microdeploy's exits 2 naming what was found, writing nothing."""
    deb = make_deb(tmp_path / "in")
    root = tmp_path / "foreign"
    root.mkdir()
    if found == "directory":
        (root / "public" / "dists").mkdir(parents=True)
    elif found == "file":
        (root / "public").write_text("<html>\n")
    elif found == "foreign-link":
        (root / "www").mkdir()
        os.symlink("www", root / "public")
    else:
        (root / "state").write_text("data")
    before = tree(root)
    error = refused(PublishSettings(root), [deb])
    assert error.exit_code == EXIT_BAD_INPUT, error
    assert f"{root} is not a microdeploy repository" in error.message
    assert {"directory": "public is a directory", "file": "public is a file",
            "foreign-link": "public is a symbolic link to www", "foreign-state": "state is a file"}[found] \
        in error.message
    assert error.hint is not None and error.hint.startswith("Pass a new or empty directory")
    assert tree(root) == before


def test_a_failed_publish_into_an_existing_directory_leaves_no_state_or_key(tmp_path: Path) -> None:
    """An existing (non-repository) directory keeps only what it had when the first publish into it fails."""
    deb = make_deb(tmp_path / "in")
    root = tmp_path / "existing"
    root.mkdir()
    (root / "README").write_text("packages go here\n")
    before = tree(root)
    error = refused(PublishSettings(root), [deb])
    assert error.exit_code == EXIT_FAILURE and "aptly" in error.message
    assert tree(root) == before


def test_a_rotating_publish_that_fails_leaves_the_own_key_and_nothing_staged(tmp_path: Path) -> None:
    """--rotate-key whose aptly fails after the new key is made: state/ is as it was, the old key's home included."""
    deb = make_deb(tmp_path / "in")
    root = tmp_path / "repo"
    published = root / "state" / "generations" / "g000001" / "published"
    published.mkdir(parents=True)
    (published / repo.KEYRING_NAME).write_bytes(b"old public key")
    (published.parent / "manifest.json").write_text(f'{{"dists": {{}}, "key_fingerprint": "{"1" * 40}"}}\n')
    os.symlink("state/generations/g000001/published", root / "public")
    (root / "state" / "gnupg").mkdir(mode=0o700)
    (root / "state" / "gnupg" / "pubring.kbx").write_bytes(b"old key")
    (root / "state" / "lock").touch()
    before = tree(root)
    error = refused(PublishSettings(root, rotate_key=True), [deb])
    assert error.exit_code == EXIT_FAILURE and "aptly" in error.message
    assert tree(root) == before


def test_a_different_file_for_a_version_another_suite_serves_is_refused() -> None:
    """The suites share one pool: name+version+arch with other contents in another suite is bad input (exit 2)."""
    package = PackageRef("svc", "1.0-1", "all")
    repository = {package: ServedPackage(package, "b" * 64, "bookworm")}
    with pytest.raises(MicrodeployError) as info:
        split_new([DebFile(Path("/in/svc.deb"), package, "a" * 64, 100, "trixie")], {}, repository)
    assert info.value.exit_code == EXIT_BAD_INPUT
    assert "svc_1.0-1_all is already published in bookworm with different contents" in info.value.message
    # The same file is welcome in another suite: aptly shares its pool file.
    same = DebFile(Path("/in/svc.deb"), package, "b" * 64, 100, "trixie")
    assert split_new([same], {}, repository) == ([same], [])


@pytest.mark.parametrize(("version", "other"), [("1:1.0-1", "1.0-1"), ("0:1.0", "1.0"), ("1.0-1", "2:1.0-1")])
def test_versions_that_differ_only_in_their_epoch_are_refused(version: str, other: str) -> None:
    """Two versions with one pool file name (the epoch is not in it) are bad input, in one call or against the
    repository, whatever their contents."""
    package, clash = PackageRef("svc", version, "all"), PackageRef("svc", other, "all")
    deb = DebFile(Path("/in/new.deb"), package, "a" * 64, 100)
    for debs, repository in (([DebFile(Path("/in/old.deb"), clash, "a" * 64, 100), deb], {}),
                             ([deb], {clash: ServedPackage(clash, "a" * 64, "bookworm")})):
        with pytest.raises(MicrodeployError) as info:
            split_new(debs, {}, repository)
        assert info.value.exit_code == EXIT_BAD_INPUT
        assert f"/in/new.deb is svc {version}" in info.value.message and f"svc {other}" in info.value.message
        assert f"same pool file name {package.filename}" in info.value.message


@pytest.mark.parametrize("arch", ["source", "any", "linux-any", "any-amd64"])
def test_a_package_whose_architecture_is_no_binary_one_is_refused(tmp_path: Path, arch: str) -> None:
    """`Architecture: source` or a wildcard names no binary index apt reads: exit 2, no repository made."""
    package_tree = tmp_path / "pkg"
    (package_tree / "DEBIAN").mkdir(parents=True)
    (package_tree / "DEBIAN" / "control").write_text(
        f"Package: svc\nVersion: 1.0-1\nArchitecture: {arch}\nMaintainer: A <a@example.org>\n"
        "Description: test\n test package\n")
    deb = tmp_path / "svc.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "--build", str(package_tree), str(deb)], check=True,
                   capture_output=True, timeout=60)
    error = refused(PublishSettings(tmp_path / "repo"), [deb])
    assert error.exit_code == EXIT_BAD_INPUT
    assert f"invalid architecture '{arch}' (from {deb})" in error.message
    assert error.hint is not None and "all or a concrete one" in error.hint
    assert not (tmp_path / "repo").exists()


def test_a_dangling_link_as_repo_is_refused_and_nothing_is_made(tmp_path: Path) -> None:
    """--repo naming a link to nothing exits 2 saying so; neither the link's target nor anything else is made."""
    deb = make_deb(tmp_path / "in")
    (tmp_path / "repo").symlink_to(tmp_path / "gone")
    before = tree(tmp_path)
    error = refused(PublishSettings(tmp_path / "repo"), [deb])
    assert error.exit_code == EXIT_BAD_INPUT
    assert "is a dangling symbolic link" in error.message
    assert tree(tmp_path) == before


def test_a_version_for_an_unknown_release_needs_dist(tmp_path: Path) -> None:
    """A +deb14 version is refused (exit 2, naming the known releases) unless --dist says where it goes."""
    deb = make_deb(tmp_path / "in", version="3.0-1+deb14")
    error = refused(PublishSettings(tmp_path / "repo"), [deb])
    assert error.exit_code == EXIT_BAD_INPUT
    assert "is built for Debian 14 (its version ends in +deb14)" in error.message
    assert "bookworm (+deb12), trixie (+deb13)" in error.message
    assert error.hint is not None and error.hint.startswith("Pass --dist")
    assert not (tmp_path / "repo").exists()
    inspected = inspect_deb(deb)
    assert suite_of(inspected, "trixie") == "trixie"
