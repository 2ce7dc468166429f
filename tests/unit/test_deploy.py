"""`microdeploy deploy` against fake hosts: exact commands, batches, health, rollback, bad input."""

from __future__ import annotations

import http.server
import itertools
import json
import logging
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner

from microdeploy import deploy as deploy_module
from microdeploy import deploy_commands
from microdeploy.cli import main
from microdeploy.deploy import deploy
from microdeploy.deploy_commands import (
    available_command,
    cleanup_command,
    health_command,
    install_command,
    install_file_command,
    parse_madison,
    parse_query,
    private_dir_command,
    query_command,
    release_command,
    remove_command,
    state_command,
    update_command,
)
from microdeploy.deploy_plan import DeployOptions, split_batches
from microdeploy.deploy_report import DeployReport
from microdeploy.dists import DISTS
from microdeploy.errors import MicrodeployError
from microdeploy.hosts import CommandResult, Target, parse_target
from tests.support import make_deb

PKG = "orders-api"
# No health_path configured: the main page, any answer below 500.
HEALTH = health_command(PKG, "http://127.0.0.1:8000/", any_answer=True)
QUERY = query_command(PKG)
UPDATE = update_command(None)
MADISON = available_command(PKG)
RELEASE = release_command()
STATE = state_command(PKG)
# apt 2.6's own words when apt-daily holds the lists (apt-get update does not wait for them).
LISTS_LOCKED = ("E: Could not get lock /var/lib/apt/lists/lock. It is held by process 812 (apt-get)\n"
                "E: Unable to lock directory /var/lib/apt/lists/\n")


@dataclass
class FakeHost:
    """A host's package state, answering the commands deploy sends like dpkg and apt would."""

    name: str
    installed: str | None = "1"
    status: str = "installed"  # dpkg's state of the installed version
    available: tuple[str, ...] = ("1", "2", "3")
    broken: frozenset[str] = frozenset({"3"})
    unhealthy_polls: int = 0
    fail_hook: bool = False
    site_url: str | None = None  # the health URL the host's config.ini gives, if not the package default
    release: str = "bookworm"
    locked_updates: int = 0  # `apt-get update`s that find the lists locked by the host's own apt
    pin: str | None = None  # the Puppet module's apt preferences file for the package, if any
    fetch_failed: str = ""  # what apt-get update says of sources it could not fetch (exit 0 all the same)
    sudo_refused: bool = False  # the deploy user has no passwordless sudo there
    update_error: str = ""  # what a failing `apt-get update` says (exit status 100)
    log: list[tuple[str, bool]] = field(default_factory=list)
    uploads: dict[str, str] = field(default_factory=dict)

    def answer(self, command: str, sudo: bool) -> CommandResult:
        self.log.append((command, sudo))
        if sudo and self.sudo_refused:
            return CommandResult(1, "", "sudo: a password is required")
        if command == STATE:  # as the host's shell runs it: dpkg-query's answer, a newline, the mark, os-release
            query, release = self.answer_one(QUERY), self.answer_one(RELEASE)
            release_and_pin = f"{release.stdout}\n{deploy_commands.PIN_MARK}\n{self.pin or ''}"
            return CommandResult(0, f"{query.stdout}\n{deploy_commands.STATE_MARK}\n{release_and_pin}", query.stderr)
        return self.answer_one(command)

    def answer_one(self, command: str) -> CommandResult:
        argv = shlex.split(command)
        if argv[0] == "env":
            argv = list(itertools.dropwhile(lambda word: "=" in word, argv[1:]))
        if argv == ["true"]:
            return CommandResult(0)
        if argv[0] == "dpkg-query":
            if self.installed is None:
                return CommandResult(1, "", f"dpkg-query: no packages found matching {PKG}")
            return CommandResult(0, f"{self.status} {self.installed}")
        if argv == ["cat", "/etc/os-release"]:
            return CommandResult(0, f'PRETTY_NAME="Debian GNU/Linux"\nVERSION_CODENAME={self.release}\nID=debian\n')
        if argv[:2] == ["apt-get", "update"]:
            if self.locked_updates > 0:
                self.locked_updates -= 1
                return CommandResult(100, "Reading package lists...\n", LISTS_LOCKED)
            if self.update_error:
                return CommandResult(100, "Reading package lists...\n", self.update_error)
            return CommandResult(0, "Reading package lists...\n", self.fetch_failed)
        if argv[:2] == ["apt-cache", "madison"]:
            lines = [f" {PKG} | {v} | http://10.0.0.1/repo stable/main amd64 Packages" for v in self.available]
            return CommandResult(0, "\n".join(lines) + "\n")
        if argv[:2] == ["apt-get", "install"] and argv[-1].startswith("/"):
            self.installed = self.uploads[argv[-1]]
            return CommandResult(0)
        if argv[:2] == ["mktemp", "-d"]:
            return CommandResult(0, "/var/tmp/microdeploy.AbCdEf1234\n")
        if argv[:2] == ["rm", "-rf"]:
            for path in [p for p in self.uploads if p.startswith(argv[-1] + "/")]:
                self.uploads.pop(path)
            return CommandResult(0)
        if argv[:2] == ["apt-get", "install"]:
            version = argv[-1].partition("=")[2]
            if version not in self.available:
                return CommandResult(100, "", f"E: Version '{version}' for '{PKG}' was not found")
            if self.installed and version < self.installed and "--allow-downgrades" not in argv:
                return CommandResult(100, "", "E: Packages were downgraded and -y was used without --allow-downgrades.")
            self.installed = version
            return CommandResult(0)
        if argv[:2] == ["apt-get", "remove"]:
            self.installed = None
            return CommandResult(0)
        if argv[0] == "systemd-run":
            probed = (self.site_url or argv[argv.index("-c") + 2]) + "\n"
            if self.unhealthy_polls > 0:
                self.unhealthy_polls -= 1
                return CommandResult(1, probed, "ConnectionRefusedError")
            healthy = self.installed is not None and self.installed not in self.broken
            return CommandResult(0 if healthy else 1, probed, "" if healthy else "HTTP Error 500")
        if argv[:2] == ["sh", "-c"]:
            return CommandResult(1 if self.fail_hook else 0)
        raise AssertionError(f"unexpected command on {self.name}: {command}")

    @property
    def commands(self) -> list[str]:
        return [command for command, _ in self.log]


class FakeRemote:
    """A `deploy.Remote` over a FakeHost."""

    def __init__(self, host: FakeHost) -> None:
        self.host = host
        self.closed = False

    def run(self, command: str, *, sudo: bool = False, timeout: float | None = None) -> CommandResult:
        assert not self.closed
        return self.host.answer(command, sudo)

    def put(self, local: Path, remote: str) -> None:
        # The fake .deb's version is its file name's last part: orders-api_4.deb -> 4.
        self.host.log.append((f"put {local.name} {remote}", False))
        self.host.uploads[remote] = local.stem.rpartition("_")[2]

    def close(self) -> None:
        self.closed = True


class FakeNetwork:
    """A connector over named FakeHosts; hosts named in `refuse` fail to connect."""

    def __init__(self, hosts: list[FakeHost], refuse: dict[str, str] | None = None) -> None:
        self.hosts = {host.name: host for host in hosts}
        self.refuse = refuse or {}
        self.remotes: list[FakeRemote] = []
        self.lock = threading.Lock()

    def __call__(self, target: Target) -> FakeRemote:
        if target.host in self.refuse:
            raise MicrodeployError(f"{target.spec}: {self.refuse[target.host]}; no host was changed")
        remote = FakeRemote(self.hosts[target.host])
        with self.lock:
            self.remotes.append(remote)
        return remote


class FakeClock:
    """Time that passes only when deploy sleeps."""

    def __init__(self) -> None:
        self.time = 1000.0

    def now(self) -> float:
        return self.time

    def sleep(self, seconds: float) -> None:
        self.time += seconds


@pytest.fixture(autouse=True)
def _no_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run from an empty directory, so no pyproject.toml is read as the service's configuration."""
    monkeypatch.chdir(tmp_path)


def hosts(*names: str, **kwargs: object) -> list[FakeHost]:
    return [FakeHost(name, **kwargs) for name in names]  # type: ignore[arg-type]


def run_deploy(fleet: list[FakeHost], version: str | None = "2", name: str | None = PKG,
               **options: object) -> tuple[DeployReport, FakeNetwork]:
    network = FakeNetwork(fleet)
    clock = FakeClock()
    opts = DeployOptions(version=version, name=name, hosts=(",".join(h.name for h in fleet),), **options)  # type: ignore[arg-type]
    report = deploy(opts, connect=network, now=clock.now, sleep=clock.sleep)
    return report, network


def deb_file(tmp_path: Path, name: str, version: str) -> Path:
    """A tiny real .deb of `name` at `version`, named NAME_VERSION.deb."""
    return make_deb(tmp_path, version=version, name=name, filename=f"{name}_{version}.deb")


def upgrade_commands(version: str, *, downgrade: bool = False) -> list[str]:
    return [UPDATE, install_command(PKG, version, allow_downgrades=downgrade), QUERY, HEALTH]


def test_upgrade_runs_the_exact_commands_on_each_host() -> None:
    """Preflight queries every host and checks the repository on the first; each host then updates, installs, checks."""
    fleet = hosts("h1", "h2")
    report, network = run_deploy(fleet)
    assert report.result == "success" and report.exit_code == 0
    # The first host's lists were refreshed in preflight: not again.
    assert fleet[0].commands == [STATE, UPDATE, MADISON, install_command(PKG, "2"), QUERY, HEALTH]
    assert fleet[1].commands == [STATE, *upgrade_commands("2")]
    assert [(h.host, h.before, h.after, h.state, h.healthy) for h in report.hosts] == [
        ("h1", "1", "2", "upgraded", True),
        ("h2", "1", "2", "upgraded", True),
    ]
    assert all(remote.closed for remote in network.remotes)


def test_only_apt_and_the_health_probe_run_with_sudo() -> None:
    """With --sudo, apt-get and the health probe (it reads the host's config.ini) run through sudo, after the
    preflight's `true` that asks sudo whether it lets the user; dpkg-query and apt-cache do not."""
    fleet = hosts("h1")
    run_deploy(fleet, sudo=True)
    assert [sudo for command, sudo in fleet[0].log] == [False, True, True, False, True, False, True]
    assert all(sudo == ("apt-get" in command or "systemd-run" in command or command == "true")
               for command, sudo in fleet[0].log)


def test_a_later_host_without_passwordless_sudo_stops_the_rollout_before_any_change() -> None:
    """sudo refusing the user on h3 (batch 3) was found when its batch came, after h1 and h2 were upgraded: every
    host is asked in the preflight, and nothing is changed anywhere."""
    fleet = hosts("h1", "h2", "h3")
    fleet[2].sudo_refused = True
    with pytest.raises(MicrodeployError) as caught:
        run_deploy(fleet, sudo=True, batch="1")
    assert caught.value.message == ("sudo refuses the deploy user on 1 host(s); no host was changed:\n"
                                    "    h3: sudo: a password is required")
    assert "NOPASSWD" in (caught.value.hint or "")
    assert not [command for host in fleet for command, _ in host.log if "install" in command]


def test_commands_quote_every_word() -> None:
    """A version and a hook with shell characters reach the host as single quoted words."""
    assert install_command(PKG, "1.0+git~1-1") == (
        "env DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=300 "
        "-o Dpkg::Options::=--force-confdef "
        "-o Dpkg::Options::=--force-confold 'orders-api=1.0+git~1-1'"
    )
    assert query_command(PKG) == "dpkg-query --show '--showformat=${db:Status-Status} ${Version}' orders-api"
    assert deploy_commands.hook_command("curl -X POST lb/drain?h=$(hostname)") == (
        "sh -c 'curl -X POST lb/drain?h=$(hostname)'"
    )


def test_apt_waits_for_dpkgs_lock_when_it_installs_or_removes() -> None:
    """apt-get does not wait for a lock held by the host's own apt (unattended-upgrades) unless told how long."""
    for command in (install_command(PKG, "2"), install_file_command("/var/tmp/x/orders-api_2.deb"),
                    remove_command(PKG)):
        assert f"-o DPkg::Lock::Timeout={deploy_commands.LOCK_WAIT:.0f} " in command


def test_the_host_apts_lock_on_the_lists_is_waited_for_in_preflight_and_rollout() -> None:
    """apt-get update fails at once on the lists' lock: deploy tries again until the host's apt lets go."""
    fleet = hosts("h1", "h2", locked_updates=3)
    clock = FakeClock()
    opts = DeployOptions(version="2", name=PKG, hosts=("h1,h2",))
    report = deploy(opts, connect=FakeNetwork(fleet), now=clock.now, sleep=clock.sleep)
    assert report.result == "success"
    assert fleet[0].commands == [STATE, *[UPDATE] * 4, MADISON, install_command(PKG, "2"), QUERY, HEALTH]
    assert fleet[1].commands == [STATE, *[UPDATE] * 3, *upgrade_commands("2")]
    assert clock.time - 1000.0 == 6 * deploy_commands.LOCK_RETRY_INTERVAL


def test_lists_locked_for_longer_than_the_wait_fail_the_preflight() -> None:
    """A lock held past LOCK_WAIT ends the preflight with apt's words; no host was changed."""
    fleet = hosts("h1", "h2", locked_updates=10**6)
    with pytest.raises(MicrodeployError) as caught:
        run_deploy(fleet)
    assert "h1: refreshing the APT lists failed (exit status 100); no host was changed" in caught.value.message
    assert "Could not get lock /var/lib/apt/lists/lock" in caught.value.message
    attempts = fleet[0].commands.count(UPDATE)
    assert attempts == deploy_commands.LOCK_WAIT / deploy_commands.LOCK_RETRY_INTERVAL + 1
    assert fleet[0].installed == fleet[1].installed == "1"
    assert fleet[1].commands == [STATE]


def test_lists_locked_past_the_wait_during_the_rollout_fail_that_host() -> None:
    """On a host after the first, a lock held past LOCK_WAIT fails that host before anything is installed, drained or
    probed: it is reported failed, as it is, not "rolled-back", and its undrain hook does not run (it put back into
    rotation a host an operator had drained, and probed its health through a sudo that had failed for 60 s)."""
    fleet = hosts("h1", "h2")
    fleet[1].locked_updates = 10**6
    report, _ = run_deploy(fleet, max_failures=1, drain="lb drain", undrain="lb undrain")
    assert [(h.after, h.state) for h in report.hosts] == [("2", "upgraded"), ("1", "failed")]
    assert "apt-get update failed (exit status 100)" in (report.hosts[1].error or "")
    assert not any(word in command for command in fleet[1].commands
                   for word in ("apt-get install", "lb drain", "lb undrain", "systemd-run"))
    assert report.result == "completed-with-failures"


def test_other_update_failures_are_not_tried_again() -> None:
    """Only the lists' lock is worth waiting for: a failure to fetch ends the preflight at once."""
    failed = CommandResult(100, "Reading package lists...\n", "E: Failed to fetch http://10.0.0.1/repo/dists/stable/InRelease"
                           "  Could not connect to 10.0.0.1:80\n")
    assert not deploy_commands.lists_locked(failed)
    assert not deploy_commands.lists_locked(CommandResult(0, "Hit:1 http://10.0.0.1/repo/var/lib/apt/lists/lock"))
    assert deploy_commands.lists_locked(CommandResult(100, "", LISTS_LOCKED))
    # The words in another language still name the lock (apt 2.6 with LANGUAGE=de).
    assert deploy_commands.lists_locked(CommandResult(
        100, "", "E: Sperre /var/lib/apt/lists/lock konnte nicht erlangt werden. Sie wird von Prozess 22750 "
                 "(python3) gehalten.\nE: Das Verzeichnis /var/lib/apt/lists/ kann nicht gesperrt werden.\n"))


# apt 2.6's words (LC_ALL=C) for a repository it could not reach; apt-get update exits 0 all the same.
UNREACHABLE = ("W: Failed to fetch http://10.0.0.1/repo/dists/bookworm/InRelease  Could not connect to 10.0.0.1:80 "
               "(10.0.0.1). - connect (111: Connection refused)\n"
               "W: Some index files failed to download. They have been ignored, or old ones used instead.\n")


def test_a_version_missing_from_lists_apt_could_not_refresh_is_a_failure_naming_the_source() -> None:
    """The repository was unreachable, so the host's lists are the old ones: not 'publish it first' (exit 2) but
    a failure (exit 1) saying which source apt could not fetch, and why; no host changed."""
    fleet = hosts("h1", "h2", available=("1",), fetch_failed=UNREACHABLE)
    with pytest.raises(MicrodeployError) as caught:
        run_deploy(fleet, version="2")
    assert caught.value.exit_code == 1
    assert caught.value.message == (
        "version 2 of orders-api is not in the APT lists of h1, which apt could not refresh from "
        "http://10.0.0.1/repo/dists/bookworm/InRelease: Could not connect to 10.0.0.1:80 (10.0.0.1). - connect "
        "(111: Connection refused); no host was changed")
    assert fleet[0].installed == fleet[1].installed == "1"


def test_a_version_missing_while_another_source_is_down_is_still_one_to_publish() -> None:
    """Docker's source is down, the service's repository answered without version 2: 'publish it first' (exit 2),
    not the other source's fault."""
    docker = ("W: Failed to fetch https://download.docker.com/linux/debian/dists/bookworm/InRelease  Could not "
              "resolve 'download.docker.com'\n")
    fleet = hosts("h1", available=("1",), fetch_failed=docker)
    with pytest.raises(MicrodeployError) as caught:
        run_deploy(fleet, version="2")
    assert caught.value.exit_code == 2
    assert caught.value.message.startswith("version 2 of orders-api is not in the APT repository of h1 (available: 1)")


def test_a_source_apt_could_not_fetch_is_a_warning_when_the_version_is_there(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Another source of the host is down (apt keeps its old lists): the rollout goes on, and says so."""
    fleet = hosts("h1", fetch_failed=UNREACHABLE)
    with caplog.at_level(logging.WARNING):
        report, _ = run_deploy(fleet, version="2")
    assert report.result == "success"
    assert caplog.messages == ["h1: apt could not refresh some of its lists (it keeps the ones it had): "
                               "http://10.0.0.1/repo/dists/bookworm/InRelease: Could not connect to 10.0.0.1:80 "
                               "(10.0.0.1). - connect (111: Connection refused)"]


def test_a_later_host_that_could_not_refresh_its_lists_says_so_when_its_install_fails() -> None:
    """h2's source is down and its old lists lack version 2: its install fails, and its report says why apt had
    no version 2 to give."""
    fleet = hosts("h1", "h2")
    fleet[1].available = ("1",)
    fleet[1].fetch_failed = UNREACHABLE
    report, _ = run_deploy(fleet, max_failures=1)
    assert [(h.after, h.state) for h in report.hosts] == [("2", "upgraded"), ("1", "rolled-back")]
    error = report.hosts[1].error or ""
    assert error.startswith("apt-get install failed (exit status 100)\n"
                            "    E: Version '2' for 'orders-api' was not found")
    assert error.endswith("(apt could not refresh: http://10.0.0.1/repo/dists/bookworm/InRelease: Could not connect "
                          "to 10.0.0.1:80 (10.0.0.1). - connect (111: Connection refused))")


def test_update_can_be_limited_to_the_service_source() -> None:
    """--apt-source refreshes only that file and keeps the other sources' lists."""
    assert update_command("/etc/apt/sources.list.d/orders-api.sources") == (
        "env DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 apt-get update -q --error-on=any "
        "-o Dir::Etc::sourcelist=/etc/apt/sources.list.d/orders-api.sources "
        "-o Dir::Etc::sourceparts=- -o APT::Get::List-Cleanup=0"
    )


@pytest.mark.parametrize(
    ("count", "batch", "sizes"),
    [
        (5, "1", [1, 1, 1, 1, 1]),
        (5, "2", [2, 2, 1]),
        (5, "10", [5]),
        (10, "25%", [2, 2, 2, 2, 2]),
        (3, "50%", [1, 1, 1]),
        (4, "50%", [2, 2]),
        (3, "100%", [3]),
        (3, "1%", [1, 1, 1]),
    ],
)
def test_batches_by_number_and_percentage(count: int, batch: str, sizes: list[int]) -> None:
    """N hosts per batch, or P% of the hosts rounded down and at least one, in the order given."""
    targets = [Target(f"h{i}", f"h{i}") for i in range(count)]
    batches = split_batches(targets, batch)
    assert [len(b) for b in batches] == sizes
    assert [t for b in batches for t in b] == targets


def test_unhealthy_host_rolls_back_its_batch_and_stops() -> None:
    """The first unhealthy host restores its whole batch; earlier batches stay upgraded, later ones untouched."""
    fleet = hosts("h1", "h2", "h3", "h4", "h5", "h6")
    fleet[3].broken = frozenset({"2"})
    report, _ = run_deploy(fleet, batch="2", health_timeout=5)
    assert report.result == "rolled-back" and report.exit_code == 1
    states = {h.host: (h.before, h.after, h.state) for h in report.hosts}
    assert states == {
        "h1": ("1", "2", "upgraded"),
        "h2": ("1", "2", "upgraded"),
        "h3": ("1", "1", "rolled-back"),
        "h4": ("1", "1", "rolled-back"),
        "h5": ("1", "1", "untouched"),
        "h6": ("1", "1", "untouched"),
    }
    rollback = [QUERY, install_command(PKG, "1", allow_downgrades=True), QUERY, HEALTH]
    assert fleet[2].commands == [STATE, *upgrade_commands("2"), *rollback]
    # Health polled once a second for the 5 s timeout, then the rollback.
    assert fleet[3].commands == [STATE, *upgrade_commands("2"), *[HEALTH] * 5, *rollback]
    assert fleet[4].commands == fleet[5].commands == [STATE]
    assert fleet[2].installed == fleet[3].installed == "1"
    # The last poll's reason (it said the URL alone, for a port nothing listens on as for an error page).
    assert "not healthy within 5 s: http://127.0.0.1:8000/ (last: HTTP Error 500)" in (
        report.hosts[3].error or "")


def test_failing_first_batch_leaves_every_other_host_alone() -> None:
    """Version 3 failing on the first host of --batch 1: it goes back to 2, the others see only dpkg-query."""
    fleet = hosts("h1", "h2", "h3", installed="2")
    report, _ = run_deploy(fleet, version="3", health_timeout=3)
    assert report.exit_code == 1
    assert [(h.after, h.state, h.healthy) for h in report.hosts] == [
        ("2", "rolled-back", True), ("2", "untouched", None), ("2", "untouched", None),
    ]
    assert fleet[1].commands == fleet[2].commands == [STATE]


def test_first_install_that_fails_is_removed() -> None:
    """A host that had no version gets the package removed again (configuration and logs kept)."""
    fleet = hosts("h1", installed=None)
    report, _ = run_deploy(fleet, version="3", health_timeout=2)
    assert fleet[0].commands[-3:] == [QUERY, remove_command(PKG), QUERY]
    assert fleet[0].installed is None
    assert (report.hosts[0].before, report.hosts[0].after, report.hosts[0].state) == (None, None, "removed")


def test_first_install_that_succeeds_is_reported_installed() -> None:
    """A host with no version gets its first install the same way and is reported as installed."""
    fleet = hosts("h1", installed=None)
    report, _ = run_deploy(fleet, version="2")
    assert (report.hosts[0].before, report.hosts[0].after, report.hosts[0].state) == (None, "2", "installed")


def test_max_failures_restores_failed_hosts_alone_until_exceeded() -> None:
    """Within --max-failures a failed host is restored alone and the rollout goes on; beyond it, it stops."""
    fleet = hosts("h1", "h2", "h3", "h4")
    fleet[0].broken = fleet[2].broken = frozenset({"2"})
    report, _ = run_deploy(fleet, max_failures=1, health_timeout=1)
    assert [h.state for h in report.hosts] == ["rolled-back", "upgraded", "rolled-back", "untouched"]
    assert report.failures == 2 and report.exit_code == 1 and report.result == "rolled-back"
    assert fleet[3].commands == [STATE]


def test_failures_within_the_allowance_complete_the_rollout() -> None:
    """Failed hosts within --max-failures are restored, every batch runs, and the result still exits 1."""
    fleet = hosts("h1", "h2", "h3")
    fleet[1].broken = frozenset({"2"})
    report, _ = run_deploy(fleet, max_failures=1, health_timeout=1)
    assert [h.state for h in report.hosts] == ["upgraded", "rolled-back", "upgraded"]
    assert (report.result, report.exit_code, report.failures) == ("completed-with-failures", 1, 1)


def test_health_is_polled_until_it_answers() -> None:
    """A service that needs a few seconds to come up is healthy once it answers, within the timeout."""
    fleet = hosts("h1", unhealthy_polls=3)
    report, _ = run_deploy(fleet, health_timeout=10)
    assert report.result == "success"
    assert fleet[0].commands.count(HEALTH) == 4
    assert report.hosts[0].health_seconds == 3.0


def test_downgrade_is_allowed_explicitly() -> None:
    """Deploying an older version passes --allow-downgrades, which apt needs for it, and says it downgraded."""
    fleet = hosts("h1", installed="2")
    report, _ = run_deploy(fleet, version="1")
    assert install_command(PKG, "1", allow_downgrades=True) in fleet[0].commands
    assert report.hosts[0].state == "downgraded" and report.hosts[0].after == "1"


def test_hooks_drain_before_and_undrain_after_a_healthy_upgrade() -> None:
    """The drain hook runs before apt installs (after the lists' refresh, which may wait for the host's own apt and
    does not touch the service) and the undrain hook after the health check passes."""
    fleet = hosts("h1", "h2")
    run_deploy(fleet, drain="lb-ctl drain", undrain="lb-ctl enable")
    update, *install = upgrade_commands("2")
    assert fleet[1].commands == [STATE, update, "sh -c 'lb-ctl drain'", *install, "sh -c 'lb-ctl enable'"]


def test_a_host_interrupted_while_it_waits_for_its_apt_is_not_left_drained() -> None:
    """Ctrl-C while h2's lists are locked: h2 is reported interrupted, and its drain hook never ran."""
    fleet = hosts("h1", "h2")
    fleet[1].locked_updates = 10**6
    clock = FakeClock()
    opts = DeployOptions(version="2", name=PKG, hosts=("h1,h2",), drain="lb-ctl drain", max_failures=1)
    stop_after = [3]

    def sleep(seconds: float) -> None:  # Ctrl-C arrives during h2's third wait
        clock.sleep(seconds)
        stop_after[0] -= 1
        if stop_after[0] == 0:
            raise KeyboardInterrupt

    report = deploy(opts, connect=FakeNetwork(fleet), now=clock.now, sleep=sleep)
    assert report.result == "interrupted"
    assert "sh -c 'lb-ctl drain'" not in fleet[1].commands
    assert fleet[1].installed == "1"


def test_failed_drain_changes_nothing_on_that_host() -> None:
    """A drain hook that fails counts as a failure before the host is changed; its batch stops."""
    fleet = hosts("h1", "h2", fail_hook=True)
    report, _ = run_deploy(fleet, drain="false")
    assert report.hosts[0].state == "rolled-back" and report.hosts[0].after == "1"
    assert not any("apt-get install" in c for c in fleet[0].commands)
    assert fleet[1].commands == [STATE]


def test_version_missing_from_the_repository_changes_no_host() -> None:
    """A version the repository lacks is found in preflight: exit 2 with the available versions, nothing installed."""
    fleet = hosts("h1", "h2")
    with pytest.raises(MicrodeployError) as caught:
        run_deploy(fleet, version="9")
    assert caught.value.exit_code == 2
    assert "version 9 of orders-api is not in the APT repository of h1 (available: 1, 2, 3)" in caught.value.message
    assert fleet[0].commands == [STATE, UPDATE, MADISON]
    assert fleet[1].commands == [STATE]


def test_unreachable_host_stops_before_any_command() -> None:
    """One host that cannot be connected to (or has an unknown key) fails the deploy before any command anywhere."""
    fleet = hosts("h1", "h2", "h3")
    network = FakeNetwork(fleet, refuse={"h2": "unknown host key ssh-ed25519 SHA256:abc"})
    with pytest.raises(MicrodeployError, match="h2: unknown host key") as caught:
        deploy(DeployOptions(version="2", name=PKG, hosts=("h1,h2,h3",)), connect=network)
    assert caught.value.exit_code == 1
    assert all(host.log == [] for host in fleet)
    assert len(network.remotes) == 2 and all(remote.closed for remote in network.remotes)


def test_several_unreachable_hosts_are_all_named() -> None:
    """When several hosts fail to connect, the message lists each of them."""
    fleet = hosts("h1", "h2", "h3")
    network = FakeNetwork(fleet, refuse={"h3": "cannot connect: refused", "h1": "cannot connect: timed out"})
    with pytest.raises(MicrodeployError) as caught:
        deploy(DeployOptions(version="2", name=PKG, hosts=("h1,h2,h3",)), connect=network)
    assert caught.value.message.splitlines() == [
        "cannot use 2 of 3 hosts; no host was changed:",
        "  h1: h1: cannot connect: timed out; no host was changed",
        "  h3: h3: cannot connect: refused; no host was changed",
    ]


def test_dry_run_plans_without_connecting() -> None:
    """--dry-run returns the batches and the commands and never opens a connection."""

    def no_connection(target: Target) -> FakeRemote:
        raise AssertionError("a dry run connected")

    report = deploy(DeployOptions(version="2", name=PKG, hosts=("h1,h2,h3",), batch="2", dry_run=True),
                    connect=no_connection)
    assert report.result == "dry-run" and report.exit_code == 0
    assert report.batches == (("h1", "h2"), ("h3",))
    assert [(p.host, p.batch) for p in report.plan] == [("h1", 1), ("h2", 1), ("h3", 2)]
    assert report.plan[0].commands == (UPDATE, install_command(PKG, "2"), QUERY, f"until healthy: {HEALTH}")


def test_port_and_health_path_come_from_the_service_configuration(tmp_path: Path) -> None:
    """Run in a service directory, deploy takes the name, port and health path from [tool.microdeploy]."""
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "orders-api"\n[tool.microdeploy]\nport = 8123\nhealth_path = "/healthz"\n'
    )
    report = deploy(DeployOptions(version="2", hosts=("h1",), dry_run=True))
    assert report.package == "orders-api"
    assert report.plan[0].commands[-1] == f"until healthy: {health_command(PKG, 'http://127.0.0.1:8123/healthz')}"
    flagged = deploy(DeployOptions(version="2", hosts=("h1",), port=9000, project=tmp_path, dry_run=True))
    assert "http://127.0.0.1:9000/healthz" in flagged.plan[0].commands[-1]


def test_parse_helpers() -> None:
    """dpkg-query and apt-cache madison output are read as dpkg and apt print them."""
    assert parse_query(CommandResult(0, "installed 1.2-1")) == "1.2-1"
    assert parse_query(CommandResult(0, "config-files 1.2-1")) is None
    assert parse_query(CommandResult(1, "", "no packages found")) is None
    madison = " orders-api |      2-1 | http://x/ stable/main amd64 Packages\n orders-api | 1-1 | http://x/ s/m P\n"
    assert parse_madison(madison, PKG) == ["2-1", "1-1"]
    assert parse_madison(" other | 2-1 | http://x/ s/m P\n", PKG) == []


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("web1", Target("web1", "web1")),
        ("deploy@web1.example.org:2222", Target("deploy@web1.example.org:2222", "web1.example.org", "deploy", 2222)),
        ("[2001:db8::1]:22", Target("[2001:db8::1]:22", "2001:db8::1", None, 22)),
        ("10.231.1.2", Target("10.231.1.2", "10.231.1.2")),
    ],
)
def test_host_specs(spec: str, expected: Target) -> None:
    """Hosts are host, user@host, host:port or [IPv6]:port."""
    assert parse_target(spec) == expected


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def fleet(monkeypatch: pytest.MonkeyPatch) -> list[FakeHost]:
    """Three fake hosts that the CLI's deploy connects to instead of SSH."""
    fake = hosts("h1", "h2", "h3")
    network = FakeNetwork(fake)
    monkeypatch.setattr(deploy_module, "_fabric_connector", lambda options: network)
    monkeypatch.setattr(deploy_module, "HEALTH_INTERVAL", 0.0)
    return fake


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["orders-api", "--version", "2"], "no hosts to deploy to"),
        (["orders-api", "--version", "2", "--hosts", " , "], "no hosts to deploy to"),
        (["orders-api", "--version", "2", "--hosts", "h1", "--batch", "0"], "invalid batch '0'"),
        (["orders-api", "--version", "2", "--hosts", "h1", "--batch", "x"], "invalid batch 'x'"),
        (["orders-api", "--version", "2", "--hosts", "h1", "--batch", "150%"], "invalid batch '150%'"),
        (["orders-api", "--version", "2; reboot", "--hosts", "h1"], "invalid version '2; reboot'"),
        (["orders-api", "--version", "v2", "--hosts", "h1"], "invalid version 'v2'"),
        (["orders-api", "--version", "2", "--hosts", "-oProxyCommand=sh"], "invalid host '-oProxyCommand=sh'"),
        (["orders-api", "--version", "2", "--hosts", "h1;id"], "invalid host 'h1;id'"),
        (["orders-api", "--version", "2", "--hosts", "Root User@h1"], "invalid host 'Root User@h1'"),
        (["orders-api", "--version", "2", "--hosts", "h1,h1"], "host 'h1' is listed twice"),
        (["Bad_Name", "--version", "2", "--hosts", "h1"], "invalid name 'Bad_Name' (from NAME)"),
        (["--version", "2", "--hosts", "h1"], "no service to deploy"),
        (["orders-api", "--version", "2", "--hosts", "h1", "--health-timeout", "0"], "invalid health timeout"),
        (["orders-api", "--version", "2", "--hosts", "h1", "--connect-timeout", "0"], "invalid --connect-timeout 0.0"),
        (["orders-api", "--version", "2", "--hosts", "h1", "--connect-timeout", "-1"],
         "invalid --connect-timeout -1.0"),
        (["orders-api", "--version", "2", "--hosts", "h1", "--apt-source", "x.list"], "invalid APT source"),
    ],
)
def test_bad_input_exits_2_and_touches_no_host(fleet: list[FakeHost], args: list[str], message: str) -> None:
    """Bad hosts, batches, versions and names exit 2 with the problem named, and no host is contacted."""
    code, _, stderr = invoke("deploy", *args)
    assert code == 2, stderr
    assert message in stderr
    assert "Traceback" not in stderr
    assert all(host.log == [] for host in fleet)


@pytest.mark.parametrize(
    ("flag", "content", "message"),
    [
        ("--ssh-config", None, "cannot read --ssh-config"),
        ("--identity", None, "cannot read --identity"),
        ("--known-hosts", None, "is not a file: no host key could be checked"),
        ("--ssh-config", "Host *\n  User deploy\n  include {tmp}/web.conf\n", "is inside a Host or Match block"),
        ("--ssh-config", "Include={tmp}/given\n", "Include nested more than 16 deep"),
    ],
    ids=["no-ssh-config", "no-identity", "no-known-hosts", "include-blocks-in-a-block", "include-loop"],
)
def test_ssh_client_files_are_checked_before_any_host(fleet: list[FakeHost], tmp_path: Path, flag: str,
                                                       content: str | None, message: str) -> None:
    """A missing ssh config or key, a known_hosts that is not there (nothing to check keys against), or an ssh
    config whose Include lines deploy's SSH cannot follow (blocks within a block, a file that includes itself):
    exit 2 before any host is contacted."""
    path = tmp_path / "given"
    (tmp_path / "web.conf").write_text("Host web1\n  Port 2222\n")
    if content is not None:
        path.write_text(content.format(tmp=tmp_path))
    code, _, stderr = invoke("deploy", "orders-api", "--version", "2", "--hosts", "h1", flag, str(path))
    assert code == 2, stderr
    assert message in stderr and "no host was contacted" in stderr
    assert all(host.log == [] for host in fleet)


def test_a_known_hosts_file_to_start_is_fine_with_accept_new_host_keys(fleet: list[FakeHost],
                                                                       tmp_path: Path) -> None:
    """--accept-new-host-keys records the keys in a known_hosts file that need not exist yet."""
    code, _, stderr = invoke("deploy", "orders-api", "--version", "2", "--hosts", "h1", "--known-hosts",
                             str(tmp_path / "new_known_hosts"), "--accept-new-host-keys")
    assert code == 0, stderr


def test_missing_hosts_file_exits_2(fleet: list[FakeHost], tmp_path: Path) -> None:
    """A hosts file that does not exist is bad input."""
    code, _, stderr = invoke("deploy", "orders-api", "--version", "2", "--hosts-file", str(tmp_path / "nope"))
    assert code == 2 and "cannot read hosts file" in stderr


def test_cli_json_reports_versions_health_and_timings(fleet: list[FakeHost], tmp_path: Path) -> None:
    """--json prints one object with each host's versions before and after, health, timings and the result."""
    hosts_file = tmp_path / "hosts"
    hosts_file.write_text("# web tier\nh1\nh2  # second\n\nh3\n")
    code, stdout, _ = invoke("deploy", "orders-api", "--version", "2", "--hosts-file", str(hosts_file), "--json")
    assert code == 0
    data = json.loads(stdout)
    assert data["result"] == "success" and data["exit_code"] == 0
    assert data["batches"] == [["h1"], ["h2"], ["h3"]]
    assert [(h["host"], h["before"], h["after"], h["healthy"], h["state"]) for h in data["hosts"]] == [
        ("h1", "1", "2", True, "upgraded"), ("h2", "1", "2", True, "upgraded"), ("h3", "1", "2", True, "upgraded"),
    ]
    assert all(isinstance(h["seconds"], float) for h in data["hosts"])


def test_cli_rollback_exits_1_with_a_per_host_report(fleet: list[FakeHost]) -> None:
    """A rolled-back rollout exits 1 and prints one line per host with its state."""
    code, stdout, _ = invoke("deploy", "orders-api", "--version", "3", "--hosts", "h1,h2", "--hosts", "h3",
                             "--health-timeout", "1")
    assert code == 1
    lines = stdout.splitlines()
    assert lines[0].startswith("orders-api 3: rolled-back, 3 host(s) in 3 batch(es), 1 failure(s)")
    assert "h1  batch 1  1 -> 1  rolled-back  healthy" in lines[1]
    assert "h2  batch 2  1 -> 1  untouched" in stdout
    assert [host.commands for host in fleet[1:]] == [[STATE], [STATE]]


def test_cli_dry_run_prints_the_plan(fleet: list[FakeHost]) -> None:
    """`deploy --dry-run` prints batches and commands and runs nothing on the hosts."""
    code, stdout, _ = invoke("deploy", "orders-api", "--version", "2", "--hosts", "h1,h2", "--batch", "100%",
                             "--dry-run")
    assert code == 0
    assert "dry run, nothing is changed" in stdout
    assert f"  $ {install_command(PKG, '2')}" in stdout
    assert all(host.log == [] for host in fleet)


def test_deb_is_uploaded_installed_and_removed(tmp_path: Path) -> None:
    """--deb uploads the file into a fresh private directory, installs it with apt-get, deletes it, checks health."""
    fleet = hosts("h1", "h2")
    deb = deb_file(tmp_path, PKG, "4")
    report, _ = run_deploy(fleet, version=None, name=None, deb=deb)
    assert report.result == "success" and report.package == PKG and report.version == "4"
    private = "/var/tmp/microdeploy.AbCdEf1234"
    on_host = f"{private}/orders-api_4.deb"
    assert fleet[1].commands == [STATE, UPDATE, private_dir_command(), f"put {deb.name} {on_host}",
                                 install_file_command(on_host), cleanup_command(private), QUERY, HEALTH]
    assert private_dir_command() == "mktemp -d /var/tmp/microdeploy.XXXXXXXXXX"
    assert fleet[0].uploads == fleet[1].uploads == {}
    assert [h.after for h in report.hosts] == ["4", "4"]


def test_deb_that_fails_rolls_back_from_the_repository(tmp_path: Path) -> None:
    """An uploaded .deb that is unhealthy is rolled back to the recorded version from the repository."""
    fleet = hosts("h1", broken=frozenset({"4"}))
    report, _ = run_deploy(fleet, version=None, name=None, deb=deb_file(tmp_path, PKG, "4"), health_timeout=1)
    assert report.exit_code == 1 and fleet[0].installed == "1"
    assert install_command(PKG, "1", allow_downgrades=True) in fleet[0].commands


@pytest.mark.parametrize(
    ("name", "version", "message"),
    [
        ("billing", None, "is orders-api 4, not billing 4"),
        (PKG, "5", "is orders-api 4, not orders-api 5"),
    ],
)
def test_deb_of_another_package_or_version_is_bad_input(tmp_path: Path, name: str, version: str | None,
                                                        message: str) -> None:
    """A .deb whose package or version differs from NAME or --version exits 2 before connecting."""
    fleet = hosts("h1")
    with pytest.raises(MicrodeployError, match=message) as caught:
        run_deploy(fleet, version=version, name=name, deb=deb_file(tmp_path, PKG, "4"))
    assert caught.value.exit_code == 2 and fleet[0].log == []


def test_no_version_and_no_deb_is_bad_input(fleet: list[FakeHost]) -> None:
    """Without --version or --deb there is nothing to deploy: exit 2."""
    code, _, stderr = invoke("deploy", "orders-api", "--hosts", "h1")
    assert code == 2 and "no version to deploy" in stderr


def test_missing_deb_is_bad_input(fleet: list[FakeHost], tmp_path: Path) -> None:
    """A --deb path that does not exist exits 2 and no host is contacted."""
    code, _, stderr = invoke("deploy", "--deb", str(tmp_path / "nope.deb"), "--hosts", "h1")
    assert code == 2 and "no such file" in stderr
    assert all(host.log == [] for host in fleet)


def test_lost_connection_during_install_fails_the_host_and_restores_the_batch() -> None:
    """A host whose SSH connection breaks mid-install counts as failed; its whole batch is checked and restored."""
    fleet = hosts("h1", "h2", "h3")

    class Dropping(FakeHost):
        def answer(self, command: str, sudo: bool) -> CommandResult:
            if "apt-get install" in command:
                self.log.append((command, sudo))
                raise MicrodeployError(f"{self.name}: the SSH connection failed")
            return super().answer(command, sudo)

    fleet[1] = Dropping("h2")
    report, _ = run_deploy(fleet, batch="2")
    assert [(h.state, h.after) for h in report.hosts] == [
        ("rolled-back", "1"), ("rolled-back", "1"), ("untouched", "1"),
    ]
    assert "h2: the SSH connection failed" in (report.hosts[1].error or "")
    assert report.exit_code == 1 and fleet[2].commands == [STATE]


def test_healthy_host_of_a_failed_batch_is_drained_before_its_rollback() -> None:
    """A host that was upgraded and undrained is drained again before its rollback and undrained after it."""
    fleet = hosts("h1", "h2")
    fleet[1].broken = frozenset({"2"})
    run_deploy(fleet, batch="2", drain="drain", undrain="undrain", health_timeout=1)
    drain, undrain = "sh -c drain", "sh -c undrain"
    assert fleet[0].commands == [
        STATE, UPDATE, MADISON, drain, install_command(PKG, "2"), QUERY, HEALTH, undrain,
        QUERY, drain, install_command(PKG, "1", allow_downgrades=True), QUERY, HEALTH, undrain,
    ]
    # h2 was never undrained, so it is not drained twice.
    assert fleet[1].commands[-5:] == [QUERY, install_command(PKG, "1", allow_downgrades=True), QUERY, HEALTH, undrain]


def test_an_unhealthy_host_is_reported_with_the_url_its_own_config_gives() -> None:
    """The host's config.ini moved the service to port 9100: the failure names the URL probed there."""
    fleet = hosts("h1", site_url="http://127.0.0.1:9100/health")
    report, _ = run_deploy(fleet, version="3", health_timeout=1)
    assert report.hosts[0].state == "rolled-back"
    assert "not healthy within 1 s: http://127.0.0.1:9100/health" in (report.hosts[0].error or "")


def test_the_health_probe_follows_the_site_config_of_the_packaged_gunicorn_conf(tmp_path: Path) -> None:
    """The probe (run here without systemd-run) reads the port from the host's config.ini through the packaged
    gunicorn.conf.py, answers 0 when the service answers there, and falls back to the given URL without one. The
    package's health path needs 2xx even when deploy has none configured on its side (run outside the service's
    directory); a package built without one is probed on its main page, any answer below 500."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from tests.unit.test_build_templates import render

    class Health(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response({"/health": 200, "/broken": 500}.get(self.path, 404))
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Health)
    port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        conf = render(tmp_path / "pkg", port=8001, health_path="/health") / "gunicorn.conf.py"
        site = tmp_path / "config.ini"
        site.write_text(f"[server]\nport = {port}\n")
        # The host's /etc/orders-api/config.ini, here.
        conf.write_text(conf.read_text().replace('"/etc/orders-api/config.ini"', repr(str(site))))
        argv = shlex.split(health_command(PKG, "http://127.0.0.1:1/health"))
        probe = argv[argv.index("/usr/bin/python3"):]
        probe[0] = sys.executable
        probe[-2] = str(conf)
        answered = subprocess.run(probe, capture_output=True, text=True, timeout=60)
        assert answered.returncode == 0, answered.stderr
        assert answered.stdout.strip() == f"http://127.0.0.1:{port}/health"
        probe[-2] = str(tmp_path / "no-such-package" / "gunicorn.conf.py")
        fallback = subprocess.run(probe, capture_output=True, text=True, timeout=60)
        assert fallback.returncode != 0 and fallback.stdout.strip() == "http://127.0.0.1:1/health"

        def probed(health_path: str | None, any_answer: bool) -> tuple[int, str]:
            paths = {"health_path": health_path} if health_path else {}
            conf = render(tmp_path / f"pkg-{health_path}-{any_answer}".replace("/", ""), port=8001, **paths
                          ) / "gunicorn.conf.py"
            conf.write_text(conf.read_text().replace('"/etc/orders-api/config.ini"', repr(str(site))))
            argv = shlex.split(health_command(PKG, "http://127.0.0.1:1/", any_answer=any_answer))
            probe = argv[argv.index("/usr/bin/python3"):]
            probe[0], probe[-2] = sys.executable, str(conf)
            answered = subprocess.run(probe, capture_output=True, text=True, timeout=60)
            return answered.returncode, answered.stdout.strip()

        assert probed("/broken", any_answer=True) == (1, f"http://127.0.0.1:{port}/broken")
        assert probed("/health", any_answer=True) == (0, f"http://127.0.0.1:{port}/health")
        assert probed(None, any_answer=False) == (0, f"http://127.0.0.1:{port}/")  # 404: up, no health route
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.mark.parametrize(
    ("status", "any_answer", "healthy"),
    [(200, False, True), (404, False, False), (404, True, True), (401, True, True), (500, True, False),
     (503, True, False)],
)
def test_health_probe_takes_any_answer_below_500_only_without_a_health_path(
    status: int, any_answer: bool, healthy: bool, tmp_path: Path
) -> None:
    """The probe (run here without systemd-run) against a local server: a configured health path needs 2xx,
    the main page of a service without one any answer below 500."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        argv = shlex.split(health_command(PKG, f"http://127.0.0.1:{server.server_port}/", any_answer=any_answer))
        probe = argv[argv.index("/usr/bin/python3"):]
        probe[0] = sys.executable
        probe[-2] = str(tmp_path / "no-such-package" / "gunicorn.conf.py")
        result = subprocess.run(probe, capture_output=True, text=True, timeout=60)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert (result.returncode == 0) is healthy, result.stderr


def test_deploy_without_a_health_path_says_what_counts_as_healthy(caplog: pytest.LogCaptureFixture) -> None:
    """A dry run without health_path logs that the package's own health path is probed, else any answer below 500
    on / is taken."""
    with caplog.at_level(logging.INFO):
        report = deploy(DeployOptions(version="2", name=PKG, hosts=("h1",), dry_run=True))
    assert report.plan[0].commands[-1] == f"until healthy: {HEALTH}"
    assert ("no health_path configured here: each host probes the package's own health path, and for a package "
            "without one any HTTP answer below 500 on / counts as healthy") in caplog.text


def test_without_a_health_path_the_packaged_conf_gives_only_the_main_page(tmp_path: Path) -> None:
    """gunicorn.conf.py of a service without health_path names the main page and no health URL, so deploy and
    check probe `/` and take any answer below 500."""
    import runpy

    from tests.unit.test_build_templates import render

    plain = runpy.run_path(str(render(tmp_path / "plain", port=8001) / "gunicorn.conf.py"))
    assert plain["_main_url"] == "http://127.0.0.1:8001/" and "_health_url" not in plain
    checked = runpy.run_path(str(render(tmp_path / "checked", port=8001, health_path="/ready") / "gunicorn.conf.py"))
    assert checked["_health_url"] == "http://127.0.0.1:8001/ready"


def mixed_fleet(**kwargs: object) -> list[FakeHost]:
    """Two bookworm hosts and a trixie host, each repository suite with its release's builds of 1-1 and 2-1."""
    fleet = hosts("b1", "t1", "b2", installed="1-1+deb12", available=("1-1+deb12", "2-1+deb12"), **kwargs)
    fleet[1].release, fleet[1].installed, fleet[1].available = "trixie", "1-1+deb13", ("1-1+deb13", "2-1+deb13")
    return fleet


@pytest.mark.parametrize("version", ["2-1+deb12", "2-1+deb13", "2-1"])
def test_a_mixed_fleet_gets_each_hosts_release_build(version: str) -> None:
    """A bookworm and trixie fleet: each host installs the build of its release, whichever one (or none) was named."""
    fleet = mixed_fleet()
    report, _ = run_deploy(fleet, version=version)
    assert report.result == "success"
    assert [(h.host, h.before, h.after) for h in report.hosts] == [
        ("b1", "1-1+deb12", "2-1+deb12"), ("t1", "1-1+deb13", "2-1+deb13"), ("b2", "1-1+deb12", "2-1+deb12")]
    # The first host of each release lists its suite in preflight; the other bookworm host only reads its release.
    assert fleet[0].commands[:3] == fleet[1].commands[:3] == [STATE, UPDATE, MADISON]
    assert fleet[2].commands == [STATE, *upgrade_commands("2-1+deb12")]
    assert install_command(PKG, "2-1+deb13") in fleet[1].commands


def test_a_release_without_its_build_changes_no_host() -> None:
    """Only bookworm builds published: the trixie host's suite lacks 2-1+deb13, exit 2 naming it, nothing installed."""
    fleet = mixed_fleet()
    fleet[1].available = ("1-1+deb13",)
    with pytest.raises(MicrodeployError) as caught:
        run_deploy(fleet, version="2-1+deb12")
    assert caught.value.exit_code == 2
    assert caught.value.message == (
        "version 2-1+deb12 of orders-api is not in the APT repository of t1 (available: 1-1+deb13), "
        "nor 2-1+deb13 for its trixie; no host was changed")
    assert not [c for host in fleet for c in host.commands if "install" in c]


def test_a_package_without_a_release_suffix_is_installed_as_named() -> None:
    """A build without +debN (e.g. an older one) is installed as named on a host of any release."""
    fleet = hosts("b1", installed="1-1", available=("1-1", "2-1"))
    report, _ = run_deploy(fleet, version="2-1")
    assert (report.hosts[0].after, report.result) == ("2-1", "success")


def test_the_hosts_release_is_read_from_os_release() -> None:
    """VERSION_CODENAME names the release, quoted or not; a release microdeploy does not build for, or none, is None;
    so is one printed where the command did not get as far as the mark."""
    mark = deploy_commands.STATE_MARK

    def release(text: str, exit_code: int = 0, shown: str = f"installed 1-1\n{mark}\n") -> str | None:
        _, dist = deploy_commands.parse_state(CommandResult(exit_code, shown + text))
        return dist.codename if dist else None

    assert release('NAME="Debian GNU/Linux"\nVERSION_CODENAME=trixie\n') == "trixie"
    assert release("VERSION_CODENAME='bookworm'\n") == "bookworm"
    assert release("VERSION_CODENAME=bullseye\n") is None
    assert release("ID=debian\n") is None
    assert release("VERSION_CODENAME=trixie\n", 1, "\n" + mark + "\n") == "trixie"
    assert release("VERSION_CODENAME=trixie\n", shown="") is None


def test_one_round_trip_reads_the_installed_version_and_the_release() -> None:
    """state_command's output: dpkg-query's answer (none when dpkg never heard of the package), the mark, os-release."""
    mark = deploy_commands.STATE_MARK
    trixie = "VERSION_CODENAME=trixie\n"
    assert deploy_commands.parse_state(CommandResult(0, f"installed 1.2-1\n{mark}\n{trixie}"))[0] == "1.2-1"
    assert deploy_commands.parse_state(CommandResult(0, f"config-files 1.2-1\n{mark}\n{trixie}"))[0] is None
    assert deploy_commands.parse_state(CommandResult(0, f"\n{mark}\n{trixie}")) == (None, DISTS["trixie"])
    command = deploy_commands.state_command(PKG)
    assert command.startswith(QUERY + "; ") and f"; {RELEASE}; " in command
    assert command.endswith("; cat /etc/apt/preferences.d/microdeploy-orders-api.pref 2>/dev/null || true")


def puppet_pin(version: str, package: str = PKG) -> str:
    """The preferences file as the Puppet module's apt_preferences.epp writes it."""
    return (f"# Managed by Puppet (microdeploy::service[{package}]); local changes are overwritten.\n"
            f"# Keeps {package} at the version Hiera pins: `apt-get upgrade` does not move\n"
            "# past it. Puppet rewrites this file when the pin in Hiera changes.\n"
            f"Package: {package}\nPin: version {version}\nPin-Priority: 1001\n")


def test_the_puppet_modules_pin_is_read_from_the_state() -> None:
    """The pinned version (a pattern for every release's build) after the mark; none without the file or for
    another package; the release is read as before."""
    def pin(text: str) -> str | None:
        result = CommandResult(0, f"installed 1-1\n{deploy_commands.STATE_MARK}\nVERSION_CODENAME=trixie\n\n"
                                  f"{deploy_commands.PIN_MARK}\n{text}")
        assert deploy_commands.parse_state(result) == ("1-1", DISTS["trixie"])
        return deploy_commands.parse_pin(result, PKG)

    assert pin(puppet_pin("1.4.0-1")) == "1.4.0-1"
    assert pin(puppet_pin("1.4.0-1+deb*")) == "1.4.0-1+deb*"
    assert pin("") is None
    assert pin(puppet_pin("2.0-1", package="billing")) is None
    assert deploy_commands.pin_path("gtk+-svc") == "/etc/apt/preferences.d/microdeploy-gtk_-svc.pref"


def test_a_host_whose_puppet_pin_holds_another_version_is_named_and_still_deployed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """apt installs NAME=V whatever the pin says, and the next Puppet run puts the pinned version back: deploy goes
    ahead and says so, once for the hosts of one pin; a pin on the deployed version (any release's build) is quiet."""
    fleet = hosts("h1", "h2", "h3", "h4", installed="1-1", available=("1-1", "2-1+deb12"))
    fleet[0].pin = fleet[1].pin = puppet_pin("1-1")
    fleet[2].pin = puppet_pin("2-1+deb*")
    with caplog.at_level(logging.WARNING):
        report, _ = run_deploy(fleet, version="2-1")
    assert report.result == "success"
    assert [h.after for h in report.hosts] == ["2-1+deb12"] * 4
    assert [record.getMessage() for record in caplog.records] == [
        "h1, h2: the Puppet module pins orders-api at 1-1 there (/etc/apt/preferences.d/microdeploy-orders-api.pref), "
        "so its next run puts 1-1 back; to keep the new version, pin it in Hiera (microdeploy puppet-data --version "
        "2-1)"]


def test_ctrl_c_during_a_health_check_reports_the_host_as_it_is_and_rolls_nothing_back() -> None:
    """Ctrl-C while host 1 of three (one per batch) waits for health on a broken version: the rollout stops at
    once, host 1 is reported `interrupted` at the version it is at, nothing is rolled back and no later batch is
    touched; exit status 130. (It printed `error: interrupted` and nothing else.)"""
    fleet = hosts("h1", "h2", "h3")
    network = FakeNetwork(fleet)
    clock = FakeClock()

    def sleep(seconds: float) -> None:
        clock.sleep(seconds)
        raise KeyboardInterrupt

    options = DeployOptions(version="3", name=PKG, hosts=("h1,h2,h3",), batch="1", health_path="/health")
    report = deploy(options, connect=network, now=clock.now, sleep=sleep)
    assert (report.result, report.exit_code) == ("interrupted", 130)
    assert [(h.host, h.before, h.after, h.state) for h in report.hosts] == [
        ("h1", "1", "3", "interrupted"), ("h2", "1", "1", "untouched"), ("h3", "1", "1", "untouched")]
    assert fleet[0].installed == "3" and not [c for c in fleet[0].commands if c.endswith("=1")]
    assert fleet[1].commands == fleet[2].commands == [STATE]  # the preflight alone
    assert report.as_dict()["result"] == "interrupted"


def test_ctrl_c_reaches_a_parallel_batch_without_waiting_for_its_health_timeouts() -> None:
    """Two hosts in one batch, each in its own thread, polling the health of a broken version: Ctrl-C reaches the
    main thread, and both hosts end at their next poll instead of at the end of --health-timeout (it was held
    that long, then the batch rolled back as if nothing had happened)."""
    fleet = hosts("h1", "h2")
    network = FakeNetwork(fleet)
    clock = FakeClock()
    lock = threading.Lock()
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        with lock:
            clock.sleep(seconds)
            sleeps.append(seconds)
            if len(sleeps) == 2:
                os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C: Python takes it in the main thread
        time.sleep(0.05)

    options = DeployOptions(version="3", name=PKG, hosts=("h1,h2",), batch="100%", health_path="/health",
                            health_timeout=600)
    report = deploy(options, connect=network, now=clock.now, sleep=sleep)
    assert (report.result, report.exit_code) == ("interrupted", 130)
    assert [(h.host, h.after, h.state) for h in report.hosts] == [("h1", "3", "interrupted"),
                                                                  ("h2", "3", "interrupted")]
    polls = [command for host in fleet for command in host.commands if command.startswith("systemd-run")]
    assert len(polls) <= 6, len(polls)  # not 600 s of them
    assert all(host.installed == "3" for host in fleet)


def test_a_failed_install_names_dpkgs_reason_from_its_standard_output() -> None:
    """dpkg and the maintainer scripts write their errors to stdout, apt only its summary to stderr: the report
    showed "E: Sub-process /usr/bin/dpkg returned an error code (1)" alone (a masked unit, a full disk)."""
    from microdeploy.deploy_hosts import tail

    result = CommandResult(
        100,
        "Reading package lists...\nUnpacking mdtest-svc (2.0-1) over (1.0-1) ...\nSetting up mdtest-svc (2.0-1) ...\n"
        "Failed to enable unit: Unit file /etc/systemd/system/mdtest-svc.service is masked.\n"
        "dpkg: error processing package mdtest-svc (--configure):\n installed mdtest-svc package post-installation "
        "script subprocess returned error exit status 1\nErrors were encountered while processing:\n mdtest-svc\n",
        "debconf: delaying package configuration, since apt-utils is not installed\n"
        "E: Sub-process /usr/bin/dpkg returned an error code (1)\n")
    assert tail(result).splitlines() == [
        "    Failed to enable unit: Unit file /etc/systemd/system/mdtest-svc.service is masked.",
        "    dpkg: error processing package mdtest-svc (--configure):",
        "     installed mdtest-svc package post-installation script subprocess returned error exit status 1",
        "    Errors were encountered while processing:",
        "    debconf: delaying package configuration, since apt-utils is not installed",
        "    E: Sub-process /usr/bin/dpkg returned an error code (1)",
    ]
    # Nothing on stderr, no error words: the end of stdout.
    assert tail(CommandResult(1, "a\nb\n", "")) == "    a\n    b"


@pytest.mark.parametrize("status", ["half-configured", "unpacked", "half-installed"])
def test_a_host_whose_dpkg_did_not_finish_the_package_stops_the_rollout_before_any_change(status: str) -> None:
    """A failed postinst (a masked unit) left 2 half-configured on h2: taken for "not installed", the rollback
    after a failed install ran nothing and reported it "removed" (or would remove it). The preflight names the host
    and dpkg's state, and nothing runs on any host."""
    fleet = hosts("h1", "h2")
    fleet[1].installed, fleet[1].status = "2", status
    with pytest.raises(MicrodeployError) as caught:
        run_deploy(fleet, version="3")
    assert caught.value.message == (f"dpkg did not finish an earlier install or removal of {PKG}; no host was "
                                    f"changed:\n    h2: {PKG} is {status} 2")
    assert "dpkg --configure -a" in (caught.value.hint or "")
    assert not [command for host in fleet for command, _ in host.log if "install" in command or "update" in command]


def test_a_rollback_that_fails_makes_the_result_rollback_failed() -> None:
    """The broken version 3 fails its health check, and version 1 is no longer in the repository to go back to:
    the host is rollback-failed, and so is the result (it said rolled-back)."""
    fleet = hosts("h1")
    fleet[0].available = ("2", "3")
    report, _ = run_deploy(fleet, version="3")
    assert [(h.after, h.state) for h in report.hosts] == [("3", "rollback-failed")]
    assert report.result == "rollback-failed"


@pytest.mark.parametrize(("said", "hint"), [
    # apt 2.6 on a host that has the repository's key from before `publish --rotate-key`.
    ("W: GPG error: http://10.0.0.1/repo bookworm InRelease: The following signatures couldn't be verified because "
     "the public key is not available: NO_PUBKEY 5A1B2C3D4E5F6071\n"
     "E: The repository 'http://10.0.0.1/repo bookworm InRelease' is not signed.\n",
     "Give h1 the repository's current public key"),
    # A host whose clock is a day behind the repository's Release date.
    ("E: Release file for http://10.0.0.1/repo/dists/bookworm/InRelease is not valid yet (invalid for another 23h "
     "59min 58s). Updates for this repository will not be applied.\n", "Set h1's clock right"),
])
def test_a_key_the_host_lacks_or_its_clock_gets_its_own_hint(said: str, hint: str) -> None:
    """The generic "Fix the host's APT configuration" sent the operator looking at the network for a rotated key
    or a clock behind."""
    fleet = hosts("h1")
    fleet[0].update_error = said
    with pytest.raises(MicrodeployError) as caught:
        run_deploy(fleet)
    assert "h1: refreshing the APT lists failed (exit status 100); no host was changed" in caught.value.message
    assert (caught.value.hint or "").startswith(hint)


def test_json_gets_an_object_when_the_rollout_does_not_start(tmp_path: Path) -> None:
    """--json printed nothing on stdout when deploy failed before any host changed (bad input, a host it cannot
    resolve): a CI job reading stdout gets the error and the exit status too."""
    result = CliRunner().invoke(main, ["deploy", PKG, "--version", "2", "--hosts", "h1,h1", "--json"])
    assert result.exit_code == 2, result.output
    data = json.loads(result.stdout)
    assert (data["result"], data["exit_code"], data["hosts"]) == ("not-started", 2, [])
    assert data["error"] == "host 'h1' is listed twice"
    assert "host 'h1' is listed twice" in result.stderr
