"""The checks on a fresh host of the package's release, booted with systemd: install to purge.

One host per run, in its own network namespace; its only way out is our
feed on 10.231.N.1 (the --repo repository and the release's mirror). The
checks run in order, and after the first failure the rest are reported as
not run: each builds on the one before.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import stat
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from debian.debian_support import Version

from microdeploy.errors import MicrodeployError
from microdeploy.mirrors import release_mirrors
from microdeploy.process import output_tail
from microdeploy.repo import KEYRING_NAME, sources_snippet
from microdeploy.testbed.host import Host, boot
from microdeploy.testbed.image import unpacked
from microdeploy.testbed.network import Netns, create_netns, delete_netns

from .feed import Feed, serving_feed
from .package import DebInfo, higher_version_hint
from .report import FAILED, PASSED, SKIPPED, Outcome
from .service import ServiceProbe, failure

__all__ = ["HostPlan", "host_checks"]

log = logging.getLogger(__name__)

APT_TIMEOUT = 600.0
SETUP_TIMEOUT = 600.0
SYSTEMCTL_TIMEOUT = 120.0
JOURNAL_LINES = 30

# Where the packages are put inside the host (not /tmp: a tmpfs there).
_INBOX = "/var/tmp/microdeploy-check"
_SOURCES = "/etc/apt/sources.list.d/microdeploy-check.sources"
_KEYRING = f"/etc/apt/keyrings/{KEYRING_NAME}"
_UNMET = re.compile(r"^\s*\S+ : (?:Pre-)?Depends: ")
_APT = ["apt-get", "-q", "-y", "--no-install-recommends", "-o", "Dpkg::Options::=--force-confold"]

# What apt, dpkg, systemd and adduser keep for themselves, and what the check
# itself puts on the host: never counted as left behind by the package.
_BOOKKEEPING = (
    "var/lib/apt/", "var/cache/apt/", "var/lib/dpkg/", "var/cache/debconf/", "var/lib/systemd/",
    "var/log/apt/", "var/log/journal/", "var/log/dpkg.log", "var/log/alternatives.log",
    "var/log/lastlog", "var/log/wtmp", "var/log/btmp", "var/cache/ldconfig/", "etc/ld.so.cache",
    "etc/passwd-", "etc/group-", "etc/shadow-", "etc/gshadow-", "etc/subuid-", "etc/subgid-",
    "etc/apt/", "var/tmp/", "root/", "var/lib/ucf/",
)

# Timers start housekeeping on their own schedule (dpkg-db-backup and logrotate
# at midnight, apt's daily jobs at random times): what they write under
# /var/backups and /var/lib/logrotate would count as left behind by the
# package if the check ran past midnight, so its host starts no timer at all.
_MASKED = ("timers.target",)


# systemd-analyze's scale: a unit without hardening scores 9.2, microdeploy's 1.2; SPEC's bar is its "OK", 1.5.
DEFAULT_MAX_EXPOSURE = 1.5


@dataclass(frozen=True)
class HostPlan:
    """What to do on the host."""

    info: DebInfo
    release: str
    image: Path
    previous: DebInfo | None = None
    previous_version: str | None = None
    repo_public: Path | None = None
    repo_dist: str = ""
    max_exposure: float = DEFAULT_MAX_EXPOSURE
    # The administrator's part (check --setup): a script run as root once the package is installed.
    setup: Path | None = None

    @property
    def upgrades(self) -> bool:
        """Whether a previous version is installed first and upgraded from."""
        return self.previous is not None or self.previous_version is not None


def host_checks(plan: HostPlan, record: Callable[[Outcome], None], stack: ExitStack) -> None:
    """Run the host checks in order, recording each outcome; `stack` tears the host down."""
    run = _OnHost(plan, stack)
    names: list[tuple[str, Callable[[], str]]] = [("install", run.install)]
    if plan.setup is not None:
        names.append(("setup", run.setup))
    if plan.upgrades:
        names.append(("upgrade", run.upgrade))
    if plan.info.has_unit:
        names += [
            ("unit", lambda: run.probe.wait_started()),
            ("user", lambda: run.probe.user()),
            ("exposure", lambda: run.probe.exposure(plan.max_exposure)),
            ("health", lambda: run.probe.health()),
            ("logs", lambda: run.probe.logs()),
            ("restart", lambda: run.probe.restart()),
        ]
    names.append(("purge", run.purge))
    blocked = ""
    for name, check in names:
        if blocked:
            record(Outcome(name, SKIPPED, f"not run: {blocked} failed"))
            continue
        started = time.monotonic()
        try:
            summary = check()
        except MicrodeployError as exc:
            reason, _, details = exc.message.partition("\n")
            record(Outcome(name, FAILED, reason, time.monotonic() - started, run.with_journal(details)))
            blocked = name
            continue
        record(Outcome(name, PASSED, summary, time.monotonic() - started))
    if not plan.info.has_unit:
        record(Outcome("service", SKIPPED, f"the package ships no {plan.info.unit}"))


def leftovers(after_purge: set[str], before: set[str], made_by_setup: set[str]) -> list[str]:
    """The paths a purge left behind: new since `before` (the host before the package), in order.

    What the setup script made is the administrator's, not the package's
    to remove; so are the directories that hold it (the package's postrm
    cannot remove /etc/NAME with a file of theirs in it), and what grows
    inside it once the service runs (the tables the service makes in the
    database the script created, files of the database server's).
    """
    holders = {parent.as_posix() for made in made_by_setup for parent in PurePosixPath(made).parents}
    return sorted(path for path in after_purge - before - made_by_setup
                  if path not in holders
                  and not any(parent.as_posix() in made_by_setup for parent in PurePosixPath(path).parents))


class _OnHost:
    """The host of one run, booted by `install`, and what the checks learn on the way."""

    def __init__(self, plan: HostPlan, stack: ExitStack) -> None:
        self.plan = plan
        self.stack = stack
        self._host: Host | None = None
        self._netns: Netns | None = None
        self.feed: Feed | None = None
        self.before: set[str] = set()
        self.admin_config = ""
        self.made_by_setup: set[str] = set()

    @property
    def host(self) -> Host:
        """The booted host (install boots it)."""
        if self._host is None:
            raise MicrodeployError("the host is not booted")
        return self._host

    @property
    def probe(self) -> ServiceProbe:
        """The service checks on this host."""
        return ServiceProbe(self.host, self.plan.info)

    def with_journal(self, details: str) -> str:
        """A failure's details followed by the last lines of the unit's journal."""
        if self._host is None or not self._host.is_alive():
            return details
        unit = self.plan.info.unit if self.plan.info.has_unit else None
        journal = self._host.journal(unit, lines=JOURNAL_LINES).rstrip()
        heading = f"--- journal of {unit or 'the host'} (last {JOURNAL_LINES} lines) ---"
        return f"{details}\n{heading}\n{journal}".strip()

    def _set_host(self, host: Host) -> None:
        """Take the host as ours (torn down by _poweroff) the moment it exists."""
        self._host = host

    def _poweroff(self) -> None:
        """Power the host off and remove it, if one was booted."""
        if self._host is not None:
            self._host.poweroff()

    def _delete_netns(self) -> None:
        """Delete the host's network namespace, if one was made."""
        if self._netns is not None:
            delete_netns(self._netns)

    def install(self) -> str:
        """Boot the host, then install the package (or its previous version) with apt."""
        plan = self.plan
        started = time.monotonic()
        # The tear-down is registered before each thing exists: an interrupt
        # right after it is made must not leave it behind.
        self.stack.callback(self._delete_netns)
        self._netns = netns = create_netns()
        self.stack.callback(self._poweroff)
        host = boot(plan.image, netns=netns, wait=False, booted=self._set_host, masked=_MASKED)
        mirrors = release_mirrors(plan.release)
        self.feed = self.stack.enter_context(serving_feed(netns.host_address, mirrors, plan.repo_public))
        host.wait_until_running()
        booted = time.monotonic() - started
        debs = [plan.info] + ([plan.previous] if plan.previous else [])
        for deb in debs:
            host.copy_in(deb.path, f"{_INBOX}/{deb.path.name}")
        if plan.previous is not None:
            target, what = f"{_INBOX}/{plan.previous.path.name}", f"{plan.previous.version} (previous)"
        elif plan.previous_version is not None:
            target, what = f"{plan.info.name}={plan.previous_version}", f"{plan.previous_version} (previous)"
        else:
            target, what = f"{_INBOX}/{plan.info.path.name}", plan.info.version
        sources = self._sources()
        if plan.info.has_unit:
            self._named_apart_from_debian()
        else:
            self._above_debians_own()
        self._dependencies_first(debs)
        self.before = self._changed_paths()
        self._apt("install", target)
        return f"{plan.release} host booted in {booted:.1f} s; {what} installed with apt{sources}"

    def upgrade(self) -> str:
        """With the administrator's config.ini in place, upgrade to the package; config.ini stays as it was."""
        name = self.plan.info.name
        config = f"/etc/{name}/config.ini"
        written = self.host.run(["cat", config], check=False, timeout=30)
        if written.returncode == 0:
            self.admin_config = written.stdout  # the setup script's
        else:
            self.admin_config = (
                f"# The administrator's settings, written by microdeploy check ({secrets.token_hex(6)}).\n"
                "# An upgrade must keep this file as it is.\n"
            )
            self.host.run(["mkdir", "-p", f"/etc/{name}"], timeout=30)
            self.host.run(["tee", config], input=self.admin_config, timeout=30)
        self._apt("install", f"{_INBOX}/{self.plan.info.path.name}")
        version = self.host.run(["dpkg-query", "-W", "-f=${Version}", name], timeout=30).stdout
        if version != self.plan.info.version:
            raise failure(f"after the upgrade dpkg has {name} {version}, not {self.plan.info.version}")
        kept = self.host.run(["cat", config], check=False, timeout=30)
        if kept.returncode != 0:
            raise failure(f"the upgrade removed the administrator's {config}")
        if kept.stdout != self.admin_config:
            raise failure(f"the upgrade changed the administrator's {config}", kept.stdout)
        return f"upgraded to {version}; the administrator's {config} kept as it was"

    def setup(self) -> str:
        """Run the --setup script as root on the host, the service stopped meanwhile, then start the service."""
        assert self.plan.setup is not None
        info, host = self.plan.info, self.host
        if info.has_unit:
            # Stopped, the service writes nothing that would count as the script's.
            host.run(["systemctl", "stop", info.unit], timeout=SYSTEMCTL_TIMEOUT)
        script = f"{_INBOX}/setup"
        host.copy_in(self.plan.setup, script)
        host.run(["chmod", "0700", script], timeout=30)
        untouched = self._changed_paths()
        started = time.monotonic()
        # A script without #! is a shell script, stopped at its first failing command.
        argv = [script] if self.plan.setup.read_bytes().startswith(b"#!") else ["/bin/sh", "-e", script]
        result = host.run(argv, check=False, timeout=SETUP_TIMEOUT)
        host.run(["rm", "-f", script], timeout=30)
        if result.returncode != 0:
            raise failure(f"the setup script {self.plan.setup.name} exited with status {result.returncode}",
                          output_tail(result.stdout + result.stderr))
        seconds = time.monotonic() - started
        self.made_by_setup = self._changed_paths() - untouched
        if not info.has_unit:
            return f"{self.plan.setup.name} ran as root ({seconds:.1f} s)"
        # A unit that failed before the administrator's part may have hit its start limit.
        host.run(["systemctl", "reset-failed", info.unit], check=False, timeout=SYSTEMCTL_TIMEOUT)
        host.run(["systemctl", "start", "--no-block", info.unit], timeout=SYSTEMCTL_TIMEOUT)
        return f"{self.plan.setup.name} ran as root ({seconds:.1f} s), {info.unit} stopped meanwhile and started again"

    def purge(self) -> str:
        """Purge the package: nothing it made is left on the host."""
        name = self.plan.info.name
        if self.admin_config:
            # The administrator's file is theirs to remove, not the package's.
            self.host.run(["rm", "-f", f"/etc/{name}/config.ini"], timeout=30)
        self._apt("purge", name)
        left = leftovers(self._changed_paths(), self.before, self.made_by_setup)
        if left:
            shown = ", ".join(f"/{path}" for path in left[:5]) + (f" and {len(left) - 5} more" if len(left) > 5 else "")
            raise failure(f"purge left {len(left)} path(s) behind: {shown}", "\n".join(f"/{p}" for p in left))
        return f"purged; nothing of {name} left behind"

    def _sources(self) -> str:
        """Give the host our feed as its APT sources (Debian's archive, and --repo if given); say which."""
        plan = self.plan
        assert self.feed is not None
        stanzas = [self.feed.mirror_sources()]
        if plan.repo_public is not None:
            self.host.copy_in(plan.repo_public / KEYRING_NAME, _KEYRING)
            stanzas.append(sources_snippet(f"{self.feed.url}repo/", _KEYRING, plan.repo_dist))
        self.host.run(["tee", _SOURCES], input="\n".join(stanzas), timeout=30)
        update = self.host.run(["apt-get", "-q", "update"], check=False, timeout=APT_TIMEOUT)
        if update.returncode != 0 or "\nW: " in f"\n{update.stderr}" or "\nE: " in f"\n{update.stderr}":
            raise failure("apt-get update on the host failed", update.stdout + update.stderr)
        return " (dependencies from Debian" + (" and --repo)" if plan.repo_public else ")")

    def _dependencies_first(self, debs: list[DebInfo]) -> None:
        """Install what the packages depend on before the snapshot that purge compares with: what the
        dependencies install and make (git's files, PostgreSQL's cluster, their alternatives) is theirs, and stays
        when the package is purged (postgresql-common keeps apt's autoremove off its server packages)."""
        relations = ", ".join(deb.depends for deb in debs if deb.depends.strip())
        if relations:
            # An unmet dependency fails the package's own install below, with apt's words.
            self.host.run([*_APT, "satisfy", relations], check=False, timeout=APT_TIMEOUT)

    def _named_apart_from_debian(self) -> None:
        """A service's package name is no package of Debian's archive.

        apt takes two packages of one name for versions of one package: it
        installs whichever version is higher, so `apt install NAME` may give
        Debian's, and once Debian's is the higher `apt upgrade` replaces the
        service (its venv, its unit, its /var/lib/NAME) on every host.
        """
        name = self.plan.info.name
        debians, listed = self._archive_versions()
        if debians:
            raise failure(
                f"{name} is also a package of Debian's archive ({', '.join(f'{v} in {s}' for v, s in debians)}): apt "
                "would take the service and it for one package and install the higher version; build the service "
                "under another --name", listed)

    def _above_debians_own(self) -> None:
        """A library's package (stdeb's python3-NAME) sorts above Debian's of its name, if Debian has one: apt
        installs the higher version, and upgrades a host that has the lower one to the higher."""
        ours = Version(self.plan.info.version)
        debians, listed = self._archive_versions()
        above = [(Version(version), suite) for version, suite in debians if Version(version) >= ours]
        if above:
            shown = ", ".join(f"{version} in {suite}" for version, suite in above)
            highest = max(version for version, _ in above)
            raise failure(f"{self.plan.info.name} {ours} is not above Debian's own ({shown}): apt installs Debian's, "
                          "and upgrades a host that has this one to it; use Debian's package, or build this one with "
                          f"a higher version ({higher_version_hint(ours, highest)})", listed)

    def _archive_versions(self) -> tuple[list[tuple[str, str]], str]:
        """The versions of the package's name in Debian's archive, with their suites, and apt-cache's words."""
        assert self.feed is not None
        listed = self.host.run(["apt-cache", "madison", self.plan.info.name], check=False, timeout=APT_TIMEOUT).stdout
        archive = f"{self.feed.url}mirror/"
        found = []
        for line in listed.splitlines():
            # "NAME | VERSION | URI SUITE/COMPONENT ARCH Packages"; --repo's and the inbox's are the package's own.
            fields = [field.strip() for field in line.split(" | ")]
            where = fields[2].split() if len(fields) == 3 else []
            if len(where) >= 2 and where[0].startswith(archive):
                found.append((fields[1], where[1]))
        return found, listed

    def _apt(self, action: str, target: str) -> None:
        """apt-get ACTION TARGET on the host; a failure carries apt's own last lines."""
        result = self.host.run([*_APT, action, target], check=False, timeout=APT_TIMEOUT)
        if result.returncode != 0:
            output = result.stdout + result.stderr
            lines = [line for line in output.splitlines() if line.strip()]
            # apt's own words on what is wrong, most telling first: an unmet
            # dependency, then dpkg's error, then apt's first error.
            why = next((line.strip() for line in lines if _UNMET.match(line)), "")
            why = why or next((line for line in lines if line.startswith("dpkg: error")), "")
            why = why or next((line for line in lines if line.startswith("E:")), "")
            raise failure(f"apt-get {action} {os.path.basename(target)} failed" + (f": {why}" if why else ""),
                          "\n".join(lines[-40:]))

    def _changed_paths(self) -> set[str]:
        """Paths the host has that its image has not (from the overlay's upper layer), bookkeeping left out."""
        upper = self.host.directory / "upper"
        lower = unpacked(self.plan.image)
        found: set[str] = set()
        for directory, dirnames, filenames in os.walk(upper):
            for entry in (*dirnames, *filenames):
                full = Path(directory) / entry
                relative = full.relative_to(upper).as_posix()
                mode = full.lstat()
                # A whiteout (0/0 character device) marks a path deleted from the image.
                if stat.S_ISCHR(mode.st_mode) and mode.st_rdev == 0:
                    continue
                if relative.startswith(_BOOKKEEPING) or (lower / relative).is_symlink() or (lower / relative).exists():
                    continue
                found.add(relative)
        return found
