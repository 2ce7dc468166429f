"""The Fabric side of deploy: host key policies, known_hosts lookup, command lines and connection errors."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fabric
import paramiko
import pytest
from invoke.exceptions import CommandTimedOut

from microdeploy.errors import MicrodeployError
from microdeploy.hostkeys import KnownHosts
from microdeploy.hosts import Target
from microdeploy.remote import (
    AcceptNewHostKey,
    FabricConnector,
    FabricRemote,
    RejectUnknownHostKey,
    UnknownHostKeyError,
    fingerprint,
    keyscan,
    known_hosts_name,
)
from tests.support import free_port


@pytest.fixture(scope="module")
def host_key() -> paramiko.PKey:
    """A host key like a server would present."""
    return paramiko.ECDSAKey.generate()


def test_unknown_host_key_is_rejected(host_key: paramiko.PKey) -> None:
    """The default policy refuses a key that no known_hosts file has, instead of Fabric's auto-add."""
    with pytest.raises(UnknownHostKeyError) as caught:
        RejectUnknownHostKey(KnownHosts()).missing_host_key(paramiko.SSHClient(), "web1", host_key)
    assert caught.value.hostname == "web1" and caught.value.key is host_key


def test_accept_new_appends_keys_that_paramiko_then_knows(tmp_path: Path, host_key: paramiko.PKey) -> None:
    """--accept-new-host-keys appends one line per host, keeps what was there, and paramiko finds the key after."""
    known = tmp_path / "ssh/known_hosts"
    known.parent.mkdir()
    known.write_text("# kept\n")
    policy = AcceptNewHostKey(KnownHosts(), known)
    threads = [
        threading.Thread(target=policy.missing_host_key, args=(paramiko.SSHClient(), name, host_key))
        for name in ("web1", "[web2]:2222", "10.0.0.3")
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    lines = known.read_text().splitlines()
    assert lines[0] == "# kept" and len(lines) == 4
    keys = paramiko.HostKeys(str(known))
    for name in ("web1", "[web2]:2222", "10.0.0.3"):
        assert keys.lookup(name)[host_key.get_name()] == host_key


def test_fingerprint_is_openssh_sha256(host_key: paramiko.PKey) -> None:
    """Fingerprints are shown as OpenSSH shows them, so an operator can compare them with ssh-keygen -l."""
    assert fingerprint(host_key).startswith("SHA256:")


def test_known_hosts_file_from_flag_ssh_config_or_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--known-hosts wins, then the ssh config's UserKnownHostsFile, then ~/.ssh/known_hosts."""
    monkeypatch.setenv("HOME", str(tmp_path))
    config = tmp_path / "ssh_config"
    config.write_text("Host web1\n    UserKnownHostsFile ~/fleet_known_hosts /etc/other\n")
    empty = tmp_path / "empty_config"
    empty.write_text("")

    def resolved(connector: FabricConnector, host: str) -> Path:
        path = connector.ssh_config
        connection = fabric.Connection(host, config=fabric.Config(runtime_ssh_path=str(path)))
        return connector._known_hosts_file(connection)

    assert resolved(FabricConnector(ssh_config=config, known_hosts=tmp_path / "kh"), "web1") == tmp_path / "kh"
    assert resolved(FabricConnector(ssh_config=config), "web1") == tmp_path / "fleet_known_hosts"
    assert resolved(FabricConnector(ssh_config=empty), "web1") == tmp_path / ".ssh/known_hosts"


def refused(tmp_path: Path, spec: str, host: str, port: int) -> MicrodeployError:
    """The error of a connection to `host`:`port`, where nobody listens, with an empty ssh config."""
    config = tmp_path / "ssh_config"
    config.write_text("")
    connector = FabricConnector(ssh_config=config, known_hosts=tmp_path / "known_hosts", connect_timeout=2)
    with pytest.raises(MicrodeployError) as caught:
        connector(Target(spec, host, "root", port))
    return caught.value


def test_refused_connection_is_a_clear_error(tmp_path: Path) -> None:
    """A port nobody listens on gives 'Connection refused' naming the host and port, exit status 1."""
    port = free_port()
    error = refused(tmp_path, f"127.0.0.1:{port}", "127.0.0.1", port)
    assert error.exit_code == 1
    assert error.message == (
        f"127.0.0.1:{port} (root@127.0.0.1:{port}): cannot connect: 127.0.0.1 port {port}: "
        "Connection refused; no host was changed"
    )


def test_an_ipv6_host_is_shown_in_brackets(tmp_path: Path) -> None:
    """`root@[::1]:PORT`, as ssh and known_hosts write it, not `root@::1:PORT`, which reads as another address."""
    port = free_port()
    error = refused(tmp_path, f"[::1]:{port}", "::1", port)
    assert error.message.startswith(f"[::1]:{port} (root@[::1]:{port}): cannot connect: ")


@dataclass
class FakeResult:
    """What Fabric's Connection.run returns."""

    exited: int
    stdout: str = ""
    stderr: str = ""


class FakeConnection:
    """A Fabric connection that records command lines and returns or raises what it is told."""

    def __init__(self, outcome: Any) -> None:
        self.outcome = outcome
        self.lines: list[str] = []
        self.kwargs: dict[str, Any] = {}

    def run(self, line: str, **kwargs: Any) -> FakeResult:
        self.lines.append(line)
        self.kwargs = kwargs
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        return self.outcome  # type: ignore[no-any-return]


def test_run_uses_non_interactive_sudo_only_when_asked() -> None:
    """sudo runs as `sudo -n --` (never waiting for a password); output is hidden, stdin never read."""
    connection = FakeConnection(FakeResult(0, "out", "err"))
    remote = FabricRemote(Target("web1", "web1"), connection)  # type: ignore[arg-type]
    assert remote.run("apt-get update", sudo=True, timeout=30) == remote.run("apt-get update", sudo=True)
    remote.run("dpkg-query --show x")
    assert connection.lines == ["sudo -n -- apt-get update", "sudo -n -- apt-get update", "dpkg-query --show x"]
    assert connection.kwargs == {"hide": True, "warn": True, "in_stream": False, "pty": False, "timeout": None}


def test_timed_out_command_is_a_failed_result() -> None:
    """A command that runs past its timeout returns exit status 124, like timeout(1)."""
    timed_out = CommandTimedOut(FakeResult(-1), timeout=5)  # type: ignore[no-untyped-call]
    remote = FabricRemote(Target("web1", "web1"), FakeConnection(timed_out))  # type: ignore[arg-type]
    result = remote.run("sleep 10", timeout=5)
    assert (result.exit_code, result.stderr) == (124, "timed out after 5 s")


def test_lost_connection_is_an_error_naming_the_host() -> None:
    """A connection that breaks mid-command raises MicrodeployError naming the host and the command."""
    remote = FabricRemote(Target("web1", "web1"), FakeConnection(EOFError("gone")))  # type: ignore[arg-type]
    with pytest.raises(MicrodeployError, match=r"web1: the SSH connection failed while running `true`: gone"):
        remote.run("true")


def test_proxy_jump_host_keys_are_checked_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A ProxyJump gateway gets the same known_hosts and rejecting policy as the host, not Fabric's auto-add."""
    config = tmp_path / "ssh_config"
    config.write_text("Host web1\n    ProxyJump bastion\n")
    opened: list[fabric.Connection] = []

    def fake_open(self: fabric.Connection) -> None:
        opened.append(self)

    monkeypatch.setattr(fabric.Connection, "open", fake_open)
    remote = FabricConnector(ssh_config=config, known_hosts=tmp_path / "kh")(Target("web1", "web1"))
    gateway = remote.connection.gateway
    assert isinstance(gateway, fabric.Connection) and gateway.host == "bastion"
    for connection in (remote.connection, gateway):
        assert isinstance(connection.client._policy, RejectUnknownHostKey)


def test_a_ca_line_in_the_system_known_hosts_does_not_break_connecting(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """/etc/ssh/ssh_known_hosts with @cert-authority and garbage lines: a connection error, not InvalidHostKey."""
    import microdeploy.remote

    system = tmp_path / "ssh_known_hosts"
    system.write_text("@cert-authority *.example.org ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMmoOHZlSiD/DHD23/TdDcq"
                      "bPa538W0dcq0tK7y0Ttwg\nnot a key line\n")
    monkeypatch.setattr(microdeploy.remote, "SYSTEM_KNOWN_HOSTS", system)
    config = tmp_path / "ssh_config"
    config.write_text("")
    port = free_port()
    connector = FabricConnector(ssh_config=config, known_hosts=tmp_path / "known_hosts", connect_timeout=2)
    with pytest.raises(MicrodeployError) as caught:
        connector(Target(spec=f"127.0.0.1:{port}", host="127.0.0.1", user="root", port=port))
    assert "cannot connect" in caught.value.message and "Connection refused" in caught.value.message


def test_hosts_and_jump_hosts_a_ca_covers_ask_for_certificates(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The target and its ProxyJump host, both under a @cert-authority pattern, get the certificate transport."""
    import microdeploy.remote

    known = tmp_path / "known_hosts"
    known.write_text("@cert-authority *.example.org ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMmoOHZlSiD/DHD23/TdDcq"
                     "bPa538W0dcq0tK7y0Ttwg\n")
    config = tmp_path / "ssh_config"
    config.write_text("Host web1.example.org\n    ProxyJump jump.example.org\n")
    monkeypatch.setattr(microdeploy.remote, "SYSTEM_KNOWN_HOSTS", tmp_path / "none")
    seen: dict[str, object] = {}

    def fake_open(self: fabric.Connection) -> None:
        seen["target"] = self.connect_kwargs.get("transport_factory")
        seen["jump"] = self.gateway.connect_kwargs.get("transport_factory")
        raise OSError("not connecting in a unit test")

    monkeypatch.setattr(fabric.Connection, "open", fake_open)
    connector = FabricConnector(ssh_config=config, known_hosts=known)
    with pytest.raises(MicrodeployError, match="cannot connect"):
        connector(Target(spec="web1.example.org", host="web1.example.org", user="root", port=None))
    assert seen["target"] is microdeploy.remote._certificate_transport
    assert seen["jump"] is microdeploy.remote._certificate_transport


def test_the_known_hosts_hints_name_a_port_off_22_as_openssh_records_it() -> None:
    """An unknown or changed key on port 2222: ssh-keyscan needs -p, and known_hosts has [host]:2222, so the hints'
    commands work as printed (they named the bare host, whose entry is not the one deploy reads)."""
    assert keyscan("10.231.2.2", 2222) == "ssh-keyscan -p 2222 10.231.2.2"
    assert keyscan("app1.example.com", 22) == "ssh-keyscan app1.example.com"
    assert known_hosts_name("10.231.2.2", 2222) == "[10.231.2.2]:2222"
    assert known_hosts_name("2001:db8::1", 22) == "2001:db8::1"
