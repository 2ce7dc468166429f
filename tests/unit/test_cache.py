"""The build cache stays bounded: `cache info`, `cache prune` and the prune after a build, least recently used first."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from microdeploy.build import cache
from microdeploy.cli import main
from microdeploy.errors import MicrodeployError

DAY = 86400.0


def entry(path: Path, size: int, days_ago: float, now: float) -> Path:
    """A cache entry of about `size` bytes, last used `days_ago` days before `now`."""
    if path.suffix == ".file":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * size)
    else:
        path.mkdir(parents=True)
        (path / "data").write_bytes(b"x" * size)
    os.utime(path, (now - days_ago * DAY, now - days_ago * DAY))
    return path


@pytest.fixture
def filled(tmp_path: Path) -> tuple[Path, float]:
    """A cache root holding one or two entries of every kind, of different ages, and one unknown kind."""
    now = time.time()
    root = tmp_path / "cache"
    entry(root / "uv", 64 * 1024, 0, now)
    entry(root / "layers" / "svc-py3.11-aaaa", 256 * 1024, 1, now)
    entry(root / "layers" / "svc-py3.11-bbbb", 256 * 1024, 30, now)
    entry(root / "wheels" / "svc" / "digest1", 16 * 1024, 2, now)
    entry(root / "build-envs" / "key1", 128 * 1024, 40, now)
    entry(root / "debian" / "key1", 8 * 1024, 3, now)
    entry(root / "shlibdeps" / "key1.file", 4 * 1024, 50, now)
    entry(root / "elf" / "strip-key1.file", 8 * 1024, 5, now)
    entry(root / "uv-versions", 4 * 1024, 60, now)  # left by an older microdeploy
    return root, now


def test_info_gives_size_entries_and_last_use_per_kind(filled: tuple[Path, float]) -> None:
    """Every kind is listed with its entries, bytes on disk and newest use; an unknown kind is listed too."""
    root, now = filled
    kinds = {kind.kind: kind for kind in cache.info(root)}
    assert list(kinds) == ["uv", "layers", "wheels", "build-envs", "debian", "shlibdeps", "elf", "uv-versions"]
    assert kinds["layers"].entries == 2
    assert kinds["layers"].size >= 512 * 1024
    assert kinds["layers"].last_use == pytest.approx(now - DAY, abs=1)
    assert kinds["wheels"].entries == 1 and kinds["shlibdeps"].entries == 1


def test_info_of_a_missing_cache_is_empty(tmp_path: Path) -> None:
    """No cache directory yet: every kind with no entries and no last use."""
    kinds = cache.info(tmp_path / "none")
    assert all(kind.entries == 0 and kind.size == 0 and kind.last_use is None for kind in kinds)


def test_prune_older_than_removes_every_kind_unused_that_long(filled: tuple[Path, float]) -> None:
    """--older-than 25 removes the old layer, build environment, shlibdeps answer and unknown kind, nothing else."""
    root, now = filled
    removed = cache.prune(root, older_than_days=25, now=now)
    assert sorted(str(item.path.relative_to(root)) for item in removed) == [
        "build-envs/key1", "layers/svc-py3.11-bbbb", "shlibdeps/key1.file", "uv-versions"]
    assert not (root / "layers" / "svc-py3.11-bbbb").exists()
    assert (root / "layers" / "svc-py3.11-aaaa").is_dir() and (root / "uv").is_dir()


def test_prune_to_a_size_removes_the_least_recently_used_first(filled: tuple[Path, float]) -> None:
    """Down to 400 KiB: the oldest entries go, in order of last use, until the rest fits."""
    root, now = filled
    before = sum(item.size for item in cache.entries(root))
    removed = cache.prune(root, max_size=400 * 1024, now=now)
    ages = [now - item.last_use for item in removed]
    assert ages == sorted(ages, reverse=True), "least recently used first"
    after = sum(item.size for item in cache.entries(root))
    assert after <= 400 * 1024 < before
    assert (root / "uv").is_dir() and (root / "layers" / "svc-py3.11-aaaa").is_dir(), "the newest stay"


def test_entries_being_written_are_left_alone_until_they_are_stale(tmp_path: Path) -> None:
    """A dot-named staging entry of a running build is not an entry; one left for over a day is removed."""
    now = time.time()
    root = tmp_path / "cache"
    entry(root / "layers" / ".staging-now", 1024, 0, now)
    entry(root / "layers" / ".staging-old", 1024, 2, now)
    removed = cache.prune(root, max_size=0, now=now)
    assert [item.path.name for item in removed] == [".staging-old"]
    assert (root / "layers" / ".staging-now").is_dir()


@pytest.mark.parametrize(("text", "size"), [("0", 0), ("512", 512), ("500M", 500 * 1024**2), ("4G", 4 * 1024**3),
                                            ("1.5GiB", int(1.5 * 1024**3)), ("2 kb", 2048)])
def test_sizes_are_read_in_binary_units(text: str, size: int) -> None:
    """Plain bytes or K/M/G/T with an optional (i)B."""
    assert cache.parse_size(text) == size


def test_prune_after_a_build_walks_the_cache_at_most_once_in_a_while(filled: tuple[Path, float]) -> None:
    """The first build prunes to the size; one right after it does not walk again; once the interval is over
    it does."""
    root, _ = filled
    assert cache.prune_after_build(root, max_size=0)
    entry(root / "layers" / "new", 1024, 0, time.time())
    assert cache.prune_after_build(root, max_size=0) == []
    assert (root / "layers" / "new").is_dir()
    stamp = root / cache.PRUNE_STAMP
    os.utime(stamp, (time.time() - cache.AUTO_PRUNE_INTERVAL - 1,) * 2)
    assert [item.path.name for item in cache.prune_after_build(root, max_size=0)] == ["new"]


def test_cache_info_command_prints_every_kind(filled: tuple[Path, float], monkeypatch: pytest.MonkeyPatch) -> None:
    """`microdeploy cache info --json` names the root, each kind's size and last use, and the total."""
    root, _ = filled
    monkeypatch.setenv("MICRODEPLOY_CACHE_DIR", str(root))
    result = CliRunner().invoke(main, ["cache", "info", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["root"] == str(root)
    assert [kind["kind"] for kind in data["kinds"]][:len(cache.KINDS)] == list(cache.KINDS)
    assert data["size"] == sum(kind["size"] for kind in data["kinds"]) > 0
    assert all(kind["last_use"].endswith("Z") for kind in data["kinds"])
    text = CliRunner().invoke(main, ["cache", "info"], catch_exceptions=False).output
    assert "layers" in text and "2 entries" in text


def test_cache_prune_command(filled: tuple[Path, float], monkeypatch: pytest.MonkeyPatch) -> None:
    """`microdeploy cache prune --older-than 25` removes the old entries and says how much it freed."""
    root, _ = filled
    monkeypatch.setenv("MICRODEPLOY_CACHE_DIR", str(root))
    result = CliRunner().invoke(main, ["cache", "prune", "--older-than", "25", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert len(data["removed"]) == 4 and data["freed"] > 0
    assert not (root / "build-envs" / "key1").exists()


@pytest.mark.parametrize("args", [["--max-size", "lots"], ["--max-size", "-1G"], ["--older-than", "-2"]])
def test_cache_prune_refuses_bad_input_and_removes_nothing(
    args: list[str], filled: tuple[Path, float], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A size or age that makes no sense: exit 2, a message, and every entry still there."""
    root, _ = filled
    monkeypatch.setenv("MICRODEPLOY_CACHE_DIR", str(root))
    before = sorted(str(item.path) for item in cache.entries(root))
    result = CliRunner().invoke(main, ["cache", "prune", *args])
    assert result.exit_code == 2
    assert "size" in result.output or "older-than" in result.output
    assert sorted(str(item.path) for item in cache.entries(root)) == before


def test_a_bad_cache_size_in_the_environment_is_bad_input() -> None:
    """$MICRODEPLOY_CACHE_MAX_SIZE that is no size stops the build before it starts (exit 2), with the variable named
    in the error."""
    with pytest.raises(MicrodeployError) as raised:
        cache.default_max_size({cache.MAX_SIZE_VAR: "big"})
    assert raised.value.exit_code == 2
    assert cache.MAX_SIZE_VAR in raised.value.message
