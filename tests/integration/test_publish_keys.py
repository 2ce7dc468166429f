"""`microdeploy publish` and the repository's signing key with the real aptly, gpg, gpgv and sqv: explicit keys,
a lost key, and --rotate-key."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.aptrepo import microdeploy, publish, stop_gpg_agent
from tests.integration.test_publish import KEYRING, MakeDeb, snapshot, verify_release
from tests.integration.test_publish import make_deb as make_deb
from tests.integration.test_publish import other_key as other_key
from tests.integration.test_publish import repo as repo

pytestmark = pytest.mark.integration


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


def test_a_repository_whose_key_is_missing_or_unreadable_is_refused(repo: Path, make_deb: MakeDeb) -> None:
    """With state/gnupg gone or damaged, publish exits 2 with a non-destructive hint and serves what it did."""
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


def test_an_explicit_key_that_differs_is_refused_without_rotate_key(repo: Path, make_deb: MakeDeb,
                                                                    other_key: tuple[Path, str]) -> None:
    """Signing an existing repository with another key needs --rotate-key (exit 2, nothing changed)."""
    publish(repo, make_deb("1.0-1"))
    before = snapshot(repo)
    home, _ = other_key
    result = microdeploy("publish", str(make_deb("2.0-1")), "--repo", str(repo), "--gnupghome", str(home))
    assert result.returncode == 2 and "--rotate-key" in result.stderr, result.stderr
    assert snapshot(repo) == before


def key_fingerprints(keyring: Path) -> set[str]:
    """The primary key fingerprints in a keyring file."""
    shown = subprocess.run(["gpg", "--batch", "--with-colons", "--show-keys", str(keyring)], check=True,
                           capture_output=True, text=True, timeout=30).stdout
    lines = shown.splitlines()
    return {lines[i + 1].split(":")[9] for i, line in enumerate(lines) if line.startswith("pub")}


def test_rotate_key_signs_with_a_new_key_and_keeps_the_old_one_exported(repo: Path, make_deb: MakeDeb) -> None:
    """--rotate-key makes a new own key, keeps the old GnuPG home, and exports both keys in the keyring."""
    old = publish(repo, make_deb("1.0-1"))["key_fingerprint"]
    new = publish(repo, make_deb("2.0-1"), extra=("--rotate-key",))["key_fingerprint"]
    try:
        assert new != old
        assert (repo / "state" / f"gnupg.retired-{old}").is_dir()
        assert key_fingerprints(repo / "public" / KEYRING) == {old, new}
        verify_release(repo, repo / "public" / KEYRING)
        armored = (repo / "public" / "microdeploy-archive-keyring.asc").read_text()
        assert armored.count("BEGIN PGP PUBLIC KEY BLOCK") == 1
        # Later publishes sign with the new key and still export the old one.
        assert publish(repo, make_deb("3.0-1"))["key_fingerprint"] == new
        assert key_fingerprints(repo / "public" / KEYRING) == {old, new}
    finally:
        stop_gpg_agent(repo / "state" / f"gnupg.retired-{old}")
