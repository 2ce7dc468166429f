"""The hosts of a rollout as the user names them, and the small interface to an SSH session on one.

`microdeploy.remote` implements `Remote` with Fabric; tests pass a fake.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from microdeploy import validate
from microdeploy.errors import bad_input

HOST_SPEC_RE = re.compile(
    r"(?:(?P<user>[^@\s]+)@)?(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[^:\s\[\]]+))(?::(?P<port>\d+))?"
)


@dataclass(frozen=True)
class CommandResult:
    """What one remote command returned."""

    exit_code: int
    stdout: str = ""
    stderr: str = ""

    @property
    def ok(self) -> bool:
        """Whether the command exited 0."""
        return self.exit_code == 0


class Remote(Protocol):
    """One open, host-key-verified SSH session to a host."""

    def run(self, command: str, *, sudo: bool = False, timeout: float | None = None) -> CommandResult:
        """Run a shell command line (its words quoted by the caller) and return its result."""
        ...

    def put(self, local: Path, remote: str) -> None:
        """Copy a local file to a path on the host."""
        ...

    def close(self) -> None:
        """Close the session."""
        ...


@dataclass(frozen=True)
class Target:
    """One host of the rollout, as the user named it."""

    spec: str
    host: str
    user: str | None = None
    port: int | None = None


Connector = Callable[[Target], Remote]
"""Open a session to a target; raises MicrodeployError if it is unreachable or its key is unknown."""


def parse_target(spec: str, default_user: str | None = None) -> Target:
    """Parse `[user@]host[:port]` (an IPv6 address in brackets), refusing anything ssh could misread."""
    hint = "Name hosts as host, user@host, host:port or [ipv6]:port (letters, digits, '-', '.')"
    text = validate.string("host", spec, "--hosts", hint.removeprefix("Name hosts as "), 300).strip()
    match = HOST_SPEC_RE.fullmatch(text)
    if not match:
        raise bad_input(f"invalid host {validate.shown(spec)}", hint=hint)
    user = match["user"] or default_user
    if user is not None:
        validate.check(validate.USER, "user", user, f"host {validate.shown(spec)}" if match["user"] else "--user")
    host = match["v6"] or match["host"]
    if match["v6"]:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise bad_input(f"invalid IPv6 address in host {validate.shown(spec)}", hint=hint) from None
    elif not validate.HOSTNAME.pattern.fullmatch(host):
        raise bad_input(f"invalid host {validate.shown(spec)}", hint=hint)
    port = None
    if match["port"] is not None:
        port = int(match["port"])
        if not 1 <= port <= 65535:
            raise bad_input(f"invalid port {port} in host {spec!r}", hint="Use a port from 1 to 65535")
    return Target(spec=text, host=host, user=user, port=port)


def read_hosts_file(path: Path) -> tuple[str, ...]:
    """Host specs from a file: one per line, blank lines and `#` comments ignored."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise bad_input(f"cannot read hosts file {path}: {exc}", hint="Pass a readable file, one host a line") from exc
    return tuple(line.split("#", 1)[0].strip() for line in text.splitlines() if line.split("#", 1)[0].strip())
