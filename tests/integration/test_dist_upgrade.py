"""A bookworm host running a service from the repository is dist-upgraded to trixie.

The host reaches Debian's archive through `microdeploy check`'s APT feed on
our side of its link (microdeploy/check/feed.py); the upgrade is Debian's own procedure: every
`bookworm` in the APT sources becomes `trixie`, then `apt-get update` and
`apt-get full-upgrade`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from microdeploy.check.feed import serving_feed
from microdeploy.mirrors import release_mirrors
from microdeploy.testbed.host import Host
from tests.aptrepo import APT_TIMEOUT, ServedRepo, add_source, apt, installed_version, publish, serve_repository
from tests.hostcheck import health
from tests.packages import BuiltService

if TYPE_CHECKING:
    # Only for annotations: importing the plugin before pytest loads it would
    # keep pytest from rewriting its asserts.
    from tests.testbed.fixtures import NetworkedHosts

NAME = "orders-api"
CONFIG = "/etc/orders-api/config.ini"
SITE_CONFIG = "[app]\n# set by the administrator before the upgrade\ndebug = false\n"
# What Debian's release notes say to do, on every sources file of the host.
SWITCH = ["sh", "-c", "sed -i 's/bookworm/trixie/g' /etc/apt/sources.list.d/*.sources"]
# Non-interactive, an administrator's changed conffiles kept.
FULL_UPGRADE = ["apt-get", "-q", "-y", "-o", "Dpkg::Options::=--force-confold", "full-upgrade"]
UPGRADE_TIMEOUT = 1800.0

# The suite's 900 s per test would cut the upgrade's own bound in half.
pytestmark = [pytest.mark.integration, pytest.mark.host, pytest.mark.timeout(UPGRADE_TIMEOUT + 600)]


@contextmanager
def bookworm_host_with_the_service(
    debs: list[Path], networked_hosts: NetworkedHosts, tmp_path: Path
) -> Iterator[tuple[Host, ServedRepo]]:
    """A bookworm host with Debian's sources (through the feed) and the repository's, the service installed, healthy."""
    repo = tmp_path / "repo"
    publish(repo, *debs)
    host = networked_hosts(1)[0]
    assert host.netns is not None
    # The feed passes any suite through, so the switch to trixie's suites needs no other feed.
    mirrors = release_mirrors("bookworm")
    with serve_repository(repo, host.netns.host_address, tmp_path / "serve.log") as served, \
            serving_feed(host.netns.host_address, mirrors, None) as feed:
        add_source(host, served)
        host.run(["tee", "/etc/apt/sources.list.d/debian.sources"], input=feed.mirror_sources())
        apt(host, "update")
        apt(host, "install", "--no-install-recommends", NAME)
        health(host, 8000, "/health")
        host.run(["tee", CONFIG], input=SITE_CONFIG)
        host.run(["systemctl", "restart", NAME])
        health(host, 8000, "/health")
        yield host, served


def test_full_upgrade_moves_the_service_to_the_trixie_build(
    plain_service: BuiltService, trixie_service: BuiltService, networked_hosts: NetworkedHosts, tmp_path: Path
) -> None:
    """bookworm -> trixie: the +deb13 build replaces +deb12, runs on python3.13, healthy; config and logs kept."""
    debs = [plain_service.result.deb, trixie_service.result.deb]
    with bookworm_host_with_the_service(debs, networked_hosts, tmp_path) as (host, _):
        assert installed_version(host, NAME) == plain_service.result.version
        log_before = host.read_file(f"/var/log/{NAME}/app.log")
        assert log_before
        host.run(SWITCH)
        apt(host, "update")
        upgraded = host.run(FULL_UPGRADE, check=False, timeout=UPGRADE_TIMEOUT)
        assert upgraded.returncode == 0, upgraded.stdout[-3000:] + upgraded.stderr[-3000:]
        assert host.run(["sh", "-c", ". /etc/os-release && echo $VERSION_CODENAME"]).stdout.strip() == "trixie"
        assert installed_version(host, NAME) == trixie_service.result.version
        assert host.run(["systemctl", "is-active", NAME]).stdout.strip() == "active"
        assert health(host, 8000, "/health", timeout=90)["status"] == "ok"
        assert host.run(["readlink", "-f", f"/opt/venvs/{NAME}/bin/python"]).stdout.strip() == "/usr/bin/python3.13"
        assert host.read_file(CONFIG) == SITE_CONFIG
        assert host.read_file(f"/var/log/{NAME}/app.log").startswith(log_before)


def test_without_a_trixie_build_the_upgrade_stops_before_changing_anything(
    plain_service: BuiltService, networked_hosts: NetworkedHosts, tmp_path: Path
) -> None:
    """Only +deb12 published: apt-get update fails naming the repository's missing trixie suite; service untouched."""
    with bookworm_host_with_the_service([plain_service.result.deb], networked_hosts, tmp_path) as (host, served):
        host.run(SWITCH)
        update = host.run(["apt-get", "-q", "update"], check=False, timeout=APT_TIMEOUT)
        assert update.returncode != 0
        # apt names the repository by its URI without the trailing slash.
        uri = served.url.rstrip("/")
        assert f"The repository '{uri} trixie Release' does not have a Release file." in update.stderr
        assert installed_version(host, NAME) == plain_service.result.version
        assert host.run(["systemctl", "is-active", NAME]).stdout.strip() == "active"
        assert health(host, 8000, "/health")["status"] == "ok"
        assert host.run(["sh", "-c", ". /etc/os-release && echo $VERSION_CODENAME"]).stdout.strip() == "bookworm"
