"""`microdeploy publish` refusing, with the real aptly and gpg, what the repository cannot serve (exit 2, no change)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.aptrepo import microdeploy, publish, stop_gpg_agent
from tests.integration.test_publish import NAME, MakeDeb, snapshot
from tests.integration.test_publish import make_deb as make_deb
from tests.integration.test_publish import repo as repo

pytestmark = pytest.mark.integration


def test_a_different_file_with_a_version_another_suite_serves_exits_2(repo: Path, make_deb: MakeDeb) -> None:
    """Name+version+arch served in bookworm, other contents into trixie: exit 2 (one pool), nothing changed."""
    publish(repo, make_deb("1.0-1"))
    before = snapshot(repo)
    result = microdeploy("publish", str(make_deb("1.0-1", flavour="rebuilt")), "--repo", str(repo),
                         "--dist", "trixie")
    assert result.returncode == 2, result.stderr
    assert f"{NAME}_1.0-1_all is already published in bookworm with different contents" in result.stderr
    assert "Traceback" not in result.stderr and "aptly" not in result.stderr
    assert snapshot(repo) == before
    # The very same file goes into trixie beside bookworm's.
    data = publish(repo, make_deb("1.0-1"), extra=("--dist", "trixie"))
    assert [(p["version"], p["dist"]) for p in data["added"]] == [("1.0-1", "trixie")]


@pytest.mark.parametrize(("first", "second"), [("1:1.0-1", "1.0-1"), ("1.0", "0:1.0")])
def test_versions_that_differ_only_in_their_epoch_exit_2(repo: Path, make_deb: MakeDeb, first: str,
                                                         second: str) -> None:
    """A version whose pool file an epoch-only different version has: exit 2 against the served one, and
    both in one call, with nothing changed."""
    publish(repo, make_deb(first))
    before = snapshot(repo)
    result = microdeploy("publish", str(make_deb(second)), "--repo", str(repo))
    assert result.returncode == 2, result.stderr
    assert f"the repository already serves {NAME} {first}" in result.stderr
    assert "differ only in their epoch" in result.stderr and "Traceback" not in result.stderr
    assert snapshot(repo) == before
    result = microdeploy("publish", str(make_deb("3.0-1")), str(make_deb("3:3.0-1")), "--repo", str(repo))
    assert result.returncode == 2, result.stderr
    assert f"is {NAME} 3:3.0-1 and {make_deb('3.0-1')} is {NAME} 3.0-1" in result.stderr
    assert snapshot(repo) == before


def test_an_expired_key_or_an_empty_gnupghome_exits_2_with_a_fitting_message(
    tmp_path: Path, make_deb: MakeDeb
) -> None:
    """--gnupghome with an expired key says it expired; an empty one says so, neither mentions --gpg-key."""
    expired = tmp_path / "expired-gnupg"
    expired.mkdir(mode=0o700)
    env = {**os.environ, "GNUPGHOME": str(expired)}
    try:
        subprocess.run(["gpg", "--batch", "--pinentry-mode", "loopback", "--passphrase", "", "--quick-gen-key",
                        "expired <expired@microdeploy.invalid>", "ed25519", "sign", "seconds=1"],
                       env=env, check=True, capture_output=True, timeout=60)
        time.sleep(2.5)
        result = microdeploy("publish", str(make_deb("1.0-1")), "--repo", str(tmp_path / "repo"),
                             "--gnupghome", str(expired))
        assert result.returncode == 2, result.stderr
        assert f"no usable secret signing key in {expired}: " in result.stderr and " has expired" in result.stderr
        assert "hint: Extend its expiry" in result.stderr and "--gpg-key" not in result.stderr
        assert not (tmp_path / "repo").exists()
    finally:
        stop_gpg_agent(expired)
    empty = tmp_path / "empty-gnupg"
    empty.mkdir(mode=0o700)
    try:
        result = microdeploy("publish", str(make_deb("1.0-1")), "--repo", str(tmp_path / "repo"),
                             "--gnupghome", str(empty))
        assert result.returncode == 2, result.stderr
        assert f"no secret signing key in {empty}" in result.stderr and "--gpg-key" not in result.stderr
        assert not (tmp_path / "repo").exists()
    finally:
        stop_gpg_agent(empty)
