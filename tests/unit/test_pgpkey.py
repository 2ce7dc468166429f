"""What an armored key file holds (microdeploy.pgpkey): public keys pass, anything secret or foreign is refused."""

from __future__ import annotations

import base64
import subprocess
from collections.abc import Callable

import pytest

from microdeploy import pgpkey


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """A throw-away Ed25519 key's public and secret exports, binary and armored, as gpg writes them."""
    home = tmp_path_factory.mktemp("gnupg")
    home.chmod(0o700)

    def gpg(*args: str) -> bytes:
        return subprocess.run(["gpg", "--homedir", str(home), "--batch", "--pinentry-mode", "loopback",
                               "--passphrase", "", *args], check=True, capture_output=True, timeout=60).stdout

    gpg("--quick-generate-key", "tests <tests@microdeploy.invalid>", "ed25519", "sign", "never")
    try:
        return {"public": gpg("--export"), "secret": gpg("--export-secret-keys"),
                "armored": gpg("--armor", "--export"), "armored-secret": gpg("--armor", "--export-secret-keys")}
    finally:
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], check=False)


def armored(packets: bytes, headers: str = "", separator: str = "\n") -> str:
    """`packets` in a PUBLIC KEY BLOCK, with armor `headers` and the `separator` line before the data."""
    body = base64.b64encode(packets).decode()
    lines = "\n".join(body[i:i + 64] for i in range(0, len(body), 64))
    return f"-----BEGIN PGP PUBLIC KEY BLOCK-----\n{headers}{separator}{lines}\n-----END PGP PUBLIC KEY BLOCK-----\n"


def test_public_keys_as_gpg_and_others_armor_them_pass(exported: dict[str, bytes]) -> None:
    """gpg's own armor, CRLF line ends, Comment/Version headers, a separator of white space (RFC 4880 allows it),
    none at all (gpg reads it), two keys in a block and two blocks."""
    text = exported["armored"].decode()
    for variant in (text, text.replace("\n", "\r\n"), armored(exported["public"], "Comment: ours\nVersion: 1\n"),
                    armored(exported["public"], separator=" \t\n"), armored(exported["public"], separator=""),
                    armored(exported["public"] * 2), text + "\n" + text):
        assert pgpkey.refusal(variant) is None, variant


@pytest.mark.parametrize(("make", "why"), [
    (lambda e: e["armored"].decode() + e["armored-secret"].decode(), "holds a PRIVATE KEY BLOCK"),
    (lambda e: e["armored-secret"].decode(), "holds a PRIVATE KEY BLOCK"),
    # Secret packets under a PUBLIC KEY BLOCK label (the first packet alone was read).
    (lambda e: armored(e["public"] + e["secret"]), "holds a secret key in its public key block"),
    (lambda e: "Here is our key:\n" + e["armored"].decode(), "holds text outside its public key blocks"),
    (lambda e: armored(b"\x99" + b"\x00" * 5), "holds no OpenPGP public key"),
    (lambda e: "just text\n", "is not an ASCII-armored OpenPGP key"),
])
def test_anything_secret_or_foreign_is_refused(exported: dict[str, bytes], make: Callable[[dict[str, bytes]], str],
                                               why: str) -> None:
    """What would put a secret key, or something else, into Hiera data is refused with what it holds."""
    refused = pgpkey.refusal(make(exported))
    assert refused is not None and why in refused
