"""`microdeploy publish` and the repository's signing key with the real aptly, gpg, gpgv and sqv: explicit keys,
a lost key, and --rotate-key (also one that fails or is stopped)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.aptrepo import microdeploy, publish, publish_stopped_while_staging, stop_gpg_agent
from tests.integration.test_faults import mounted
from tests.integration.test_publish import KEYRING, NAME, MakeDeb, snapshot, verify_release
from tests.integration.test_publish import make_deb as make_deb
from tests.integration.test_publish import other_key as other_key
from tests.integration.test_publish import repo as repo
from tests.support import wait_until

pytestmark = pytest.mark.integration


# --- helpers -----------------------------------------------------------------


def key_fingerprints(keyring: Path) -> set[str]:
    """The primary key fingerprints in a keyring file."""
    shown = subprocess.run(["gpg", "--batch", "--with-colons", "--show-keys", str(keyring)], check=True,
                           capture_output=True, text=True, timeout=30).stdout
    lines = shown.splitlines()
    return {lines[i + 1].split(":")[9] for i, line in enumerate(lines) if line.startswith("pub")}


def own_fingerprints(repo: Path) -> list[str]:
    """The fingerprints of the secret primary keys in the repository's own GnuPG home, state/gnupg."""
    shown = subprocess.run(["gpg", "--batch", "--with-colons", "--list-secret-keys"], check=True,
                           env={**os.environ, "GNUPGHOME": str(repo / "state" / "gnupg")},
                           capture_output=True, text=True, timeout=30).stdout
    lines = shown.splitlines()
    return [lines[i + 1].split(":")[9] for i, line in enumerate(lines) if line.startswith("sec")]


def served_key(repo: Path) -> str:
    """The key the served generation's manifest says its Release files are signed with."""
    manifest = json.loads(((repo / "public").resolve().parent / "manifest.json").read_text())
    fingerprint: str = manifest["key_fingerprint"]
    return fingerprint


@dataclass(frozen=True)
class KeyState:
    """Where a repository keeps its keys: state/'s entries, the retired keyrings, the generations, and the own
    GnuPG home (its inode: the same directory, not a copy) with its keys."""

    state: list[str]
    retired_keys: list[str] | None
    generations: list[str]
    home: int
    keys: list[str]

    @property
    def rotation_leftovers(self) -> list[str]:
        """Entries of state/ that are neither the own key's home, a retired one, the keyrings, the generations nor
        the lock."""
        return [name for name in self.state if name not in ("generations", "gnupg", "lock", "retired-keys")
                and not name.startswith("gnupg.retired-")]


def key_state(repo: Path) -> KeyState:
    """The key state of the repository at `repo`, to compare before and after."""
    state = repo / "state"
    retired = state / "retired-keys"
    return KeyState(sorted(p.name for p in state.iterdir()),
                    sorted(p.name for p in retired.iterdir()) if retired.is_dir() else None,
                    sorted(p.name for p in (state / "generations").iterdir()), (state / "gnupg").stat().st_ino,
                    own_fingerprints(repo))


def stop_gpg_agents(repo: Path) -> None:
    """Stop the gpg-agent of each GnuPG home under state/ (the own key's, retired and half-made ones)."""
    for home in sorted((repo / "state").glob("gnupg*")):
        stop_gpg_agent(home)


@pytest.fixture
def keyed_repo(repo: Path) -> Iterator[Path]:
    """A repository directory whose GnuPG agents, of every home under state/, are stopped at teardown."""
    yield repo
    stop_gpg_agents(repo)


# --- explicit, wrong and lost keys, and --rotate-key -------------------------


def test_an_explicit_gpg_key_signs_and_is_exported(repo: Path, make_deb: MakeDeb, other_key: tuple[Path, str]) -> None:
    """--gnupghome/--gpg-key sign with that key, and the exported keyring is that key."""
    home, fingerprint = other_key
    data = publish(repo, make_deb("1.0-1"), extra=("--gnupghome", str(home), "--gpg-key", fingerprint))
    assert data["key_fingerprint"] == fingerprint
    verify_release(repo, repo / "public" / KEYRING)
    assert not (repo / "state" / "gnupg").exists()


def test_a_wrong_key_does_not_verify(repo: Path, make_deb: MakeDeb, other_key: tuple[Path, str],
                                     tmp_path: Path) -> None:
    """The Release signature does not verify against another key."""
    publish(repo, make_deb("1.0-1"))
    home, fingerprint = other_key
    wrong = tmp_path / "wrong.gpg"
    subprocess.run(["gpg", "--batch", "--output", str(wrong), "--export", fingerprint],
                   env={**os.environ, "GNUPGHOME": str(home)}, check=True, capture_output=True, timeout=30)
    with pytest.raises(subprocess.CalledProcessError):
        verify_release(repo, wrong)


def test_a_repository_whose_key_is_missing_or_unreadable_is_refused(keyed_repo: Path, make_deb: MakeDeb) -> None:
    """With state/gnupg gone or damaged, publish exits 2 with a non-destructive hint and serves what it did;
    --rotate-key then signs with a new own key and keeps the damaged directory aside."""
    repo = keyed_repo
    data = publish(repo, make_deb("1.0-1"))
    before = snapshot(repo)
    home = repo / "state" / "gnupg"
    stop_gpg_agent(home)
    home.rename(repo / "state" / "gnupg.away")
    result = microdeploy("publish", str(make_deb("2.0-1")), "--repo", str(repo))
    assert result.returncode == 2, result.stderr
    assert f"signed with key {data['key_fingerprint']}" in result.stderr
    assert "hint: Restore" in result.stderr and "--rotate-key" in result.stderr and "Remove" not in result.stderr
    assert "Traceback" not in result.stderr
    assert snapshot(repo) == before and not home.exists()
    home.mkdir(mode=0o700)  # an empty (or damaged) key directory: no secret key to be read
    result = microdeploy("publish", str(make_deb("2.0-1")), "--repo", str(repo))
    assert result.returncode == 2 and "holds no readable secret key" in result.stderr, result.stderr
    assert snapshot(repo) == before
    new = publish(repo, make_deb("2.0-1"), extra=("--rotate-key",))["key_fingerprint"]
    assert new != data["key_fingerprint"] and own_fingerprints(repo) == [new]
    assert (repo / "state" / f"gnupg.retired-{data['key_fingerprint']}").is_dir()
    assert key_state(repo).rotation_leftovers == ["gnupg.away"]
    verify_release(repo, repo / "public" / KEYRING)


def test_an_explicit_key_that_differs_is_refused_without_rotate_key(repo: Path, make_deb: MakeDeb,
                                                                    other_key: tuple[Path, str]) -> None:
    """Signing an existing repository with another key needs --rotate-key (exit 2, nothing changed)."""
    publish(repo, make_deb("1.0-1"))
    before = snapshot(repo)
    home, _ = other_key
    result = microdeploy("publish", str(make_deb("2.0-1")), "--repo", str(repo), "--gnupghome", str(home))
    assert result.returncode == 2 and "--rotate-key" in result.stderr, result.stderr
    assert snapshot(repo) == before


def test_rotate_key_signs_with_a_new_key_and_keeps_the_old_one_exported(repo: Path, make_deb: MakeDeb) -> None:
    """--rotate-key makes a new own key, keeps the old GnuPG home, and exports both keys in the keyring."""
    old = publish(repo, make_deb("1.0-1"))["key_fingerprint"]
    new = publish(repo, make_deb("2.0-1"), extra=("--rotate-key",))["key_fingerprint"]
    try:
        assert new != old and own_fingerprints(repo) == [new]
        assert (repo / "state" / f"gnupg.retired-{old}").is_dir()
        assert key_state(repo).rotation_leftovers == [] and key_state(repo).retired_keys == [f"{old}.gpg"]
        assert key_fingerprints(repo / "public" / KEYRING) == {old, new}
        verify_release(repo, repo / "public" / KEYRING)
        armored = (repo / "public" / "microdeploy-archive-keyring.asc").read_text()
        assert armored.count("BEGIN PGP PUBLIC KEY BLOCK") == 1
        # Later publishes sign with the new key and still export the old one.
        assert publish(repo, make_deb("3.0-1"))["key_fingerprint"] == new
        assert key_fingerprints(repo / "public" / KEYRING) == {old, new}
    finally:
        stop_gpg_agent(repo / "state" / f"gnupg.retired-{old}")


# --- a rotation that does not complete (the key stays the repository's own) ---


def big_deb(directory: Path, version: str, size: int) -> Path:
    """A real .deb of the test package with `size` bytes of incompressible payload (uncompressed)."""
    tree = directory / f"tree-big-{version}"
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "DEBIAN" / "control").write_text(
        f"Package: {NAME}\nVersion: {version}\nArchitecture: all\n"
        "Maintainer: microdeploy tests <tests@microdeploy.invalid>\nSection: misc\nPriority: optional\n"
        "Description: microdeploy test package big\n a payload larger than the repository's file system\n")
    (tree / "payload").write_bytes(os.urandom(size))
    deb = directory / f"{NAME}_{version}_all-big.deb"
    subprocess.run(["dpkg-deb", "-Znone", "--root-owner-group", "--build", str(tree), str(deb)],
                   check=True, capture_output=True, timeout=60)
    return deb


def test_a_rotation_that_runs_out_of_space_keeps_the_old_key(tmp_path: Path, make_deb: MakeDeb) -> None:
    """--rotate-key with a package its 3 MB file system cannot take (exit 1 after the new key is made): the old
    key stays the repository's own, in its home, nothing of the rotation is left, the next publish signs with it."""
    # Short names: gpg-agent's sockets live in the GnuPG home, whose path must leave them at most 107 bytes.
    with mounted(tmp_path / "s", "-t", "tmpfs", "-o", "size=3m", "tmpfs") as small:
        repo = small / "r"
        try:
            old = publish(repo, make_deb("1.0-1"))["key_fingerprint"]
            old_keyring = shutil.copyfile(repo / "public" / KEYRING, tmp_path / "old.gpg")
            before, served = key_state(repo), snapshot(repo)
            result = microdeploy("publish", str(big_deb(tmp_path, "1.1-1", 4 << 20)), "--repo", str(repo),
                                 "--rotate-key")
            assert result.returncode == 1, result.stderr
            assert "No space left on device" in result.stderr and "Traceback" not in result.stderr
            assert key_state(repo) == before and snapshot(repo) == served
            data = publish(repo, make_deb("2.0-1"))
            assert data["key_fingerprint"] == old and own_fingerprints(repo) == [old]
            verify_release(repo, old_keyring)
        finally:
            stop_gpg_agents(repo)


def test_sigterm_during_a_rotating_publish_keeps_the_old_key(keyed_repo: Path, make_deb: MakeDeb,
                                                               tmp_path: Path) -> None:
    """SIGTERM while aptly works for --rotate-key: exit 130, the old key stays the repository's own with nothing
    of the rotation left, the next publish signs with it, and a later --rotate-key rotates."""
    repo = keyed_repo
    old = publish(repo, make_deb("1.0-1"))["key_fingerprint"]
    old_keyring = shutil.copyfile(repo / "public" / KEYRING, tmp_path / "old.gpg")
    before, served = key_state(repo), snapshot(repo)
    # The new key is made by the time aptly works.
    stopped = publish_stopped_while_staging(repo, "g000002", str(make_deb("2.0-1")), "--rotate-key")
    assert stopped.returncode == 130, stopped.stderr
    assert key_state(repo) == before and snapshot(repo) == served
    data = publish(repo, make_deb("2.0-1"))
    assert data["key_fingerprint"] == old and own_fingerprints(repo) == [old]
    verify_release(repo, old_keyring)
    new = publish(repo, make_deb("3.0-1"), extra=("--rotate-key",))["key_fingerprint"]
    assert new != old and own_fingerprints(repo) == [new]
    assert key_fingerprints(repo / "public" / KEYRING) == {old, new}
    after = key_state(repo)
    assert after.rotation_leftovers == [] and f"gnupg.retired-{old}" in after.state
    assert after.retired_keys == [f"{old}.gpg"]


def kill_rotating_publish(repo: Path, deb: Path, after: float | None) -> None:
    """Start `publish DEB --rotate-key` and SIGKILL it (with aptly and gpg) `after` seconds, or (None) once
    aptly works on its generation."""
    child = subprocess.Popen([sys.executable, "-m", "microdeploy", "publish", str(deb), "--repo", str(repo),
                              "--rotate-key"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
    generations = repo / "state" / "generations"
    if after is None:
        wait_until(lambda: any((gen / "incoming").exists() for gen in generations.iterdir())
                   or child.poll() is not None, "the rotating publish staging its packages", interval=0.005)
    else:
        time.sleep(after)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, signal.SIGKILL)  # the group we started: the CLI, aptly and gpg
    child.wait(30)


def test_a_rotating_publish_killed_at_any_moment_leaves_the_served_key_the_repository_s_own(
    keyed_repo: Path, make_deb: MakeDeb
) -> None:
    """SIGKILL to --rotate-key publishes (once while aptly works, then at moments spread over one): the next plain
    publish signs with the key the served repository names, and no half-rotated key is left."""
    repo = keyed_repo
    publish(repo, make_deb("1.0-1"))
    started = time.monotonic()
    publish(repo, make_deb("1.1-1"), extra=("--rotate-key",))
    duration = time.monotonic() - started
    for i, after in enumerate([None, *(duration * (n + 0.5) / 4 for n in range(4))]):
        kill_rotating_publish(repo, make_deb(f"2.{i}-1"), after)
        signed_with = served_key(repo)
        verify_release(repo, repo / "public" / KEYRING)
        data = publish(repo, make_deb(f"3.{i}-1"))
        assert data["key_fingerprint"] == signed_with and own_fingerprints(repo) == [signed_with]
        state = key_state(repo)
        assert state.rotation_leftovers == []
        manifest = json.loads(((repo / "public").resolve().parent / "manifest.json").read_text())
        assert state.retired_keys == sorted(f"{fpr}.gpg" for fpr in manifest["retired_keys"])
