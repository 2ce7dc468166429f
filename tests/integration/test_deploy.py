"""`microdeploy deploy` for real: three booted Debian hosts, each with its own sshd, host keys and netns.

The hosts are booted once for the module. Versions 1, 2 and 3 of a tiny
service (a systemd unit running a Python HTTP server) are real .deb files made
with dpkg-deb and published with `microdeploy.repo` into a signed APT
repository served on our side of the first host's link. Version 3 answers its
health check with HTTP 500. Each test first puts the hosts into the state it
starts from, through nsenter, so the tests do not depend on their order.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from microdeploy.errors import MicrodeployError
from microdeploy.repo import KEYRING_NAME, PublishSettings, publish, sources_snippet
from microdeploy.repo_server import make_server, server_url
from microdeploy.testbed.host import Host, boot
from microdeploy.testbed.image import ensure_image
from microdeploy.testbed.network import create_netns, delete_netns
from tests.support import NOTIFY_READY
from tests.testbed.apt_locks import hold_apt_locks, install_waited

pytest_plugins = ["tests.testbed.fixtures"]

pytestmark = [pytest.mark.integration, pytest.mark.host]

PKG = "mdtest-svc"
SERVICE_PORT = 8071
VERSIONS = ("1.0-1", "2.0-1", "3.0-1")
BROKEN = "3.0-1"
SOURCES = f"/etc/apt/sources.list.d/{PKG}.sources"
KEYRING = f"/etc/apt/keyrings/{KEYRING_NAME}"
REPO_ROOT = Path(__file__).resolve().parents[2]

# Tells systemd it is ready (sd_notify) once it listens, so the postinst's
# `systemctl restart` returns only then: a health check right after apt-get,
# as the rollback's within --health-timeout 5, never races the bind.
SERVER = """\
import http.server, json, os, socket
VERSION = {version!r}
BROKEN = {broken!r}

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path != "/health":
            self.send_error(404)
            return
        status = 500 if BROKEN else 200
        body = json.dumps({{"version": VERSION, "ok": not BROKEN}}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

server = http.server.HTTPServer(("127.0.0.1", {port}), Handler)
""" + NOTIFY_READY + """\
server.serve_forever()
"""

UNIT = f"""\
[Unit]
Description=microdeploy deploy test service

[Service]
Type=notify
ExecStart=/usr/bin/python3 /usr/lib/{PKG}/server.py
DynamicUser=yes

[Install]
WantedBy=multi-user.target
"""

# The maintainer scripts own the restart on upgrade (SPEC §4); deploy relies on it.
POSTINST = f"""\
#!/bin/sh
set -e
if [ "$1" = configure ]; then
    systemctl daemon-reload
    systemctl enable {PKG}.service
    systemctl restart {PKG}.service
fi
"""

PRERM = f"""\
#!/bin/sh
set -e
if [ "$1" = remove ]; then
    systemctl disable --now {PKG}.service || true
fi
"""


def build_deb(version: str, workdir: Path) -> Path:
    """A real Debian package of the test service at `version`, made with dpkg-deb."""
    root = workdir / f"{PKG}-{version}"
    (root / "DEBIAN").mkdir(parents=True)
    (root / f"usr/lib/{PKG}").mkdir(parents=True)
    (root / "lib/systemd/system").mkdir(parents=True)
    (root / f"usr/lib/{PKG}/server.py").write_text(
        SERVER.format(version=version, broken=version == BROKEN, port=SERVICE_PORT))
    (root / f"lib/systemd/system/{PKG}.service").write_text(UNIT)
    (root / "DEBIAN/control").write_text(
        f"Package: {PKG}\nVersion: {version}\nArchitecture: all\nSection: misc\nPriority: optional\n"
        "Maintainer: Test <test@example.org>\nDepends: python3\n"
        "Description: microdeploy deploy test service\n A health endpoint on loopback.\n"
    )
    for name, text in (("postinst", POSTINST), ("prerm", PRERM)):
        script = root / "DEBIAN" / name
        script.write_text(text)
        script.chmod(0o755)
    deb = workdir / f"{PKG}_{version}_all.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "--build", str(root), str(deb)],
                   check=True, capture_output=True)
    return deb


@dataclass(frozen=True)
class Fleet:
    """Three running hosts with SSH access for us, and the files a deploy needs."""

    hosts: tuple[Host, ...]
    identity: Path
    known_hosts: Path
    ssh_config: Path
    workdir: Path

    @property
    def addresses(self) -> list[str]:
        return [str(host.address) for host in self.hosts]


def host_key_lines(host: Host) -> list[str]:
    """known_hosts lines for every host key of `host`, under its address."""
    lines = []
    for pub in sorted((host.root / "etc/ssh").glob("ssh_host_*_key.pub")):
        kind, blob = pub.read_text().split()[:2]
        lines.append(f"{host.address} {kind} {blob}")
    return lines


def wait_for_sshd(host: Host, timeout: float = 60.0) -> None:
    """Wait until the host's sshd is active (it starts at boot)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if host.run(["systemctl", "is-active", "ssh.service"], check=False).stdout.strip() == "active":
            return
        time.sleep(0.2)
    raise MicrodeployError(f"sshd of {host.name} not active after {timeout:g} s:\n{host.journal('ssh.service')}")


@contextmanager
def running_fleet(workdir: Path, keyring: Path, images: Sequence[tuple[Path, str]]) -> Iterator[Fleet]:
    """Hosts of `images` (each with the repository suite of its release) in their own namespaces, trusting our key,
    with the signed repository in workdir/repo served on our side of the first host's link."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "deploy-test", "-f",
                    str(workdir / "id_ed25519")], check=True)
    hosts: list[Host] = []
    # Unwound in reverse, each step even if another fails: server, hosts, then their namespaces.
    with ExitStack() as cleanup:
        namespaces = []
        for image, _ in images:
            namespaces.append(create_netns())
            cleanup.callback(delete_netns, namespaces[-1])
            hosts.append(boot(image, netns=namespaces[-1], regenerate_host_keys=True, wait=False))
            cleanup.callback(hosts[-1].poweroff)
        for host in hosts:
            host.wait_until_running()
        # Our side of the first host's link; the other hosts reach it through their default route.
        server = make_server(workdir / "repo", bind=namespaces[0].host_address, port=0)
        cleanup.callback(server.server_close)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        cleanup.callback(server.shutdown)
        url = server_url(server)
        for host, (_, dist) in zip(hosts, images, strict=True):
            host.run(["install", "-d", "-m", "700", "/root/.ssh"])
            host.copy_in(workdir / "id_ed25519.pub", "/root/.ssh/authorized_keys")
            host.copy_in(keyring, KEYRING)
            host.run(["chmod", "644", KEYRING])
            host.run(["tee", SOURCES], input=sources_snippet(url, KEYRING, dist))
            wait_for_sshd(host)
        known_hosts = workdir / "known_hosts"
        known_hosts.write_text("\n".join(line for host in hosts for line in host_key_lines(host)) + "\n")
        # An empty config: Fabric then reads neither ~/.ssh/config nor /etc/ssh/ssh_config.
        ssh_config = workdir / "ssh_config"
        ssh_config.write_text("")
        yield Fleet(tuple(hosts), workdir / "id_ed25519", known_hosts, ssh_config, workdir)


@pytest.fixture(scope="module")
def fleet(host_image: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """Three bookworm hosts with versions 1, 2 and 3 in the repository."""
    workdir = tmp_path_factory.mktemp("deploy")
    published = publish(PublishSettings(repo=workdir / "repo"), [build_deb(version, workdir) for version in VERSIONS])
    with running_fleet(workdir, published.keyring, [(host_image, "bookworm")] * 3) as booted:
        yield booted


def installed(host: Host) -> str | None:
    """The installed version of the test service on `host`, asked through nsenter."""
    result = host.run(["dpkg-query", "-W", "-f", "${db:Status-Status} ${Version}", PKG], check=False)
    status, _, version = result.stdout.partition(" ")
    return version if result.returncode == 0 and status == "installed" else None


def converge(fleet: Fleet, version: str | None) -> None:
    """Put every host on `version` (None: package removed) through nsenter, not through deploy."""
    for host in fleet.hosts:
        if installed(host) == version:
            continue
        env = {"DEBIAN_FRONTEND": "noninteractive"}
        if version is None:
            host.run(["apt-get", "remove", "-y", "-q", PKG], env=env, timeout=300)
        else:
            host.run(["apt-get", "update", "-q"], env=env, timeout=300)
            host.run(["apt-get", "install", "-y", "-q", "--allow-downgrades", f"{PKG}={version}"], env=env,
                     timeout=300)


def footprint(host: Host) -> str:
    """What apt and dpkg would change on a host: their logs and the APT lists' sizes and times."""
    return host.run(
        ["sh", "-c", "cat /var/log/dpkg.log /var/log/apt/history.log 2>/dev/null; "
         "ls -l --time-style=full-iso /var/lib/apt/lists/"],
        check=False,
    ).stdout


def health(host: Host) -> tuple[int, str]:
    """The service's health answer on the host: HTTP status (0 if none) and body."""
    script = (
        "import sys, urllib.request, urllib.error\n"
        "try:\n"
        f"    r = urllib.request.urlopen('http://127.0.0.1:{SERVICE_PORT}/health', timeout=5)\n"
        "    print(r.status, r.read().decode())\n"
        "except urllib.error.HTTPError as e:\n"
        "    print(e.code, e.read().decode())\n"
        "except OSError:\n"
        "    print(0, '')\n"
    )
    status, _, body = host.run(["python3", "-c", script]).stdout.strip().partition(" ")
    return int(status), body


def run_deploy(fleet: Fleet, *args: str, hosts: list[str] | None = None, known_hosts: Path | None = None,
               ssh_config: Path | None = None, user: str = "root") -> subprocess.CompletedProcess[str]:
    """Run `microdeploy deploy` as a user would, in a directory without a service, as root over SSH."""
    env = {key: value for key, value in os.environ.items() if key != "SSH_AUTH_SOCK"}
    # No ~/.ssh of the machine's root: only the files the test made count.
    env["HOME"] = str(fleet.workdir)
    env["PYTHONPATH"] = str(REPO_ROOT)
    argv = [
        sys.executable, "-m", "microdeploy", "deploy", PKG,
        "--hosts", ",".join(hosts if hosts is not None else fleet.addresses),
        "--user", user, "--identity", str(fleet.identity), "--ssh-config", str(ssh_config or fleet.ssh_config),
        "--known-hosts", str(known_hosts or fleet.known_hosts), "--connect-timeout", "5",
        "--port", str(SERVICE_PORT), "--health-path", "/health", *args,
    ]  # fmt: skip
    return subprocess.run(argv, cwd=fleet.workdir, env=env, capture_output=True, text=True, timeout=600)


def test_first_install_goes_to_all_hosts_in_one_batch(fleet: Fleet) -> None:
    """A host with no version gets its first install through deploy; --batch 100% does all three at once."""
    converge(fleet, None)
    result = run_deploy(fleet, "--version", "1.0-1", "--batch", "100%", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["batches"] == [fleet.addresses]
    assert [(h["before"], h["after"], h["state"], h["healthy"]) for h in report["hosts"]] == [
        (None, "1.0-1", "installed", True)
    ] * 3
    assert [installed(host) for host in fleet.hosts] == ["1.0-1"] * 3


def test_deploy_2_over_1_one_host_at_a_time(fleet: Fleet) -> None:
    """Version 2 over 1 with --batch 1: three batches, every host upgraded and healthy, exit 0."""
    converge(fleet, "1.0-1")
    result = run_deploy(fleet, "--version", "2.0-1", "--batch", "1", "--apt-source", SOURCES, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["result"] == "success"
    assert report["batches"] == [[address] for address in fleet.addresses]
    assert [(h["before"], h["after"], h["state"], h["healthy"]) for h in report["hosts"]] == [
        ("1.0-1", "2.0-1", "upgraded", True)
    ] * 3
    for host in fleet.hosts:
        assert installed(host) == "2.0-1"
        assert health(host) == (200, '{"version": "2.0-1", "ok": true}')


def test_unhealthy_version_3_rolls_back_the_first_host_only(fleet: Fleet) -> None:
    """Version 3 fails its health check on host 1: host 1 is back on 2, hosts 2 and 3 are never touched, exit 1."""
    converge(fleet, "2.0-1")
    before = [footprint(host) for host in fleet.hosts]
    result = run_deploy(fleet, "--version", "3.0-1", "--batch", "1", "--health-timeout", "5", "--json")
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["result"] == "rolled-back" and report["failures"] == 1
    assert [(h["before"], h["after"], h["state"], h["healthy"]) for h in report["hosts"]] == [
        ("2.0-1", "2.0-1", "rolled-back", True),
        ("2.0-1", "2.0-1", "untouched", None),
        ("2.0-1", "2.0-1", "untouched", None),
    ]
    assert "not healthy within 5 s" in report["hosts"][0]["error"]
    assert "(last: HTTP 500 " in report["hosts"][0]["error"], report["hosts"][0]["error"]  # the probe's last answer
    assert [installed(host) for host in fleet.hosts] == ["2.0-1"] * 3
    assert health(fleet.hosts[0]) == (200, '{"version": "2.0-1", "ok": true}')
    # Host 1 really had version 3 in between; the others' apt and dpkg never ran.
    assert "upgrade mdtest-svc:all 2.0-1 3.0-1" in footprint(fleet.hosts[0])
    assert [footprint(host) for host in fleet.hosts[1:]] == before[1:]


def test_unknown_host_key_changes_no_host(fleet: Fleet) -> None:
    """A host whose key is not in known_hosts stops the deploy before anything changes, with its fingerprint named."""
    converge(fleet, "1.0-1")
    partial = fleet.workdir / "known_hosts_without_host_2"
    partial.write_text("\n".join(line for h in (fleet.hosts[0], fleet.hosts[2]) for line in host_key_lines(h)) + "\n")
    before = [footprint(host) for host in fleet.hosts]
    result = run_deploy(fleet, "--version", "2.0-1", known_hosts=partial)
    assert result.returncode == 1
    assert f"error: {fleet.addresses[1]} (root@{fleet.addresses[1]}:22): unknown host key" in result.stderr
    assert "SHA256:" in result.stderr and "no host was changed" in result.stderr
    assert "hint: Check the fingerprint" in result.stderr
    assert [footprint(host) for host in fleet.hosts] == before
    assert partial.read_text().count("\n") == 2 * len(host_key_lines(fleet.hosts[0]))


def test_changed_host_key_is_refused(fleet: Fleet) -> None:
    """A host that presents another key than known_hosts has is refused as a possible man in the middle."""
    converge(fleet, "1.0-1")
    wrong = fleet.workdir / "known_hosts_wrong"
    # Host 1's address with host 2's keys.
    wrong.write_text("\n".join(line.replace(fleet.addresses[1], fleet.addresses[0])
                               for line in host_key_lines(fleet.hosts[1])) + "\n")
    result = run_deploy(fleet, "--version", "2.0-1", hosts=fleet.addresses[:1], known_hosts=wrong)
    assert result.returncode == 1
    assert "the host key CHANGED" in result.stderr
    assert installed(fleet.hosts[0]) == "1.0-1"


def test_unreachable_host_changes_no_host(fleet: Fleet) -> None:
    """A host nobody answers on fails the deploy before any host changes."""
    converge(fleet, "1.0-1")
    before = [footprint(host) for host in fleet.hosts]
    closed = f"{fleet.addresses[2]}:2"
    result = run_deploy(fleet, "--version", "2.0-1", hosts=[*fleet.addresses[:2], closed])
    assert result.returncode == 1
    assert (f"error: {closed} (root@{fleet.addresses[2]}:2): cannot connect: "
            f"{fleet.addresses[2]} port 2: Connection refused; no host was changed") in result.stderr
    assert "no host was changed" in result.stderr
    assert [footprint(host) for host in fleet.hosts] == before


def test_version_missing_from_the_repository_changes_no_host(fleet: Fleet) -> None:
    """A version that was never published is found missing before any host changes; exit 2."""
    converge(fleet, "1.0-1")
    before = [footprint(host) for host in fleet.hosts]
    result = run_deploy(fleet, "--version", "9.0-1", "--apt-source", SOURCES)
    assert result.returncode == 2
    assert (f"version 9.0-1 of {PKG} is not in the APT repository of {fleet.addresses[0]} "
            "(available: 3.0-1, 2.0-1, 1.0-1), nor 9.0-1+deb12 for its bookworm; no host was changed") in result.stderr
    assert [installed(host) for host in fleet.hosts] == ["1.0-1"] * 3
    # Only the first host's APT lists were refreshed; dpkg ran nowhere.
    after = [footprint(host) for host in fleet.hosts]
    assert after[1:] == before[1:]
    logs_after, logs_before = (text.split("\ntotal ")[0] for text in (after[0], before[0]))
    assert logs_after == logs_before


def test_accept_new_host_keys_records_the_keys(fleet: Fleet) -> None:
    """--accept-new-host-keys adds unknown keys to known_hosts and deploys; the next run finds them known."""
    converge(fleet, "2.0-1")
    fresh = fleet.workdir / "known_hosts_fresh"
    fresh.unlink(missing_ok=True)
    result = run_deploy(fleet, "--version", "2.0-1", "--accept-new-host-keys", "--json", known_hosts=fresh)
    assert result.returncode == 0, result.stderr
    assert [h["state"] for h in json.loads(result.stdout)["hosts"]] == ["unchanged"] * 3
    recorded = fresh.read_text().splitlines()
    assert sorted(line.split()[0] for line in recorded) == sorted(fleet.addresses)
    again = run_deploy(fleet, "--version", "2.0-1", "--dry-run", known_hosts=fresh)
    assert again.returncode == 0
    strict = run_deploy(fleet, "--version", "2.0-1", known_hosts=fresh)
    assert strict.returncode == 0, strict.stderr


def test_local_deb_is_uploaded_and_installed(fleet: Fleet) -> None:
    """--deb uploads a package the repository does not have, installs it with its health checked, and cleans up."""
    converge(fleet, "2.0-1")
    deb = build_deb("4.0-1", fleet.workdir)
    host = fleet.hosts[0]
    result = run_deploy(fleet, "--deb", str(deb), "--json", hosts=fleet.addresses[:1])
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["package"], report["version"]) == (PKG, "4.0-1")
    assert [(h["before"], h["after"], h["state"]) for h in report["hosts"]] == [("2.0-1", "4.0-1", "upgraded")]
    assert health(host) == (200, '{"version": "4.0-1", "ok": true}')
    assert "microdeploy" not in host.run(["ls", "-a", "/var/tmp"]).stdout
    assert installed(fleet.hosts[1]) == "2.0-1"


def test_the_hosts_own_apt_holding_its_locks_is_waited_for(fleet: Fleet) -> None:
    """apt-get update fails at once on the lists' lock, apt-get install on dpkg's unless told to wait: deploy on a
    host whose own apt holds both waits for each, and installs."""
    converge(fleet, "1.0-1")
    host = fleet.hosts[0]
    hold_apt_locks(host)
    result = run_deploy(fleet, "--version", "2.0-1", "--json", hosts=fleet.addresses[:1])
    assert result.returncode == 0, result.stderr
    assert "another apt holds the APT lists; waiting" in result.stderr
    assert install_waited(host)
    assert [(h["before"], h["after"], h["state"]) for h in json.loads(result.stdout)["hosts"]] == [
        ("1.0-1", "2.0-1", "upgraded")]
    assert installed(host) == "2.0-1"


def test_a_host_pinned_by_the_puppet_module_gets_the_version_and_a_warning(fleet: Fleet) -> None:
    """The module's apt pin (its own template, rendered by puppet) on 1.0-1: apt installs 2.0-1 when asked for it by
    version, and deploy warns that Puppet's next run puts 1.0-1 back."""
    converge(fleet, "1.0-1")
    host = fleet.hosts[0]
    pin = subprocess.run(
        ["puppet", "epp", "render", str(REPO_ROOT / "puppet/templates/apt_preferences.epp"),
         "--values", f"{{service => '{PKG}', version => '1.0-1'}}"],
        capture_output=True, text=True, check=True, timeout=120,
    ).stdout
    path = f"/etc/apt/preferences.d/microdeploy-{PKG}.pref"
    host.run(["tee", path], input=pin)
    try:
        result = run_deploy(fleet, "--version", "2.0-1", "--json", hosts=fleet.addresses[:1])
    finally:
        host.run(["rm", "-f", path])
    assert result.returncode == 0, result.stderr
    assert (f"the Puppet module pins {PKG} at 1.0-1 there ({path}), so its next run puts 1.0-1 back"
            in result.stderr)
    assert installed(host) == "2.0-1"


def test_a_user_with_passwordless_sudo_deploys_from_the_repository_and_a_local_deb(fleet: Fleet) -> None:
    """--user deployer --sudo, as a CI's deploy account: apt-get, the health probe (it reads config.ini, root's)
    and the hooks through `sudo -n`; the --deb upload into the user's own private directory, which apt (root, its
    downloads as _apt) installs from."""
    converge(fleet, "1.0-1")
    host = fleet.hosts[0]
    host.run(["sh", "-c", "id deployer >/dev/null 2>&1 || useradd --create-home --shell /bin/sh deployer"])
    host.run(["install", "-d", "-m", "700", "-o", "deployer", "-g", "deployer", "/home/deployer/.ssh"])
    host.copy_in(fleet.workdir / "id_ed25519.pub", "/home/deployer/.ssh/authorized_keys")
    host.run(["chown", "deployer:deployer", "/home/deployer/.ssh/authorized_keys"])
    host.run(["tee", "/etc/sudoers.d/deployer"], input="deployer ALL=(root) NOPASSWD: ALL\n")
    host.run(["chmod", "440", "/etc/sudoers.d/deployer"])
    drain = "touch /run/drained-by-$(id -un)"
    result = run_deploy(fleet, "--version", "2.0-1", "--sudo", "--drain", drain, "--json", hosts=fleet.addresses[:1],
                        user="deployer")
    assert result.returncode == 0, result.stderr
    assert [(h["before"], h["after"], h["state"]) for h in json.loads(result.stdout)["hosts"]] == [
        ("1.0-1", "2.0-1", "upgraded")]
    assert host.run(["test", "-e", "/run/drained-by-root"], check=False).returncode == 0
    result = run_deploy(fleet, "--deb", str(build_deb("4.2-1", fleet.workdir)), "--sudo", "--json",
                        hosts=fleet.addresses[:1], user="deployer")
    assert result.returncode == 0, result.stderr
    assert installed(host) == "4.2-1"
    assert "microdeploy" not in host.run(["ls", "-a", "/var/tmp"]).stdout
    # Without the sudo rule: `sudo -n` fails at once instead of waiting for a password; nothing changed.
    host.run(["rm", "/etc/sudoers.d/deployer"])
    result = run_deploy(fleet, "--version", "2.0-1", "--sudo", hosts=fleet.addresses[:1], user="deployer")
    assert result.returncode == 1, result.stderr
    assert "sudo refuses the deploy user on 1 host(s); no host was changed" in result.stderr
    assert "a password is required" in result.stderr
    assert installed(host) == "4.2-1"


def test_a_repository_the_host_cannot_reach_is_named_not_taken_for_a_missing_version(fleet: Fleet) -> None:
    """The host's source points where nothing answers (a server down, a firewall): apt-get update warns and exits
    0, so the version looked missing from the repository ('publish it first', exit 2). Now: exit 1 naming the
    source apt could not fetch and why; with --apt-source, apt's own error (--error-on=any). No host changes."""
    converge(fleet, "1.0-1")
    host = fleet.hosts[0]
    served = host.run(["cat", SOURCES]).stdout
    dead = re.sub(r"(?m)^URIs: http://([0-9.]+):[0-9]+/", r"URIs: http://\1:9/", served)
    assert dead != served
    host.run(["tee", SOURCES], input=dead)
    # No retries (apt's default is 3, with waits between them): the test's time, not what it proves.
    host.run(["tee", "/etc/apt/apt.conf.d/99no-retries"], input='Acquire::Retries "0";\n')
    try:
        result = run_deploy(fleet, "--version", "5.0-1", hosts=fleet.addresses[:1])
        assert result.returncode == 1, result.stderr
        assert ("version 5.0-1 of mdtest-svc is not in the APT lists of " in result.stderr
                and "which apt could not refresh from http://" in result.stderr
                and ":9/dists/bookworm/InRelease: Could not connect to " in result.stderr), result.stderr
        result = run_deploy(fleet, "--version", "2.0-1", "--apt-source", SOURCES, hosts=fleet.addresses[:1])
        assert result.returncode == 1, result.stderr
        assert "refreshing the APT lists failed (exit status 100)" in result.stderr
        assert "E: Failed to fetch http://" in result.stderr
    finally:
        host.run(["tee", SOURCES], input=served)
        host.run(["rm", "-f", "/etc/apt/apt.conf.d/99no-retries"])
    assert installed(host) == "1.0-1"


def test_hosts_named_in_an_included_ssh_config_file_are_reached_where_it_says(fleet: Fleet) -> None:
    """An ssh config that keeps its hosts in included files, as ~/.ssh/config and Debian's ssh_config do: deploy
    reaches `web-a` at the address the included file gives it (paramiko alone ignores Include)."""
    converge(fleet, "2.0-1")
    (fleet.workdir / "hosts.d").mkdir(exist_ok=True)
    (fleet.workdir / "hosts.d" / "web.conf").write_text(f"Host web-a\n    HostName {fleet.addresses[0]}\n")
    config = fleet.workdir / "ssh_config_with_include"
    config.write_text(f"# the fleet\nInclude {fleet.workdir}/hosts.d/*.conf\n")
    result = run_deploy(fleet, "--deb", str(build_deb("4.1-1", fleet.workdir)), "--json", hosts=["web-a"],
                        ssh_config=config)
    assert result.returncode == 0, result.stderr
    assert [(h["host"], h["after"], h["state"]) for h in json.loads(result.stdout)["hosts"]] == [
        ("web-a", "4.1-1", "upgraded")]
    assert installed(fleet.hosts[0]) == "4.1-1" and installed(fleet.hosts[1]) == "2.0-1"


def test_ca_signed_and_hashed_known_hosts_are_honoured(fleet: Fleet) -> None:
    """A @cert-authority line trusts a host's CA-signed key, a hashed entry another's; a foreign CA is refused."""
    converge(fleet, "1.0-1")
    ca = fleet.workdir / "host_ca"
    if not ca.exists():
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "host-ca", "-f", str(ca)], check=True)
    signed, hashed = fleet.hosts[2], fleet.hosts[0]
    public = fleet.workdir / "signed_host_key.pub"
    public.write_text(signed.read_file("/etc/ssh/ssh_host_ed25519_key.pub"))
    subprocess.run(["ssh-keygen", "-q", "-s", str(ca), "-h", "-I", "test-host", "-n", str(signed.address),
                    "-V", "-5m:+1h", str(public)], check=True)
    signed.copy_in(fleet.workdir / "signed_host_key-cert.pub", "/etc/ssh/ssh_host_ed25519_key-cert.pub")
    signed.run(["tee", "/etc/ssh/sshd_config.d/host-cert.conf"],
               input="HostCertificate /etc/ssh/ssh_host_ed25519_key-cert.pub\n")
    signed.run(["systemctl", "restart", "ssh.service"])
    wait_for_sshd(signed)
    known = fleet.workdir / "known_hosts_ca"
    known.write_text("\n".join(host_key_lines(hashed)) + "\n")
    subprocess.run(["ssh-keygen", "-q", "-H", "-f", str(known)], check=True, capture_output=True)
    ca_line = f"@cert-authority 10.231.*,!10.231.255.* {ca.with_suffix('.pub').read_text().strip()}\n"
    known.write_text(ca_line + "@revoked garbage\n" + known.read_text())
    targets = [str(hashed.address), str(signed.address)]
    try:
        result = run_deploy(fleet, "--version", "2.0-1", "--json", hosts=targets, known_hosts=known)
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr
        assert "cannot read this known_hosts line" in result.stderr  # the garbage line, skipped with a warning
        assert [h["after"] for h in json.loads(result.stdout)["hosts"]] == ["2.0-1", "2.0-1"]
        # Another CA's line does not vouch for the host: refused, nothing changed.
        other = fleet.workdir / "other_ca"
        for stale in (other, other.with_suffix(".pub")):
            stale.unlink(missing_ok=True)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
        known.write_text(f"@cert-authority * {other.with_suffix('.pub').read_text().strip()}\n")
        refused = run_deploy(fleet, "--version", "1.0-1", hosts=[str(signed.address)], known_hosts=known)
        assert refused.returncode == 1 and "host certificate refused: signed by SHA256:" in refused.stderr, \
            refused.stderr
        assert "Traceback" not in refused.stderr
        assert installed(signed) == "2.0-1"
    finally:
        signed.run(["rm", "-f", "/etc/ssh/sshd_config.d/host-cert.conf"])
        signed.run(["systemctl", "restart", "ssh.service"])
        wait_for_sshd(signed)


def test_a_mixed_fleet_gets_each_hosts_release_build(host_image: Path, tmp_path: Path) -> None:
    """One deploy of 4.0-1+deb12 (as Jenkins passes it) to a bookworm and a trixie host: each gets its release's."""
    builds = [build_deb(version, tmp_path) for version in ("4.0-1+deb12", "4.0-1+deb13")]
    published = publish(PublishSettings(repo=tmp_path / "repo"), builds)
    images = [(host_image, "bookworm"), (ensure_image(suite="trixie"), "trixie")]
    with running_fleet(tmp_path, published.keyring, images) as mixed:
        result = run_deploy(mixed, "--version", "4.0-1+deb12", "--batch", "1", "--json")
        assert result.returncode == 0, result.stderr
        assert [installed(host) for host in mixed.hosts] == ["4.0-1+deb12", "4.0-1+deb13"]
        assert [health(host) for host in mixed.hosts] == [
            (200, '{"version": "4.0-1+deb12", "ok": true}'), (200, '{"version": "4.0-1+deb13", "ok": true}')]
        report = json.loads(result.stdout)
        assert [(host["after"], host["state"]) for host in report["hosts"]] == [
            ("4.0-1+deb12", "installed"), ("4.0-1+deb13", "installed")]


def test_a_masked_unit_fails_the_install_with_systemds_words_and_the_next_deploy_stops_before_any_change(
        fleet: Fleet) -> None:
    """A unit an operator masked: the install's postinst fails (dpkg's reason is on its stdout, and is reported),
    the rollback fails the same way and leaves dpkg's work unfinished; the next deploy refuses in its preflight
    instead of taking the half-configured package for none."""
    converge(fleet, "1.0-1")
    host = fleet.hosts[0]
    host.run(["systemctl", "mask", PKG])
    try:
        failed = run_deploy(fleet, "--version", "2.0-1", hosts=fleet.addresses[:1])
        assert failed.returncode == 1, failed.stderr
        assert f"Failed to enable unit: Unit file /etc/systemd/system/{PKG}.service is masked" in failed.stderr
        again = run_deploy(fleet, "--version", "2.0-1", hosts=fleet.addresses[:1])
        assert again.returncode == 1, again.stderr
        assert f"dpkg did not finish an earlier install or removal of {PKG}; no host was changed" in again.stderr
        assert f"{fleet.addresses[0]}: {PKG} is half-configured" in again.stderr
    finally:
        host.run(["systemctl", "unmask", PKG])
        host.run(["dpkg", "--configure", "-a"], env={"DEBIAN_FRONTEND": "noninteractive"}, timeout=300)
    converge(fleet, "1.0-1")
    assert installed(host) == "1.0-1"
