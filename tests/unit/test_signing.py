"""Choosing the signing key (microdeploy.signing): messages that fit what was given and what was found."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from microdeploy.errors import EXIT_BAD_INPUT, MicrodeployError
from microdeploy.process import Result
from microdeploy.signing import SecretKey, SigningKey, parse_secret_keys, resolve_key
from tests.unit.test_repo import FakeRunner, ok

FPR = "FA40537418335B2B26FF55A86B2195B2AFB7F738"
EXPIRED = f"""\
sec:e:255:22:6B2195B2AFB7F738:1796546166:1796546168::u:::sc:::+::ed25519:::0:
fpr:::::::::{FPR}:
"""
SUBKEY_EXPIRED = f"""\
sec:u:255:22:E6328BE918CA4374:1796546166:::u:::cC:::+::ed25519:::0:
fpr:::::::::{FPR}:
ssb:e:255:22:0D97538329F3D24D:1796546166:1796546168:::::s:::+::ed25519::
fpr:::::::::FD93C66892C3A37684A618900D97538329F3D24D:
"""
USABLE = f"""\
sec:u:255:22:F63B19736DA03F63:1796546164:::u:::scSC:::+::ed25519:::0:
fpr:::::::::{FPR}:
"""


def resolve_refused(tmp_path: Path, runner: FakeRunner, **given: str | Path) -> MicrodeployError:
    """The bad input resolve_key raises for the --gpg-key/--gnupghome `given`."""
    with pytest.raises(MicrodeployError) as info:
        resolve_key(tmp_path / "own", runner=runner, **given)  # type: ignore[arg-type]
    assert info.value.exit_code == EXIT_BAD_INPUT
    return info.value


def test_parse_secret_keys_says_why_a_key_cannot_sign() -> None:
    """An expired primary, an expired signing subkey and a usable key are told apart."""
    assert parse_secret_keys(EXPIRED) == [SecretKey(FPR, "e", "sc")]
    assert parse_secret_keys(EXPIRED)[0].why_not == "has expired"
    assert parse_secret_keys(SUBKEY_EXPIRED)[0].why_not == "has only an expired signing subkey"
    assert parse_secret_keys(USABLE)[0].can_sign


def test_an_empty_gnupghome_is_named_and_the_hint_fits_what_was_given(tmp_path: Path) -> None:
    """--gnupghome without keys (and no --gpg-key): no mention of a --gpg-key that was never given."""
    error = resolve_refused(tmp_path, FakeRunner({("gpg",): ok("")}), gnupghome=tmp_path)
    assert error.message == f"no secret signing key in {tmp_path}"
    assert error.hint is not None and "--gpg-key" not in error.hint
    assert error.hint.startswith("Pass a --gnupghome that holds one")
    assert "leave out --gnupghome to sign with the repository's own key" in error.hint


@pytest.mark.parametrize(("colons", "why"), [(EXPIRED, "has expired"),
                                             (SUBKEY_EXPIRED, "has only an expired signing subkey")])
def test_an_expired_key_is_named_as_expired(tmp_path: Path, colons: str, why: str) -> None:
    """A key that expired (or whose signing subkey did) is reported so, with a hint to extend it."""
    error = resolve_refused(tmp_path, FakeRunner({("gpg",): ok(colons)}), gnupghome=tmp_path)
    assert error.message == f"no usable secret signing key in {tmp_path}: {FPR} {why}"
    assert error.hint is not None and error.hint.startswith("Extend its expiry")
    assert "--gpg-key" not in error.hint


def test_a_passphrase_protected_key_is_refused_before_signing(tmp_path: Path) -> None:
    """A key gpg cannot sign with unattended (no pinentry) is bad input naming the passphrase."""
    def sign(argv: Sequence[str]) -> Result:
        return Result(tuple(argv), 2, "", "gpg: signing failed: No pinentry\n")

    runner = FakeRunner({("gpg", "--batch", "--with-colons"): ok(USABLE), ("gpg", "--batch", "--pinentry-mode"): sign})
    error = resolve_refused(tmp_path, runner, key_id=FPR)
    assert error.message.startswith(f"the signing key {FPR} in the default GnuPG home is protected by a passphrase")
    assert "No pinentry" in error.message
    assert error.hint is not None and "leave out --gpg-key to sign" in error.hint
    assert runner.argvs[-1] == ["gpg", "--batch", "--pinentry-mode", "error", "--armor", "--local-user", f"{FPR}!",
                                "--detach-sign"]


def test_a_key_that_signs_unattended_is_chosen(tmp_path: Path) -> None:
    """A usable key that signs without a passphrase is the one returned."""
    runner = FakeRunner({("gpg", "--batch", "--with-colons"): ok(USABLE)})
    assert resolve_key(tmp_path / "own", gnupghome=tmp_path, runner=runner) == SigningKey(FPR, tmp_path)
