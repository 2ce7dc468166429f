"""The cache of host images stays bounded: its entries, their last use, and a prune that spares what hosts use."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from microdeploy import cli_cache
from microdeploy.build import cache
from microdeploy.build.cache import lock_beside
from microdeploy.cli import main
from microdeploy.errors import MicrodeployError
from microdeploy.testbed import image, image_cache

DAY = 86400.0


def cached(path: Path, size: int, days_ago: float, now: float, *, lock: bool = True) -> Path:
    """An image (file) or tree (directory) of about `size` bytes, last used `days_ago` days before `now`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.name.endswith(".tree") or path.name.endswith(".tree.old"):
        path.mkdir()
        (path / "etc").mkdir()
        (path / "etc" / "os-release").write_bytes(b"x" * size)
    else:
        path.write_bytes(b"x" * size)
    when = now - days_ago * DAY
    os.utime(path, (when - DAY, when - DAY))
    if lock:
        lock_beside(path).touch()
        os.utime(lock_beside(path), (when, when))
    return path


@pytest.fixture
def hosts(tmp_path: Path) -> tuple[Path, float]:
    """A hosts cache: two recipes' image and tree (one old), a piuparts base, mirror files, and what is not cached
    (lock files, the hosts' own directories, a stamp)."""
    now = time.time()
    directory = tmp_path / "hosts"
    cached(directory / "bookworm-host-new.tar", 64 * 1024, 0, now)
    cached(directory / "bookworm-host-new.tree", 64 * 1024, 0, now)
    cached(directory / "bookworm-host-old.tar", 64 * 1024, 40, now)
    cached(directory / "bookworm-host-old.tree", 64 * 1024, 40, now)
    cached(directory / "bookworm-piuparts-minbase-abc.tar.gz", 16 * 1024, 1, now)
    cached(directory / "mirror" / ("a" * 64), 8 * 1024, 2, now, lock=False)
    cached(directory / "mirror" / ("b" * 64), 8 * 1024, 50, now, lock=False)
    (directory / "roots").mkdir()
    (directory / "netns").mkdir()
    (directory / "reap.lock").touch()
    return directory, now


def test_entries_are_images_trees_bases_and_mirror_files(hosts: tuple[Path, float]) -> None:
    """Each image, tree and base is an entry used when its lock was; each mirror file one used when it was
    written or read; locks and the hosts' directories are not entries."""
    directory, now = hosts
    found = {(entry.kind, entry.path.name): entry for entry in image_cache.image_entries(directory, now)}
    assert sorted(found) == sorted([
        ("host-images", "bookworm-host-new.tar"), ("host-images", "bookworm-host-new.tree"),
        ("host-images", "bookworm-host-old.tar"), ("host-images", "bookworm-host-old.tree"),
        ("host-images", "bookworm-piuparts-minbase-abc.tar.gz"), ("mirror", "a" * 64), ("mirror", "b" * 64)])
    assert found["host-images", "bookworm-host-old.tree"].last_use == pytest.approx(now - 40 * DAY, abs=1)
    assert found["host-images", "bookworm-host-new.tree"].size >= 64 * 1024
    assert found["mirror", "b" * 64].last_use == pytest.approx(now - 51 * DAY, abs=1)


def test_prune_removes_the_least_recently_used_and_keeps_what_the_machine_needs(hosts: tuple[Path, float]) -> None:
    """To 200 KiB: the old recipe's image and tree and the old mirror file go; the new ones and every lock file
    and directory of the hosts stay."""
    directory, now = hosts
    removed = image_cache.prune(directory, max_size=200 * 1024, now=now)
    assert sorted(entry.path.name for entry in removed) == ["b" * 64, "bookworm-host-old.tar",
                                                            "bookworm-host-old.tree"]
    assert (directory / "bookworm-host-new.tree" / "etc" / "os-release").is_file()
    assert (directory / "roots").is_dir() and (directory / "reap.lock").is_file()
    assert not [path for path in directory.iterdir() if ".pruned-" in path.name]


def test_an_image_whose_lock_is_held_stays(hosts: tuple[Path, float]) -> None:
    """An old tree that a host is about to mount (its lock held shared) is not removed, whatever its age."""
    directory, now = hosts
    old_tree = directory / "bookworm-host-old.tree"
    with lock_beside(old_tree).open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_SH)
        removed = image_cache.prune(directory, max_size=0, now=now)
    assert old_tree.is_dir() and "bookworm-host-old.tree" not in {entry.path.name for entry in removed}
    assert not (directory / "bookworm-host-new.tree").exists(), "the free ones all go at size 0"


@pytest.fixture
def overlay(hosts: tuple[Path, float], tmp_path: Path) -> Iterator[Path]:
    """The old tree mounted as the lower layer of a real overlay, as a running host has it."""
    directory, _ = hosts
    lower = directory / "bookworm-host-old.tree"
    upper, work, merged = tmp_path / "upper", tmp_path / "work", tmp_path / "merged"
    for path in (upper, work, merged):
        path.mkdir()
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", f"lowerdir={lower},upperdir={upper},workdir={work}",
                    str(merged)], check=True)
    try:
        yield merged
    finally:
        subprocess.run(["umount", str(merged)], check=True)


def test_a_tree_mounted_under_a_host_stays(hosts: tuple[Path, float], overlay: Path) -> None:
    """A tree that is the lower layer of a mounted overlay is seen as such and kept; the host still reads it."""
    directory, now = hosts
    assert str(directory / "bookworm-host-old.tree") in image_cache.mounted_lower_layers()
    image_cache.prune(directory, max_size=0, now=now)
    assert (directory / "bookworm-host-old.tree").is_dir()
    assert (overlay / "etc" / "os-release").read_bytes() == b"x" * 64 * 1024
    assert not (directory / "bookworm-host-new.tree").exists()


def test_the_prune_after_a_check_walks_at_most_once_in_a_while(hosts: tuple[Path, float]) -> None:
    """The first check prunes to the size; one right after it does not walk again."""
    directory, _ = hosts
    assert image_cache.prune_after_check(0, directory)
    cached(directory / "trixie-host-x.tar", 1024, 0, time.time())
    assert image_cache.prune_after_check(0, directory) == []
    assert (directory / "trixie-host-x.tar").is_file()


def test_a_host_mounts_a_tree_unpacked_again_when_a_prune_took_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A prune between unpacking and the host's lock costs one more unpack, not a failed boot; the tree is the
    image's content, held while the block runs."""
    monkeypatch.setattr(image, "CACHE_DIR", tmp_path)
    tarball = tmp_path / "bookworm-host-x.tar"
    source = tmp_path / "source"
    (source / "etc").mkdir(parents=True)
    (source / "etc" / "hostname").write_text("image\n")
    subprocess.run(["tar", "-cf", str(tarball), "-C", str(source), "."], check=True)
    file_lock = image.file_lock
    taken = []

    def prune_first_shared(path: Path, timeout: float = 1200.0, *, shared: bool = False):  # type: ignore[no-untyped-def]
        if shared and not taken:
            taken.append(path)
            shutil.rmtree(path.with_name(path.name.removesuffix(".lock")))
        return file_lock(path, timeout, shared=shared)

    monkeypatch.setattr(image, "file_lock", prune_first_shared)
    with image.lower_layer(tarball) as tree:
        assert (tree / "etc" / "hostname").read_text() == "image\n"
        with lock_beside(tree).open("a") as handle, pytest.raises(BlockingIOError):
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    assert taken == [lock_beside(tree)]


def test_cache_info_and_prune_cover_the_host_images(
        hosts: tuple[Path, float], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`cache info --json` lists the host images and mirror files; `cache prune --images-max-size 0` removes
    them; an image size that is no size is exit 2 with nothing removed."""
    directory, _ = hosts
    monkeypatch.setattr(cli_cache, "CACHE_DIR", directory)
    monkeypatch.setenv("MICRODEPLOY_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("MICRODEPLOY_ROOTS_DIR", str(tmp_path / "roots"))
    data = json.loads(CliRunner().invoke(main, ["cache", "info", "--json"], catch_exceptions=False).output)
    kinds = {kind["kind"]: kind for kind in data["images"]["kinds"]}
    assert data["images"]["path"] == str(directory)
    assert kinds["host-images"]["entries"] == 5 and kinds["mirror"]["entries"] == 2
    refused = CliRunner().invoke(main, ["cache", "prune", "--images-max-size", "all"])
    assert refused.exit_code == 2 and "invalid size 'all'" in refused.output
    assert len(image_cache.image_entries(directory)) == 7
    result = CliRunner().invoke(main, ["cache", "prune", "--images-max-size", "0"], catch_exceptions=False)
    assert result.exit_code == 0 and "removed 7 entries" in result.output and str(directory) in result.output
    assert image_cache.image_entries(directory) == []


def test_a_bad_images_size_in_the_environment_is_bad_input() -> None:
    """$MICRODEPLOY_IMAGES_MAX_SIZE that is no size stops before anything runs (exit 2), naming the variable."""
    with pytest.raises(MicrodeployError) as raised:
        image_cache.default_max_size({image_cache.MAX_SIZE_VAR: "lots"})
    assert raised.value.exit_code == 2 and image_cache.MAX_SIZE_VAR in raised.value.message


def test_a_symlink_planted_in_the_caches_never_leads_the_prune_outside(tmp_path: Path) -> None:
    """Links named like a root, an image, a tree or a mirror file, pointing at a directory elsewhere: at size 0
    the links alone may go, never what they point at."""
    outside = tmp_path / "precious"
    (outside / "etc").mkdir(parents=True)
    (outside / "etc" / "passwd").write_text("root:x:0:0\n")
    roots, hosts = tmp_path / "roots", tmp_path / "hosts"
    (hosts / "mirror").mkdir(parents=True)
    roots.mkdir()
    (roots / "trixie-0123456789ab").symlink_to(outside)
    (hosts / "bookworm-host-x.tree").symlink_to(outside)
    (hosts / "bookworm-host-x.tar").symlink_to(outside / "etc" / "passwd")
    (hosts / "mirror" / ("c" * 64)).symlink_to(outside / "etc" / "passwd")
    cache.prune_roots(roots, max_size=0)
    image_cache.prune(hosts, max_size=0)
    assert (outside / "etc" / "passwd").read_text() == "root:x:0:0\n"
