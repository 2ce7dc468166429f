"""`microdeploy publish` and `repo serve` with the real aptly, gpg, sqv and apt on a booted host."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from microdeploy.repo import sources_snippet
from tests.aptrepo import (
    CLI_TIMEOUT,
    add_source,
    apt,
    installed_version,
    microdeploy,
    publish,
    publish_stopped_while_staging,
    serve_repository,
    stop_gpg_agent,
)
from tests.support import wait_until

if TYPE_CHECKING:
    from microdeploy.testbed.host import Host
    from tests.testbed.fixtures import NetworkedHosts

pytest_plugins = ["tests.testbed.fixtures"]

pytestmark = pytest.mark.integration

NAME = "mdtest-hello"
DIST = "bookworm"
KEYRING = "microdeploy-archive-keyring.gpg"

MakeDeb = Callable[..., Path]


# --- fixtures and helpers ---------------------------------------------------


@pytest.fixture(scope="session")
def make_deb(tmp_path_factory: pytest.TempPathFactory) -> MakeDeb:
    """A factory of tiny real .debs (dpkg-deb --build), installable on a host with no network."""
    out = tmp_path_factory.mktemp("debs")
    built: dict[tuple[str, str, str, str], Path] = {}

    def _make(version: str, name: str = NAME, flavour: str = "", arch: str = "all") -> Path:
        key = (name, version, flavour, arch)
        if key in built:
            return built[key]
        tree = out / f"tree-{name}-{version}-{flavour}"
        (tree / "DEBIAN").mkdir(parents=True)
        # Section and Priority: repository tools skip or warn about packages without them.
        (tree / "DEBIAN" / "control").write_text(
            f"Package: {name}\nVersion: {version}\nArchitecture: {arch}\n"
            "Maintainer: microdeploy tests <tests@microdeploy.invalid>\n"
            "Section: misc\nPriority: optional\n"
            f"Description: microdeploy test package {flavour}\n test payload for the publish tests\n"
        )
        share = tree / "usr" / "share" / name
        share.mkdir(parents=True)
        (share / "version").write_text(f"{version} {flavour}\n")
        deb = out / f"{name}_{version}_{arch}{'-' + flavour if flavour else ''}.deb"
        subprocess.run(["dpkg-deb", "--root-owner-group", "--build", str(tree), str(deb)],
                       check=True, capture_output=True, timeout=60)
        built[key] = deb
        return deb

    return _make


def served_versions(repo: Path, name: str = NAME) -> list[str]:
    """Versions of `name` that the served index of bookworm/main lists."""
    text = (repo / "public" / "dists" / DIST / "main" / "binary-all" / "Packages").read_text()
    stanzas = [dict(line.split(": ", 1) for line in s.splitlines() if ": " in line) for s in text.split("\n\n")]
    return sorted(s["Version"] for s in stanzas if s.get("Package") == name)


def snapshot(repo: Path) -> dict[str, bytes | str]:
    """Everything served, byte for byte, plus where `public` points: to prove nothing changed."""
    public = repo / "public"
    files: dict[str, bytes | str] = {"-> public": os.readlink(public)}
    for path in sorted(public.rglob("*")):
        if path.is_file():
            files[str(path.relative_to(public))] = path.read_bytes()
    return files


def verify_release(repo: Path, keyring: Path) -> None:
    """Check Release.gpg with sqv and InRelease with gpgv against `keyring` (raise on a bad signature)."""
    dists = repo / "public" / "dists" / DIST
    subprocess.run(["sqv", "--keyring", str(keyring), str(dists / "Release.gpg"), str(dists / "Release")],
                   check=True, capture_output=True, timeout=30)
    subprocess.run(["gpgv", "--keyring", str(keyring), str(dists / "InRelease")],
                   check=True, capture_output=True, timeout=30)


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Path]:
    """A repository directory; its GnuPG agent is stopped at teardown."""
    path = tmp_path / "repo"
    yield path
    stop_gpg_agent(path / "state" / "gnupg")


@pytest.fixture
def other_key(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A second GnuPG home with its own Ed25519 key (home, fingerprint), for wrong-key tests."""
    home = tmp_path / "other-gnupg"
    home.mkdir(mode=0o700)
    env = {**os.environ, "GNUPGHOME": str(home)}
    subprocess.run(["gpg", "--batch", "--pinentry-mode", "loopback", "--passphrase", "", "--quick-gen-key",
                    "other <other@microdeploy.invalid>", "ed25519", "sign", "never"],
                   env=env, check=True, capture_output=True, timeout=60)
    listing = subprocess.run(["gpg", "--batch", "--with-colons", "--list-secret-keys"], env=env, check=True,
                             capture_output=True, text=True, timeout=30).stdout
    fingerprint = next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr"))
    yield home, fingerprint
    stop_gpg_agent(home)


# --- the repository on this machine -----------------------------------------


def test_first_publish_creates_a_signed_repository(repo: Path, make_deb: MakeDeb) -> None:
    """The first publish makes the repo, an Ed25519 key (0700 home), exported keyrings and a verifiable Release."""
    deb = make_deb("1.0-1")
    data = publish(repo, deb)
    assert [(p["name"], p["version"], p["size"]) for p in data["added"]] == [(NAME, "1.0-1", deb.stat().st_size)]
    assert data["changed"] is True
    assert data["dists"] == [DIST] and data["added"][0]["dist"] == DIST and data["repo"] == str(repo.absolute())
    assert {"validate", "aptly", "total"} <= set(data["timings"])
    keyring = repo / "public" / KEYRING
    assert Path(data["keyring"]) == keyring.absolute()
    assert (repo / "public" / "microdeploy-archive-keyring.asc").read_text().startswith(
        "-----BEGIN PGP PUBLIC KEY BLOCK-----")
    assert (repo / "state" / "gnupg").stat().st_mode & 0o777 == 0o700
    listing = subprocess.run(["gpg", "--batch", "--with-colons", "--show-keys", str(keyring)],
                             capture_output=True, text=True, check=True, timeout=30).stdout
    assert ":ed25519:" in listing and data["key_fingerprint"] in listing
    verify_release(repo, keyring)
    assert served_versions(repo) == ["1.0-1"]
    assert (repo / "public" / "pool" / "main" / "m" / NAME / f"{NAME}_1.0-1_all.deb").is_file()
    release = (repo / "public" / "dists" / DIST / "Release").read_text()
    assert "Origin: microdeploy" in release and "trusted" not in release


def test_republishing_the_same_file_is_a_no_op(repo: Path, make_deb: MakeDeb) -> None:
    """Publishing a file that is already served changes nothing, not even the signature."""
    publish(repo, make_deb("1.0-1"))
    before = snapshot(repo)
    data = publish(repo, make_deb("1.0-1"))
    assert data["changed"] is False and data["added"] == []
    assert [p["version"] for p in data["unchanged"]] == ["1.0-1"]
    assert snapshot(repo) == before


def test_a_different_file_with_a_published_version_exits_2_and_changes_nothing(
    repo: Path, make_deb: MakeDeb
) -> None:
    """Same name+version+arch with other contents is refused (exit 2) and the served state is untouched."""
    publish(repo, make_deb("1.0-1"))
    before = snapshot(repo)
    result = microdeploy("publish", str(make_deb("1.0-1", flavour="rebuilt")), "--repo", str(repo))
    assert result.returncode == 2, result.stderr
    assert f"{NAME}_1.0-1_all is already published with different contents" in result.stderr
    assert "Traceback" not in result.stderr
    assert snapshot(repo) == before


@pytest.mark.parametrize("damage", ["truncated", "garbage", "bad-control"])
def test_a_corrupt_deb_exits_2_and_changes_nothing(
    repo: Path, make_deb: MakeDeb, tmp_path: Path, damage: str
) -> None:
    """A truncated, foreign or unreadable .deb is refused (exit 2), alongside a good one, with no change."""
    publish(repo, make_deb("1.0-1"))
    before = snapshot(repo)
    good = make_deb("1.1-1").read_bytes()
    bad = tmp_path / "bad.deb"
    if damage == "truncated":
        bad.write_bytes(good[: len(good) // 2])
    elif damage == "garbage":
        bad.write_bytes(b"this is no Debian package\n")
    else:
        # A well-formed ar archive whose members are not a package: only dpkg-deb can tell.
        bad.write_bytes(b"!<arch>\n" + b"debian-binary/  0           0     0     100644  4         `\n" + b"9.9\n")
    result = microdeploy("publish", str(make_deb("1.1-1")), str(bad), "--repo", str(repo))
    assert result.returncode == 2, result.stderr
    assert str(bad) in result.stderr
    assert snapshot(repo) == before


def test_keep_n_keeps_the_newest_versions(repo: Path, make_deb: MakeDeb) -> None:
    """With --keep 2 the index and the pool hold only the two highest versions."""
    publish(repo, make_deb("1.0-1"), make_deb("1.2-1"), extra=("--keep", "2"))
    data = publish(repo, make_deb("1.10-1"), make_deb("1.9-1"), extra=("--keep", "2"))
    assert sorted(p["version"] for p in data["removed"]) == ["1.0-1", "1.2-1"]
    assert served_versions(repo) == ["1.10-1", "1.9-1"]
    pool = sorted(p.name for p in (repo / "public" / "pool").rglob("*.deb"))
    assert pool == [f"{NAME}_1.10-1_all.deb", f"{NAME}_1.9-1_all.deb"]
    verify_release(repo, repo / "public" / KEYRING)


def test_new_components_distributions_and_architectures_are_published_alongside(
    repo: Path, make_deb: MakeDeb
) -> None:
    """A second component, an arm64 package and a second distribution all end up served and signed."""
    publish(repo, make_deb("1.0-1"))
    publish(repo, make_deb("1.0-1", name="mdtest-extra"), extra=("--component", "extra"))
    publish(repo, make_deb("1.0-1", name="mdtest-native", arch="arm64"))
    publish(repo, make_deb("9.0-1"), extra=("--dist", "trixie"))
    dists = repo / "public" / "dists"
    release = (dists / DIST / "Release").read_text()
    assert "Components: extra main" in release and "arm64" in release.split("Architectures:")[1].splitlines()[0]
    assert served_versions(repo) == ["1.0-1"]
    assert "mdtest-extra" in (dists / DIST / "extra" / "binary-all" / "Packages").read_text()
    assert "mdtest-native" in (dists / DIST / "main" / "binary-arm64" / "Packages").read_text()
    assert "Version: 9.0-1" in (dists / "trixie" / "main" / "binary-all" / "Packages").read_text()
    verify_release(repo, repo / "public" / KEYRING)
    trixie = dists / "trixie"
    subprocess.run(["gpgv", "--keyring", str(repo / "public" / KEYRING), str(trixie / "InRelease")],
                   check=True, capture_output=True, timeout=30)


def test_two_publishes_at_once_both_land(repo: Path, make_deb: MakeDeb) -> None:
    """Two concurrent publishes are serialised by the lock; both packages end up in one signed index."""
    publish(repo, make_deb("1.0-1"))
    children = [
        subprocess.Popen([sys.executable, "-m", "microdeploy", "publish", str(deb), "--repo", str(repo)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        for deb in (make_deb("2.0-1"), make_deb("1.0-1", name="mdtest-other"))
    ]
    for child in children:
        _, err = child.communicate(timeout=CLI_TIMEOUT)
        assert child.returncode == 0, err.decode()
    assert served_versions(repo) == ["1.0-1", "2.0-1"]
    assert served_versions(repo, "mdtest-other") == ["1.0-1"]
    verify_release(repo, repo / "public" / KEYRING)


def test_a_passphrase_protected_key_is_refused_and_the_previous_state_stays_served(
    repo: Path, make_deb: MakeDeb, tmp_path: Path
) -> None:
    """A key that needs a passphrase (aptly signs unattended) is refused (exit 2) before a generation is made."""
    locked = tmp_path / "locked-gnupg"
    locked.mkdir(mode=0o700)
    env = {**os.environ, "GNUPGHOME": str(locked)}
    try:
        subprocess.run(["gpg", "--batch", "--pinentry-mode", "loopback", "--passphrase", "secret",
                        "--quick-gen-key", "locked <locked@microdeploy.invalid>", "ed25519", "sign", "never"],
                       env=env, check=True, capture_output=True, timeout=60)
        publish(repo, make_deb("1.0-1"))
        before = snapshot(repo)
        generations = sorted(p.name for p in (repo / "state" / "generations").iterdir())
        result = microdeploy("publish", str(make_deb("2.0-1")), "--repo", str(repo), "--gnupghome", str(locked),
                             "--rotate-key")
        assert result.returncode == 2, result.stderr
        assert f"in {locked} is protected by a passphrase" in result.stderr and "aptly" not in result.stderr
        assert snapshot(repo) == before
        assert sorted(p.name for p in (repo / "state" / "generations").iterdir()) == generations
        # The next good publish still works from the previous state.
        publish(repo, make_deb("2.0-1"))
        assert served_versions(repo) == ["1.0-1", "2.0-1"]
    finally:
        stop_gpg_agent(locked)


def test_a_killed_publish_leaves_no_trace_in_what_is_served(repo: Path, make_deb: MakeDeb) -> None:
    """A half-made generation left by a killed publish is never served and is removed by the next publish."""
    publish(repo, make_deb("1.0-1"))
    before = snapshot(repo)
    leftover = repo / "state" / "generations" / "g000099"
    (leftover / "published" / "dists").mkdir(parents=True)
    assert snapshot(repo) == before
    publish(repo, make_deb("2.0-1"))
    assert not leftover.exists()
    assert served_versions(repo) == ["1.0-1", "2.0-1"]


def test_a_publish_killed_mid_way_leaves_a_consistent_signed_state(repo: Path, make_deb: MakeDeb) -> None:
    """SIGKILL while aptly works: what is served is the old or the new state, signed, and publishing goes on."""
    publish(repo, make_deb("1.0-1"))
    child = subprocess.Popen([sys.executable, "-m", "microdeploy", "publish", str(make_deb("2.0-1")),
                              "--repo", str(repo)], stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: (repo / "state" / "generations" / "g000002").exists() or child.poll() is not None,
                   "the publish starting a generation", interval=0.005)
    finally:
        child.kill()  # by its pid: the child we started
        child.wait(30)
    assert served_versions(repo) in (["1.0-1"], ["1.0-1", "2.0-1"])
    verify_release(repo, repo / "public" / KEYRING)
    publish(repo, make_deb("3.0-1"))
    assert served_versions(repo)[-1] == "3.0-1"
    verify_release(repo, repo / "public" / KEYRING)


def test_sigterm_during_a_publish_removes_its_half_made_generation(repo: Path, make_deb: MakeDeb) -> None:
    """SIGTERM while aptly works: exit 130 with a message, the previous state served, no generation left over."""
    publish(repo, make_deb("1.0-1"))
    before = snapshot(repo)
    stopped = publish_stopped_while_staging(repo, "g000002", str(make_deb("2.0-1")))
    err = stopped.stderr
    assert stopped.returncode == 130, err
    assert "error: interrupted" in err and "Traceback" not in err
    assert snapshot(repo) == before
    assert sorted(p.name for p in (repo / "state" / "generations").iterdir()) == ["g000001"]
    verify_release(repo, repo / "public" / KEYRING)
    publish(repo, make_deb("2.0-1"))
    assert served_versions(repo) == ["1.0-1", "2.0-1"]


# --- a booted Debian 12 host installs from it -------------------------------


def update_fails(host: Host, expected: str) -> None:
    """apt-get update refuses the repository: with lists kept (--error-on=any) and on a fresh host."""
    # With good lists from before, a bad signature is only a warning by default
    # ("the previous index files will be used"); --error-on=any makes it fatal.
    kept = apt(host, "update", "--error-on=any", check=False)
    assert kept.returncode != 0 and expected in kept.stdout + kept.stderr, kept.stdout + kept.stderr
    # A host that never saw the repository fails outright.
    host.run(["find", "/var/lib/apt/lists", "-maxdepth", "1", "-type", "f", "-delete"])
    fresh = apt(host, "update", check=False)
    assert fresh.returncode != 0 and expected in fresh.stdout + fresh.stderr, fresh.stdout + fresh.stderr
    assert "is not signed" in fresh.stderr


@pytest.mark.host
def test_a_booted_host_installs_upgrades_and_rolls_back_from_the_signed_repository(
    repo: Path, make_deb: MakeDeb, networked_hosts: NetworkedHosts, other_key: tuple[Path, str], tmp_path: Path
) -> None:
    """apt on a fresh host verifies, installs, upgrades, rolls back; tampering, a wrong key, bad publishes fail."""
    host = networked_hosts(1)[0]
    assert host.netns is not None
    publish(repo, make_deb("1.0-1"))
    with serve_repository(repo, host.netns.host_address, tmp_path / "serve.log") as served:
        # The deb822 stanza `repo serve` printed is what the host gets: Signed-By, never trusted=yes.
        assert served.stanza(DIST) == sources_snippet(served.url, f"/etc/apt/keyrings/{KEYRING}", DIST, "main")
        add_source(host, served)
        apt(host, "update")
        apt(host, "install", NAME)
        assert installed_version(host, NAME) == "1.0-1"

        # A second version: upgrade moves to it, and the first stays installable (rollback).
        publish(repo, make_deb("2.0-1"))
        apt(host, "update")
        apt(host, "upgrade")
        assert installed_version(host, NAME) == "2.0-1"
        apt(host, "install", "--allow-downgrades", f"{NAME}=1.0-1")
        assert installed_version(host, NAME) == "1.0-1"
        assert host.read_file(f"/usr/share/{NAME}/version").startswith("1.0-1")

        # Refused publishes leave what apt sees as it was.
        assert microdeploy("publish", str(make_deb("2.0-1", flavour="rebuilt")), "--repo", str(repo)).returncode == 2
        corrupt = tmp_path / "corrupt.deb"
        corrupt.write_bytes(make_deb("3.0-1").read_bytes()[:300])
        assert microdeploy("publish", str(corrupt), "--repo", str(repo)).returncode == 2
        apt(host, "update")
        policy = host.run(["apt-cache", "policy", NAME]).stdout
        assert "Candidate: 2.0-1" in policy and "1.0-1" in policy and "3.0-1" not in policy

        # A tampered InRelease (and Release) makes apt-get update fail.
        dists = repo / "public" / "dists" / DIST
        originals = {name: (dists / name).read_bytes() for name in ("InRelease", "Release")}
        try:
            for name, data in originals.items():
                # Edit the signed text in place (same inode as served): claim another suite.
                (dists / name).write_bytes(data.replace(b"Origin: microdeploy", b"Origin: attacker!!"))
            update_fails(host, "BADSIG")
        finally:
            for name, data in originals.items():
                (dists / name).write_bytes(data)
        apt(host, "update")

        # A wrong key in Signed-By makes apt-get update fail too.
        home, fingerprint = other_key
        wrong = tmp_path / "wrong.gpg"
        subprocess.run(["gpg", "--batch", "--output", str(wrong), "--export", fingerprint],
                       env={**os.environ, "GNUPGHOME": str(home)}, check=True, capture_output=True, timeout=30)
        host.copy_in(wrong, f"/etc/apt/keyrings/{KEYRING}")
        update_fails(host, "NO_PUBKEY")


# --- consistency while it changes, keys, faults (issue 18) -------------------


def check_hashes(repo: Path) -> None:
    """Every index that Release lists matches its SHA256 and size, and every by-hash file is named by its hash."""
    from debian.deb822 import Release

    dists = repo / "public" / "dists" / DIST
    release = Release((dists / "Release").read_text())
    assert release["Acquire-By-Hash"] == "yes"
    listed = 0
    for entry in release["SHA256"]:
        path = dists / entry["name"]
        if path.is_file():
            data = path.read_bytes()
            assert (hashlib.sha256(data).hexdigest(), len(data)) == (entry["sha256"], int(entry["size"])), path
            by_hash = path.parent / "by-hash" / "SHA256" / entry["sha256"]
            assert by_hash.read_bytes() == data, by_hash
            listed += 1
    assert listed
    for path in dists.glob("**/by-hash/SHA256/*"):
        if path.is_file() and len(path.name) == 64:
            assert hashlib.sha256(path.read_bytes()).hexdigest() == path.name, path


def test_publish_copies_the_caller_s_file_and_writes_by_hash_indexes(repo: Path, make_deb: MakeDeb,
                                                                       tmp_path: Path) -> None:
    """The pool never shares an inode with the given .deb, so overwriting it later changes nothing served."""
    given = tmp_path / "given.deb"
    shutil.copyfile(make_deb("1.0-1"), given)
    publish(repo, given)
    (pooled,) = (repo / "public" / "pool").rglob("*.deb")
    assert pooled.stat().st_ino != given.stat().st_ino
    original = pooled.read_bytes()
    with given.open("r+b") as handle:  # the same inode, rewritten in place
        handle.seek(-4, os.SEEK_END)
        handle.write(b"XXXX")
    assert pooled.read_bytes() == original
    check_hashes(repo)
    verify_release(repo, repo / "public" / KEYRING)


def local_apt(root: Path, url: str, keyring: Path) -> list[str]:
    """The argv of an `apt-get update` on this machine for the repository at `url` alone, in private state dirs."""
    (root / "lists" / "partial").mkdir(parents=True, exist_ok=True)
    (root / "cache" / "archives" / "partial").mkdir(parents=True, exist_ok=True)
    (root / "sources.list").write_text(f"deb [signed-by={keyring}] {url} {DIST} main\n")
    options = {
        "Dir::Etc::SourceList": root / "sources.list", "Dir::Etc::SourceParts": root / "none",
        "Dir::State::Lists": root / "lists", "Dir::Cache": root / "cache", "Debug::NoLocking": "1",
        "APT::Sandbox::User": "root", "Acquire::Languages": "none", "Acquire::http::Proxy::127.0.0.1": "DIRECT",
    }
    return ["apt-get", "-q", "update", "--error-on=any", *(f"-o{k}={v}" for k, v in options.items())]


def test_apt_get_update_never_fails_during_eight_concurrent_publishes(repo: Path, make_deb: MakeDeb,
                                                                      tmp_path: Path) -> None:
    """apt-get update in a loop against the served repository succeeds every time while 8 publishes run."""
    from microdeploy.repo_server import serving

    publish(repo, make_deb("1.0-1"))
    keyring = tmp_path / "keyring.gpg"
    shutil.copyfile(repo / "public" / KEYRING, keyring)
    debs = [make_deb(f"1.{i}-1") for i in range(1, 9)]
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    outcomes: list[tuple[int, str]] = []
    with serving(repo, "127.0.0.1", 0) as url:
        argv = local_apt(tmp_path / "apt", url, keyring)
        children = [subprocess.Popen([sys.executable, "-m", "microdeploy", "publish", str(deb), "--repo", str(repo)],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                    for deb in debs]
        try:
            while any(child.poll() is None for child in children) or len(outcomes) < 3:
                done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)
                outcomes.append((done.returncode, done.stdout + done.stderr))
        finally:
            for child in children:
                _, err = child.communicate(timeout=CLI_TIMEOUT)
                assert child.returncode == 0, err.decode()
    failures = [text for code, text in outcomes if code != 0 or "\nW:" in text or "\nE:" in text]
    assert not failures, f"{len(failures)} of {len(outcomes)} updates failed:\n{failures[0]}"
    assert served_versions(repo) == sorted(["1.0-1", *(f"1.{i}-1" for i in range(1, 9))])[-5:]
    check_hashes(repo)


@pytest.mark.parametrize("extra", [("--gpg-key", "DEADBEEF"), ("--dist", "bookworm\nTrusted: yes")], ids=repr)
def test_a_refused_first_publish_leaves_nothing(tmp_path: Path, make_deb: MakeDeb, extra: tuple[str, str]) -> None:
    """A first publish refused for its key or options creates no repository, lock or key."""
    result = microdeploy("publish", str(make_deb("1.0-1")), "--repo", str(tmp_path / "new-repo"), *extra)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert not (tmp_path / "new-repo").exists()


def test_a_publish_killed_at_any_moment_leaves_a_verifiable_repository(repo: Path, make_deb: MakeDeb) -> None:
    """SIGKILL at moments spread over a publish (6 of them): what is served verifies, hashes match, it goes on."""
    publish(repo, make_deb("1.0-1"))
    started = time.monotonic()
    publish(repo, make_deb("1.1-1"))
    duration = time.monotonic() - started
    published = ["1.0-1", "1.1-1"]
    for i in range(6):
        version = f"2.{i}-1"
        published.append(version)
        child = subprocess.Popen([sys.executable, "-m", "microdeploy", "publish", str(make_deb(version)),
                                  "--repo", str(repo)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, start_new_session=True)
        time.sleep(duration * (i + 0.5) / 6)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)  # the group we started: the CLI, aptly and gpg
        child.wait(30)
        verify_release(repo, repo / "public" / KEYRING)
        check_hashes(repo)
        # Only versions given to publish are served, the newest never older than 1.1-1 (the last publish
        # that completed before the kills).
        served = served_versions(repo)
        assert served and set(served) <= set(published) and served[-1] >= "1.1-1", served
    publish(repo, make_deb("3.0-1"))
    verify_release(repo, repo / "public" / KEYRING)
    check_hashes(repo)
    assert served_versions(repo)[-1] == "3.0-1"
    assert len(list((repo / "state" / "generations").iterdir())) <= 2
