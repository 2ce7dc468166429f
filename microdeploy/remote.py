"""The Fabric side of `deploy`: SSH sessions whose host keys are checked against known_hosts.

Fabric's `Connection` installs paramiko's AutoAddPolicy and loads no
known_hosts file at all (fabric/fabric#1804), so out of the box it trusts any
host key, including a man in the middle's. Here every connection loads the
known_hosts files and gets a policy that refuses an unknown key, or, with
`--accept-new-host-keys`, appends it like OpenSSH's
`StrictHostKeyChecking=accept-new`. A key that differs from the known one is
always refused (paramiko raises BadHostKeyException before any policy runs).

This module and `deploy` are the only ones that know about SSH; nothing else
imports Fabric or paramiko.
"""

from __future__ import annotations

import logging
import shlex
import socket
import threading
from pathlib import Path
from typing import Any

import fabric
import paramiko
from invoke.exceptions import CommandTimedOut
from paramiko.ssh_exception import NoValidConnectionsError

from microdeploy import hostkeys, sshconfig
from microdeploy.errors import MicrodeployError
from microdeploy.hosts import CommandResult, Target

log = logging.getLogger(__name__)

USER_KNOWN_HOSTS = Path("~/.ssh/known_hosts")
SYSTEM_KNOWN_HOSTS = Path("/etc/ssh/ssh_known_hosts")

# Appending to one known_hosts file from several connection threads.
_KNOWN_HOSTS_LOCK = threading.Lock()


class UnknownHostKeyError(paramiko.SSHException):  # type: ignore[misc]  # paramiko is untyped
    """The server's host key is in no known_hosts file (or its certificate is not trusted: `problem`)."""

    def __init__(self, hostname: str, key: paramiko.PKey, problem: str = "") -> None:
        super().__init__(f"unknown host key for {hostname}")
        self.hostname = hostname
        self.key = key
        self.problem = problem


class RejectUnknownHostKey(paramiko.MissingHostKeyPolicy):  # type: ignore[misc]
    """Refuse a host whose key is not in known_hosts, unless a trusted CA certified it."""

    def __init__(self, known: hostkeys.KnownHosts) -> None:
        self.known = known

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        """Accept a valid host certificate; otherwise raise UnknownHostKeyError (the operator decides trust)."""
        problem = hostkeys.certificate_problem(self.known, hostname, key)
        if not problem:
            log.info("%s: host certificate signed by a trusted CA", hostname)
            return
        raise UnknownHostKeyError(hostname, key, "" if problem == "not a certificate" else problem)


class AcceptNewHostKey(RejectUnknownHostKey):
    """Append an unknown host's key to known_hosts, like OpenSSH's StrictHostKeyChecking=accept-new."""

    def __init__(self, known: hostkeys.KnownHosts, known_hosts: Path) -> None:
        super().__init__(known)
        self.known_hosts = known_hosts

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        """Record the key (one appended line, so concurrent connections do not overwrite each other)."""
        try:
            super().missing_host_key(client, hostname, key)
            return
        except UnknownHostKeyError as exc:
            if exc.problem:  # a certificate that does not verify is never "new"
                raise
        if self.known.is_revoked(key):
            raise UnknownHostKeyError(hostname, key, "the key is revoked")
        line = f"{hostname} {key.get_name()} {key.get_base64()}\n"
        with _KNOWN_HOSTS_LOCK:
            self.known_hosts.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            with self.known_hosts.open("a", encoding="utf-8") as handle:
                handle.write(line)
        log.warning("added the %s host key of %s to %s: %s", key.get_name(), hostname, self.known_hosts,
                    fingerprint(key))


def _reason(exc: BaseException) -> str:
    """Why a connection failed, in the words of the socket layer ("Connection refused", "timed out")."""
    if isinstance(exc, NoValidConnectionsError):
        # paramiko wraps one socket error per address it tried.
        return "; ".join(f"{address[0]} port {address[1]}: {error.strerror or error}"
                         for address, error in exc.errors.items())
    if isinstance(exc, socket.timeout | TimeoutError):
        return "timed out"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the host name ({exc.strerror})"
    return str(exc) or type(exc).__name__


def _check_host_keys(client: paramiko.SSHClient, known: hostkeys.KnownHosts,
                     policy: paramiko.MissingHostKeyPolicy) -> None:
    """Give a client the known host keys and replace Fabric's AutoAddPolicy."""
    # As the client's own host keys, which paramiko writes back only when asked to (never here).
    for entry in known.keys._entries:
        for name in entry.hostnames:
            client.get_host_keys().add(name, entry.key.get_name(), entry.key)
    client.set_missing_host_key_policy(policy)


def _certificate_transport(sock: Any, **kwargs: Any) -> paramiko.Transport:
    """A Transport that asks for a host certificate first (a @cert-authority line covers the host)."""
    return hostkeys.prefer_certificates(paramiko.Transport(sock, **kwargs))


def fingerprint(key: paramiko.PKey) -> str:
    """The key's SHA256 fingerprint as OpenSSH prints it."""
    return str(key.fingerprint)


class FabricRemote:
    """A `deploy.Remote` over one open Fabric connection."""

    def __init__(self, target: Target, connection: fabric.Connection) -> None:
        self.target = target
        self.connection = connection

    def run(self, command: str, *, sudo: bool = False, timeout: float | None = None) -> CommandResult:
        """Run the command line; a non-zero exit is a result, a lost connection an error."""
        # `sudo -n`: fail at once instead of waiting for a password nobody types.
        line = f"sudo -n -- {command}" if sudo else command
        log.debug("%s$ %s", self.target.spec, line)
        try:
            result = self.connection.run(line, hide=True, warn=True, in_stream=False, pty=False,
                                         timeout=None if timeout is None else int(timeout))
        except CommandTimedOut as exc:
            return CommandResult(124, "", f"timed out after {exc.timeout} s")
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise MicrodeployError(
                f"{self.target.spec}: the SSH connection failed while running `{line}`: {exc}",
                hint="Check the host and the network, then look at the host's state before deploying again",
            ) from exc
        log.debug("%s: exit %d", self.target.spec, result.exited)
        return CommandResult(int(result.exited), str(result.stdout), str(result.stderr))

    def put(self, local: Path, remote: str) -> None:
        """Copy a local file to the host over SFTP."""
        try:
            self.connection.put(str(local), remote)
        except (paramiko.SSHException, OSError) as exc:
            raise MicrodeployError(f"{self.target.spec}: cannot copy {local} to {remote}: {exc}",
                                   hint="Check the path and the free space on the host") from exc

    def close(self) -> None:
        """Close the SSH connection."""
        self.connection.close()


class FabricConnector:
    """Open Fabric connections with our host key checking; a `deploy.Connector`."""

    def __init__(
        self,
        *,
        ssh_config: Path | None = None,
        known_hosts: Path | None = None,
        identity: Path | None = None,
        accept_new_host_keys: bool = False,
        connect_timeout: float = 10.0,
    ) -> None:
        self.ssh_config = ssh_config
        self.known_hosts = known_hosts
        self.identity = identity
        self.accept_new_host_keys = accept_new_host_keys
        self.connect_timeout = connect_timeout
        # paramiko reads no Include line: the files they name are put in place (sshconfig.py), and the result
        # parsed, once, before any host is connected to.
        expanded = sshconfig.expanded_text(ssh_config)
        self.expanded = paramiko.SSHConfig.from_text(expanded) if expanded is not None else None

    def __call__(self, target: Target) -> FabricRemote:
        """Connect and authenticate, or raise MicrodeployError saying why not."""
        config = (fabric.Config(ssh_config=self.expanded) if self.expanded is not None
                  else fabric.Config(runtime_ssh_path=str(self.ssh_config) if self.ssh_config else None))
        connect_kwargs: dict[str, Any] = {}
        if self.identity is not None:
            connect_kwargs["key_filename"] = [str(self.identity)]
        connection = fabric.Connection(
            target.host,
            user=target.user,
            port=target.port,
            config=config,
            connect_timeout=max(1, int(self.connect_timeout)),
            connect_kwargs=connect_kwargs,
        )
        known_hosts = self._known_hosts_file(connection)
        known = hostkeys.load([SYSTEM_KNOWN_HOSTS, known_hosts])
        policy = AcceptNewHostKey(known, known_hosts) if self.accept_new_host_keys else RejectUnknownHostKey(known)
        # A ProxyJump host from the ssh config is a Connection Fabric made, with
        # its own auto-adding client: check its key the same way.
        hop: Any = connection
        while isinstance(hop, fabric.Connection):
            _check_host_keys(hop.client, known, policy)
            name = hop.host if hop.port == 22 else f"[{hop.host}]:{hop.port}"
            if known.authorities_for(name):
                hop.connect_kwargs["transport_factory"] = _certificate_transport
            hop = hop.gateway
        where = f"{target.spec} ({connection.user}@{host_port(connection.host, connection.port)})"
        try:
            connection.open()
        except UnknownHostKeyError as exc:
            connection.close()
            if exc.problem:
                raise MicrodeployError(
                    f"{where}: host certificate refused: {exc.problem}; no host was changed",
                    hint="Check the @cert-authority lines of the known_hosts files and the host's certificate "
                    "(ssh-keygen -L -f /etc/ssh/ssh_host_*-cert.pub on the host)",
                ) from exc
            raise MicrodeployError(
                f"{where}: unknown host key {exc.key.get_name()} {fingerprint(exc.key)} "
                f"(not in {known_hosts}); no host was changed",
                hint=f"Check the fingerprint with the host's administrator and add it to {known_hosts} "
                f"({keyscan(connection.host, connection.port)} >> {known_hosts}), or pass --accept-new-host-keys",
            ) from exc
        except paramiko.BadHostKeyException as exc:
            connection.close()
            raise MicrodeployError(
                f"{where}: the host key CHANGED: got {exc.key.get_name()} {fingerprint(exc.key)}, "
                f"{known_hosts} has {fingerprint(exc.expected_key)}; no host was changed. "
                "Someone may be intercepting the connection",
                hint=f"If the host was reinstalled, remove the old key (ssh-keygen -R "
                f"{known_hosts_name(connection.host, connection.port)} -f {known_hosts}) and add the new one",
            ) from exc
        except paramiko.AuthenticationException as exc:
            connection.close()
            raise MicrodeployError(
                f"{where}: authentication as {connection.user} failed: {exc}; no host was changed",
                hint="Pass --user and --identity (or set them in --ssh-config), "
                "and put the public key in the user's authorized_keys",
            ) from exc
        except (paramiko.SSHException, OSError, EOFError) as exc:
            connection.close()
            raise MicrodeployError(
                f"{where}: cannot connect: {_reason(exc)}; no host was changed",
                hint="Check the host name and port, that sshd runs there and that the network lets you in",
            ) from exc
        return FabricRemote(target, connection)

    def _known_hosts_file(self, connection: fabric.Connection) -> Path:
        """--known-hosts, else the ssh config's UserKnownHostsFile, else ~/.ssh/known_hosts."""
        if self.known_hosts is not None:
            return self.known_hosts
        configured = connection.ssh_config.get("userknownhostsfile")
        if configured:
            return Path(str(configured).split()[0]).expanduser()
        return USER_KNOWN_HOSTS.expanduser()


def host_port(host: str, port: int) -> str:
    """`host:port`, an IPv6 address in brackets (`[::1]:2223`, not `::1:2223`)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def known_hosts_name(host: str, port: int) -> str:
    """The name OpenSSH records a host under in known_hosts: `[host]:port` off port 22."""
    return host if port == 22 else f"[{host}]:{port}"


def keyscan(host: str, port: int) -> str:
    """The ssh-keyscan command line that fetches `host`'s key as its known_hosts entry needs it."""
    return shlex.join(["ssh-keyscan", *(["-p", str(port)] if port != 22 else []), host])
