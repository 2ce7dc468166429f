"""Per-host network namespaces: a veth pair with 10.231.N.1 on our side and 10.231.N.2 inside.

There is no NAT and no forwarding out of the namespaces (the machine has
net.ipv4.ip_forward=0, and we never change it): a host there reaches only its
own loopback and our side's addresses -- any 10.231.M.1, where tests serve e.g.
the APT repository -- and we reach it on 10.231.N.2. Hosts do not reach each
other's 10.231.M.2.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from microdeploy.errors import MicrodeployError
from microdeploy.process import run

from . import CACHE_DIR

__all__ = ["SUBNET_PREFIX", "Netns", "create_netns", "delete_netns", "netns", "reap_stale_netns"]

log = logging.getLogger(__name__)

# A private /16 nobody else on the machine uses; one /24 per host.
SUBNET_PREFIX = "10.231"

# The name prefix of everything we create, so leftovers are recognisable.
_PREFIX = "mdtb"

# Interface name inside the namespace, what a real host would call it.
_INSIDE_IFNAME = "eth0"

# One file per namespace we created, holding the owning process's pid, so a
# later session can tell our leftovers (owner dead) from anything else.
_REGISTRY = CACHE_DIR / "netns"

# N in 10.231.N.0/24; 0 and 255 are avoided as subnet numbers humans misread.
_INDEXES = range(1, 255)


@dataclass(frozen=True)
class Netns:
    """One network namespace with its veth pair and the /24 they share."""

    name: str
    index: int
    host_ifname: str

    @property
    def path(self) -> Path:
        """The bind-mounted namespace file, for `--network-namespace-path=`."""
        return Path("/run/netns") / self.name

    @property
    def host_address(self) -> str:
        """Our side of the link (10.231.N.1), reachable from inside the namespace."""
        return f"{SUBNET_PREFIX}.{self.index}.1"

    @property
    def address(self) -> str:
        """The host's address inside the namespace (10.231.N.2)."""
        return f"{SUBNET_PREFIX}.{self.index}.2"


def create_netns() -> Netns:
    """Create a namespace with a configured veth pair on the first free 10.231.N.0/24."""
    for index in _INDEXES:
        host_ifname = f"{_PREFIX}{index}h"
        # `ip link add` fails if the name exists: that claims N atomically, so
        # parallel sessions never pick the same subnet.
        claimed = run(
            ["ip", "link", "add", host_ifname, "type", "veth", "peer", "name", f"{_PREFIX}{index}c"],
            check=False,
        )
        if claimed.returncode != 0:
            if "exists" in claimed.stderr:
                continue
            raise MicrodeployError(
                f"cannot create veth pair {host_ifname}: {claimed.stderr.strip()}",
                hint="Run as root on a kernel with veth support",
            )
        ns = Netns(name=f"{_PREFIX}-{index}", index=index, host_ifname=host_ifname)
        if ns.path.exists():
            # A leftover (or another session's, being torn down): not ours to delete.
            run(["ip", "link", "delete", host_ifname], check=False)
            continue
        try:
            _REGISTRY.mkdir(parents=True, exist_ok=True)
            (_REGISTRY / ns.name).write_text(f"{os.getpid()}\n")
            _configure(ns)
        except BaseException:
            delete_netns(ns)
            raise
        log.info("created network namespace %s (%s <-> %s)", ns.name, ns.host_address, ns.address)
        return ns
    raise MicrodeployError(
        f"no free subnet in {SUBNET_PREFIX}.1-254.0/24",
        hint=f"Delete leftovers: `ip netns list` and `ip link` entries named {_PREFIX}*",
    )


def _configure(ns: Netns) -> None:
    """Move the inner veth end into `ns` and address both ends (inside before any boot)."""
    inner = f"{_PREFIX}{ns.index}c"
    run(["ip", "netns", "add", ns.name])
    run(["ip", "link", "set", inner, "netns", ns.name])
    # Configured from our side before the container boots: the image runs no
    # network manager, so what we set here is what the host has.
    inside = ["ip", "-n", ns.name]
    run([*inside, "link", "set", inner, "name", _INSIDE_IFNAME])
    run([*inside, "address", "add", f"{ns.address}/24", "dev", _INSIDE_IFNAME])
    run([*inside, "link", "set", "lo", "up"])
    run([*inside, "link", "set", _INSIDE_IFNAME, "up"])
    run([*inside, "route", "add", "default", "via", ns.host_address])
    run(["ip", "address", "add", f"{ns.host_address}/24", "dev", ns.host_ifname])
    run(["ip", "link", "set", ns.host_ifname, "up"])


def delete_netns(ns: Netns) -> None:
    """Delete the veth pair, then the namespace; what is already gone is fine.

    The pair goes first, while the namespace's file still claims N for us
    (create_netns skips an N whose namespace exists). Deleted the other way
    round, the kernel frees the pair in the background once the namespace is
    gone, another session can claim N in that moment, and our `ip link delete`
    would delete its new pair.
    """
    # Deleting one end of a pair deletes the other, wherever it lives.
    link = run(["ip", "link", "delete", ns.host_ifname], check=False)
    if link.returncode != 0 and (Path("/sys/class/net") / ns.host_ifname).exists():
        raise MicrodeployError(f"cannot delete veth {ns.host_ifname}: {link.stderr.strip()}")
    if ns.path.exists():
        run(["ip", "netns", "delete", ns.name])
    (_REGISTRY / ns.name).unlink(missing_ok=True)
    log.info("deleted network namespace %s", ns.name)


def reap_stale_netns() -> list[str]:
    """Delete namespaces left behind by test sessions that died without teardown; return their names."""
    reaped = []
    for record in sorted(_REGISTRY.glob(f"{_PREFIX}-*")) if _REGISTRY.is_dir() else []:
        try:
            owner = int(record.read_text())
            index = int(record.name.removeprefix(f"{_PREFIX}-"))
        except (OSError, ValueError):
            continue
        if Path(f"/proc/{owner}").exists():
            continue
        delete_netns(Netns(name=record.name, index=index, host_ifname=f"{_PREFIX}{index}h"))
        log.warning("removed stale network namespace %s of dead session %d", record.name, owner)
        reaped.append(record.name)
    return reaped


@contextmanager
def netns() -> Iterator[Netns]:
    """A fresh network namespace for the duration of the block."""
    ns = create_netns()
    try:
        yield ns
    finally:
        delete_netns(ns)
