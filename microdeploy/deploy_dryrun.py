"""What a dry run of `deploy` shows: the preflight commands and each host's commands, without connecting."""

from __future__ import annotations

from microdeploy.deploy_commands import (
    available_command,
    cleanup_command,
    hook_command,
    install_command,
    install_file_command,
    is_downgrade,
    private_dir_command,
    query_command,
    remove_command,
    state_command,
    update_command,
)
from microdeploy.deploy_plan import Rollout
from microdeploy.deploy_report import PlannedHost


def plan(rollout: Rollout) -> tuple[tuple[str, ...], tuple[PlannedHost, ...]]:
    """The preflight commands and each host's commands, for a dry run."""
    preflight = (
        f"every host: {state_command(rollout.package)}",
        f"first host of each Debian release: {update_command(rollout.apt_source)}",
        f"first host of each Debian release: {available_command(rollout.package)}",
    )
    hosts = []
    for number, batch in enumerate(rollout.batches, start=1):
        for target in batch:
            commands = [update_command(rollout.apt_source), *_install_steps(rollout, None),
                        query_command(rollout.package), f"until healthy: {rollout.health_check}"]
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
