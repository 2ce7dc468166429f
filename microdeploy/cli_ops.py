"""The CLI commands of operations: publish and serve a repository, check, deploy."""

from __future__ import annotations

import os
from pathlib import Path

import click

from microdeploy.cli_base import FLOAT, INT, PathParam, print_json
from microdeploy.dists import DEFAULT_DIST
from microdeploy.errors import EXIT_BAD_INPUT, MicrodeployError
from microdeploy.repo import (
    DEFAULT_COMPONENT,
    DEFAULT_KEEP,
    KEYRING_NAME,
    SERVE_BIND,
    SERVE_PORT,
    PublishSettings,
    check_offered,
    check_served,
    publish,
    served_suites,
    sources_snippet,
)


@click.command("deploy")
@click.argument("name", required=False)
@click.option("--version", "version", help="Debian version to install from the repository, e.g. 1.4.0-1+deb12 "
              "(each host gets its release's build: 1.4.0-1+deb13 on trixie).")
@click.option("--deb", type=PathParam(dir_okay=False),
              help="Upload this .deb to each host and install it instead (NAME and version from the file).")
@click.option("--hosts", multiple=True, metavar="H1,H2,...",
              help="Hosts as [user@]host[:port], comma-separated (repeatable).")
@click.option("--hosts-file", type=PathParam(dir_okay=False),
              help="File with one host per line ('#' comments).")
@click.option("--batch", default="1", show_default=True, help="Hosts per batch: a number N or a percentage P%.")
@click.option("--max-failures", type=INT, default=0, show_default=True,
              help="Unhealthy hosts tolerated (each rolled back alone) before the rollout stops.")
@click.option("--user", help="SSH user for hosts that do not name one.")
@click.option("--sudo", is_flag=True, help="Run apt-get and the hooks with `sudo -n` (for a non-root user).")
@click.option("--ssh-config", type=PathParam(dir_okay=False), help="OpenSSH client config file.")
@click.option("--known-hosts", type=PathParam(dir_okay=False),
              help="known_hosts file (default: the ssh config's UserKnownHostsFile, else ~/.ssh/known_hosts).")
@click.option("-i", "--identity", type=PathParam(dir_okay=False), help="SSH private key.")
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
@click.option("--project", type=PathParam(file_okay=False),
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

    try:
        report = deploy(DeployOptions(
            version=version, name=name, deb=deb, hosts=hosts, hosts_file=hosts_file, batch=batch, user=user,
            sudo=sudo, ssh_config=ssh_config, known_hosts=known_hosts, identity=identity,
            accept_new_host_keys=accept_new_host_keys, connect_timeout=connect_timeout, port=port,
            health_path=health_path, health_timeout=health_timeout, max_failures=max_failures, drain=drain,
            undrain=undrain, apt_source=apt_source, project=project, dry_run=dry_run,
        ))
    except MicrodeployError as exc:
        if as_json:  # a CI job that reads stdout gets its object when no host was changed too
            print_json({"result": "not-started", "error": exc.message, "hint": exc.hint, "exit_code": exc.exit_code,
                        "hosts": []})
        raise
    if as_json:
        print_json(report.as_dict())
    else:
        for line in report.summary_lines():
            click.echo(line)
    if report.exit_code:
        ctx.exit(report.exit_code)


@click.command("publish")
@click.argument("debs", nargs=-1, required=True, type=PathParam())
@click.option("--repo", "repo_dir", required=True, type=PathParam(file_okay=False),
              help="Repository directory (created on first use).")
@click.option("--dist", help="Suite to publish to (default: each package's release, from its +debN; else "
              f"{DEFAULT_DIST}).")
@click.option("--component", default=DEFAULT_COMPONENT, show_default=True, help="Component to publish to.")
@click.option("--gpg-key", metavar="KEYID", help="Sign with this secret key (default: the repository's own key).")
@click.option("--gnupghome", type=PathParam(file_okay=False),
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


@click.group("repo")
def repo_group() -> None:
    """Work with a published APT repository."""


@repo_group.command("serve")
@click.argument("repo_dir", metavar="DIR", type=PathParam(file_okay=False))
@click.option("--bind", default=SERVE_BIND, show_default=True, help="Address to listen on.")
@click.option("--port", type=INT, default=SERVE_PORT, show_default=True, help="Port to listen on (0: any free one).")
@click.option("--dist", help="Suite of the sources snippet (default: one snippet per served suite).")
@click.option("--component", default=DEFAULT_COMPONENT, show_default=True, help="Component for the snippet.")
def repo_serve(repo_dir: Path, bind: str, port: int, dist: str | None, component: str) -> None:
    """Serve the repository DIR over plain HTTP and print the apt source for hosts."""
    from microdeploy.repo_server import serve  # http.server: only when serving

    check_served(bind, port, dist, component)
    check_offered(repo_dir, dist, component)

    def ready(url: str) -> None:
        keyring = f"/etc/apt/keyrings/{KEYRING_NAME}"
        click.echo(f"Serving {repo_dir} on {url} (Ctrl-C to stop)")
        click.echo(f"On a host: curl -fsSL {url}{KEYRING_NAME} -o {keyring}")
        for suite in [dist] if dist else served_suites(repo_dir) or [DEFAULT_DIST]:
            click.echo(f"and on a {suite} host write /etc/apt/sources.list.d/microdeploy.sources:\n")
            click.echo(sources_snippet(url, keyring, suite, component))

    serve(repo_dir, bind, port, ready=ready)


@click.command("check")
@click.argument("deb", type=PathParam(dir_okay=False))
@click.option("--previous", metavar="DEB|VERSION",
              help="Also upgrade from this older .deb, or from this version in --repo.")
@click.option("--dist", help="Debian release of the host (default: the package's own, else bookworm).")
@click.option("--repo", "repo_dir", type=PathParam(file_okay=False),
              help="Published repository the host may install dependencies (and --previous) from.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object with every check.")
@click.option("--junit", "junit", type=PathParam(dir_okay=False), metavar="FILE",
              help="Write a JUnit XML report here (one test case per check) for Jenkins' junit step.")
@click.option("--refresh-images", is_flag=True, help="Rebuild the cached host and piuparts images first.")
@click.option("--skip", multiple=True, type=click.Choice(["lintian", "piuparts", "host"]),
              help="Leave out a stage (repeatable).")
@click.option("--setup", type=PathParam(dir_okay=False), metavar="SCRIPT",
              help="Run this script as root on the host once the package is installed, the service stopped "
                   "meanwhile: the administrator's part (/etc/NAME/config.ini, a database made with NAME-run).")
@click.pass_context
def check_command(ctx: click.Context, deb: Path, previous: str | None, dist: str | None, repo_dir: Path | None,
                  as_json: bool, junit: Path | None, refresh_images: bool, skip: tuple[str, ...],
                  setup: Path | None) -> None:
    """Prove DEB on a fresh booted host of its release: lintian, piuparts, install, service, upgrade, purge.

    The host images are cached in /var/cache/microdeploy/hosts and pruned
    after the check to $MICRODEPLOY_IMAGES_MAX_SIZE (default 4G).
    """
    from microdeploy.check import CheckSettings, check, write_junit  # python-debian, http.server: only here
    from microdeploy.testbed import image_cache

    if junit is not None and not junit.absolute().parent.is_dir():
        raise MicrodeployError(f"no directory for the JUnit report: {junit.absolute().parent}",
                               hint="Create the directory first, or pass another --junit FILE",
                               exit_code=EXIT_BAD_INPUT)
    settings = CheckSettings(deb=deb, previous=previous, dist=dist, repo=repo_dir,
                             refresh_images=refresh_images, skip=frozenset(skip), setup=setup,
                             images_max_size=image_cache.default_max_size(os.environ))
    report = check(settings)
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




