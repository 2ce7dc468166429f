"""`microdeploy deploy`: a rolling apt upgrade of one service over SSH, with health checks and rollback.

The rollout, host by host:

1. preflight, before any host changes: parse and check every input; connect
   to every host (its host key verified against known_hosts) and record the
   installed version with `dpkg-query`; on the first host refresh the APT
   lists and make sure the repository has the wanted version;
2. batches in series, the hosts of a batch in parallel: drain hook,
   `apt-get update`, `apt-get install NAME=V` (the package's maintainer
   scripts restart the unit), poll the health URL on the host, undrain hook;
3. when more hosts failed than `--max-failures` allows, every host of the
   current batch gets its recorded version back (`--allow-downgrades`; a host
   that had none gets the package removed, not purged: its config and logs
   stay) and no later batch is touched. A failed host within the allowance is
   rolled back alone and the rollout goes on.

The SSH side lives behind the small `Remote` interface; `microdeploy.remote`
implements it with Fabric and tests inject a fake.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import re
import shlex
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

from debian.debian_support import Version as DebianVersion

from microdeploy import validate
from microdeploy.config import MICRODEPLOY_TOML, PYPROJECT, load_config
from microdeploy.config import validate as validate_config
from microdeploy.errors import EXIT_FAILURE, MicrodeployError, bad_input
from microdeploy.process import Runner, run
from microdeploy.repo import inspect_deb

log = logging.getLogger(__name__)

DEFAULT_BATCH = "1"
DEFAULT_HEALTH_TIMEOUT = 60.0
HEALTH_INTERVAL = 1.0
# One health request may take this long before it counts as a failed poll.
HEALTH_REQUEST_TIMEOUT = 5
# World-writable and not a tmpfs on the host, so it works for a non-root --user too;
# each upload goes into a fresh private directory there (mktemp -d: 0700, unpredictable).
REMOTE_DEB_DIR = "/var/tmp"
REMOTE_DIR_TEMPLATE = f"{REMOTE_DEB_DIR}/microdeploy.XXXXXXXXXX"
_REMOTE_DIR = re.compile(re.escape(REMOTE_DEB_DIR) + r"/microdeploy\.[A-Za-z0-9]{10}")
# apt-get and dpkg may wait on the dpkg lock or a slow maintainer script.
APT_TIMEOUT = 600.0

HOST_SPEC_RE = re.compile(
    r"(?:(?P<user>[^@\s]+)@)?(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[^:\s\[\]]+))(?::(?P<port>\d+))?"
)
BATCH_RE = re.compile(r"(?P<number>\d+)(?P<percent>%?)")
APT_SOURCE = validate.rule(r"/[A-Za-z0-9._/-]+\.(?:list|sources)", "the absolute path on the hosts of a .list or "
                           ".sources file, e.g. /etc/apt/sources.list.d/NAME.sources", 500)

# What dpkg-query prints for an installed package: `${db:Status-Status}` is
# "installed" only when fully configured ("config-files", "half-installed",
# ... are not an installed version to come back to).
DPKG_QUERY_FORMAT = "${db:Status-Status} ${Version}"


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


@dataclass(frozen=True)
class DeployOptions:
    """Everything `microdeploy deploy` was asked to do, unchecked (deploy() checks it)."""

    version: str | None = None
    name: str | None = None
    deb: Path | None = None
    hosts: tuple[str, ...] = ()
    hosts_file: Path | None = None
    batch: str = DEFAULT_BATCH
    user: str | None = None
    sudo: bool = False
    ssh_config: Path | None = None
    known_hosts: Path | None = None
    identity: Path | None = None
    accept_new_host_keys: bool = False
    connect_timeout: float = 10.0
    port: int | None = None
    health_path: str | None = None
    health_timeout: float = DEFAULT_HEALTH_TIMEOUT
    max_failures: int = 0
    drain: str | None = None
    undrain: str | None = None
    apt_source: str | None = None
    project: Path | None = None
    dry_run: bool = False


@dataclass(frozen=True)
class Rollout:
    """The checked plan: what to install where, in which batches, and how to check health."""

    package: str
    version: str
    batches: tuple[tuple[Target, ...], ...]
    port: int
    health_path: str
    health_timeout: float
    max_failures: int
    sudo: bool = False
    drain: str | None = None
    undrain: str | None = None
    apt_source: str | None = None
    deb: Path | None = None
    """A local .deb to upload and install instead of the repository's version."""

    @property
    def deb_name(self) -> str | None:
        """The name of the uploaded .deb in its private directory on each host."""
        if self.deb is None:
            return None
        return f"{self.package}_{self.version.replace(':', '%3a')}.deb"

    @property
    def targets(self) -> tuple[Target, ...]:
        """Every host, in rollout order."""
        return tuple(target for batch in self.batches for target in batch)

    @property
    def health_url(self) -> str:
        """The health URL, as seen on the host itself."""
        return f"http://127.0.0.1:{self.port}{self.health_path}"


@dataclass(frozen=True)
class HostReport:
    """What happened on one host."""

    host: str
    batch: int
    before: str | None
    after: str | None
    state: str
    """untouched, unchanged, upgraded, installed, failed, rolled-back, removed, rollback-failed"""
    healthy: bool | None = None
    seconds: float = 0.0
    health_seconds: float | None = None
    error: str | None = None

    def as_dict(self) -> dict[str, object]:
        """The JSON form of the report."""
        return {
            "host": self.host,
            "batch": self.batch,
            "before": self.before,
            "after": self.after,
            "state": self.state,
            "healthy": self.healthy,
            "seconds": round(self.seconds, 3),
            "health_seconds": None if self.health_seconds is None else round(self.health_seconds, 3),
            "error": self.error,
        }


@dataclass(frozen=True)
class PlannedHost:
    """The commands one host would run (dry run)."""

    host: str
    batch: int
    commands: tuple[str, ...]
    rollback: tuple[str, ...]


@dataclass(frozen=True)
class DeployReport:
    """The outcome of a rollout (or, for a dry run, its plan)."""

    package: str
    version: str
    result: str
    """success; rolled-back (stopped, the failing batch restored); completed-with-failures (every batch ran,
    the failed hosts within --max-failures restored); dry-run"""
    batches: tuple[tuple[str, ...], ...]
    hosts: tuple[HostReport, ...] = ()
    plan: tuple[PlannedHost, ...] = ()
    preflight: tuple[str, ...] = ()
    failures: int = 0
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        """0 when every host is healthy on the new version (or a dry run), 1 otherwise."""
        return 0 if self.result in ("success", "dry-run") else EXIT_FAILURE

    def summary_lines(self) -> list[str]:
        """The report for people: the plan of a dry run, else one line per host."""
        count = sum(len(batch) for batch in self.batches)
        if self.result == "dry-run":
            lines = [f"Plan: {self.package} {self.version} to {count} host(s) in {len(self.batches)} batch(es); "
                     "dry run, nothing is changed", "preflight, before any change:"]
            lines += [f"  {command}" for command in self.preflight]
            for planned in self.plan:
                lines.append(f"batch {planned.batch}, {planned.host}:")
                lines += [f"  $ {command}" for command in planned.commands]
                lines += [f"  on failure: {command}" for command in planned.rollback]
            return lines
        lines = [f"{self.package} {self.version}: {self.result}, {count} host(s) in {len(self.batches)} "
                 f"batch(es), {self.failures} failure(s), {self.seconds:.1f} s"]
        width = max(len(host.host) for host in self.hosts) if self.hosts else 0
        for host in self.hosts:
            health = {True: "healthy", False: "UNHEALTHY", None: "-"}[host.healthy]
            lines.append(f"  {host.host:<{width}}  batch {host.batch}  {host.before or 'none'} -> "
                         f"{host.after or 'none'}  {host.state}  {health}  {host.seconds:.1f} s")
            if host.error:
                lines += [f"      {line}" for line in host.error.splitlines()]
        return lines

    def as_dict(self) -> dict[str, object]:
        """The one JSON object `--json` prints."""
        data: dict[str, object] = {
            "package": self.package,
            "version": self.version,
            "result": self.result,
            "exit_code": self.exit_code,
            "batches": [list(batch) for batch in self.batches],
            "failures": self.failures,
            "seconds": round(self.seconds, 3),
            "hosts": [host.as_dict() for host in self.hosts],
        }
        if self.result == "dry-run":
            data["preflight"] = list(self.preflight)
            data["plan"] = [
                {"host": p.host, "batch": p.batch, "commands": list(p.commands), "rollback": list(p.rollback)}
                for p in self.plan
            ]
        return data


# ---------------------------------------------------------------------------
# Input checking


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


def split_batches(targets: Sequence[Target], batch: str) -> tuple[tuple[Target, ...], ...]:
    """Cut the hosts into batches of N hosts, or of P% of them (rounded down, at least one, like Ansible's serial)."""
    match = BATCH_RE.fullmatch(batch)
    if not match:
        raise bad_input(f"invalid batch {validate.shown(batch)} (from --batch)",
                        hint="Use a number of hosts such as 2, or a percentage such as 25%")
    number = int(match["number"])
    if match["percent"]:
        if not 1 <= number <= 100:
            raise bad_input(f"invalid batch {batch!r}", hint="Use a percentage from 1% to 100%")
        size = max(1, math.floor(len(targets) * number / 100))
    else:
        if number < 1:
            raise bad_input(f"invalid batch {batch!r}", hint="Use at least 1 host per batch")
        size = number
    return tuple(tuple(targets[i : i + size]) for i in range(0, len(targets), size))


def check_version(version: str) -> str:
    """A Debian version string, e.g. '1.4.0-1' or '2:1.0~rc1-3'."""
    return validate.check(validate.DEBIAN_VERSION, "version", version, "--version")


def make_rollout(options: DeployOptions, runner: Runner = run) -> Rollout:
    """Check every option and turn them into a rollout plan; raises bad_input on the first problem."""
    deb = inspect_deb(options.deb, runner).package if options.deb is not None else None
    if options.version is None and deb is None:
        raise bad_input("no version to deploy", hint="Pass --version V (the Debian version), or --deb FILE")
    version = check_version(options.version) if options.version is not None else deb.version if deb else ""
    name, port, health_path = _service(options, deb.name if deb else None)
    validate.check(validate.PACKAGE_NAME, "package name", name, "NAME" if options.name else "the service")
    if deb is not None and (deb.name, deb.version) != (name, version):
        raise bad_input(
            f"{options.deb} is {deb.name} {deb.version}, not {name} {version}",
            hint="Pass the .deb of the service and version you mean, or leave out NAME and --version",
        )
    specs = list(options.hosts)
    if options.hosts_file is not None:
        specs += read_hosts_file(options.hosts_file)
    specs = [spec for item in specs for spec in item.split(",") if spec.strip()]
    if not specs:
        raise bad_input("no hosts to deploy to", hint="Pass --hosts h1,h2,... or --hosts-file FILE")
    targets = [parse_target(spec, options.user) for spec in specs]
    seen: set[tuple[str, int | None]] = set()
    for target in targets:
        key = (target.host.lower(), target.port)
        if key in seen:
            raise bad_input(f"host {target.spec!r} is listed twice", hint="Name each host once")
        seen.add(key)
    if not 0 < options.health_timeout <= 3600:
        raise bad_input(f"invalid health timeout {options.health_timeout!r}", hint="Use 1 to 3600 seconds")
    if options.max_failures < 0:
        raise bad_input(f"invalid --max-failures {options.max_failures}", hint="Use 0 or more")
    if options.apt_source is not None:
        validate.check(APT_SOURCE, "APT source file", options.apt_source, "--apt-source")
    for hook_name, hook in (("--drain", options.drain), ("--undrain", options.undrain)):
        if hook is not None:
            validate.string(hook_name, hook, "the command line", "a one-line shell command", 4096)
        if hook is not None and not hook.strip():
            raise bad_input(f"empty {hook_name} command", hint=f"Pass a shell command or leave out {hook_name}")
    return Rollout(
        package=name,
        version=version,
        batches=split_batches(targets, options.batch),
        port=port,
        health_path=health_path,
        health_timeout=float(options.health_timeout),
        max_failures=options.max_failures,
        sudo=options.sudo,
        drain=options.drain,
        undrain=options.undrain,
        apt_source=options.apt_source,
        deb=options.deb,
    )


def _service(options: DeployOptions, deb_name: str | None = None) -> tuple[str, int, str]:
    """Package name, port and health path: flags over the service's configuration over defaults."""
    project = options.project
    if project is None and any((Path.cwd() / f).is_file() for f in (PYPROJECT, MICRODEPLOY_TOML)):
        project = Path.cwd()
    name = options.name or deb_name
    overrides = {"name": name, "port": options.port, "health_path": options.health_path}
    if project is not None:
        config = load_config(project, overrides)
        return config.name, config.port, config.health_path
    if name is None:
        raise bad_input(
            "no service to deploy",
            hint="Pass the package NAME, or run in the service's directory (or pass --project DIR)",
        )
    values = {key: (value, f"--{key.replace('_', '-')}") for key, value in overrides.items() if value is not None}
    values["name"] = (name, "NAME" if options.name else f"{options.deb}")
    config = validate_config(values)
    return config.name, config.port, config.health_path


# ---------------------------------------------------------------------------
# The remote commands (every word quoted)


def _apt_env() -> list[str]:
    # No debconf prompts, and keep an administrator's changed conffiles.
    return ["env", "DEBIAN_FRONTEND=noninteractive"]


def _dpkg_options() -> list[str]:
    return ["-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold"]


def query_command(package: str) -> str:
    """Print the installed version of the package (fails when dpkg never heard of it)."""
    return shlex.join(["dpkg-query", "--show", f"--showformat={DPKG_QUERY_FORMAT}", package])


def update_command(apt_source: str | None) -> str:
    """Refresh the APT lists, only from the service's source when one is named."""
    argv = [*_apt_env(), "apt-get", "update", "-q"]
    if apt_source is not None:
        # Only that file; List-Cleanup=0 because apt would otherwise delete the
        # lists of every other source it was not told about.
        parts = "Dir::Etc::sourceparts=-"
        argv += ["-o", f"Dir::Etc::sourcelist={apt_source}", "-o", parts, "-o", "APT::Get::List-Cleanup=0"]
    return shlex.join(argv)


def available_command(package: str) -> str:
    """List the versions of the package the APT lists know."""
    return shlex.join(["apt-cache", "madison", package])


def install_command(package: str, version: str, *, allow_downgrades: bool = False) -> str:
    """Install exactly `version` of the package from the repository."""
    return _install(f"{package}={version}", allow_downgrades)


def install_file_command(path: str, *, allow_downgrades: bool = False) -> str:
    """Install an uploaded .deb (apt, unlike dpkg -i, also installs its dependencies)."""
    return _install(path, allow_downgrades)


def _install(what: str, allow_downgrades: bool) -> str:
    argv = [*_apt_env(), "apt-get", "install", "-y", "-q", *_dpkg_options()]
    if allow_downgrades:
        argv.append("--allow-downgrades")
    return shlex.join([*argv, what])


def private_dir_command() -> str:
    """Make a fresh private directory for an upload (as the SSH user: it owns it, mode 0700)."""
    return shlex.join(["mktemp", "-d", REMOTE_DIR_TEMPLATE])


def cleanup_command(directory: str) -> str:
    """Delete the upload's private directory and the .deb in it."""
    return shlex.join(["rm", "-rf", "--", directory])


def remove_command(package: str) -> str:
    """Remove the package, keeping its configuration and logs (not a purge)."""
    return shlex.join([*_apt_env(), "apt-get", "remove", "-y", "-q", package])


def health_command(package: str, url: str) -> str:
    """Exit 0 when the service answers 2xx or 3xx where the host's own configuration puts it.

    The package's gunicorn.conf.py runs in the unit's environment (its
    EnvironmentFile, through systemd-run) and gives the health URL from the
    host's config.ini; `url`, the service configuration's, is the fallback
    for a package without one. The URL probed is printed first.
    """
    script = (
        "import runpy, sys, urllib.request\n"
        "url = sys.argv[1]\n"
        "try:\n"
        "    url = runpy.run_path(sys.argv[3]).get('_health_url', url)\n"
        "except OSError:\n"
        "    pass\n"
        "print(url, flush=True)\n"
        "urllib.request.urlopen(url, timeout=float(sys.argv[2]))\n"
    )
    return shlex.join([
        "systemd-run", "--quiet", "--pipe", "--wait", "--collect",
        f"--property=EnvironmentFile=-/etc/{package}/environment",
        "/usr/bin/python3", "-I", "-c", script, url, str(HEALTH_REQUEST_TIMEOUT),
        f"/usr/share/{package}/gunicorn.conf.py",
    ])


def hook_command(hook: str) -> str:
    """A user's drain or undrain hook, run by a POSIX shell."""
    return shlex.join(["sh", "-c", hook])


def parse_query(result: CommandResult) -> str | None:
    """The installed version from `dpkg-query` output, or None when the package is not installed."""
    if not result.ok:
        return None
    status, _, version = result.stdout.strip().partition(" ")
    return version.strip() or None if status == "installed" else None


def parse_madison(output: str, package: str) -> list[str]:
    """The versions `apt-cache madison` lists for the package."""
    versions = []
    for line in output.splitlines():
        columns = [column.strip() for column in line.split("|")]
        if len(columns) >= 3 and columns[0] == package and columns[1] not in versions:
            versions.append(columns[1])
    return versions


def is_downgrade(before: str | None, after: str) -> bool:
    """Whether installing `after` over `before` goes back in Debian version order."""
    return before is not None and DebianVersion(after) < DebianVersion(before)


def plan(rollout: Rollout) -> tuple[tuple[str, ...], tuple[PlannedHost, ...]]:
    """The preflight commands and each host's commands, for a dry run."""
    preflight = (
        f"every host: {query_command(rollout.package)}",
        f"first host: {update_command(rollout.apt_source)}",
        f"first host: {available_command(rollout.package)}",
    )
    hosts = []
    for number, batch in enumerate(rollout.batches, start=1):
        for target in batch:
            commands = [update_command(rollout.apt_source), *_install_steps(rollout, None),
                        query_command(rollout.package),
                        f"until healthy: {health_command(rollout.package, rollout.health_url)}"]
            if rollout.drain:
                commands.insert(0, hook_command(rollout.drain))
            if rollout.undrain:
                commands.append(hook_command(rollout.undrain))
            rollback = (
                f"{install_command(rollout.package, 'PREVIOUS', allow_downgrades=True)}  "
                f"(or, if it had no version: {remove_command(rollout.package)})",
            )
            hosts.append(PlannedHost(target.spec, number, tuple(commands), rollback))
    return preflight, tuple(hosts)


def _install_steps(rollout: Rollout, before: str | None) -> list[str]:
    """The install command as a dry run shows it, with the upload and cleanup of a local .deb."""
    downgrade = is_downgrade(before, rollout.version)
    if rollout.deb is None or rollout.deb_name is None:
        return [install_command(rollout.package, rollout.version, allow_downgrades=downgrade)]
    path = f"$DIR/{rollout.deb_name}"
    return [f"DIR=$({private_dir_command()})", f"upload {rollout.deb} to {path}",
            install_file_command(path, allow_downgrades=downgrade), cleanup_command("$DIR")]


# ---------------------------------------------------------------------------
# The rollout


@dataclass
class _Host:
    """A host's session and what we know about it during the rollout."""

    target: Target
    batch: int
    remote: Remote
    before: str | None = None
    updated: bool = False
    report: HostReport | None = None


@dataclass
class _Clock:
    now: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep


@dataclass
class _Rollout:
    rollout: Rollout
    clock: _Clock
    hosts: list[_Host] = field(default_factory=list)


def deploy(
    options: DeployOptions,
    *,
    connect: Connector | None = None,
    now: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    runner: Runner = run,
) -> DeployReport:
    """Roll the version out batch by batch; roll the failing batch back. Raises MicrodeployError before any change."""
    started = now()
    rollout = make_rollout(options, runner)
    batch_names = tuple(tuple(t.spec for t in batch) for batch in rollout.batches)
    if options.dry_run:
        preflight, planned = plan(rollout)
        return DeployReport(rollout.package, rollout.version, "dry-run", batch_names, plan=planned, preflight=preflight)
    if connect is None:
        connect = _fabric_connector(options)
    state = _Rollout(rollout, _Clock(now, sleep))
    with _sessions(rollout, connect) as hosts:
        state.hosts = hosts
        _preflight(state)
        failures, stopped = _run_batches(state)
    reports = tuple(
        host.report or HostReport(host.target.spec, host.batch, host.before, host.before, "untouched")
        for host in state.hosts
    )
    result = "success" if failures == 0 else "rolled-back" if stopped else "completed-with-failures"
    if stopped:
        log.warning("rollout of %s %s stopped after %d failure(s)", rollout.package, rollout.version, failures)
    return DeployReport(rollout.package, rollout.version, result, batch_names, hosts=reports,
                        failures=failures, seconds=now() - started)


def _fabric_connector(options: DeployOptions) -> Connector:
    # Imported here: Fabric and paramiko are slow to import and only needed for a real rollout.
    from microdeploy.remote import FabricConnector

    return FabricConnector(
        ssh_config=options.ssh_config,
        known_hosts=options.known_hosts,
        identity=options.identity,
        accept_new_host_keys=options.accept_new_host_keys,
        connect_timeout=options.connect_timeout,
    )


@contextmanager
def _sessions(rollout: Rollout, connect: Connector) -> Iterator[list[_Host]]:
    """Open a session to every host (in parallel) before anything changes; close them all at the end."""
    numbered = [(number, target) for number, batch in enumerate(rollout.batches, 1) for target in batch]
    opened: list[_Host] = []
    errors: list[tuple[Target, MicrodeployError]] = []

    def open_one(item: tuple[int, Target]) -> None:
        number, target = item
        try:
            remote = connect(target)
        except MicrodeployError as exc:
            errors.append((target, exc))
            return
        opened.append(_Host(target, number, remote))

    try:
        with ThreadPoolExecutor(max_workers=min(16, len(numbered))) as pool:
            list(pool.map(open_one, numbered))
        if errors:
            errors.sort(key=lambda item: rollout.targets.index(item[0]))
            if len(errors) == 1:
                raise errors[0][1]
            raise MicrodeployError(
                f"cannot use {len(errors)} of {len(numbered)} hosts; no host was changed:\n"
                + "\n".join(f"  {target.spec}: {exc.message}" for target, exc in errors),
                hint=errors[0][1].hint,
            )
        order = {target: index for index, target in enumerate(rollout.targets)}
        opened.sort(key=lambda host: order[host.target])
        yield opened
    finally:
        for host in opened:
            try:
                host.remote.close()
            except Exception:  # closing is best effort; the rollout's outcome stands
                log.debug("closing the session to %s failed", host.target.spec, exc_info=True)


def _preflight(state: _Rollout) -> None:
    """Record every host's version and make sure the repository has the wanted one; change nothing."""
    rollout = state.rollout

    def record(host: _Host) -> None:
        host.before = parse_query(host.remote.run(query_command(rollout.package)))

    _each(state.hosts, record)
    for host in state.hosts:
        log.info("%s: %s installed", host.target.spec, host.before or f"no {rollout.package}")
    first = state.hosts[0]
    _checked(first, update_command(rollout.apt_source), "refreshing the APT lists", sudo=rollout.sudo,
             timeout=APT_TIMEOUT)
    first.updated = True
    versions = parse_madison(_checked(first, available_command(rollout.package), "listing versions").stdout,
                             rollout.package)
    for host in state.hosts:
        if host.before is not None and host.before not in versions:
            log.warning("%s: its version %s is not in the repository: a rollback there would fail",
                        host.target.spec, host.before)
    if rollout.deb is None and rollout.version not in versions:
        available = ", ".join(versions) if versions else "none"
        raise bad_input(
            f"version {rollout.version} of {rollout.package} is not in the APT repository of "
            f"{first.target.spec} (available: {available}); no host was changed",
            hint="Publish that version first (`microdeploy publish`), or deploy one of the available versions",
        )


def _checked(host: _Host, command: str, what: str, *, sudo: bool = False, timeout: float | None = None
             ) -> CommandResult:
    result = host.remote.run(command, sudo=sudo, timeout=timeout)
    if not result.ok:
        raise MicrodeployError(
            f"{host.target.spec}: {what} failed (exit status {result.exit_code}); no host was changed\n"
            f"    $ {command}\n{_tail(result)}",
            hint="Fix the host's APT configuration (or its sudo rights) and deploy again",
        )
    return result


def _run_batches(state: _Rollout) -> tuple[int, bool]:
    """Roll out batch after batch; return the number of failed hosts and whether the rollout stopped."""
    rollout = state.rollout
    failures = 0
    for number in range(1, len(rollout.batches) + 1):
        batch = [host for host in state.hosts if host.batch == number]
        log.info("batch %d/%d: %s", number, len(rollout.batches), ", ".join(h.target.spec for h in batch))
        _each(batch, lambda host: _upgrade(state, host))
        failed = [host for host in batch if host.report is not None and host.report.state == "failed"]
        failures += len(failed)
        if failures > rollout.max_failures:
            for host in failed:
                log.warning("%s: %s", host.target.spec, host.report.error if host.report else "failed")
            log.warning("batch %d failed: restoring the previous version on %s", number,
                        ", ".join(h.target.spec for h in batch))
            _each(batch, lambda host: _restore(state, host))
            return failures, True
        if failed:
            log.warning("%d failure(s) of at most %d allowed: restoring %s and going on", failures,
                        rollout.max_failures, ", ".join(h.target.spec for h in failed))
            _each(failed, lambda host: _restore(state, host))
    return failures, False


def _upgrade(state: _Rollout, host: _Host) -> None:
    """One host's part of its batch; a lost connection counts as a failure of that host."""
    started = state.clock.now()
    try:
        _upgrade_steps(state, host)
    except MicrodeployError as exc:
        # The package may or may not have changed: restoring is the safe assumption.
        host.report = HostReport(host.target.spec, host.batch, host.before, None, "failed", False,
                                 state.clock.now() - started, None, exc.message)


def _upgrade_steps(state: _Rollout, host: _Host) -> None:
    """Drain, install, verify the version, wait for health, undrain."""
    rollout = state.rollout
    clock = state.clock
    started = clock.now()

    def failed(error: str, after: str | None, health: float | None = None) -> None:
        host.report = HostReport(host.target.spec, host.batch, host.before, after, "failed", False,
                                 clock.now() - started, health, error)

    if rollout.drain and not _hook(host, rollout.drain, rollout.sudo):
        failed(f"drain hook failed: {rollout.drain}", host.before)
        return
    if not host.updated:
        result = host.remote.run(update_command(rollout.apt_source), sudo=rollout.sudo, timeout=APT_TIMEOUT)
        if not result.ok:
            failed(f"apt-get update failed (exit status {result.exit_code})\n{_tail(result)}", host.before)
            return
        host.updated = True
    downgrade = is_downgrade(host.before, rollout.version)
    if rollout.deb is not None and rollout.deb_name is not None:
        made = host.remote.run(private_dir_command())
        directory = made.stdout.strip()
        if not made.ok or not _REMOTE_DIR.fullmatch(directory):
            failed(f"cannot make a private directory in {REMOTE_DEB_DIR} (exit status {made.exit_code})\n"
                   f"{_tail(made)}", host.before)
            return
        path = f"{directory}/{rollout.deb_name}"
        try:
            host.remote.put(rollout.deb, path)
            result = host.remote.run(install_file_command(path, allow_downgrades=downgrade), sudo=rollout.sudo,
                                     timeout=APT_TIMEOUT)
        finally:
            host.remote.run(cleanup_command(directory))
    else:
        result = host.remote.run(install_command(rollout.package, rollout.version, allow_downgrades=downgrade),
                                 sudo=rollout.sudo, timeout=APT_TIMEOUT)
    after = parse_query(host.remote.run(query_command(rollout.package)))
    if not result.ok:
        failed(f"apt-get install failed (exit status {result.exit_code})\n{_tail(result)}", after)
        return
    if after != rollout.version:
        failed(f"{rollout.package} is at {after or 'nothing'} after installing {rollout.version}", after)
        return
    healthy, health_seconds, url = _wait_healthy(state, host)
    if not healthy:
        failed(f"not healthy within {rollout.health_timeout:g} s: {url}", after, health_seconds)
        return
    if rollout.undrain and not _hook(host, rollout.undrain, rollout.sudo):
        failed(f"undrain hook failed: {rollout.undrain}", after, health_seconds)
        return
    state_name = "unchanged" if host.before == after else "upgraded" if host.before else "installed"
    host.report = HostReport(host.target.spec, host.batch, host.before, after, state_name, True,
                             clock.now() - started, health_seconds)
    log.info("%s: %s -> %s, healthy in %.1f s", host.target.spec, host.before or "none", after, health_seconds)


def _restore(state: _Rollout, host: _Host) -> None:
    """Restore one host; a lost connection leaves it reported as rollback-failed."""
    report = host.report
    try:
        _restore_steps(state, host)
    except MicrodeployError as exc:
        log.error("%s: rollback failed: %s", host.target.spec, exc.message)
        if report is not None:
            error = f"{report.error}; rollback failed: {exc.message}" if report.error else exc.message
            host.report = replace(report, state="rollback-failed", healthy=None, error=error)


def _restore_steps(state: _Rollout, host: _Host) -> None:
    """Put back the version recorded before the rollout (or remove a first install), then check health."""
    rollout = state.rollout
    clock = state.clock
    report = host.report
    if report is None:
        return
    started = clock.now() - report.seconds
    # Ask the host rather than trust the report: a lost connection leaves it unknown.
    current = parse_query(host.remote.run(query_command(rollout.package)))
    restored_ok = True
    if current != host.before:
        if report.healthy and rollout.drain:
            # It was upgraded, healthy and undrained: take it out of rotation again first.
            _hook(host, rollout.drain, rollout.sudo)
        if host.before is None:
            command = remove_command(rollout.package)
        else:
            command = install_command(rollout.package, host.before, allow_downgrades=True)
        restored_ok = host.remote.run(command, sudo=rollout.sudo, timeout=APT_TIMEOUT).ok
        current = parse_query(host.remote.run(query_command(rollout.package)))
    if not restored_ok or current != host.before:
        error = f"{report.error}; " if report.error else ""
        host.report = replace(report, after=current, state="rollback-failed", healthy=None,
                              seconds=clock.now() - started,
                              error=f"{error}could not restore {host.before or 'the absence of the package'}")
        log.error("%s: rollback to %s failed; now at %s", host.target.spec, host.before or "no version", current)
        return
    healthy: bool | None = None
    if host.before is not None:
        healthy, _, _ = _wait_healthy(state, host)
        if healthy and rollout.undrain:
            _hook(host, rollout.undrain, rollout.sudo)
    new_state = "removed" if host.before is None else "rolled-back"
    host.report = replace(report, after=current, state=new_state, healthy=healthy, seconds=clock.now() - started)
    log.info("%s: back on %s%s", host.target.spec, host.before or "no version",
             "" if healthy is None else ", healthy" if healthy else ", NOT healthy")


def _wait_healthy(state: _Rollout, host: _Host) -> tuple[bool, float, str]:
    """Poll the service's health URL on the host until it answers or the timeout passes; also the URL probed.

    The probe reads the host's config.ini, which only root and the service
    may read: it runs with sudo when apt does.
    """
    rollout = state.rollout
    clock = state.clock
    command = health_command(rollout.package, rollout.health_url)
    started = clock.now()
    deadline = started + rollout.health_timeout
    while True:
        result = host.remote.run(command, sudo=rollout.sudo, timeout=HEALTH_REQUEST_TIMEOUT + 10)
        url = (result.stdout.strip().splitlines() or [rollout.health_url])[0]
        if result.ok:
            return True, clock.now() - started, url
        if clock.now() + HEALTH_INTERVAL > deadline:
            return False, clock.now() - started, url
        clock.sleep(HEALTH_INTERVAL)


def _hook(host: _Host, hook: str, sudo: bool) -> bool:
    return host.remote.run(hook_command(hook), sudo=sudo, timeout=APT_TIMEOUT).ok


def _each(hosts: Sequence[_Host], work: Callable[[_Host], None]) -> None:
    """Run `work` on every host in parallel, re-raising the first exception (a bug, not a host's failure)."""
    if len(hosts) == 1:
        work(hosts[0])
        return
    with ThreadPoolExecutor(max_workers=min(16, len(hosts))) as pool:
        for future in [pool.submit(work, host) for host in hosts]:
            future.result()


def _tail(result: CommandResult, lines: int = 10) -> str:
    text = result.stderr.strip() or result.stdout.strip()
    return "\n".join(f"    {line}" for line in text.splitlines()[-lines:])
