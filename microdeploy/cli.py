"""The command line: parse, call one library function, print, map errors to exit codes."""

from __future__ import annotations

import errno
import functools
import json
import logging
import os
import re
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from microdeploy import __version__
from microdeploy.build import cache
from microdeploy.build.pipeline import build_releases
from microdeploy.build.release.settings import BACKENDS, BuildSettings
from microdeploy.config import (
    COMPRESSION_LEVELS,
    DEFAULT_PORT,
    ServiceConfig,
    load_config,
    parse_setting_assignments,
    validate,
)
from microdeploy.controlrepo import (
    DEFAULT_BASEDIR,
    DEFAULT_CACHEDIR,
    ControlRepoOptions,
    init_control_repo,
    update_module,
)
from microdeploy.dists import DEFAULT_DIST, DISTS
from microdeploy.errors import EXIT_BAD_INPUT, EXIT_FAILURE, MicrodeployError
from microdeploy.jenkins import FORMS, JenkinsOptions, jenkinsfile
from microdeploy.repo import (
    DEFAULT_COMPONENT,
    DEFAULT_KEEP,
    KEYRING_NAME,
    SERVE_BIND,
    SERVE_PORT,
    PublishSettings,
    check_served,
    publish,
    served_suites,
    sources_snippet,
)
from microdeploy.scaffold import default_maintainer, scaffold
from microdeploy.validate import shown

F = TypeVar("F", bound=Callable[..., Any])
LEVELS_HELP = ", ".join(f"{name} {low}-{high} (default {default})"
                        for name, (low, high, default) in COMPRESSION_LEVELS.items())
log = logging.getLogger("microdeploy")


# Not subscripted: Debian 12's click (8.1, what python3-microdeploy runs on)
# has no generic ParamType, and the subscript would fail at import there.
class StrictNumber(click.ParamType):  # type: ignore[type-arg]
    """An int (or float) written as one, whole: click's own types take " 8000\\n" as 8000."""

    def __init__(self, kind: type[int] | type[float]) -> None:
        self.kind = kind
        self.name = "integer" if kind is int else "number"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        """The number, or a usage error (exit 2) showing the value escaped."""
        if isinstance(value, self.kind) and not isinstance(value, bool):
            return value
        pattern = r"-?[0-9]+" if self.kind is int else r"-?[0-9]+(?:\.[0-9]+)?"
        if isinstance(value, str) and re.fullmatch(pattern, value):
            return self.kind(value)
        self.fail(f"{shown(value)} is not {'an integer' if self.kind is int else 'a number'}", param, ctx)


INT = StrictNumber(int)
FLOAT = StrictNumber(float)


class ProgressHandler(logging.Handler):
    """Progress lines on stderr: styled on a terminal, plain in CI logs."""

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if record.levelno >= logging.WARNING:
            message = f"{record.levelname.lower()}: {message}"
        color = sys.stderr.isatty() and not os.environ.get("NO_COLOR")
        if color:
            message = click.style(message, fg="yellow" if record.levelno >= logging.WARNING else "cyan")
        click.echo(message, err=True, color=color)


class MicrodeployGroup(click.Group):
    """A group that turns MicrodeployError into a message and an exit code."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """Refuse a NUL anywhere in the arguments before any option is looked at."""
        # No operating system call takes one (a real argv cannot even hold it; a caller
        # in-process can), and a path with one makes Python raise ValueError.
        for arg in args:
            if "\x00" in arg:
                raise click.UsageError(f"invalid argument {shown(arg)}: control character U+0000", ctx)
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MicrodeployError as exc:
            if ctx.meta.get("microdeploy.debug"):
                raise
            click.echo(f"error: {exc.message}", err=True)
            if exc.hint:
                click.echo(f"hint: {exc.hint}", err=True)
            ctx.exit(exc.exit_code)
        except OSError as exc:
            # What the operating system refused where no check foresaw it (a disk that
            # fills up mid-write, a file removed under us): a message, not a traceback.
            if ctx.meta.get("microdeploy.debug"):
                raise
            where = f": {shown(str(exc.filename))}" if exc.filename else ""
            click.echo(f"error: {exc.strerror or exc}{where}", err=True)
            if exc.errno == errno.ENAMETOOLONG:  # a path given that no file system takes
                click.echo("hint: Pass a shorter path", err=True)
                ctx.exit(EXIT_BAD_INPUT)
            click.echo("hint: Fix the cause (free space, permissions) and run the command again; "
                       "--debug shows where it failed", err=True)
            ctx.exit(EXIT_FAILURE)
        except KeyboardInterrupt:
            if ctx.meta.get("microdeploy.debug"):
                raise
            click.echo("error: interrupted", err=True)
            ctx.exit(130)


@click.group(cls=MicrodeployGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="microdeploy")
@click.option("--debug", is_flag=True, help="Show tracebacks and every command run.")
@click.option("-q", "--quiet", is_flag=True, help="Only print errors.")
@click.pass_context
def main(ctx: click.Context, debug: bool, quiet: bool) -> None:
    """Ship Flask microservices as production Debian packages."""
    ctx.meta["microdeploy.debug"] = debug
    handler = ProgressHandler()
    root = logging.getLogger("microdeploy")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if debug else logging.WARNING if quiet else logging.INFO)
    root.propagate = False


def service_options(func: F) -> F:
    """Flags that override each key of the service configuration."""
    options = [
        click.option("--name", help="Package, unit and user name."),
        click.option("--app", help="WSGI target, 'module:attr' or 'module:factory()'."),
        click.option("--port", type=INT, help="Port the service listens on."),
        click.option("--bind", help="Address the service binds to."),
        click.option("--workers", type=INT, help="Number of gunicorn workers."),
        click.option("--health-path", help="Path of the health check."),
        click.option("--maintainer", help="'Full Name <email>' of the package maintainer."),
        click.option("--description", help="One-line description of the service."),
        click.option("--depends", multiple=True, help="Extra Debian dependency (repeatable)."),
        click.option("--build-depends", multiple=True, help="Extra Debian build dependency (repeatable)."),
        click.option("--python", help="Python interpreter on build and target host, e.g. python3."),
        click.option("--setting", "settings", multiple=True, metavar="SECTION.KEY=VALUE",
                     help="A default config value (repeatable)."),
    ]
    return functools.reduce(lambda f, option: option(f), reversed(options), func)


def config_overrides(flags: dict[str, Any]) -> dict[str, Any]:
    """Take the service_options flags out of a command's keyword arguments."""
    keys = ("name", "app", "port", "bind", "workers", "health_path", "maintainer",
            "description", "depends", "build_depends", "python", "compression", "compression_level")
    overrides = {key: flags.pop(key) for key in keys if key in flags}
    assignments = flags.pop("settings", ())
    if assignments:
        overrides["settings"] = parse_setting_assignments(assignments)
    return overrides


def load_service(project: Path, flags: dict[str, Any]) -> ServiceConfig:
    """The validated configuration of the project, with flag overrides."""
    return load_config(project, config_overrides(flags))


def print_json(data: object) -> None:
    """Print one JSON object for CI to read."""
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


@main.command()
@click.argument("name")
@click.option("--dir", "directory", type=click.Path(path_type=Path),
              help="Directory to create (default: ./NAME).")
@click.option("--port", type=INT, default=DEFAULT_PORT, show_default=True, help="Port of the service.")
@click.option("--with-db", is_flag=True, help="Add Flask-SQLAlchemy and Flask-Migrate with SQLite.")
@click.option("--no-input", is_flag=True, help="Do not prompt; use defaults.")
def new(name: str, directory: Path | None, port: int, with_db: bool, no_input: bool) -> None:
    """Create a Flask service NAME in the conventional layout."""
    description = "Flask web service"
    maintainer = default_maintainer(os.environ)
    origins = ("the default", "DEBFULLNAME/DEBEMAIL (or NAME/EMAIL)")
    if not no_input and sys.stdin.isatty():
        description = click.prompt("Description", default=description)
        maintainer = click.prompt("Maintainer", default=maintainer)
        origins = ("the prompt", "the prompt")
    config = validate({
        "name": (name, "NAME"),
        "port": (port, "--port"),
        "description": (description, origins[0]),
        "maintainer": (maintainer, origins[1]),
    })
    dest = directory if directory is not None else Path(name)
    files = scaffold(config, dest, with_db=with_db)
    click.echo(f"Created {config.name} in {dest} ({len(files)} files).")
    click.echo(f"Next: cd {dest} && python3 -m venv .venv && .venv/bin/pip install -e '.[test]' "
               "&& .venv/bin/pytest")


@main.command("config")
@click.argument("project", type=click.Path(path_type=Path), default=".")
@service_options
def show_config(project: Path, **flags: Any) -> None:
    """Print the validated service configuration of PROJECT as JSON."""
    config = load_service(project, flags)
    data = {key: getattr(config, key) for key in config.__dataclass_fields__}
    print_json(data)


@main.command("build")
@click.argument("project", type=click.Path(path_type=Path), default=".")
@click.option("--out", type=click.Path(path_type=Path), help="Output directory (default: PROJECT/dist).")
@click.option("--version", "version", help="Upstream version (default: from the project and git).")
@click.option("--revision", help="Debian revision (default: $BUILD_NUMBER, else 1).")
@click.option("--keep-installers", is_flag=True, help="Ship pip, setuptools and wheel in the venv.")
@click.option("--refresh-deps", is_flag=True,
              help="Resolve and install the dependencies anew instead of reusing the cached layer.")
@click.option("--backend", type=click.Choice(BACKENDS), default=BACKENDS[0], show_default=True,
              help="dh-virtualenv: a service with its venv; stdeb: a pure library as python3-NAME.")
@click.option("--compression", type=click.Choice(list(COMPRESSION_LEVELS)),
              help="Compressor of the .deb (default gzip: fastest for a venv; xz -6: a quarter smaller, slower).")
@click.option("--compression-level", type=INT,
              help=f"Level of the compressor: {LEVELS_HELP}.")
@click.option("--dist", "dist", multiple=True, type=click.Choice(list(DISTS)),
              help="Debian release to build for (repeatable; default: the config's dist, else this machine's).")
@click.option("--clean-root", is_flag=True,
              help="Build in the release's clean root even when it is this machine's own release.")
@click.option("--refresh-root", is_flag=True, help="Remake the release's build root first (e.g. for updates).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
@service_options
def build_command(project: Path, out: Path | None, version: str | None, revision: str | None,
                  keep_installers: bool, refresh_deps: bool, backend: str, dist: tuple[str, ...],
                  clean_root: bool, refresh_root: bool, as_json: bool, **flags: Any) -> None:
    """Build PROJECT into a Debian package (a service with dh-virtualenv, a library with stdeb).

    Caches (uv's wheels, the dependency layers) live in $MICRODEPLOY_CACHE_DIR,
    else ~/.cache/microdeploy; after a build they are pruned to
    $MICRODEPLOY_CACHE_MAX_SIZE (default 4G), least recently used first. A
    release other than this machine's is built in a clean root of it, made
    once with mmdebstrap and kept in $MICRODEPLOY_ROOTS_DIR, else
    /var/cache/microdeploy/roots (needs root).
    """
    overrides = config_overrides(flags)
    overrides["version"] = version
    overrides["dist"] = dist
    results = build_releases(BuildSettings(project=project, out=out, overrides=overrides, revision=revision,
                                           environ=dict(os.environ), keep_installers=keep_installers,
                                           refresh_deps=refresh_deps, backend=backend, clean_root=clean_root,
                                           refresh_root=refresh_root))
    if as_json:
        print_json(results[0].as_dict() if len(results) == 1 else {"builds": [r.as_dict() for r in results]})
        return
    for result in results:
        click.echo(f"{result.deb} ({result.version}, {result.size // 1024} kB, {result.seconds:.1f} s)")


@main.group("cache")
def cache_group() -> None:
    """Inspect and prune the build cache ($MICRODEPLOY_CACHE_DIR, else ~/.cache/microdeploy)."""


@cache_group.command("info")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
def cache_info(as_json: bool) -> None:
    """Size, entries and last use of each kind of cache entry."""
    root = cache.cache_root(os.environ)
    kinds = cache.info(root)
    if as_json:
        print_json({"root": str(root), "kinds": [kind.as_dict() for kind in kinds],
                    "size": sum(kind.size for kind in kinds)})
        return
    click.echo(f"{root}: {human_size(sum(kind.size for kind in kinds))}")
    for kind in kinds:
        last = kind.as_dict()["last_use"] or "never"
        click.echo(f"  {kind.kind:<11} {human_size(kind.size):>9}  {kind.entries:>5} entries  last used {last}")


@cache_group.command("prune")
@click.option("--max-size", metavar="SIZE",
              help=f"Remove the least recently used entries until the cache fits (e.g. 500M, 4G; "
                   f"default ${cache.MAX_SIZE_VAR}, else {cache.DEFAULT_MAX_SIZE}).")
@click.option("--older-than", metavar="DAYS", type=click.FloatRange(min=0),
              help="Remove every entry unused for more than DAYS days.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
def cache_prune(max_size: str | None, older_than: float | None, as_json: bool) -> None:
    """Remove cache entries, least recently used first (a later build makes them again)."""
    limit = cache.parse_size(max_size) if max_size is not None else None
    if limit is None and older_than is None:
        limit = cache.default_max_size(os.environ)
    root = cache.cache_root(os.environ)
    removed = cache.prune(root, max_size=limit, older_than_days=older_than)
    freed = sum(entry.size for entry in removed)
    if as_json:
        print_json({"root": str(root), "removed": [str(entry.path) for entry in removed], "freed": freed})
    else:
        click.echo(f"removed {len(removed)} entries, {human_size(freed)} freed from {root}")


def human_size(size: int) -> str:
    """Bytes as the largest binary unit that keeps a number of at least 1 (e.g. 12.3 MiB)."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


@main.command("deploy")
@click.argument("name", required=False)
@click.option("--version", "version", help="Debian version to install from the repository, e.g. 1.4.0-1+deb12 "
              "(each host gets its release's build: 1.4.0-1+deb13 on trixie).")
@click.option("--deb", type=click.Path(path_type=Path, dir_okay=False),
              help="Upload this .deb to each host and install it instead (NAME and version from the file).")
@click.option("--hosts", multiple=True, metavar="H1,H2,...",
              help="Hosts as [user@]host[:port], comma-separated (repeatable).")
@click.option("--hosts-file", type=click.Path(path_type=Path, dir_okay=False),
              help="File with one host per line ('#' comments).")
@click.option("--batch", default="1", show_default=True, help="Hosts per batch: a number N or a percentage P%.")
@click.option("--max-failures", type=INT, default=0, show_default=True,
              help="Unhealthy hosts tolerated (each rolled back alone) before the rollout stops.")
@click.option("--user", help="SSH user for hosts that do not name one.")
@click.option("--sudo", is_flag=True, help="Run apt-get and the hooks with `sudo -n` (for a non-root user).")
@click.option("--ssh-config", type=click.Path(path_type=Path, dir_okay=False), help="OpenSSH client config file.")
@click.option("--known-hosts", type=click.Path(path_type=Path, dir_okay=False),
              help="known_hosts file (default: the ssh config's UserKnownHostsFile, else ~/.ssh/known_hosts).")
@click.option("-i", "--identity", type=click.Path(path_type=Path, dir_okay=False), help="SSH private key.")
@click.option("--accept-new-host-keys", is_flag=True,
              help="Add unknown host keys to known_hosts (a changed key is still refused).")
@click.option("--connect-timeout", type=FLOAT, default=10.0, show_default=True, help="SSH connect timeout (s).")
@click.option("--port", type=INT, help="Port of the service (default: from the service's configuration).")
@click.option("--health-path", help="Health path (default: from the service's configuration).")
@click.option("--health-timeout", type=FLOAT, default=60.0, show_default=True,
              help="Seconds a host has to answer its health check.")
@click.option("--drain", metavar="CMD", help="Shell command run on each host before its upgrade.")
@click.option("--undrain", metavar="CMD", help="Shell command run on each host once it is healthy.")
@click.option("--apt-source", metavar="FILE",
              help="Refresh only this APT source file on the hosts, e.g. /etc/apt/sources.list.d/NAME.sources.")
@click.option("--project", type=click.Path(path_type=Path, file_okay=False),
              help="Service directory to read name, port and health path from (default: the current one).")
@click.option("--dry-run", is_flag=True, help="Print the batches and commands without connecting.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
@click.pass_context
def deploy_command(ctx: click.Context, name: str | None, version: str | None, deb: Path | None,
                   hosts: tuple[str, ...],
                   hosts_file: Path | None, batch: str, max_failures: int, user: str | None, sudo: bool,
                   ssh_config: Path | None, known_hosts: Path | None, identity: Path | None,
                   accept_new_host_keys: bool, connect_timeout: float, port: int | None, health_path: str | None,
                   health_timeout: float, drain: str | None, undrain: str | None, apt_source: str | None,
                   project: Path | None, dry_run: bool, as_json: bool) -> None:
    """Roll VERSION of NAME out to hosts over SSH in batches; roll a failing batch back."""
    from microdeploy.deploy import deploy
    from microdeploy.deploy_plan import DeployOptions

    report = deploy(DeployOptions(
        version=version, name=name, deb=deb, hosts=hosts, hosts_file=hosts_file, batch=batch, user=user, sudo=sudo,
        ssh_config=ssh_config, known_hosts=known_hosts, identity=identity,
        accept_new_host_keys=accept_new_host_keys, connect_timeout=connect_timeout, port=port,
        health_path=health_path, health_timeout=health_timeout, max_failures=max_failures, drain=drain,
        undrain=undrain, apt_source=apt_source, project=project, dry_run=dry_run,
    ))
    if as_json:
        print_json(report.as_dict())
    else:
        for line in report.summary_lines():
            click.echo(line)
    if report.exit_code:
        ctx.exit(report.exit_code)


@main.command("publish")
@click.argument("debs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--repo", "repo_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Repository directory (created on first use).")
@click.option("--dist", help="Suite to publish to (default: each package's release, from its +debN; else "
              f"{DEFAULT_DIST}).")
@click.option("--component", default=DEFAULT_COMPONENT, show_default=True, help="Component to publish to.")
@click.option("--gpg-key", metavar="KEYID", help="Sign with this secret key (default: the repository's own key).")
@click.option("--gnupghome", type=click.Path(file_okay=False, path_type=Path),
              help="GnuPG home holding the signing key.")
@click.option("--keep", type=INT, default=DEFAULT_KEEP, show_default=True,
              help="Versions of each package kept available for rollback.")
@click.option("--rotate-key", is_flag=True,
              help="Sign with a new key (the repository's own, or --gpg-key); the old one stays in the exported "
                   "keyring for 90 days.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object describing the result.")
def publish_command(debs: tuple[Path, ...], repo_dir: Path, dist: str | None, component: str, gpg_key: str | None,
                    gnupghome: Path | None, keep: int, rotate_key: bool, as_json: bool) -> None:
    """Publish DEB files into the signed APT repository --repo (atomically)."""
    settings = PublishSettings(repo=repo_dir, dist=dist, component=component, gpg_key=gpg_key,
                               gnupghome=gnupghome, keep=keep, rotate_key=rotate_key)
    result = publish(settings, debs)
    if as_json:
        print_json(result.as_dict())
        return
    for deb in result.added:
        click.echo(f"added {deb.package.name} {deb.package.version} ({deb.package.architecture}) to {deb.dist}")
    for deb in result.unchanged:
        click.echo(f"already published {deb.package.name} {deb.package.version} in {deb.dist} (unchanged)")
    for ref in result.removed:
        click.echo(f"removed {ref.name} {ref.version} (beyond --keep {keep})")
    state = "published" if result.changed else "nothing to do"
    suites = ", ".join(f"{suite}/{component}" for suite in result.dists)
    click.echo(f"{state}: {result.public_dir} ({suites}), signed by {result.key_fingerprint}")


@main.group("repo")
def repo_group() -> None:
    """Work with a published APT repository."""


@repo_group.command("serve")
@click.argument("repo_dir", metavar="DIR", type=click.Path(file_okay=False, path_type=Path))
@click.option("--bind", default=SERVE_BIND, show_default=True, help="Address to listen on.")
@click.option("--port", type=INT, default=SERVE_PORT, show_default=True, help="Port to listen on (0: any free one).")
@click.option("--dist", help="Suite of the sources snippet (default: one snippet per served suite).")
@click.option("--component", default=DEFAULT_COMPONENT, show_default=True, help="Component for the snippet.")
def repo_serve(repo_dir: Path, bind: str, port: int, dist: str | None, component: str) -> None:
    """Serve the repository DIR over plain HTTP and print the apt source for hosts."""
    from microdeploy.repo_server import serve  # http.server: only when serving

    check_served(bind, port, dist, component)

    def ready(url: str) -> None:
        keyring = f"/etc/apt/keyrings/{KEYRING_NAME}"
        click.echo(f"Serving {repo_dir} on {url} (Ctrl-C to stop)")
        click.echo(f"On a host: curl -fsSL {url}{KEYRING_NAME} -o {keyring}")
        for suite in [dist] if dist else served_suites(repo_dir) or [DEFAULT_DIST]:
            click.echo(f"and on a {suite} host write /etc/apt/sources.list.d/microdeploy.sources:\n")
            click.echo(sources_snippet(url, keyring, suite, component))

    serve(repo_dir, bind, port, ready=ready)


@main.command("check")
@click.argument("deb", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--previous", metavar="DEB|VERSION",
              help="Also upgrade from this older .deb, or from this version in --repo.")
@click.option("--dist", help="Debian release of the host (default: the package's own, else bookworm).")
@click.option("--repo", "repo_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Published repository the host may install dependencies (and --previous) from.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object with every check.")
@click.option("--junit", "junit", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="Write a JUnit XML report here (one test case per check) for Jenkins' junit step.")
@click.option("--refresh-images", is_flag=True, help="Rebuild the cached host and piuparts images first.")
@click.option("--skip", multiple=True, type=click.Choice(["lintian", "piuparts", "host"]),
              help="Leave out a stage (repeatable).")
@click.pass_context
def check_command(ctx: click.Context, deb: Path, previous: str | None, dist: str | None, repo_dir: Path | None,
                  as_json: bool, junit: Path | None, refresh_images: bool, skip: tuple[str, ...]) -> None:
    """Prove DEB on a fresh booted host of its release: lintian, piuparts, install, service, upgrade, purge."""
    from microdeploy.check import CheckSettings, check, write_junit  # python-debian, http.server: only here

    if junit is not None and not junit.absolute().parent.is_dir():
        raise MicrodeployError(f"no directory for the JUnit report: {junit.absolute().parent}",
                               hint="Create the directory first, or pass another --junit FILE",
                               exit_code=EXIT_BAD_INPUT)
    settings = CheckSettings(deb=deb, previous=previous, dist=dist, repo=repo_dir,
                             refresh_images=refresh_images, skip=frozenset(skip))
    # SIGTERM (a CI job aborted) tears down like Ctrl-C: the host, its namespace, the temporary files.
    previous_handler = signal.signal(signal.SIGTERM, _interrupt)
    try:
        report = check(settings)
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
    if junit is not None:
        write_junit(report, junit)
    if as_json:
        print_json(report.as_dict())
    else:
        for outcome in report.outcomes:
            click.echo(outcome.line())
        for outcome in report.failures:
            click.echo(f"\n--- {outcome.name}: {outcome.summary}\n{outcome.details}".rstrip())
        verdict = "passed" if not report.failures else f"{len(report.failures)} check(s) failed"
        click.echo(f"\n{report.package} {report.version} ({report.release}): {verdict} in {report.seconds:.1f} s")
    ctx.exit(report.exit_code)


def _interrupt(signum: int, frame: object) -> None:
    """Turn SIGTERM into KeyboardInterrupt, so the same clean-up runs."""
    raise KeyboardInterrupt


@main.command("jenkinsfile")
@click.argument("project", type=click.Path(path_type=Path), default=".")
@click.option("--form", type=click.Choice(FORMS), default="full", show_default=True,
              help="full: a self-contained Jenkinsfile; one-line: a call of the shared library; "
                   "library: the shared library's vars/microdeployPipeline.groovy.")
@click.option("-o", "--output", default="-", show_default=True, metavar="FILE|-",
              help="Write here (atomically) instead of standard output.")
@click.option("--agent-label", default=JenkinsOptions.agent_label, show_default=True,
              help="Label expression of the agents that build (they need microdeploy and its tools).")
@click.option("--release-branch", default=JenkinsOptions.release_branch, show_default=True,
              help="Branch whose pushes are published (tags are published too).")
@click.option("--repo", default=JenkinsOptions.repo, show_default=True,
              help="APT repository directory on the agent, passed to `microdeploy publish --repo`.")
@click.option("--signing-key-credentials", default=JenkinsOptions.signing_key_credentials, show_default=True,
              help="Jenkins 'secret file' credentials id of the repository signing key.")
@click.option("--signing-passphrase-credentials", default=JenkinsOptions.signing_passphrase_credentials,
              show_default=True, help="Jenkins 'secret text' credentials id of its passphrase.")
@click.option("--control-repo", metavar="GIT_URL",
              help="r10k control repository that tags pin their version in (adds the Puppet data stage).")
@click.option("--control-repo-branch", default=JenkinsOptions.control_repo_branch, show_default=True,
              help="Branch of the control repository to update.")
@click.option("--control-repo-mode", type=click.Choice(["push", "merge-request"]),
              default=JenkinsOptions.control_repo_mode, show_default=True,
              help="Push the commit, or open a (GitLab) merge request with it.")
@click.option("--control-repo-credentials", default=JenkinsOptions.control_repo_credentials, show_default=True,
              help="Jenkins 'SSH username with private key' credentials id for the control repository.")
@click.option("--deploy-host", "deploy_hosts", multiple=True, metavar="HOST",
              help="Deploy tags to this host after approval (repeatable; adds the Deploy stage).")
@click.option("--deploy-credentials", default=JenkinsOptions.deploy_credentials, show_default=True,
              help="Jenkins 'SSH username with private key' credentials id for the deploy.")
@click.option("--notify-email", multiple=True, metavar="ADDRESS", help="Mail a failed build here (repeatable).")
@click.option("--timeout", "timeout_minutes", type=INT, default=JenkinsOptions.timeout_minutes, show_default=True,
              help="Minutes before a build is aborted.")
@click.option("--keep-builds", type=INT, default=JenkinsOptions.keep_builds, show_default=True,
              help="Builds whose logs and artifacts are kept.")
@click.option("--dist", "dist", multiple=True, type=click.Choice(list(DISTS)),
              help="Debian release to build and publish for (repeatable; default: the service's dist, "
                   "else the agent's own).")
@service_options
def jenkinsfile_command(project: Path, form: str, output: str, agent_label: str, release_branch: str, repo: str,
                        signing_key_credentials: str, signing_passphrase_credentials: str,
                        control_repo: str | None, control_repo_branch: str, control_repo_mode: str,
                        control_repo_credentials: str, deploy_hosts: tuple[str, ...], deploy_credentials: str,
                        notify_email: tuple[str, ...], timeout_minutes: int, keep_builds: int,
                        dist: tuple[str, ...], **flags: Any) -> None:
    """Render the Jenkins pipeline that tests, builds and releases the service in PROJECT."""
    options = JenkinsOptions(
        agent_label=agent_label, release_branch=release_branch, repo=repo,
        signing_key_credentials=signing_key_credentials,
        signing_passphrase_credentials=signing_passphrase_credentials, control_repo=control_repo,
        control_repo_branch=control_repo_branch, control_repo_mode=control_repo_mode,
        control_repo_credentials=control_repo_credentials,
        deploy_hosts=tuple(host for value in deploy_hosts for host in value.split(",") if host),
        deploy_credentials=deploy_credentials, notify_email=notify_email, timeout_minutes=timeout_minutes,
        keep_builds=keep_builds, dists=dist,
    )
    result = jenkinsfile(project, config_overrides(flags), options, form=form,
                         output=None if output == "-" else Path(output))
    if result.path is None:
        click.echo(result.text, nl=False)
    else:
        click.echo(f"Wrote {result.path} ({result.form} form).", err=True)


@main.command("puppet-data")
@click.argument("projects", nargs=-1, type=click.Path(path_type=Path))
@click.option("--env", metavar="ENV", help="Pin the version for this Puppet environment (with --control-repo).")
@click.option("--node", metavar="FQDN", help="Pin the version for this node, by certname (with --control-repo).")
@click.option("--control-repo", type=click.Path(path_type=Path),
              help="Write into this r10k control repository: data/services/NAME.yaml, or with --env/--node "
                   "the pin alone into that level's file.")
@click.option("-o", "--output", default="-", show_default=True, metavar="FILE|-",
              help="Write here instead of standard output: a new file, or one microdeploy wrote before.")
@click.option("--version", "version", help="Debian version to pin, e.g. 1.4.0-1 (default: as `build` computes it).")
@click.option("--apt-location", metavar="URL", help="Also write the signed APT source: the repository URL...")
@click.option("--apt-key", type=click.Path(path_type=Path, dir_okay=False), metavar="FILE",
              help="... and its ASCII-armored public key.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
@service_options
def puppet_data_command(projects: tuple[Path, ...], env: str | None, node: str | None, control_repo: Path | None,
                        output: str, version: str | None, apt_location: str | None, apt_key: Path | None,
                        as_json: bool, **flags: Any) -> None:
    """Emit the Hiera data (microdeploy::services) of the services in PROJECT... (default: .)."""
    from microdeploy.hiera import PuppetDataSettings, puppet_data  # ruamel.yaml: only for Hiera data

    result = puppet_data(PuppetDataSettings(
        projects=projects or (Path("."),), overrides=config_overrides(flags), version=version, env=env, node=node,
        control_repo=control_repo, output=None if output == "-" else Path(output), apt_location=apt_location,
        apt_key=apt_key, environ=dict(os.environ),
    ))
    if as_json:
        print_json(result.as_dict())
    elif result.path is None:
        click.echo(result.text, nl=False)
    else:
        state = "Wrote" if result.changed else "Unchanged:"
        paths = ", ".join(map(str, result.written or (result.path,)))
        click.echo(f"{state} {paths} ({', '.join(result.services)})", err=True)


@main.group("control-repo")
def control_repo_group() -> None:
    """Work with an r10k control repository."""


@control_repo_group.command("init")
@click.argument("directory", metavar="DIR", type=click.Path(path_type=Path))
@click.option("--module-url", help="Git URL of a repository holding the microdeploy module at its root "
                                   "(default: vendor the module under site-modules/microdeploy).")
@click.option("--module-ref", help="Tag, branch or commit of --module-url to pin (default: v<module version>).")
@click.option("--remote", help="Git URL of this control repository for r10k.yaml (default: file://DIR).")
@click.option("--basedir", default=DEFAULT_BASEDIR, show_default=True, help="Where r10k deploys environments.")
@click.option("--cachedir", default=DEFAULT_CACHEDIR, show_default=True, help="r10k's git cache.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
def control_repo_init(directory: Path, module_url: str | None, module_ref: str | None, remote: str | None,
                      basedir: str, cachedir: str, as_json: bool) -> None:
    """Create an r10k control repository in DIR (a git repository on branch production)."""
    result = init_control_repo(directory, ControlRepoOptions(
        module_url=module_url, module_ref=module_ref, remote=remote, basedir=basedir, cachedir=cachedir,
    ))
    if as_json:
        print_json(result.as_dict())
    else:
        module = "vendored" if result.module_url is None else f"{result.module_url} @ {result.module_ref}"
        click.echo(f"Created {result.path} ({len(result.files)} files, branch {result.branch} "
                   f"at {result.commit[:12]}), module {module}")


@control_repo_group.command("update-module")
@click.argument("directory", metavar="DIR", type=click.Path(path_type=Path), default=".")
def control_repo_update_module(directory: Path) -> None:
    """Replace the module vendored in DIR with this microdeploy's (review and commit the change)."""
    old, new = update_module(directory)
    click.echo(f"Updated {directory}/site-modules/microdeploy from {old or 'an unknown version'} to {new}; "
               "review with `git diff` and commit.")


__all__ = ["EXIT_BAD_INPUT", "main"]
