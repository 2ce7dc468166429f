"""The build cache stays bounded: `cache info`, `cache prune` and the prune after a build, least recently used first."""

from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from microdeploy import cli_cache, process
from microdeploy.build import cache
from microdeploy.build import running as build_marks
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


@pytest.fixture(autouse=True)
def no_machine_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The commands under test see empty roots and host images of their own, never the machine's (which a prune
    would remove)."""
    monkeypatch.setenv("MICRODEPLOY_ROOTS_DIR", str(tmp_path / "machine-roots"))
    monkeypatch.setattr(cli_cache, "CACHE_DIR", tmp_path / "machine-hosts")


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
    entry(root / "deb-chunks" / "key1.file", 8 * 1024, 6, now)
    entry(root / "uv-versions", 4 * 1024, 60, now)  # left by an older microdeploy
    return root, now


def test_info_gives_size_entries_and_last_use_per_kind(filled: tuple[Path, float]) -> None:
    """Every kind is listed with its entries, bytes on disk and newest use; an unknown kind is listed too."""
    root, now = filled
    kinds = {kind.kind: kind for kind in cache.info(root)}
    assert list(kinds) == ["uv", "layers", "wheels", "build-envs", "debian", "shlibdeps", "elf", "deb-chunks",
                           "uv-versions"]
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


def test_a_prune_keeps_what_running_builds_use(filled: tuple[Path, float]) -> None:
    """While a build runs with the cache, a prune to nothing keeps every entry used since the build started (it
    touched them when it started using them: its build environment, its layer); the rest go. Once it has ended,
    they go too. A mark whose build died (its lock free) protects nothing and is removed. (A prune removed the
    build environment under a running build: `No module named 'setuptools.build_meta'`.)"""
    root, now = filled
    stale = root / build_marks.BUILD_MARK.format(id="1-1")
    stale.write_text("")
    os.utime(stale, (now - 100 * DAY,) * 2)  # it would keep everything
    os.utime(root / "uv", (now - DAY,) * 2)  # used before the build started, as every other entry
    with build_marks.build_running(root):
        assert len(list(root.glob(".build-*.running"))) == 2
        used = [root / "build-envs" / "key1", root / "layers" / "svc-py3.11-bbbb"]
        for path in used:
            cache.touch(path)
        removed = cache.prune(root, max_size=0, now=time.time())
        assert all(path.is_dir() for path in used)
        assert len(removed) == 8 and not stale.exists()
        assert sorted(str(item.path.relative_to(root)) for item in cache.entries(root)) == [
            "build-envs/key1", "layers/svc-py3.11-bbbb"]
    assert list(root.glob(".build-*")) == []
    cache.prune(root, max_size=0)
    assert cache.entries(root) == []


def test_a_build_that_began_before_its_mark_keeps_what_it_used_since(filled: tuple[Path, float]) -> None:
    """The mark carries the time the build began (it found its layer before it could make the mark): an entry
    used since then stays, an older one goes."""
    root, now = filled
    with build_marks.build_running(root, started=now - 1.5 * DAY):
        cache.prune(root, max_size=0, now=now)
        assert sorted(str(item.path.relative_to(root)) for item in cache.entries(root)) == [
            "layers/svc-py3.11-aaaa", "uv"]


def test_a_cache_directory_that_cannot_be_made_is_bad_input(tmp_path: Path) -> None:
    """MICRODEPLOY_CACHE_DIR naming a file: exit 2 naming the directory, before the build uses it."""
    (tmp_path / "file").write_text("")
    with pytest.raises(MicrodeployError, match="cannot use the cache directory") as raised, \
            build_marks.build_running(tmp_path / "file" / "cache"):
        pass
    assert raised.value.exit_code == 2


def test_entries_being_written_are_left_alone_until_they_are_stale(tmp_path: Path) -> None:
    """A dot-named staging entry of a running build is not an entry; one left for over a day is removed."""
    now = time.time()
    root = tmp_path / "cache"
    entry(root / "layers" / ".staging-now", 1024, 0, now)
    entry(root / "layers" / ".staging-old", 1024, 2, now)
    removed = cache.prune(root, max_size=0, now=now)
    assert [item.path.name for item in removed] == [".staging-old"]
    assert (root / "layers" / ".staging-now").is_dir()


@pytest.mark.parametrize("name", ["uv", "layers/svc-py3.11-bbbb", "wheels/svc/digest1", "shlibdeps/key1.file"])
def test_an_interrupted_prune_leaves_no_part_of_an_entry_under_its_name(
    filled: tuple[Path, float], monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """The entry is renamed before its deletion starts: a prune stopped there (Ctrl-C, the end of a CI job) leaves
    the entry gone for every build, and the next prune removes the dot name it left."""
    root, now = filled
    doomed = root / name
    os.utime(doomed, (now - 100 * DAY, now - 100 * DAY))  # the least recently used: the prune's first

    def interrupted(path: Path) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cache, "_delete", interrupted)
    with pytest.raises(KeyboardInterrupt):
        cache.prune(root, max_size=0, now=now)
    assert not doomed.exists()
    [left] = doomed.parent.glob(f".{doomed.name}.pruned-*")
    assert [item.kind for item in cache.entries(root, now) if item.path == left] == [name.split("/")[0]]
    monkeypatch.undo()
    cache.prune(root, max_size=0, now=now)
    assert not left.exists()


@pytest.mark.parametrize(("text", "size"), [("0", 0), ("512", 512), ("500M", 500 * 1024**2), ("4G", 4 * 1024**3),
                                            ("1.5GiB", int(1.5 * 1024**3)), ("2 kb", 2048)])
def test_sizes_are_read_in_binary_units(text: str, size: int) -> None:
    """Plain bytes or K/M/G/T with an optional (i)B."""
    assert cache.parse_size(text) == size


def running(pid: int) -> bool:
    """Whether the process `pid` still runs (an ended one may wait a while for init to reap it: a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def test_prune_after_a_build_walks_the_cache_at_most_once_in_a_while(
    filled: tuple[Path, float], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first build starts a prune to the size, in a process of its own that the build does not wait for; one
    right after it starts none; once the interval is over one is started again. A relative cache directory is the
    one below the build's directory, not the prune's (/)."""
    root, _ = filled
    monkeypatch.chdir(root.parent)

    def pruned() -> list[str]:
        pid = cache.start_prune_after_build(Path(root.name), max_size=0)
        if pid is None:
            return []
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # not this process's child: init reaps it
        deadline = time.monotonic() + 60
        while running(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not running(pid), "the prune ends"
        return sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.name != cache.PRUNE_STAMP)

    assert pruned() == ["build-envs", "deb-chunks", "debian", "elf", "layers", "shlibdeps", "wheels", "wheels/svc"]
    entry(root / "layers" / "new", 1024, 0, time.time())
    assert pruned() == []
    assert (root / "layers" / "new").is_dir()
    stamp = root / cache.PRUNE_STAMP
    os.utime(stamp, (time.time() - cache.AUTO_PRUNE_INTERVAL - 1,) * 2)
    assert "layers/new" not in pruned()
    assert not (root / "layers" / "new").exists()


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


def test_a_cache_directory_that_is_a_file_is_bad_input(tmp_path: Path) -> None:
    """$MICRODEPLOY_CACHE_DIR naming a file: exit 2, the variable named (it was "Not a directory: '.../layers/...'"
    with exit 1, from the middle of a build)."""
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(MicrodeployError) as raised:
        cache.cache_root({"MICRODEPLOY_CACHE_DIR": str(afile)})
    assert raised.value.exit_code == 2
    assert raised.value.message == f"the cache directory {afile} is not a directory"
    assert "MICRODEPLOY_CACHE_DIR" in (raised.value.hint or "")


def a_root(roots: Path, name: str, size: int, days_ago: float, now: float) -> Path:
    """A build root of about `size` bytes with its lock file, last used (its lock touched) `days_ago` days ago."""
    tree = entry(roots / name, size, days_ago + 100, now)
    lock = tree.with_name(name + ".lock")
    lock.touch()
    os.utime(lock, (now - days_ago * DAY, now - days_ago * DAY))
    return tree


def test_build_roots_are_entries_used_when_their_lock_was(tmp_path: Path) -> None:
    """Each root directory is one entry, its last use its lock file's; lock files and fresh staging are not."""
    now = time.time()
    roots = tmp_path / "roots"
    a_root(roots, "trixie-aaaaaaaaaaaa", 4096, 3, now)
    entry(roots / ".trixie-bbbbbbbbbbbb.x1y2", 1024, 0, now)  # mmdebstrap writing a root
    found = cache.root_entries(roots, now)
    assert [(item.kind, item.path.name) for item in found] == [("roots", "trixie-aaaaaaaaaaaa")]
    assert found[0].last_use == pytest.approx(now - 3 * DAY, abs=1)
    assert found[0].size >= 4096
    assert cache.root_entries(tmp_path / "none") == []


def test_roots_are_pruned_least_recently_used_first_but_never_one_in_use(tmp_path: Path) -> None:
    """To a size that fits two roots: the oldest free root goes, and a stale half-deleted one; an older root
    whose lock a build holds stays, and its size still counts."""
    now = time.time()
    roots = tmp_path / "roots"
    busy = a_root(roots, "trixie-b0000000b05e", 64 * 1024, 30, now)
    old = a_root(roots, "trixie-0000000000d1", 64 * 1024, 10, now)
    new = a_root(roots, "trixie-00000000000e", 64 * 1024, 1, now)
    stale = entry(roots / ".trixie-000000000901.pruned-1", 1024, 20, now)  # a prune that died while deleting
    with busy.with_name(busy.name + ".lock").open("a") as held:
        fcntl.flock(held, fcntl.LOCK_SH)
        removed = cache.prune_entries(cache.root_entries(roots, now), max_size=150 * 1024, older_than_days=None,
                                      now=now)
    assert sorted(item.path.name for item in removed) == [".trixie-000000000901.pruned-1", "trixie-0000000000d1"]
    assert busy.is_dir() and new.is_dir() and not old.exists() and not stale.exists()
    assert not [path for path in roots.iterdir() if ".pruned-" in path.name], "nothing left half-deleted"
    assert (roots / "trixie-0000000000d1.lock").is_file(), "a waiting build may hold the lock file open"


def test_the_roots_prune_after_a_build_walks_at_most_once_in_a_while(tmp_path: Path) -> None:
    """The first build in a root prunes the roots to the size; one right after does not walk again."""
    now = time.time()
    roots = tmp_path / "roots"
    a_root(roots, "trixie-0000000000d1", 4096, 10, now)
    assert [item.path.name for item in cache.prune_roots_after_build(roots, max_size=0)] == ["trixie-0000000000d1"]
    a_root(roots, "trixie-00000000000e", 4096, 0, now)
    assert cache.prune_roots_after_build(roots, max_size=0) == []
    assert (roots / "trixie-00000000000e").is_dir()


def test_cache_info_and_prune_cover_the_build_roots(
        filled: tuple[Path, float], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`cache info --json` gives the roots' size, entries and last use; `cache prune --roots-max-size 0` removes
    them and says so; the build cache keeps to its own size."""
    root, now = filled
    roots = tmp_path / "roots"
    a_root(roots, "trixie-aaaaaaaaaaaa", 8192, 2, now)
    monkeypatch.setenv("MICRODEPLOY_CACHE_DIR", str(root))
    monkeypatch.setenv("MICRODEPLOY_ROOTS_DIR", str(roots))
    data = json.loads(CliRunner().invoke(main, ["cache", "info", "--json"], catch_exceptions=False).output)
    assert data["roots"]["path"] == str(roots) and data["roots"]["size"] >= 8192
    [kind] = data["roots"]["kinds"]
    assert kind["kind"] == "roots" and kind["entries"] == 1 and kind["last_use"].endswith("Z")
    text = CliRunner().invoke(main, ["cache", "info"], catch_exceptions=False).output
    assert f"{roots}: " in text and "  roots " in text
    result = CliRunner().invoke(main, ["cache", "prune", "--roots-max-size", "0", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    pruned = json.loads(result.output)
    assert pruned["roots"]["removed"] == [str(roots / "trixie-aaaaaaaaaaaa")] and pruned["roots"]["freed"] >= 8192
    assert pruned["removed"] == [], "the build cache fits its default size"
    assert not (roots / "trixie-aaaaaaaaaaaa").exists() and (root / "layers" / "svc-py3.11-bbbb").is_dir()


def test_cache_prune_refuses_a_bad_roots_size_and_removes_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--roots-max-size that is no size: exit 2, a message, the roots still there."""
    roots = tmp_path / "roots"
    tree = a_root(roots, "trixie-aaaaaaaaaaaa", 1024, 50, time.time())
    monkeypatch.setenv("MICRODEPLOY_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("MICRODEPLOY_ROOTS_DIR", str(roots))
    result = CliRunner().invoke(main, ["cache", "prune", "--roots-max-size", "huge"])
    assert result.exit_code == 2 and "invalid size 'huge'" in result.output
    assert tree.is_dir()
    with pytest.raises(MicrodeployError) as raised:
        cache.default_roots_max_size({cache.ROOTS_MAX_SIZE_VAR: "big"})
    assert raised.value.exit_code == 2 and cache.ROOTS_MAX_SIZE_VAR in raised.value.message


def test_a_prune_that_cannot_start_is_a_warning_not_a_failed_build(
    filled: tuple[Path, float], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The shell that starts it fails: the package is made already, so the build goes on with a warning."""
    root, _ = filled
    monkeypatch.setattr(process, "DETACHED", "exit 3")
    assert cache.start_prune_after_build(root, max_size=0) is None
    assert "was not pruned" in caplog.text
    assert (root / "uv").is_dir()


def test_a_cache_directory_that_holds_other_things_keeps_them(filled: tuple[Path, float], tmp_path: Path) -> None:
    """MICRODEPLOY_CACHE_DIR set to a directory that is not the cache's alone ($HOME, a CI workspace): a prune to
    nothing, by the command or after a build, removes the cache's entries and leaves everything else; neither
    `cache info` nor a prune counts it. (Every directory at the top was an entry: a prune removed a home's
    Documents/, projects/ and .ssh/.)"""
    root, now = filled
    foreign = [entry(root / "Documents", 64 * 1024, 90, now), entry(root / "projects" / "myapp", 64 * 1024, 90, now),
               entry(root / ".ssh", 1024, 90, now), entry(root / ".config.pruned-7", 1024, 90, now)]
    assert {kind.kind for kind in cache.info(root)} == {*cache.KINDS, "uv-versions"}
    cache.prune(root, max_size=0, now=now)
    assert all(path.is_dir() for path in foreign)
    assert sorted(path.name for path in root.iterdir()) == [
        ".config.pruned-7", ".ssh", "Documents", "build-envs", "deb-chunks", "debian", "elf", "layers", "projects",
        "shlibdeps", "wheels"]
    assert cache.entries(root) == []
    roots = tmp_path / "roots"
    built = entry(roots / "trixie-4f053ef45598", 1024, 10, now)
    kept = [entry(roots / "backups", 1024, 90, now), entry(roots / "trixie", 1024, 90, now)]
    assert [item.path for item in cache.prune_roots(roots, max_size=0)] == [built]
    assert not built.exists() and all(path.is_dir() for path in kept)
