"""known_hosts as OpenSSH reads it: hashed entries, @cert-authority and @revoked lines, host certificates."""

from __future__ import annotations

import logging
import subprocess
import time
from pathlib import Path

import paramiko
import pytest

from microdeploy import hostkeys
from microdeploy.hostkeys import certificate_problem, host_matches, load


def keygen(path: Path) -> tuple[Path, str]:
    """An Ed25519 key made by ssh-keygen: (private key file, public key line)."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", str(path)], check=True,
                   timeout=30)
    return path, Path(f"{path}.pub").read_text().strip()


@pytest.fixture
def ca(tmp_path: Path) -> tuple[Path, str]:
    """A certificate authority key."""
    return keygen(tmp_path / "ca")


def host_cert(tmp_path: Path, ca: Path, principals: str = "web1.example.org", *, user: bool = False,
              validity: str = "-1h:+1h") -> paramiko.PKey:
    """A host key with a certificate from `ca` (ssh-keygen -s), loaded as paramiko presents a server's."""
    key, _ = keygen(tmp_path / f"host-{principals.replace(',', '_')}-{user}-{validity.replace(':', '_')}")
    argv = ["ssh-keygen", "-q", "-s", str(ca), "-I", "test-host", "-n", principals, "-V", validity, str(key) + ".pub"]
    if not user:
        argv.insert(4, "-h")
    subprocess.run(argv, check=True, timeout=30)
    loaded = paramiko.Ed25519Key(filename=str(key))
    loaded.load_certificate(str(key) + "-cert.pub")
    return loaded


def test_a_ca_line_and_garbage_do_not_stop_the_plain_and_hashed_entries(tmp_path: Path, ca: tuple[Path, str]) -> None:
    """A @cert-authority line is read as a CA, a broken line is skipped, hashed and plain entries still load."""
    _, host_line = keygen(tmp_path / "host")
    keytype, blob = host_line.split()[:2]
    known = tmp_path / "known_hosts"
    known.write_text(f"web1 {keytype} {blob}\nweb2 {keytype} {blob}\n")
    subprocess.run(["ssh-keygen", "-q", "-H", "-f", str(known)], check=True, timeout=30, capture_output=True)
    hashed = known.read_text()
    assert "|1|" in hashed and "web2" not in hashed
    known.write_text(f"@cert-authority *.example.org {ca[1]}\nthis line is not a key\n@revoked\n{hashed}")
    loaded = load([known, tmp_path / "missing"])
    assert [a.patterns for a in loaded.authorities] == [("*.example.org",)]
    assert loaded.keys.lookup("web2") is not None and loaded.keys.lookup("web3") is None
    assert loaded.authorities_for("web1.example.org") and not loaded.authorities_for("example.org")


@pytest.mark.parametrize(("host", "patterns", "expected"), [
    ("web1.example.org", ["*.example.org"], True), ("[web1.example.org]:2222", ["*.example.org"], True),
    ("web1.example.org", ["*.example.org", "!web1.example.org"], False), ("db1", ["web?"], False),
    ("10.231.4.2", ["10.231.*"], True),
])  # fmt: skip
def test_host_patterns_follow_openssh(host: str, patterns: list[str], expected: bool) -> None:
    """Wildcards, negation and [host]:port names match as in OpenSSH's known_hosts."""
    assert host_matches(host, patterns) is expected


def test_a_certificate_from_a_trusted_ca_is_accepted(tmp_path: Path, ca: tuple[Path, str]) -> None:
    """A host certificate signed by the CA for the host's name, valid now, is trusted."""
    known = tmp_path / "known_hosts"
    known.write_text(f"@cert-authority *.example.org,10.231.* {ca[1]}\n")
    cert = host_cert(tmp_path, ca[0], "web1.example.org,10.231.4.2")
    loaded = load([known])
    assert certificate_problem(loaded, "web1.example.org", cert) == ""
    assert certificate_problem(loaded, "[10.231.4.2]:22", cert) == ""


def test_certificates_that_must_be_refused(tmp_path: Path, ca: tuple[Path, str]) -> None:
    """Another host's, a user, an expired, an untrusted CA's or a revoked certificate is refused, with why."""
    known = tmp_path / "known_hosts"
    known.write_text(f"@cert-authority *.example.org {ca[1]}\n")
    loaded = load([known])
    assert "not web1.example.org" in certificate_problem(loaded, "web1.example.org",
                                                         host_cert(tmp_path, ca[0], "web2.example.org"))
    assert "user certificate" in certificate_problem(loaded, "web1.example.org",
                                                     host_cert(tmp_path, ca[0], user=True))
    assert "validity" in certificate_problem(loaded, "web1.example.org",
                                             host_cert(tmp_path, ca[0], validity="20200101:20200102"))
    other, _ = keygen(tmp_path / "other-ca")
    assert "not by a CA trusted" in certificate_problem(loaded, "web1.example.org", host_cert(tmp_path, other))
    good = host_cert(tmp_path, ca[0], validity="-2h:+2h")
    assert certificate_problem(loaded, "db1.internal", good) == "no @cert-authority line matches the host"
    assert certificate_problem(loaded, "web1.example.org", paramiko.Ed25519Key(filename=str(tmp_path / "ca"))) \
        == "not a certificate"
    known.write_text(f"@cert-authority *.example.org {ca[1]}\n@revoked * {ca[1]}\n")
    assert "revoked" in certificate_problem(load([known]), "web1.example.org", good)


def test_a_certificate_with_a_forged_signature_is_refused(tmp_path: Path, ca: tuple[Path, str]) -> None:
    """Changing a signed byte of a valid certificate makes its signature fail."""
    known = tmp_path / "known_hosts"
    known.write_text(f"@cert-authority *.example.org {ca[1]}\n")
    cert = host_cert(tmp_path, ca[0], "web1.example.org,web1x.example.org")
    blob = cert.public_blob.key_blob
    forged = blob.replace(b"web1x.example.org", b"web1y.example.org")
    assert forged != blob
    cert.public_blob = paramiko.PublicBlob(cert.public_blob.key_type, forged)
    assert certificate_problem(load([known]), "web1.example.org", cert, now=time.time) == \
        "its signature does not verify"


def test_prefer_certificates_puts_cert_algorithms_first() -> None:
    """A transport for a CA-covered host asks for host certificates before plain keys."""
    transport = hostkeys.prefer_certificates(paramiko.Transport(_Sock()))
    types = list(transport.get_security_options().key_types)
    assert types[0].endswith("-cert-v01@openssh.com") and "ssh-ed25519" in types


class _Sock:
    """Enough of a socket for paramiko.Transport's constructor (no connection is made)."""

    def settimeout(self, value: float) -> None:
        """Accept the timeout."""

    def close(self) -> None:
        """Nothing to close."""


def test_a_file_that_is_no_known_hosts_file_is_summed_up(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """--known-hosts naming a .deb or a key printed a warning for each of its 120 lines: the first three are named,
    the rest counted."""
    garbage = tmp_path / "package.deb"
    garbage.write_bytes(b"!<arch>\n" + b"".join(b"line %d of no known_hosts file\n" % n for n in range(120)))
    with caplog.at_level(logging.WARNING):
        loaded = load([garbage])
    assert list(loaded.keys.keys()) == []
    assert len(caplog.messages) == 4
    assert caplog.messages[0].startswith(f"{garbage}:1: ")
    assert caplog.messages[-1] == f"{garbage}: 118 more lines skipped that are no known_hosts lines"
