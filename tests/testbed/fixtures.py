"""pytest fixtures over the test bed; load with `pytest_plugins = ["tests.testbed.fixtures"]`.

- ``testbed_reaped`` (session): removes hosts/namespaces of earlier sessions that died.
- ``host_image`` (session): Path of the cached base target-host tarball.
- ``puppet_host_image`` (session): the same plus puppet-agent.
- ``piuparts_base`` (session): Path of the gzipped minbase tarball for `piuparts -b`.
- ``debian_mirror_uri`` (session): the machine's Debian mirror URI (for `piuparts --mirror`).
- ``boot_host`` (function): factory ``boot_host(image=None, *, netns=None,
  regenerate_host_keys=False) -> Host``; a running host, powered off and removed at teardown.
- ``online_root`` (function): a fresh, unbooted root on the machine's network
  (APT sources, CA certificates, pip config copied in), for `apt-get install`
  with dependencies from Debian and builds that pip-install; removed at teardown.
- ``networked_hosts`` (function): factory ``networked_hosts(n, image=None) -> list[Host]``;
  n running hosts, each in its own network namespace at ``host.address``
  (10.231.N.2, our side ``host.netns.host_address``), with its own SSH host
  keys; hosts and namespaces removed at teardown.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Protocol

import pytest

from microdeploy.testbed import CACHE_DIR, file_lock
from microdeploy.testbed.host import Host, boot
from microdeploy.testbed.image import PUPPET_PACKAGES, debian_mirror, ensure_image, ensure_piuparts_base
from microdeploy.testbed.network import Netns, create_netns, delete_netns, reap_stale_netns
from microdeploy.testbed.procs import reap_stale_hosts

from .online import OnlineRoot, fresh_online_root

__all__ = [
    "BootHost",
    "NetworkedHosts",
    "boot_host",
    "debian_mirror_uri",
    "host_image",
    "networked_hosts",
    "online_root",
    "piuparts_base",
    "puppet_host_image",
    "testbed_reaped",
]


class BootHost(Protocol):
    """The `boot_host` factory: boot a running host (base image unless told otherwise)."""

    def __call__(
        self,
        image: Path | None = None,
        *,
        netns: Netns | None = None,
        regenerate_host_keys: bool = False,
    ) -> Host: ...


class NetworkedHosts(Protocol):
    """The `networked_hosts` factory: n running hosts, each in its own network namespace."""

    def __call__(self, n: int, image: Path | None = None) -> list[Host]: ...


@pytest.fixture(scope="session")
def testbed_reaped() -> None:
    """Once per session: remove hosts and namespaces of earlier sessions that died without teardown."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    # Two sessions starting together must not remove the same leftovers at once.
    with file_lock(CACHE_DIR / "reap.lock"):
        reap_stale_hosts()
        reap_stale_netns()


@pytest.fixture(scope="session")
def host_image(testbed_reaped: None) -> Path:
    """The cached base target-host image (built on first use, ~30 s)."""
    return ensure_image()


@pytest.fixture(scope="session")
def trixie_host_image(testbed_reaped: None) -> Path:
    """The cached trixie target-host image (the test bed's package list)."""
    return ensure_image(suite="trixie")


@pytest.fixture(scope="session")
def puppet_host_image(testbed_reaped: None) -> Path:
    """The cached target-host image with puppet-agent added."""
    return ensure_image(PUPPET_PACKAGES)


@pytest.fixture(scope="session")
def piuparts_base() -> Path:
    """The cached gzipped minbase tarball for `piuparts -b`."""
    return ensure_piuparts_base()


@pytest.fixture(scope="session")
def debian_mirror_uri() -> str:
    """The machine's Debian mirror URI, read from its APT sources at run time."""
    return debian_mirror()


@pytest.fixture
def boot_host(host_image: Path) -> Iterator[BootHost]:
    """A factory of running hosts; every host it made is powered off and removed at teardown."""
    with ExitStack() as cleanup:

        def _boot(
            image: Path | None = None,
            *,
            netns: Netns | None = None,
            regenerate_host_keys: bool = False,
        ) -> Host:
            host = boot(image or host_image, netns=netns, regenerate_host_keys=regenerate_host_keys)
            cleanup.callback(host.poweroff)
            return host

        yield _boot


@pytest.fixture
def networked_hosts(host_image: Path) -> Iterator[NetworkedHosts]:
    """A factory of running hosts on their own 10.231.N.0/24 links, all removed at teardown."""
    # ExitStack unwinds in reverse: each host is powered off before its
    # namespace is deleted, and a failing step does not skip the others.
    with ExitStack() as cleanup:

        def _make(n: int, image: Path | None = None) -> list[Host]:
            hosts = []
            for _ in range(n):
                ns = create_netns()
                cleanup.callback(delete_netns, ns)
                # Boot all first, then wait: the hosts come up in parallel.
                host = boot(image or host_image, netns=ns, regenerate_host_keys=True, wait=False)
                cleanup.callback(host.poweroff)
                hosts.append(host)
            for host in hosts:
                host.wait_until_running()
            return hosts

        yield _make


@pytest.fixture
def online_root(host_image: Path) -> Iterator[OnlineRoot]:
    """A fresh Debian 12 root (not booted) sharing the machine's network; removed at teardown."""
    with fresh_online_root(host_image) as root:
        yield root


@pytest.fixture
def trixie_online_root(trixie_host_image: Path) -> Iterator[OnlineRoot]:
    """A fresh Debian 13 root (not booted), with trixie's suites on the machine's mirror; removed at teardown."""
    with fresh_online_root(trixie_host_image, suite="trixie") as root:
        yield root
