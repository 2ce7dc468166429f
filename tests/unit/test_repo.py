"""The repository logic without aptly or gpg: validation, planning, exact commands, serving."""

from __future__ import annotations

import hashlib
import os
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pytest
from click.testing import CliRunner

from microdeploy import repo, repo_server
from microdeploy.cli import main
from microdeploy.debfile import DebFile, PackageRef, inspect_deb
from microdeploy.errors import EXIT_BAD_INPUT, MicrodeployError
from microdeploy.process import Result
from microdeploy.repo import PublishSettings, sources_snippet
from microdeploy.repo_plan import Manifest, ServedPackage, aptly_commands, select_kept, split_new
from microdeploy.signing import KEY_USER_ID, SigningKey, parse_signing_fingerprints, resolve_key
from tests.support import make_deb

FPR = "092CF90BA591D11660B031AE82F810F65B3E21DE"
KEY = SigningKey(FPR, Path("/r/state/gnupg"))
ENDPOINT = "filesystem:microdeploy:."
SIGN = ["-batch", f"-gpg-key={FPR}"]
PUBLISHED_MAIN = {"architectures": ["all", "amd64"], "components": {"main": "bookworm_main_g000001"},
                  "acquire_by_hash": True}


class FakeRunner:
    """Records every argv and answers from a table of argv prefixes."""

    def __init__(self, answers: Mapping[tuple[str, ...], Result | Callable[[Sequence[str]], Result]] = {}):
        self.answers = dict(answers)
        self.calls: list[tuple[list[str], Mapping[str, str] | None]] = []

    def __call__(self, argv: Sequence[str], *, cwd: Path | None = None, env: Mapping[str, str] | None = None,
                 check: bool = True, input: str | None = None, timeout: float | None = None) -> Result:
        self.calls.append((list(argv), env))
        for prefix, answer in self.answers.items():
            if tuple(argv[: len(prefix)]) == prefix:
                return answer(argv) if callable(answer) else answer
        return Result(tuple(argv), 0, "", "")

    @property
    def argvs(self) -> list[list[str]]:
        return [argv for argv, _ in self.calls]


def ok(stdout: str = "") -> Result:
    return Result((), 0, stdout, "")


def ref(version: str, name: str = "svc", arch: str = "all") -> PackageRef:
    return PackageRef(name, version, arch)


def deb(version: str, sha: str = "a" * 64, name: str = "svc") -> DebFile:
    return DebFile(Path(f"/in/{name}_{version}.deb"), ref(version, name), sha, 100)


def ar_file(path: Path, members: Sequence[tuple[str, bytes]] = (("debian-binary", b"2.0\n"),)) -> Path:
    """A minimal ar archive like a .deb's outer layer."""
    data = b"!<arch>\n"
    for name, body in members:
        header = f"{name + '/':<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(body):<10}".encode() + b"`\n"
        data += header + body + (b"\n" if len(body) % 2 else b"")
    path.write_bytes(data)
    return path


# --- versions and keep-N ----------------------------------------------------


def test_select_kept_uses_debian_version_order() -> None:
    """The highest N versions by Debian ordering stay: epochs win, ~ sorts before release."""
    refs = [ref("1.0-1"), ref("1.10-1"), ref("1.9-1"), ref("2.0~rc1-1"), ref("2.0-1"), ref("1:0.1-1")]
    kept, removed = select_kept(refs, 3)
    assert kept == sorted([ref("1:0.1-1"), ref("2.0-1"), ref("2.0~rc1-1")])
    assert removed == sorted([ref("1.0-1"), ref("1.9-1"), ref("1.10-1")])


def test_select_kept_counts_each_name_and_architecture_separately() -> None:
    """Keep-N applies per package name and architecture, never across them."""
    refs = [ref("1", arch="amd64"), ref("2", arch="amd64"), ref("1", arch="arm64"), ref("1", name="other")]
    kept, removed = select_kept(refs, 1)
    assert removed == [ref("1", arch="amd64")]
    assert len(kept) == 3


def test_package_file_name_drops_the_epoch_and_query_is_exact() -> None:
    """Pool file names follow Debian (no epoch); the aptly query pins name, version and architecture."""
    package = PackageRef("svc", "1:2.0-3", "amd64")
    assert package.filename == "svc_2.0-3_amd64.deb"
    assert package.key == "svc_1:2.0-3_amd64"
    assert package.query() == "Name (= svc), $Version (= 1:2.0-3), $Architecture (= amd64)"


# --- same file, different file ----------------------------------------------


def test_split_new_separates_new_and_already_published() -> None:
    """A file already served with the same checksum is unchanged; others are new."""
    served = {ref("1.0"): ServedPackage(ref("1.0"), "a" * 64)}
    new, unchanged = split_new([deb("1.0"), deb("1.1")], served)
    assert [d.package.version for d in new] == ["1.1"]
    assert [d.package.version for d in unchanged] == ["1.0"]


def test_split_new_refuses_a_different_file_for_a_published_version() -> None:
    """Same name, version and architecture with other contents is bad input (exit 2)."""
    served = {ref("1.0"): ServedPackage(ref("1.0"), "b" * 64)}
    with pytest.raises(MicrodeployError) as info:
        split_new([deb("1.0")], served)
    assert info.value.exit_code == EXIT_BAD_INPUT
    assert "svc_1.0_all is already published with different contents" in info.value.message
    assert info.value.hint is not None and info.value.hint.startswith("Never replace")


def test_split_new_refuses_two_different_files_for_one_version() -> None:
    """Two arguments claiming the same package with different contents are bad input."""
    with pytest.raises(MicrodeployError) as info:
        split_new([deb("1.0"), deb("1.0", sha="c" * 64)], {})
    assert info.value.exit_code == EXIT_BAD_INPUT


# --- validating .deb files --------------------------------------------------


def test_inspect_deb_reads_the_fields_size_and_checksum(tmp_path: Path) -> None:
    """Package, version and architecture come from the .deb's control fields; size and SHA-256 from the file."""
    path = make_deb(tmp_path, name="svc", version="1.2.0-1")
    info = inspect_deb(path)
    assert info.package == PackageRef("svc", "1.2.0-1", "all")
    assert info.size == path.stat().st_size
    assert info.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not a package\n", "is not a Debian package (no ar archive header)"),
        (b"!<arch>\ndebian-binary/  0           0     0     100644  4         `\n2.", "is a truncated Debian package"),
        (b"!<arch>\n" + b"x" * 70, "is a corrupt Debian package"),
    ],
)
def test_inspect_deb_refuses_foreign_and_truncated_files(tmp_path: Path, content: bytes, message: str) -> None:
    """Files that are not complete ar archives are bad input before their members are read."""
    path = tmp_path / "broken.deb"
    path.write_bytes(content)
    with pytest.raises(MicrodeployError) as info:
        inspect_deb(path)
    assert info.value.exit_code == EXIT_BAD_INPUT
    assert message in info.value.message


def test_inspect_deb_refuses_an_ar_archive_that_is_no_package(tmp_path: Path) -> None:
    """A whole ar archive without a package's members is bad input, with the reason."""
    path = ar_file(tmp_path / "svc.deb")
    with pytest.raises(MicrodeployError) as info:
        inspect_deb(path)
    assert info.value.exit_code == EXIT_BAD_INPUT
    assert f"{path} is not a readable Debian package: missing required part" in info.value.message


def test_inspect_deb_refuses_a_package_whose_control_member_is_damaged(tmp_path: Path) -> None:
    """A .deb whose control archive is garbage (same size, so the ar layer is whole) is bad input."""
    path = make_deb(tmp_path, name="svc", version="1.2.0-1")
    data = bytearray(path.read_bytes())
    # debian-binary (60-byte header, 4 bytes) comes first; then control.tar's header, then its bytes.
    control = 8 + 60 + 4 + 60
    assert data[8 + 60 + 4:].startswith(b"control.tar")
    data[control:control + 32] = bytes(32)
    path.write_bytes(bytes(data))
    with pytest.raises(MicrodeployError) as info:
        inspect_deb(path)
    assert info.value.exit_code == EXIT_BAD_INPUT
    assert "is not a readable Debian package" in info.value.message


def test_inspect_deb_refuses_a_missing_file(tmp_path: Path) -> None:
    """A path that does not exist is bad input naming the path."""
    with pytest.raises(MicrodeployError) as info:
        inspect_deb(tmp_path / "nope.deb")
    assert (info.value.exit_code, info.value.message) == (EXIT_BAD_INPUT, f"no such file: {tmp_path / 'nope.deb'}")
    # A directory (`publish --repo r .`) is there, and no file.
    with pytest.raises(MicrodeployError) as info:
        inspect_deb(tmp_path)
    assert (info.value.exit_code, info.value.message) == (EXIT_BAD_INPUT, f"{tmp_path} is not a file")


# --- aptly commands ---------------------------------------------------------


def test_first_publish_creates_the_repo_and_publishes_a_signed_snapshot() -> None:
    """An empty repository gets repo create, add, snapshot, a signed publish and a cleanup."""
    commands, manifest = aptly_commands(
        Manifest({}), dist="bookworm", component="main", generation="g000001",
        add=[Path("/g/incoming/svc_1.0_all.deb")], remove=[], architectures=["all", "amd64"], key=KEY,
    )  # fmt: skip
    assert commands == [
        ["repo", "create", "-distribution=bookworm", "-component=main", "bookworm_main"],
        ["repo", "add", "bookworm_main", "/g/incoming/svc_1.0_all.deb"],
        ["snapshot", "create", "bookworm_main_g000001", "from", "repo", "bookworm_main"],
        ["publish", "snapshot", *SIGN, "-distribution=bookworm", "-component=main", "-architectures=all,amd64",
         "-origin=microdeploy", "-label=microdeploy", "-acquire-by-hash", "bookworm_main_g000001", ENDPOINT],
        ["db", "cleanup"],
    ]
    assert manifest.components("bookworm") == {"main": "bookworm_main_g000001"}
    assert manifest.key_fingerprint == FPR
    assert manifest.dists["bookworm"]["acquire_by_hash"] is True


def test_a_dist_published_without_by_hash_is_published_afresh_with_it() -> None:
    """A repository made before by-hash indexes gets them: drop and publish instead of a switch."""
    before = Manifest({"bookworm": {k: v for k, v in PUBLISHED_MAIN.items() if k != "acquire_by_hash"}})
    commands, manifest = aptly_commands(
        before, dist="bookworm", component="main", generation="g000002",
        add=[Path("/g/svc_1.1_all.deb")], remove=[], architectures=["all", "amd64"], key=KEY,
    )  # fmt: skip
    assert ["publish", "drop", "-skip-cleanup", "bookworm", ENDPOINT] in commands
    assert "-acquire-by-hash" in next(c for c in commands if c[:2] == ["publish", "snapshot"])
    assert manifest.dists["bookworm"]["acquire_by_hash"] is True


def test_next_publish_switches_atomically_and_drops_the_old_snapshot() -> None:
    """A later publish adds, removes beyond keep-N, and uses `publish switch`."""
    before = Manifest({"bookworm": PUBLISHED_MAIN})
    commands, _ = aptly_commands(
        before, dist="bookworm", component="main", generation="g000002",
        add=[Path("/g/svc_1.1_all.deb")], remove=[ref("0.9")], architectures=["all", "amd64"], key=KEY,
    )  # fmt: skip
    assert commands == [
        ["repo", "add", "bookworm_main", "/g/svc_1.1_all.deb"],
        ["repo", "remove", "bookworm_main", "Name (= svc), $Version (= 0.9), $Architecture (= all)"],
        ["snapshot", "create", "bookworm_main_g000002", "from", "repo", "bookworm_main"],
        ["publish", "switch", *SIGN, "-component=main", "bookworm", ENDPOINT, "bookworm_main_g000002"],
        ["snapshot", "drop", "bookworm_main_g000001"],
        ["db", "cleanup"],
    ]


def test_a_new_component_republishes_the_distribution_with_all_components() -> None:
    """A component cannot be switched in, so the dist is dropped and published with every component."""
    before = Manifest({"bookworm": PUBLISHED_MAIN})
    commands, manifest = aptly_commands(
        before, dist="bookworm", component="extra", generation="g000002",
        add=[Path("/g/x.deb")], remove=[], architectures=["all", "amd64"], key=KEY,
    )  # fmt: skip
    assert commands[-3:] == [
        ["publish", "drop", "-skip-cleanup", "bookworm", ENDPOINT],
        ["publish", "snapshot", *SIGN, "-distribution=bookworm", "-component=extra,main",
         "-architectures=all,amd64", "-origin=microdeploy", "-label=microdeploy", "-acquire-by-hash",
         "bookworm_extra_g000002", "bookworm_main_g000001", ENDPOINT],
        ["db", "cleanup"],
    ]
    assert manifest.components("bookworm") == {"extra": "bookworm_extra_g000002", "main": "bookworm_main_g000001"}


# --- signing key ------------------------------------------------------------

COLONS = f"""\
sec:u:255:22:82F810F65B3E21DE:1795587538:::u:::scSC:::+::ed25519:::0:
fpr:::::::::{FPR}:
grp:::::::::A7491CDE148DDC30C3B2FCFBF2DA80D18162166B:
uid:u::::1795587538::7383B37D9425A354DE74C7F096EC0A6ADF704562::x <x@example.invalid>::::::::::0:
sec:e:255:22:1111111111111111:1795587538:::u:::scSC:::+::ed25519:::0:
fpr:::::::::1111111111111111111111111111111111111111:
sec:u:255:22:2222222222222222:1795587538:::u:::eE:::+::cv25519:::0:
fpr:::::::::2222222222222222222222222222222222222222:
"""


def test_parse_signing_fingerprints_keeps_usable_signing_primaries() -> None:
    """Expired keys and keys that cannot sign are left out; subkey fingerprints are never taken."""
    assert parse_signing_fingerprints(COLONS) == [FPR]


def test_own_key_is_made_once_with_ed25519_and_no_passphrase(tmp_path: Path) -> None:
    """Without --gpg-key, an Ed25519 key is generated offline in the repository's 0700 GnuPG home."""
    home = tmp_path / "gnupg"
    runner = FakeRunner({("gpg", "--batch", "--with-colons"): ok(COLONS)})
    key = resolve_key(home, runner=runner)
    assert key == SigningKey(FPR, home, created=True)
    assert oct(home.stat().st_mode & 0o777) == "0o700"
    assert runner.calls[0] == (
        ["gpg", "--batch", "--pinentry-mode", "loopback", "--passphrase", "", "--quick-gen-key",
         KEY_USER_ID, "ed25519", "sign", "never"],
        {"GNUPGHOME": str(home)},
    )


def test_a_given_key_that_is_not_there_is_bad_input(tmp_path: Path) -> None:
    """--gpg-key naming no secret key exits 2 and says where it looked."""
    runner = FakeRunner({("gpg",): Result((), 2, "", "gpg: error reading key: No secret key")})
    with pytest.raises(MicrodeployError) as info:
        resolve_key(tmp_path / "own", key_id="DEADBEEF", gnupghome=tmp_path, runner=runner)
    assert info.value.exit_code == EXIT_BAD_INPUT
    assert f"no secret signing key 'DEADBEEF' in {tmp_path}" in info.value.message


# --- settings, CLI ----------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"dist": "Bookworm/x"}, "invalid distribution 'Bookworm/x'"),
        ({"component": ""}, "invalid component ''"),
        ({"keep": 0}, "invalid --keep 0"),
    ],
)
def test_bad_settings_exit_2_before_anything_is_made(tmp_path: Path, settings: dict[str, object], message: str) -> None:
    """Bad distribution, component or --keep are refused and the repository is not created."""
    path = ar_file(tmp_path / "svc.deb")
    with pytest.raises(MicrodeployError) as info:
        repo.publish(PublishSettings(tmp_path / "repo", **settings), [path], runner=FakeRunner())  # type: ignore[arg-type]
    assert info.value.exit_code == EXIT_BAD_INPUT
    assert message in info.value.message
    assert not (tmp_path / "repo").exists()


def test_cli_publish_of_a_missing_file_exits_2_and_creates_nothing(tmp_path: Path) -> None:
    """`publish` with a file that does not exist exits 2 and leaves no repository behind."""
    result = CliRunner().invoke(main, ["publish", str(tmp_path / "nope.deb"), "--repo", str(tmp_path / "repo")])
    assert result.exit_code == 2
    assert "no such file" in result.stderr
    assert not (tmp_path / "repo").exists()


def test_sources_snippet_is_deb822_with_signed_by() -> None:
    """The host snippet is a deb822 stanza bound to the repository key, never trusted=yes."""
    assert sources_snippet("http://10.231.1.1:8080/", "/etc/apt/keyrings/k.gpg", "bookworm", "main") == (
        "Types: deb\n"
        "URIs: http://10.231.1.1:8080/\n"
        "Suites: bookworm\n"
        "Components: main\n"
        "Signed-By: /etc/apt/keyrings/k.gpg\n"
    )


def test_serving_a_directory_without_a_publish_is_bad_input(tmp_path: Path) -> None:
    """`repo serve` on a directory that was never published exits 2 with a hint to publish."""
    result = CliRunner().invoke(main, ["repo", "serve", str(tmp_path), "--port", "0"])
    assert result.exit_code == 2
    assert "no published repository" in result.stderr


def test_server_follows_the_public_symlink_on_every_request(tmp_path: Path) -> None:
    """The static server sees a swapped generation at once, because it resolves `public` per request."""
    for gen, text in (("g1", "one"), ("g2", "two")):
        (tmp_path / "state" / gen / "published").mkdir(parents=True)
        (tmp_path / "state" / gen / "published" / "f").write_text(text)
    os.symlink("state/g1/published", tmp_path / "public")
    server = repo_server.make_server(tmp_path, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = repo_server.server_url(server) + "f"
        with urllib.request.urlopen(url, timeout=5) as response:
            assert response.read() == b"one"
        os.symlink("state/g2/published", tmp_path / "tmp-link")
        os.replace(tmp_path / "tmp-link", tmp_path / "public")
        # Never "304 Not Modified": a file swapped within the same second must still be sent.
        request = urllib.request.Request(url, headers={"If-Modified-Since": "Fri, 01 Jan 2100 00:00:00 GMT"})
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.read() == b"two"
        (tmp_path / "state" / "secret").write_text("key")
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(repo_server.server_url(server) + "../../secret", timeout=5)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_serving_runs_in_the_background_for_the_block(tmp_path: Path) -> None:
    """`serving()` yields a URL that answers inside the block and stops listening after it."""
    (tmp_path / "g" / "published").mkdir(parents=True)
    (tmp_path / "g" / "published" / "f").write_text("x")
    os.symlink("g/published", tmp_path / "public")
    with repo_server.serving(tmp_path) as url, urllib.request.urlopen(url + "f", timeout=5) as response:
        assert response.read() == b"x"
    with pytest.raises(OSError):
        urllib.request.urlopen(url + "f", timeout=2)


@pytest.mark.parametrize("text", ["{garbage\n", "[1, 2]\n", "\xff\xfe not utf-8"])
def test_a_damaged_manifest_is_named_not_a_traceback(tmp_path: Path, text: str) -> None:
    """A generation's manifest that is not microdeploy's JSON (a disk error, a hand edit) is a failure that names
    the file (it was a JSONDecodeError's traceback)."""
    path = tmp_path / "manifest.json"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(MicrodeployError) as info:
        Manifest.load(path)
    assert info.value.message.startswith(f"the repository's state is damaged: {path} is not a manifest")
    assert info.value.exit_code == 1
