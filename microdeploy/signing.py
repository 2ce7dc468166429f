"""The repository's OpenPGP signing key: find it, make it on first use, export it for apt.

Everything goes through gpg (via process.run) in an explicit GNUPGHOME, so a
repository's own key never touches the user's keyring and the user's keyring
is used only when asked for (`--gpg-key` / `--gnupghome`).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from microdeploy.errors import MicrodeployError, bad_input
from microdeploy.process import Runner, run

log = logging.getLogger(__name__)

# The user id of keys microdeploy makes; `.invalid` so it can never be mailed.
KEY_USER_ID = "microdeploy repository signing key <repository@microdeploy.invalid>"


@dataclass(frozen=True)
class SigningKey:
    """A secret key to sign Release files with, and the GNUPGHOME that holds it (None: gpg's default)."""

    fingerprint: str
    gnupghome: Path | None
    created: bool = False

    @property
    def env(self) -> dict[str, str] | None:
        """The environment for gpg and aptly to find this key."""
        return {"GNUPGHOME": str(self.gnupghome)} if self.gnupghome is not None else None


def gpg_env(gnupghome: Path | None) -> dict[str, str] | None:
    """GNUPGHOME for a child process, or None to inherit the caller's."""
    return {"GNUPGHOME": str(gnupghome)} if gnupghome is not None else None


@dataclass(frozen=True)
class SecretKey:
    """A secret primary key as `gpg --with-colons` lists it: whether, and why not, it can sign a Release file."""

    fingerprint: str
    validity: str  # field 2: e expired, r revoked
    capabilities: str  # field 12: upper-case S when some usable (sub)key can sign
    expired_signing_subkey: bool = False

    @property
    def can_sign(self) -> bool:
        """Whether apt would accept a Release file it signs (revoked or expired keys are no use)."""
        return "S" in self.capabilities and self.validity not in ("r", "e")

    @property
    def why_not(self) -> str:
        """Why it cannot sign, for a message."""
        if self.validity == "e":
            return "has expired"
        if self.validity == "r":
            return "is revoked"
        if self.expired_signing_subkey:
            return "has only an expired signing subkey"
        return "has no signing capability"


def secret_keys(gnupghome: Path | None, key_id: str | None = None, runner: Runner = run) -> list[SecretKey]:
    """The secret primary keys in `gnupghome` (matching `key_id`), usable or not."""
    argv = ["gpg", "--batch", "--with-colons", "--list-secret-keys"]
    if key_id:
        argv.append(key_id)
    result = runner(argv, env=gpg_env(gnupghome), check=False)
    if result.returncode != 0:
        # gpg exits 2 when a given key id matches nothing: that is "no key", not a crash.
        return []
    return parse_secret_keys(result.stdout)


def secret_key_fingerprints(
    gnupghome: Path | None, key_id: str | None = None, runner: Runner = run
) -> list[str]:
    """Fingerprints of the signing-capable secret primary keys in `gnupghome` (matching `key_id`)."""
    return [key.fingerprint for key in secret_keys(gnupghome, key_id, runner) if key.can_sign]


def parse_secret_keys(colons: str) -> list[SecretKey]:
    """The secret primary keys in `gpg --with-colons` output (a primary's fingerprint is the `fpr` after `sec`)."""
    keys: list[SecretKey] = []
    pending: tuple[str, str] | None = None
    for line in colons.splitlines():
        fields = line.split(":") + [""] * 12
        if fields[0] == "sec":
            pending = (fields[1], fields[11])
        elif fields[0] == "fpr" and pending is not None:
            keys.append(SecretKey(fields[9], *pending))
            pending = None
        elif fields[0] == "ssb" and keys and "s" in fields[11] and fields[1] == "e":
            keys[-1] = SecretKey(keys[-1].fingerprint, keys[-1].validity, keys[-1].capabilities, True)
    return keys


def parse_signing_fingerprints(colons: str) -> list[str]:
    """Primary-key fingerprints from `gpg --with-colons` output whose key can sign."""
    return [key.fingerprint for key in parse_secret_keys(colons) if key.can_sign]


def resolve_key(
    own_home: Path,
    *,
    key_id: str | None = None,
    gnupghome: Path | None = None,
    runner: Runner = run,
) -> SigningKey:
    """The key to sign with: the one asked for, or the repository's own (made on first use)."""
    if key_id is not None or gnupghome is not None:
        where = str(gnupghome) if gnupghome is not None else "the default GnuPG home"
        given = " and ".join(opt for opt, value in (("--gpg-key", key_id), ("--gnupghome", gnupghome)) if value)
        own = f"leave out {given} to sign with the repository's own key"
        if gnupghome is not None and not gnupghome.is_dir():
            raise bad_input(f"GnuPG home {gnupghome} does not exist", hint=f"Pass an existing --gnupghome, or {own}")
        keys = secret_keys(gnupghome, key_id, runner)
        found = [key.fingerprint for key in keys if key.can_sign]
        if not found:
            raise _no_signing_key(keys, key_id, gnupghome, where, own)
        if len(found) > 1:
            raise bad_input(f"{len(found)} secret signing keys match in {where}: {', '.join(found)}",
                            hint="Choose one with --gpg-key FINGERPRINT")
        check_unattended(found[0], gnupghome, where, own, runner)
        return SigningKey(found[0], gnupghome)
    found = secret_key_fingerprints(own_home, None, runner) if own_home.is_dir() else []
    if found:
        return SigningKey(found[0], own_home)
    return SigningKey(create_key(own_home, runner), own_home, created=True)


def _no_signing_key(keys: Sequence[SecretKey], key_id: str | None, gnupghome: Path | None, where: str,
                    own: str) -> MicrodeployError:
    """The error for a --gpg-key/--gnupghome without a usable signing key: none there, or why each cannot sign."""
    listing = "gpg " + (f"--homedir {gnupghome} " if gnupghome is not None else "") + "--list-secret-keys"
    if not keys:
        what = f"secret signing key {key_id!r}" if key_id else "secret signing key"
        check = "Check the key id with" if key_id else "Pass a --gnupghome that holds one (see"
        return bad_input(f"no {what} in {where}",
                         hint=f"{check} `{listing}`{'' if key_id else ')'}, or {own}")
    unusable = "; ".join(f"{key.fingerprint} {key.why_not}" for key in keys)
    if any(key.validity == "e" or key.expired_signing_subkey for key in keys):
        fix = "Extend its expiry (`gpg --quick-set-expire FINGERPRINT 1y`, and with '*' for its subkeys)"
    else:
        fix = f"Choose a key that can sign (`{listing}`)"
    return bad_input(f"no usable secret signing key in {where}: {unusable}", hint=f"{fix}, or {own}")


def check_unattended(fingerprint: str, gnupghome: Path | None, where: str, own: str,
                     runner: Runner = run) -> None:
    """Refuse (exit 2) a key gpg cannot sign with unattended, as aptly will: one behind a passphrase."""
    result = runner(["gpg", "--batch", "--pinentry-mode", "error", "--armor", "--local-user", f"{fingerprint}!",
                     "--detach-sign"], env=gpg_env(gnupghome), input="microdeploy signing check\n", check=False)
    if result.returncode == 0:
        return
    said = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else f"exit status {result.returncode}"
    if "pinentry" in said.lower() or "passphrase" in said.lower():
        raise bad_input(
            f"the signing key {fingerprint} in {where} is protected by a passphrase; microdeploy signs "
            f"unattended and cannot give one ({said})",
            hint=f"Sign with a key that has no passphrase (a dedicated repository key), or {own}")
    raise bad_input(f"gpg cannot sign with key {fingerprint} in {where}: {said}",
                    hint=f"Check the key with `gpg --list-secret-keys {fingerprint}`, or {own}")


def own_key(home: Path, expected: str | None, runner: Runner = run) -> SigningKey:
    """The repository's own key: the one it is signed with (`expected`), never a new one behind its back.

    A repository that was never signed gets a key made on first use. One that
    was signed, whose key is gone or unreadable, is refused: signing it with a
    new key would make every host fail with NO_PUBKEY.
    """
    if expected is None:
        return resolve_key(home, runner=runner)
    found = secret_key_fingerprints(home, None, runner) if home.is_dir() else []
    if expected in found:
        return SigningKey(expected, home)
    state = "does not exist" if not home.exists() else "holds no readable secret key" if not found else \
        f"holds other keys ({', '.join(found)})"
    raise bad_input(
        f"the repository is signed with key {expected}, but its key directory {home} {state}",
        hint=f"Restore {home} from a backup, or pass --gpg-key/--gnupghome with key {expected}; "
             "to sign with a new key on purpose, publish with --rotate-key",
    )


def create_key(home: Path, runner: Runner = run) -> str:
    """Make an Ed25519 signing key without passphrase in `home` (mode 0700); return its fingerprint."""
    home.mkdir(parents=True, exist_ok=True)
    os.chmod(home, 0o700)  # gpg refuses (warns about) a group- or world-readable home
    runner(
        [
            "gpg", "--batch", "--pinentry-mode", "loopback", "--passphrase", "",
            # Ed25519 rather than RSA: small, fast, and not SHA-1 bound, which
            # Debian 13's sqv-based apt would refuse.
            "--quick-gen-key", KEY_USER_ID, "ed25519", "sign", "never",
        ],
        env=gpg_env(home),
    )  # fmt: skip
    found = secret_key_fingerprints(home, None, runner)
    if not found:
        raise MicrodeployError(f"gpg made no usable signing key in {home}",
                               hint=f"Check the gpg output above and that {home} is writable, then publish again")
    log.info("created the repository signing key %s", found[0])
    return found[0]


def export_public_key(key: SigningKey, binary: Path, armored: Path, runner: Runner = run) -> None:
    """Write the public key as a binary keyring (for apt's Signed-By) and as ASCII armour."""
    base = ["gpg", "--batch", "--yes", "--export-options", "export-minimal"]
    runner([*base, "--output", str(binary), "--export", key.fingerprint], env=key.env)
    runner([*base, "--armor", "--output", str(armored), "--export", key.fingerprint], env=key.env)


def export_keyring(key: SigningKey, binary: Path, armored: Path, retired: Sequence[Path] = (),
                   runner: Runner = run) -> None:
    """Export `key`, and the public keys in the `retired` keyrings, as one keyring for apt (binary and armoured)."""
    if not retired:
        export_public_key(key, binary, armored, runner)
        return
    home = Path(tempfile.mkdtemp(prefix="microdeploy-keyring."))
    try:
        current = home / "current.gpg"
        runner(["gpg", "--batch", "--yes", "--export-options", "export-minimal", "--output", str(current),
                "--export", key.fingerprint], env=key.env)
        runner(["gpg", "--batch", "--import", str(current), *map(str, retired)], env=gpg_env(home))
        base = ["gpg", "--batch", "--yes", "--export-options", "export-minimal"]
        runner([*base, "--output", str(binary), "--export"], env=gpg_env(home))
        runner([*base, "--armor", "--output", str(armored), "--export"], env=gpg_env(home))
    finally:
        stop_agent(home, runner)
        shutil.rmtree(home, ignore_errors=True)


def stop_agent(gnupghome: Path, runner: Runner = run) -> None:
    """Stop the gpg-agent that signing started in our own GNUPGHOME, so nothing is left running."""
    runner(["gpgconf", "--kill", "gpg-agent"], env=gpg_env(gnupghome), check=False)
