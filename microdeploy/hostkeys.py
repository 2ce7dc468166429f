"""known_hosts as OpenSSH reads it: plain and hashed entries, `@cert-authority` and `@revoked` lines.

paramiko's own loader stops at the first line it does not understand
(`InvalidHostKey` on a `@cert-authority` line, so one site-wide CA line in
/etc/ssh/ssh_known_hosts broke every deploy) and knows nothing of host
certificates. Here each line is read on its own (a line that cannot be read
is skipped with a warning), and a host that presents a certificate is
accepted when a `@cert-authority` line whose patterns match the host signed
it, for that host, and it is valid now, as OpenSSH's ssh does.

Only `remote` (the Fabric side of deploy) uses this module.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paramiko
from paramiko.hostkeys import HostKeyEntry

log = logging.getLogger(__name__)

CERT_SUFFIX = "-cert-v01@openssh.com"
# Lines of one known_hosts file that cannot be read, named one by one; the rest are counted.
SKIPPED_SHOWN = 3
SSH2_CERT_TYPE_HOST = 2


@dataclass(frozen=True)
class Authority:
    """A `@cert-authority` line: the host patterns it speaks for and its public key."""

    patterns: tuple[str, ...]
    key: Any  # paramiko.PKey (paramiko is untyped)


@dataclass
class KnownHosts:
    """Everything the known_hosts files say."""

    keys: paramiko.HostKeys = field(default_factory=paramiko.HostKeys)
    authorities: list[Authority] = field(default_factory=list)
    revoked: list[Any] = field(default_factory=list)

    def authorities_for(self, hostname: str) -> list[Authority]:
        """The CAs whose patterns match `hostname` (as paramiko names it: host, or [host]:port)."""
        return [ca for ca in self.authorities if host_matches(hostname, ca.patterns)]

    def is_revoked(self, key: Any) -> bool:
        """Whether `key` (or the key of a certificate) is listed on a `@revoked` line."""
        return any(key.asbytes() == revoked.asbytes() for revoked in self.revoked)


def host_matches(hostname: str, patterns: Iterable[str]) -> bool:
    """OpenSSH pattern lists: `*` and `?` wildcards, `!` negates; [host]:port also matches its bare host."""
    names = {hostname.lower()}
    if hostname.startswith("[") and "]:" in hostname:
        names.add(hostname[1:].partition("]:")[0].lower())
    matched = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        glob = pattern[1:] if negated else pattern
        if any(fnmatch.fnmatchcase(name, glob.lower()) for name in names):
            if negated:
                return False
            matched = True
    return matched


def _public_key(keytype: str, blob64: str) -> Any:
    data = base64.b64decode(blob64, validate=True)
    return paramiko.PKey.from_type_string(keytype, data)


def load(paths: Iterable[Path]) -> KnownHosts:
    """Read the known_hosts files that exist; lines that cannot be read are skipped with a warning."""
    known = KnownHosts()
    for path in paths:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            continue
        except OSError as exc:
            log.warning("cannot read %s: %s; its host keys are not used", path, exc.strerror)
            continue
        skipped = [f"{path}:{number}: {why}" for number, line in enumerate(text.splitlines(), 1)
                   if (why := _read_line(known, line.strip())) is not None]
        for said in skipped[:SKIPPED_SHOWN]:
            log.warning("%s; skipped", said)
        if len(skipped) > SKIPPED_SHOWN:  # a file that is no known_hosts file at all (a key, a .deb)
            log.warning("%s: %d more lines skipped that are no known_hosts lines", path,
                        len(skipped) - SKIPPED_SHOWN)
    # A revoked key is never trusted, even where a plain line lists it.
    for entry in list(known.keys._entries):
        if known.is_revoked(entry.key):
            known.keys._entries.remove(entry)
    return known


def _read_line(known: KnownHosts, line: str) -> str | None:
    """Add what a known_hosts line says to `known`; why it cannot, or None."""
    if not line or line.startswith("#"):
        return None
    try:
        if line.startswith("@"):
            marker, patterns, keytype, blob64, *_ = line.split()
            key = _public_key(keytype, blob64)
            if marker == "@cert-authority":
                known.authorities.append(Authority(tuple(patterns.split(",")), key))
            elif marker == "@revoked":
                known.revoked.append(key)
            else:
                return f"unknown marker {marker}"
            return None
        entry = HostKeyEntry.from_line(line)
    except (ValueError, binascii.Error, paramiko.SSHException, paramiko.hostkeys.InvalidHostKey) as exc:
        return f"cannot read this known_hosts line ({exc})"
    if entry is None or entry.key is None:
        return "unsupported known_hosts line"
    for name in entry.hostnames:  # hashed names (|1|salt|hash) are matched by paramiko's lookup
        known.keys.add(name, entry.key.get_name(), entry.key)
    return None


@dataclass(frozen=True)
class Certificate:
    """The parts of an OpenSSH certificate (PROTOCOL.certkeys) that host verification needs."""

    cert_type: int
    principals: tuple[str, ...]
    valid_after: int
    valid_before: int
    signature_key: bytes
    signed: bytes
    signature: bytes


def parse_certificate(blob: bytes) -> Certificate:
    """Split a certificate blob; the public key fields are skipped by the key type's layout."""
    message = paramiko.Message(blob)
    keytype = message.get_text()
    message.get_binary()  # nonce
    base = keytype.removesuffix(CERT_SUFFIX)
    fields = 2 if base.startswith(("ssh-rsa", "rsa-sha2", "ecdsa-")) else 1
    for _ in range(fields):
        message.get_binary()  # e and n (mpints), curve and point, or the ed25519 key
    message.get_int64()  # serial
    cert_type = message.get_int()
    message.get_text()  # key id
    principals_blob = paramiko.Message(message.get_binary())
    principals = []
    while principals_blob.get_remainder():
        principals.append(principals_blob.get_text())
    valid_after = message.get_int64()
    valid_before = message.get_int64()
    message.get_binary()  # critical options
    message.get_binary()  # extensions
    message.get_binary()  # reserved
    signature_key = message.get_binary()
    signed = message.get_so_far()
    signature = message.get_binary()
    return Certificate(cert_type, tuple(principals), valid_after, valid_before, signature_key, signed, signature)


def certificate_problem(known: KnownHosts, hostname: str, key: Any, now: Callable[[], float] = time.time) -> str:
    """Why the certificate `key` presents does not make it a trusted host key ('' when it does)."""
    blob = getattr(key, "public_blob", None)
    if blob is None or not str(blob.key_type).endswith(CERT_SUFFIX):
        return "not a certificate"
    authorities = known.authorities_for(hostname)
    if not authorities:
        return "no @cert-authority line matches the host"
    try:
        cert = parse_certificate(blob.key_blob)
        ca_type = paramiko.Message(cert.signature_key).get_text()
        ca = paramiko.PKey.from_type_string(ca_type, cert.signature_key)
    except (paramiko.SSHException, ValueError, IndexError) as exc:
        return f"unreadable certificate ({exc})"
    if known.is_revoked(key) or known.is_revoked(ca):
        return "the key or its CA is revoked"
    if ca.asbytes() not in {authority.key.asbytes() for authority in authorities}:
        return f"signed by {ca.fingerprint}, not by a CA trusted for this host"
    if cert.cert_type != SSH2_CERT_TYPE_HOST:
        return "a user certificate, not a host certificate"
    bare = hostname[1:].partition("]:")[0] if hostname.startswith("[") else hostname
    if cert.principals and bare not in cert.principals:
        return f"issued for {', '.join(cert.principals)}, not {bare}"
    if not cert.valid_after <= now() < cert.valid_before:
        return "outside its validity period"
    if not ca.verify_ssh_sig(cert.signed, paramiko.Message(cert.signature)):
        return "its signature does not verify"
    return ""


def prefer_certificates(transport: paramiko.Transport) -> paramiko.Transport:
    """Ask the server for its host certificate first (paramiko asks for plain keys first)."""
    options = transport.get_security_options()
    plain = list(options.key_types)
    certs = [f"{name}{CERT_SUFFIX}" for name in plain
             if not name.endswith(CERT_SUFFIX) and f"{name}{CERT_SUFFIX}" in paramiko.Transport._key_info]
    options.key_types = certs + plain
    return transport
