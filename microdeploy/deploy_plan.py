"""What `microdeploy deploy` was asked to do, checked before any host changes: the rollout's plan."""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from microdeploy import sshconfig, validate
from microdeploy.config import MICRODEPLOY_TOML, load_config
from microdeploy.config import validate as validate_config
from microdeploy.debfile import inspect_deb
from microdeploy.deploy_commands import health_command
from microdeploy.errors import bad_input
from microdeploy.hosts import Target, parse_target, read_hosts_file
from microdeploy.pyproject import FILE as PYPROJECT

log = logging.getLogger(__name__)

DEFAULT_BATCH = "1"
DEFAULT_HEALTH_TIMEOUT = 60.0
HEALTH_INTERVAL = 1.0
BATCH_RE = re.compile(r"(?P<number>\d+)(?P<percent>%?)")
APT_SOURCE = validate.rule(r"/[A-Za-z0-9._/-]+\.(?:list|sources)", "the absolute path on the hosts of a .list or "
                           ".sources file, e.g. /etc/apt/sources.list.d/NAME.sources", 500)


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
    health_path: str | None
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
        """The health URL, as seen on the host itself: the health path, else the main page."""
        return f"http://127.0.0.1:{self.port}{self.health_path or '/'}"

    @property
    def health_check(self) -> str:
        """The command that says whether the service is healthy on a host."""
        return health_command(self.package, self.health_url, any_answer=self.health_path is None)


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


def check_client_files(options: DeployOptions) -> None:
    """The SSH client's files named on the command line, before any host is contacted: an ssh config and a key
    that can be read, the ssh config's Include lines that deploy's SSH can follow (sshconfig.py), and a
    known_hosts file, unless --accept-new-host-keys may start one."""
    for flag, path in (("--ssh-config", options.ssh_config), ("--identity", options.identity)):
        if path is None:
            continue
        try:
            path.read_bytes()
        except OSError as exc:
            raise bad_input(f"cannot read {flag} {path}: {exc.strerror}", hint="Pass a file that exists and "
                            "that you can read; no host was contacted") from exc
    sshconfig.expanded_text(options.ssh_config)
    if options.known_hosts is not None and not options.known_hosts.is_file() and not options.accept_new_host_keys:
        raise bad_input(f"--known-hosts {options.known_hosts} is not a file: no host key could be checked",
                        hint="Pass the known_hosts file that holds the hosts' keys, or --accept-new-host-keys to "
                             "record them there on first contact; no host was contacted")


def make_rollout(options: DeployOptions) -> Rollout:
    """Check every option and turn them into a rollout plan; raises bad_input on the first problem."""
    deb = inspect_deb(options.deb).package if options.deb is not None else None
    if options.version is None and deb is None:
        raise bad_input("no version to deploy", hint="Pass --version V (the Debian version), or --deb FILE")
    version = check_version(options.version) if options.version is not None else deb.version if deb else ""
    name, port, health_path = _service(options, deb.name if deb else None)
    if health_path is None:
        log.info("no health_path configured here: each host probes the package's own health path, and for a "
                 "package without one any HTTP answer below 500 on / counts as healthy (pass --health-path, or "
                 "--project DIR, for a package that cannot say)")
    validate.check(validate.PACKAGE_NAME, "package name", name, "NAME" if options.name else "the service")
    if deb is not None and (deb.name, deb.version) != (name, version):
        raise bad_input(
            f"{options.deb} is {deb.name} {deb.version}, not {name} {version}",
            hint="Pass the .deb of the service and version you mean, or leave out NAME and --version",
        )
    check_client_files(options)
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
    # remote.py gives paramiko whole seconds, at least 1: a value below 1 is a mistake, not a wish for 1 s.
    if not 1 <= options.connect_timeout <= 600:
        raise bad_input(f"invalid --connect-timeout {options.connect_timeout!r}", hint="Use 1 to 600 seconds")
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


def _service(options: DeployOptions, deb_name: str | None = None) -> tuple[str, int, str | None]:
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
