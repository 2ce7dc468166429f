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

The rollout's parts: `deploy_plan` checks the input and makes the plan,
`deploy_hosts` opens the sessions and runs the preflight (step 1),
`deploy_commands` holds the commands run on a host, `deploy_report` what
happened; the SSH side lives behind the small `Remote` interface of
`hosts`, which `microdeploy.remote` implements with Fabric and tests fake.
"""


from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from microdeploy.deploy_commands import (
    APT_TIMEOUT,
    HEALTH_REQUEST_TIMEOUT,
    REMOTE_DEB_DIR,
    REMOTE_DIR_RE,
    cleanup_command,
    hook_command,
    install_command,
    install_file_command,
    is_downgrade,
    parse_query,
    private_dir_command,
    query_command,
    remove_command,
)
from microdeploy.deploy_dryrun import plan
from microdeploy.deploy_hosts import (
    Clock,
    HostState,
    each,
    open_sessions,
    preflight_hosts,
    refresh_lists,
    tail,
)
from microdeploy.deploy_plan import HEALTH_INTERVAL, DeployOptions, Rollout, make_rollout
from microdeploy.deploy_report import DeployReport, HostReport
from microdeploy.errors import MicrodeployError
from microdeploy.hosts import Connector

log = logging.getLogger(__name__)


@dataclass
class _Rollout:
    rollout: Rollout
    clock: Clock
    hosts: list[HostState] = field(default_factory=list)
    # Set on Ctrl-C or SIGTERM: each host's work ends at its next step, and no batch starts.
    stop: threading.Event = field(default_factory=threading.Event)
    batch: int = 0  # the batch in flight


class _Interrupted(Exception):
    """The rollout was interrupted while this host's work went on."""


def deploy(
    options: DeployOptions,
    *,
    connect: Connector | None = None,
    now: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> DeployReport:
    """Roll the version out batch by batch; roll the failing batch back. Raises MicrodeployError before any change."""
    started = now()
    rollout = make_rollout(options)
    batch_names = tuple(tuple(t.spec for t in batch) for batch in rollout.batches)
    if options.dry_run:
        preflight, planned = plan(rollout)
        return DeployReport(rollout.package, rollout.version, "dry-run", batch_names, plan=planned, preflight=preflight)
    if connect is None:
        connect = _fabric_connector(options)
    state = _Rollout(rollout, Clock(now, sleep))
    interrupted = False
    with open_sessions(rollout, connect) as hosts:
        state.hosts = hosts
        preflight_hosts(rollout, hosts, state.clock)
        try:
            failures, stopped = _run_batches(state)
        except KeyboardInterrupt:  # `each` has told the hosts' threads to stop
            interrupted, stopped = True, True
            failures = sum(host.report is not None and host.report.state == "failed" for host in hosts)
            _report_interrupted(state)
    reports = tuple(
        host.report or HostReport(host.target.spec, host.batch, host.before, host.before, "untouched")
        for host in state.hosts
    )
    rollback_failed = any(report.state == "rollback-failed" for report in reports)
    result = ("interrupted" if interrupted else "success" if failures == 0 else "rollback-failed" if rollback_failed
              else "rolled-back" if stopped else "completed-with-failures")
    if stopped and not interrupted:
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


def _report_interrupted(state: _Rollout) -> None:
    """After Ctrl-C: each host of the batch in flight whose work did not end is reported with the version it is at
    now, and the way back is said. Nothing is rolled back: the operator stopped the rollout."""
    rollout = state.rollout
    for host in state.hosts:
        if host.batch != state.batch or (host.report is not None and host.report.state != "interrupted"):
            continue
        try:
            now = parse_query(host.remote.run(query_command(rollout.package), timeout=60))
        except MicrodeployError:
            now = None
        host.report = HostReport(host.target.spec, host.batch, host.before, now, "interrupted", None,
                                 error="interrupted before its health was known")
    changed = [host for host in state.hosts if host.report is not None and host.report.after != host.before]
    log.warning("interrupted in batch %d of %d; nothing was rolled back", state.batch, len(rollout.batches))
    for host in changed:
        assert host.report is not None
        back = (f"--version {host.before}" if host.before else f"(it had no {rollout.package}: apt-get remove)")
        log.warning("%s: %s -> %s (%s); to restore it: microdeploy deploy %s --hosts %s %s", host.target.spec,
                    host.before or "none", host.report.after or "none", host.report.state, rollout.package,
                    host.target.spec, back)


def _run_batches(state: _Rollout) -> tuple[int, bool]:
    """Roll out batch after batch; return the number of failed hosts and whether the rollout stopped."""
    rollout = state.rollout
    failures = 0
    for number in range(1, len(rollout.batches) + 1):
        state.batch = number
        batch = [host for host in state.hosts if host.batch == number]
        log.info("batch %d/%d: %s", number, len(rollout.batches), ", ".join(h.target.spec for h in batch))
        each(batch, lambda host: _upgrade(state, host), state.stop)
        failed = [host for host in batch if host.report is not None and host.report.state == "failed"]
        failures += len(failed)
        if failures > rollout.max_failures:
            for host in failed:
                log.warning("%s: %s", host.target.spec, host.report.error if host.report else "failed")
            log.warning("batch %d failed: restoring the previous version on %s", number,
                        ", ".join(h.target.spec for h in batch))
            each(batch, lambda host: _restore(state, host), state.stop)
            return failures, True
        if failed:
            log.warning("%d failure(s) of at most %d allowed: restoring %s and going on", failures,
                        rollout.max_failures, ", ".join(h.target.spec for h in failed))
            each(failed, lambda host: _restore(state, host), state.stop)
    return failures, False


def _upgrade(state: _Rollout, host: HostState) -> None:
    """One host's part of its batch; a lost connection counts as a failure of that host."""
    started = state.clock.now()
    try:
        _upgrade_steps(state, host)
    except _Interrupted:
        if host.report is None:  # else the rollout's own account of the interrupt, made first
            host.report = HostReport(host.target.spec, host.batch, host.before, None, "interrupted", None,
                                     state.clock.now() - started)
    except MicrodeployError as exc:
        # The package may or may not have changed: restoring is the safe assumption.
        host.report = HostReport(host.target.spec, host.batch, host.before, None, "failed", False,
                                 state.clock.now() - started, None, exc.message)


def _upgrade_steps(state: _Rollout, host: HostState) -> None:
    """Drain, install, verify the version, wait for health, undrain."""
    rollout = state.rollout
    clock = state.clock
    started = clock.now()

    def failed(error: str, after: str | None, health: float | None = None) -> None:
        host.report = HostReport(host.target.spec, host.batch, host.before, after, "failed", False,
                                 clock.now() - started, health, error)

    if state.stop.is_set():
        raise _Interrupted
    # The lists first: a wait for the host's apt then keeps no drained host out of rotation.
    if not host.updated:
        result = refresh_lists(host, rollout, clock, state.stop)
        if state.stop.is_set():
            raise _Interrupted
        if not result.ok:
            failed(f"apt-get update failed (exit status {result.exit_code})\n{tail(result)}", host.before)
            return
    host.touched = True
    if rollout.drain and not _hook(host, rollout.drain, rollout.sudo):
        failed(f"drain hook failed: {rollout.drain}", host.before)
        return
    downgrade = is_downgrade(host.before, host.version)
    if rollout.deb is not None and rollout.deb_name is not None:
        made = host.remote.run(private_dir_command())
        directory = made.stdout.strip()
        if not made.ok or not REMOTE_DIR_RE.fullmatch(directory):
            failed(f"cannot make a private directory in {REMOTE_DEB_DIR} (exit status {made.exit_code})\n"
                   f"{tail(made)}", host.before)
            return
        path = f"{directory}/{rollout.deb_name}"
        try:
            host.remote.put(rollout.deb, path)
            result = host.remote.run(install_file_command(path, allow_downgrades=downgrade), sudo=rollout.sudo,
                                     timeout=APT_TIMEOUT)
        finally:
            host.remote.run(cleanup_command(directory))
    else:
        result = host.remote.run(install_command(rollout.package, host.version, allow_downgrades=downgrade),
                                 sudo=rollout.sudo, timeout=APT_TIMEOUT)
    after = parse_query(host.remote.run(query_command(rollout.package)))
    if not result.ok:
        stale = f"\n    (apt could not refresh: {'; '.join(host.stale)})" if host.stale else ""
        failed(f"apt-get install failed (exit status {result.exit_code})\n{tail(result)}{stale}", after)
        return
    if after != host.version:
        failed(f"{rollout.package} is at {after or 'nothing'} after installing {host.version}", after)
        return
    healthy, health_seconds, url = _wait_healthy(state, host)
    if not healthy:
        failed(f"not healthy within {rollout.health_timeout:g} s: {url}", after, health_seconds)
        return
    if rollout.undrain and not _hook(host, rollout.undrain, rollout.sudo):
        failed(f"undrain hook failed: {rollout.undrain}", after, health_seconds)
        return
    state_name = ("unchanged" if host.before == after else "installed" if not host.before
                  else "downgraded" if is_downgrade(host.before, after) else "upgraded")
    host.report = HostReport(host.target.spec, host.batch, host.before, after, state_name, True,
                             clock.now() - started, health_seconds)
    log.info("%s: %s -> %s, healthy in %.1f s", host.target.spec, host.before or "none", after, health_seconds)


def _restore(state: _Rollout, host: HostState) -> None:
    """Restore one host; a lost connection leaves it reported as rollback-failed."""
    report = host.report
    try:
        _restore_steps(state, host)
    except MicrodeployError as exc:
        log.error("%s: rollback failed: %s", host.target.spec, exc.message)
        if report is not None:
            error = f"{report.error}; rollback failed: {exc.message}" if report.error else exc.message
            host.report = replace(report, state="rollback-failed", healthy=None, error=error)


def _restore_steps(state: _Rollout, host: HostState) -> None:
    """Put back the version recorded before the rollout (or remove a first install), then check health."""
    rollout = state.rollout
    clock = state.clock
    report = host.report
    if report is None or not host.touched:
        return  # nothing of the rollout reached it (its lists' refresh failed): its report says why, as it is
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
        log.error("%s: rollback to %s failed; now at %s", host.target.spec, host.before or "no version",
                  current or "no version dpkg calls installed (`dpkg --audit` there says why)")
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


def _wait_healthy(state: _Rollout, host: HostState) -> tuple[bool, float, str]:
    """Poll the service's health URL on the host until it answers or the timeout passes; also the URL probed, with
    the last poll's reason when it never answered.

    The probe reads the host's config.ini, which only root and the service
    may read: it runs with sudo when apt does.
    """
    rollout = state.rollout
    clock = state.clock
    command = rollout.health_check
    started = clock.now()
    deadline = started + rollout.health_timeout
    while True:
        if state.stop.is_set():
            raise _Interrupted
        result = host.remote.run(command, sudo=rollout.sudo, timeout=HEALTH_REQUEST_TIMEOUT + 10)
        url = (result.stdout.strip().splitlines() or [rollout.health_url])[0]
        if result.ok:
            return True, clock.now() - started, url
        if clock.now() + HEALTH_INTERVAL > deadline:
            reason = (result.stderr.strip().splitlines() or [f"exit status {result.exit_code}"])[-1]
            return False, clock.now() - started, f"{url} (last: {reason})"
        clock.sleep(HEALTH_INTERVAL)


def _hook(host: HostState, hook: str, sudo: bool) -> bool:
    return host.remote.run(hook_command(hook), sudo=sudo, timeout=APT_TIMEOUT).ok


