"""The command line: parse, call one library function, print, map errors to exit codes."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

import click

from microdeploy import __version__
from microdeploy.build.pipeline import build_releases
from microdeploy.build.release.settings import BACKENDS, BuildSettings
from microdeploy.cli_base import (
    INT,
    LEVELS_HELP,
    MicrodeployGroup,
    OutputParam,
    PathParam,
    ProgressHandler,
    config_overrides,
    load_service,
    print_json,
    service_options,
)
from microdeploy.cli_cache import cache_group
from microdeploy.cli_ops import check_command, deploy_command, publish_command, repo_group
from microdeploy.config import (
    COMPRESSION_LEVELS,
    DEFAULT_PORT,
    validate,
)
from microdeploy.controlrepo import (
    DEFAULT_BASEDIR,
    DEFAULT_CACHEDIR,
    ControlRepoOptions,
    init_control_repo,
    update_module,
)
from microdeploy.dists import DISTS
from microdeploy.errors import EXIT_BAD_INPUT
from microdeploy.jenkins import FORMS, JenkinsOptions, jenkinsfile
from microdeploy.scaffold import default_maintainer, scaffold


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




for _command in (cache_group, deploy_command, publish_command, repo_group, check_command):
    main.add_command(_command)


@main.command()
@click.argument("name")
@click.option("--dir", "directory", type=PathParam(),
              help="Directory to create (default: ./NAME).")
@click.option("--port", type=INT, default=DEFAULT_PORT, show_default=True, help="Port of the service.")
@click.option("--with-db", is_flag=True, help="Add Flask-SQLAlchemy and Flask-Migrate with SQLite.")
@click.option("--no-input", is_flag=True, help="Do not prompt; use defaults.")
def new(name: str, directory: Path | None, port: int, with_db: bool, no_input: bool) -> None:
    """Create a Flask service NAME in the conventional layout."""
    description = "Flask web service"
    maintainer = default_maintainer(os.environ)
    origins = ("the default", "DEBFULLNAME/DEBEMAIL (or NAME/EMAIL)")
    # A closed standard input (`<&-`, some CI runners) is no terminal to ask at: Python makes sys.stdin None.
    if not no_input and sys.stdin is not None and sys.stdin.isatty():
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
@click.argument("project", type=PathParam(), default=".")
@service_options
def show_config(project: Path, **flags: Any) -> None:
    """Print the validated service configuration of PROJECT as JSON."""
    from microdeploy.build.fastpath.layer import check_extras  # the build's own check, imported when used
    from microdeploy.pyproject import read_pyproject

    config = load_service(project, flags)
    check_extras(read_pyproject(project), config.extras)  # an extra the project lacks, as build refuses it
    data = {key: getattr(config, key) for key in config.__dataclass_fields__}
    print_json(data)


@main.command("build")
@click.argument("project", type=PathParam(), default=".")
@click.option("--out", type=PathParam(), help="Output directory (default: PROJECT/dist).")
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
@click.option("--write-execute-memory", is_flag=True, default=None,
              help="Let the service make writable and executable memory (cffi's ffi.callback(), a JIT): "
                   "the unit leaves out MemoryDenyWriteExecute=yes.")
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
    /var/cache/microdeploy/roots (needs root), pruned to
    $MICRODEPLOY_ROOTS_MAX_SIZE (default 4G).
    """
    overrides = config_overrides(flags)
    overrides["version"] = version
    overrides["dist"] = dist
    settings = BuildSettings(project=project, out=out, overrides=overrides, revision=revision,
                             environ=dict(os.environ), keep_installers=keep_installers, refresh_deps=refresh_deps,
                             backend=backend, clean_root=clean_root, refresh_root=refresh_root)
    results = build_releases(settings)
    if as_json:
        print_json(results[0].as_dict() if len(results) == 1 else {"builds": [r.as_dict() for r in results]})
        return
    for result in results:
        click.echo(f"{result.deb} ({result.version}, {result.size // 1024} kB, {result.seconds:.1f} s)")


@main.command("jenkinsfile")
@click.argument("project", type=PathParam(), default=".")
@click.option("--form", type=click.Choice(FORMS), default="full", show_default=True,
              help="full: a self-contained Jenkinsfile; one-line: a call of the shared library; "
                   "library: the shared library's vars/microdeployPipeline.groovy.")
@click.option("-o", "--output", type=OutputParam(), default="-", show_default=True, metavar="FILE|-",
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
@click.option("--check-setup", metavar="FILE",
              help="The Lint stage's `microdeploy check --setup`: a script of the repository (relative path, "
                   "e.g. ci/check-setup.sh) that sets the app up on the check's host.")
@service_options
def jenkinsfile_command(project: Path, form: str, output: str, agent_label: str, release_branch: str, repo: str,
                        signing_key_credentials: str, signing_passphrase_credentials: str,
                        control_repo: str | None, control_repo_branch: str, control_repo_mode: str,
                        control_repo_credentials: str, deploy_hosts: tuple[str, ...], deploy_credentials: str,
                        notify_email: tuple[str, ...], timeout_minutes: int, keep_builds: int,
                        dist: tuple[str, ...], check_setup: str | None, **flags: Any) -> None:
    """Render the Jenkins pipeline that tests, builds and releases the service in PROJECT."""
    options = JenkinsOptions(
        agent_label=agent_label, release_branch=release_branch, repo=repo,
        signing_key_credentials=signing_key_credentials,
        signing_passphrase_credentials=signing_passphrase_credentials, control_repo=control_repo,
        control_repo_branch=control_repo_branch, control_repo_mode=control_repo_mode,
        control_repo_credentials=control_repo_credentials,
        # Each comma-separated entry is a host: an empty one ("", "a,,b") is refused, not dropped (with the
        # whole option empty, the Deploy stage would be left out without a word).
        deploy_hosts=tuple(host for value in deploy_hosts for host in value.split(",")),
        deploy_credentials=deploy_credentials, notify_email=notify_email, timeout_minutes=timeout_minutes,
        keep_builds=keep_builds, dists=dist, check_setup=check_setup,
    )
    result = jenkinsfile(project, config_overrides(flags), options, form=form,
                         output=None if output == "-" else Path(output))
    if result.path is None:
        click.echo(result.text, nl=False)
    else:
        click.echo(f"Wrote {result.path} ({result.form} form).", err=True)


@main.command("puppet-data")
@click.argument("projects", nargs=-1, type=PathParam())
@click.option("--env", metavar="ENV", help="Pin the version for this Puppet environment (with --control-repo).")
@click.option("--node", metavar="FQDN", help="Pin the version for this node, by certname (with --control-repo).")
@click.option("--control-repo", type=PathParam(),
              help="Write into this r10k control repository: data/services/NAME.yaml, or with --env/--node "
                   "the pin alone into that level's file.")
@click.option("-o", "--output", type=OutputParam(), default="-", show_default=True, metavar="FILE|-",
              help="Write here instead of standard output: a new file, or one microdeploy wrote before.")
@click.option("--version", "version", help="Debian version to pin, e.g. 1.4.0-1 (default: as `build` computes it).")
@click.option("--apt-location", metavar="URL", help="Also write the signed APT source: the repository URL...")
@click.option("--apt-key", type=PathParam(dir_okay=False), metavar="FILE",
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
@click.argument("directory", metavar="DIR", type=PathParam())
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
@click.argument("directory", metavar="DIR", type=PathParam(), default=".")
def control_repo_update_module(directory: Path) -> None:
    """Replace the module vendored in DIR with this microdeploy's (review and commit the change)."""
    old, new = update_module(directory)
    click.echo(f"Updated {directory}/site-modules/microdeploy from {old or 'an unknown version'} to {new}; "
               "review with `git diff` and commit.")


__all__ = ["EXIT_BAD_INPUT", "main"]
