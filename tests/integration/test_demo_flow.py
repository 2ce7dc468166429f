"""What `make demo` shows, with upgrade and rollback: a built service through the signed repository onto a host."""

from __future__ import annotations

from pathlib import Path

import pytest

from microdeploy.repo import sources_snippet
from tests.aptrepo import add_source, apt, installed_version, publish, serve_repository, stop_gpg_agent
from tests.hostcheck import health, main_pid
from tests.packages import BuiltService
from tests.testbed.fixtures import NetworkedHosts

pytestmark = [pytest.mark.integration, pytest.mark.host]


def test_a_host_installs_upgrades_and_rolls_back_a_built_service_from_the_served_repository(
    networked_hosts: NetworkedHosts, plain_service: BuiltService, plain_service_v2: BuiltService, tmp_path: Path
) -> None:
    """apt on a fresh host installs revision 1 from the signed repository, upgrades to 2, rolls back to 1, healthy."""
    name, port, path = plain_service.name, plain_service.port, plain_service.health_path
    first, second = plain_service.result.version, plain_service_v2.result.version
    assert first != second
    repo = tmp_path / "repo"
    host = networked_hosts(1)[0]
    assert host.netns is not None
    try:
        added = publish(repo, plain_service.result.deb)["added"]
        assert [(p["name"], p["version"]) for p in added] == [(name, first)]
        with serve_repository(repo, host.netns.host_address, tmp_path / "serve.log") as served:
            assert served.url.startswith(f"http://{host.netns.host_address}:")
            assert served.stanza("bookworm") == sources_snippet(served.url)
            add_source(host, served)
            apt(host, "update")
            apt(host, "install", name)
            assert installed_version(host, name) == first
            assert health(host, port, path) == {"status": "ok", "version": "0.1.0"}
            pid = main_pid(host, name)

            # Revision 2 published: apt sees it as an upgrade, and the package restarts the service.
            publish(repo, plain_service_v2.result.deb)
            apt(host, "update")
            apt(host, "install", "--only-upgrade", name)
            assert installed_version(host, name) == second
            assert health(host, port, path)["status"] == "ok"
            upgraded_pid = main_pid(host, name)
            assert upgraded_pid not in (0, pid)

            # Revision 1 is still in the repository: rolling back is one apt-get install.
            policy = host.run(["apt-cache", "policy", name]).stdout
            assert f"Candidate: {second}" in policy and first in policy
            apt(host, "install", "--allow-downgrades", f"{name}={first}")
            assert installed_version(host, name) == first
            assert health(host, port, path)["status"] == "ok"
            assert main_pid(host, name) not in (0, upgraded_pid)
            assert host.run(["systemctl", "is-active", name]).stdout.strip() == "active"
    finally:
        stop_gpg_agent(repo / "state" / "gnupg")
