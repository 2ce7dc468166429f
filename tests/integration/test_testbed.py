"""Integration tests of the test bed itself: real Debian 12 hosts booted with systemd-nspawn."""

from __future__ import annotations

import socket
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from microdeploy.errors import MicrodeployError
from microdeploy.process import Result
from microdeploy.testbed import CACHE_DIR
from microdeploy.testbed import host as host_module
from microdeploy.testbed import network as network_module
from microdeploy.testbed.host import RUNNING_STATES, Host, boot, booted_host
from microdeploy.testbed.image import BASE_PACKAGES, build_cached, debian_mirror, image_path, unpacked
from microdeploy.testbed.network import Netns, create_netns, delete_netns, netns, reap_stale_netns
from microdeploy.testbed.procs import ROOTS_DIR, read_proc, reap_stale_hosts

if TYPE_CHECKING:
    # Only for annotations: importing the plugin module before pytest loads it
    # would keep pytest from rewriting its asserts (a warning, an error here).
    from tests.testbed.fixtures import NetworkedHosts

# Harmless if tests/conftest.py loads the plugin too: pytest registers it once.
pytest_plugins = ["tests.testbed.fixtures"]

pytestmark = pytest.mark.integration

SOURCES = """\
Types: deb
# a comment: with a colon
URIs: http://mirror.invalid/debian
Suites: bookworm bookworm-updates
Components: main

Types: deb
URIs: http://mirror.invalid/debian-security
Suites: bookworm-security
Components: main
"""


@pytest.fixture(scope="module")
def host(host_image: Path) -> Iterator[Host]:
    """One private-network host shared by this module's checks that do not change it much."""
    with booted_host(host_image) as booted:
        yield booted


def test_debian_mirror_reads_the_suites_uris(tmp_path: Path) -> None:
    """The mirror is the URIs: value of the stanza whose Suites: lists bookworm."""
    sources = tmp_path / "debian.sources"
    sources.write_text(SOURCES)
    assert debian_mirror(sources) == "http://mirror.invalid/debian"


def test_debian_mirror_without_the_suite_is_an_error(tmp_path: Path) -> None:
    """A sources file without a bookworm stanza fails with a message naming the file."""
    sources = tmp_path / "debian.sources"
    sources.write_text(SOURCES.split("\n\n")[1])
    with pytest.raises(MicrodeployError, match=str(sources)):
        debian_mirror(sources)


def test_boot_refuses_a_device_node_that_became_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A /dev/null replaced by a regular file stops boot with the command that restores it."""
    fake = tmp_path / "null"
    fake.write_text("")
    monkeypatch.setattr(host_module, "_DEVICE_NODES", {"/dev/null": (1, 3), str(fake): (1, 3)})
    with pytest.raises(MicrodeployError, match=rf"rm -f {fake} && mknod -m 666 {fake} c 1 3"):
        boot(Path("/nonexistent-image.tar"))


def test_image_path_is_keyed_by_the_package_set() -> None:
    """Order and duplicates do not change the cache key; another package set does."""
    assert image_path(["a", "b"]) == image_path(["b", "a", "a"])
    assert image_path(["a", "b"]) != image_path(["a", "b", "c"])
    assert image_path(["a"]).parent == CACHE_DIR


def test_build_cached_builds_once_for_concurrent_callers(tmp_path: Path) -> None:
    """Concurrent callers wait on the lock and the build runs once, renamed into place."""
    target = tmp_path / "image.tar"
    calls: list[Path] = []

    def build(tmp: Path) -> None:
        calls.append(tmp)
        time.sleep(0.3)
        tmp.write_text("image")

    threads = [threading.Thread(target=build_cached, args=(target, build)) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(calls) == 1
    assert calls[0].suffix == ".tar"
    assert target.read_text() == "image"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["image.tar", "image.tar.lock"]


def test_build_cached_leaves_nothing_when_the_build_fails(tmp_path: Path) -> None:
    """A failed build leaves neither the target nor its temporary file."""
    target = tmp_path / "image.tar"

    def build(tmp: Path) -> None:
        tmp.write_text("half")
        raise MicrodeployError("boom")

    with pytest.raises(MicrodeployError, match="boom"):
        build_cached(target, build)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["image.tar.lock"]


def test_host_image_is_cached_outside_the_repository(host_image: Path) -> None:
    """The base image is a tarball in the machine-wide cache, keyed by its package list."""
    assert host_image == image_path(BASE_PACKAGES)
    assert tarfile.is_tarfile(host_image)


@pytest.mark.host
def test_host_reaches_running_or_degraded(host: Host) -> None:
    """A booted host's systemd reports running (or degraded)."""
    assert host.wait_until_running(timeout=10) in RUNNING_STATES


@pytest.mark.host
def test_commands_run_inside_the_host_under_its_systemd(host: Host) -> None:
    """Commands see the host's systemd as PID 1, its bookworm root and its hostname."""
    assert host.run(["cat", "/proc/1/comm"]).stdout.strip() == "systemd"
    assert host.run(["systemctl", "is-system-running"], check=False).stdout.strip() in (RUNNING_STATES)
    assert "VERSION_CODENAME=bookworm" in host.read_file("/etc/os-release").splitlines()
    assert host.run(["hostname"]).stdout.strip() == host.name


@pytest.mark.host
def test_host_has_no_apt_sources_of_its_own(host: Host) -> None:
    """The image carries no entry for the unreachable mirror: tests add their own repository."""
    listing = host.run(["sh", "-c", "cat /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null"], check=False)
    assert listing.stdout.strip() == ""


@pytest.mark.host
def test_run_passes_input_and_reports_failures(host: Host) -> None:
    """Standard input reaches the command and a failing command raises with its status."""
    assert host.run(["cat"], input="hello\n").stdout == "hello\n"
    assert host.run(["false"], check=False).returncode == 1
    with pytest.raises(MicrodeployError, match="exit status 3"):
        host.run(["sh", "-c", "echo oops >&2; exit 3"])


@pytest.mark.host
def test_copied_files_are_visible_inside(host: Host, host_image: Path, tmp_path: Path) -> None:
    """A file copied to /root and a directory copied to /var/tmp are seen by the host, not by the image."""
    (tmp_path / "note.txt").write_text("from outside\n")
    (tmp_path / "tree" / "sub").mkdir(parents=True)
    (tmp_path / "tree" / "sub" / "leaf.txt").write_text("leaf\n")
    host.copy_in(tmp_path / "note.txt", "/root/note.txt")
    host.copy_in(tmp_path / "tree", "/var/tmp/tree")
    assert host.read_file("/root/note.txt") == "from outside\n"
    assert host.read_file("/var/tmp/tree/sub/leaf.txt") == "leaf\n"
    assert not (unpacked(host_image) / "root" / "note.txt").exists()


@pytest.mark.host
def test_copy_in_refuses_shadowed_and_escaping_paths(host: Host, tmp_path: Path) -> None:
    """Copies into the host's tmpfs /tmp, or out of its root through a symlink, are refused."""
    source = tmp_path / "f"
    source.write_text("x")
    with pytest.raises(MicrodeployError, match="/var/tmp"):
        host.copy_in(source, "/tmp/f")
    # /var/run is an absolute symlink to /run: followed on our side it would leave the root.
    with pytest.raises(MicrodeployError, match="symlink"):
        host.copy_in(source, "/var/run/f")
    with pytest.raises(MicrodeployError, match="absolute"):
        host.copy_in(source, "root/f")


@pytest.mark.host
def test_private_network_host_has_only_loopback(host: Host) -> None:
    """A host booted without a namespace has loopback and nothing else."""
    links = host.run(["ip", "-o", "link"]).stdout.splitlines()
    assert [line.split(":")[1].strip() for line in links] == ["lo"]


class _Hello(BaseHTTPRequestHandler):
    """Answers every GET with a fixed body."""

    def do_GET(self) -> None:
        """Send the body."""
        body = b"hello from our side"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Keep the test output quiet."""


@pytest.mark.host
def test_networked_hosts_have_own_addresses_keys_and_reach_our_side(
    networked_hosts: NetworkedHosts,
) -> None:
    """Two namespaced hosts answer SSH on their own 10.231.N.2, differ in keys, reach any 10.231.M.1."""
    first, second = networked_hosts(2)
    assert first.address and second.address and second.netns
    assert first.address != second.address
    for host in (first, second):
        assert f"inet {host.address}/24" in host.run(["ip", "-4", "addr", "show", "eth0"]).stdout
        # sshd forks and re-executes itself before its banner: slow on a loaded machine.
        with socket.create_connection((host.address, 22), timeout=60) as conn:
            assert conn.recv(64).startswith(b"SSH-2.0-OpenSSH")
    key = "/etc/ssh/ssh_host_ed25519_key.pub"
    assert first.read_file(key).split()[1] != second.read_file(key).split()[1]
    # Where tests serve e.g. the APT repository: our side of another host's link.
    server = HTTPServer((second.netns.host_address, 0), _Hello)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://{second.netns.host_address}:{server.server_port}/"
        fetched = first.run(["curl", "--silent", "--show-error", "--max-time", "60", url])
        assert fetched.stdout == "hello from our side"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.mark.host
def test_teardown_ends_the_host_and_removes_root_and_namespace(host_image: Path) -> None:
    """After poweroff the nspawn pid and PID 1 are gone, the root is removed, so is the namespace."""
    with netns() as ns, booted_host(host_image, netns=ns) as booted:
        nspawn_pid, pid1, directory = booted.process.pid, booted.pid1, booted.directory
        assert ns.path.exists() and (directory / "root" / "etc" / "os-release").exists()
    assert booted.process.returncode is not None
    assert not Path(f"/proc/{nspawn_pid}").exists()
    assert not Path(f"/proc/{pid1}").exists()
    assert not directory.exists()
    assert not ns.path.exists()
    assert ns.name not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    link = subprocess.run(["ip", "link", "show", ns.host_ifname], capture_output=True, check=False)
    assert link.returncode != 0


@pytest.mark.host
def test_boot_failure_reports_nspawn_output_and_cleans_up(tmp_path: Path) -> None:
    """Booting something that is not an OS raises with nspawn's own words and leaves no root."""
    (tmp_path / "empty").mkdir()
    image = tmp_path / "not-an-os.tar"
    with tarfile.open(image, "w") as tar:
        tar.add(tmp_path / "empty", arcname="etc")
    with pytest.raises(MicrodeployError, match="systemd-nspawn output") as failure:
        boot(image, name="mdtb-notanos")
    assert "os-release" in str(failure.value)
    assert not list(ROOTS_DIR.glob("mdtb-notanos.*"))


@pytest.mark.host
def test_leftovers_of_a_dead_session_are_reaped(host_image: Path) -> None:
    """A host and namespace whose session died without teardown are ended and removed by the reapers."""
    dead_session = (
        "import os, sys; from pathlib import Path\n"
        "from microdeploy.testbed.host import boot\n"
        "from microdeploy.testbed.network import create_netns\n"
        "ns = create_netns()\n"
        "host = boot(Path(sys.argv[1]), netns=ns, wait=False)\n"
        "print(ns.name, host.directory, host.process.pid, flush=True)\n"
        "os._exit(0)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", dead_session, str(host_image)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        cwd=Path(__file__).parents[2],
    ).stdout.split()
    ns_name, directory, nspawn_pid = out[0], Path(out[1]), int(out[2])
    assert directory.exists() and Path(f"/run/netns/{ns_name}").exists()
    assert directory in reap_stale_hosts()
    assert ns_name in reap_stale_netns()
    assert not directory.exists()
    assert not Path(f"/run/netns/{ns_name}").exists()
    # Read once: init may reap the zombie at any moment, between a look and a read.
    status = read_proc(nspawn_pid, "status")
    assert not status or "zombie" in status


def test_a_subnet_being_freed_is_not_taken_from_under_the_session_that_claims_it_next(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another session creating a namespace while ours is deleted keeps its veth pair.

    The other session's create runs right after our first tear-down command,
    once our veth is gone (as the kernel frees it in the background after the
    namespace's delete): our delete must not then remove the pair it made.
    """
    ours = create_netns()
    theirs: list[Netns] = []
    real_run = network_module.run

    def run_then_another_session_creates(argv: Sequence[str], **kwargs: Any) -> Result:
        result = real_run(argv, **kwargs)
        if not theirs:
            link = Path("/sys/class/net") / ours.host_ifname
            deadline = time.monotonic() + 10
            while link.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            if not link.exists():
                # The other session runs `ip` itself, unhooked.
                monkeypatch.setattr(network_module, "run", real_run)
                theirs.append(create_netns())
                monkeypatch.setattr(network_module, "run", run_then_another_session_creates)
        return result

    try:
        monkeypatch.setattr(network_module, "run", run_then_another_session_creates)
        delete_netns(ours)
        monkeypatch.setattr(network_module, "run", real_run)
        assert theirs, "the other session never created its namespace"
        assert (Path("/sys/class/net") / theirs[0].host_ifname).exists(), f"{theirs[0]}'s veth pair was deleted"
        assert theirs[0].path.exists()
    finally:
        monkeypatch.setattr(network_module, "run", real_run)
        for ns in theirs:
            delete_netns(ns)
