"""The hosts of a rollout: a session to each, what is known about each, and the preflight that changes nothing.

Every session opens (in parallel) before anything changes, and the preflight
records each host's installed version and Debian release and makes sure its
repository suite has the build to install. `deploy` then rolls out over
these hosts.
"""

from __future__ import annotations

import fnmatch
import itertools
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass

from microdeploy.deploy_commands import (
    APT_TIMEOUT,
    LOCK_RETRY_INTERVAL,
    LOCK_WAIT,
    available_command,
    fetch_failures,
    lists_locked,
    madison_sources,
    parse_madison,
    parse_pin,
    parse_state,
    pin_path,
    state_command,
    unfinished,
    update_command,
    version_for,
)
from microdeploy.deploy_plan import Rollout
from microdeploy.deploy_report import HostReport
from microdeploy.dists import SUFFIX_RE, Dist
from microdeploy.errors import MicrodeployError, bad_input
from microdeploy.hosts import CommandResult, Connector, Remote, Target

log = logging.getLogger(__name__)
# A line of a command's standard output that reports a failure (dpkg's "error processing package", systemctl's
# "Failed to enable unit", a script's "No space left on device").
_ERROR_WORDS = re.compile(r"\berror\b|\bfailed\b|^E: |No space left|Errors were encountered", re.IGNORECASE)


@dataclass
class Clock:
    """The rollout's time: a fake one in tests."""

    now: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep


@dataclass
class HostState:
    """A host's session and what we know about it during the rollout."""

    target: Target
    batch: int
    remote: Remote
    before: str | None = None
    updated: bool = False
    report: HostReport | None = None
    dist: Dist | None = None  # the host's Debian release, when microdeploy builds for it
    version: str = ""  # what this host installs: the build of its release of the version asked for
    pinned: str | None = None  # the version the Puppet module's apt pin holds the package at, if any
    stale: tuple[str, ...] = ()  # the sources its `apt-get update` could not fetch ("URL: reason")
    touched: bool = False  # its drain hook or its install has run: there is something to restore



@contextmanager
def open_sessions(rollout: Rollout, connect: Connector) -> Iterator[list[HostState]]:
    """Open a session to every host (in parallel) before anything changes; close them all at the end."""
    numbered = [(number, target) for number, batch in enumerate(rollout.batches, 1) for target in batch]
    opened: list[HostState] = []
    errors: list[tuple[Target, MicrodeployError]] = []

    def open_one(item: tuple[int, Target]) -> None:
        number, target = item
        try:
            remote = connect(target)
        except MicrodeployError as exc:
            errors.append((target, exc))
            return
        opened.append(HostState(target, number, remote))

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


def preflight_hosts(rollout: Rollout, hosts: list[HostState], clock: Clock) -> None:
    """Record every host's version and release; make sure the repository has each release's build; change nothing.

    A fleet can mix Debian releases: the first host of each release refreshes its
    lists and says which versions its repository suite has, and every host of
    that release gets the build for it (`version_for`).
    """
    broken: list[str] = []
    refused: list[str] = []

    def record(host: HostState) -> None:
        state = host.remote.run(state_command(rollout.package))
        host.before, host.dist = parse_state(state)
        host.pinned = parse_pin(state, rollout.package)
        left = unfinished(state)
        if left is not None:
            broken.append(f"{host.target.spec}: {rollout.package} is {left}")
        if rollout.sudo:  # every host's, not only the first's: changes nothing, and fails at once without NOPASSWD
            asked = host.remote.run("true", sudo=True)
            if not asked.ok:
                refused.append(f"{host.target.spec}: {(asked.stderr or asked.stdout).strip() or asked.exit_code}")

    each(hosts, record)
    _stop_for(refused, f"sudo refuses the deploy user on {len(refused)} host(s)",
              "Give the user passwordless sudo there (NOPASSWD: ALL): deploy runs apt-get (through env), "
              "systemd-run and the hooks as root, with `sudo -n`")
    # Taken for "not installed", the package would be "rolled back" by nothing, or removed.
    _stop_for(broken, f"dpkg did not finish an earlier install or removal of {rollout.package}",
              f"Finish it on those hosts: fix what failed (`dpkg --audit` names it; a masked unit, a full disk), "
              f"then run `dpkg --configure -a`, or `apt-get install {rollout.package}=VERSION`, and deploy again")
    for host in hosts:
        log.info("%s: %s installed", host.target.spec, host.before or f"no {rollout.package}")
    releases: dict[Dist | None, list[HostState]] = {}
    for host in hosts:
        releases.setdefault(host.dist, []).append(host)
    for members in releases.values():
        _resolve(rollout, members, clock)
    _warn_of_pins(rollout, hosts)


def _stop_for(found: list[str], what: str, hint: str) -> None:
    """End the preflight (no host was changed) when hosts were `found` in a state the rollout cannot start from."""
    if found:
        raise MicrodeployError(f"{what}; no host was changed:\n" + "\n".join(f"    {line}" for line in sorted(found)),
                               hint=hint)


def _warn_of_pins(rollout: Rollout, hosts: list[HostState]) -> None:
    """Say where Puppet will put another version back: its pin is the host's version once deploy is gone.

    `apt-get install NAME=V` installs V whatever the pin says, so the rollout
    itself goes ahead; the next Puppet run installs the pinned version again.
    """
    against: dict[str, list[str]] = {}
    for host in hosts:
        if host.pinned is not None and not fnmatch.fnmatchcase(host.version, host.pinned):
            against.setdefault(host.pinned, []).append(host.target.spec)
    for pinned, names in against.items():
        log.warning("%s: the Puppet module pins %s at %s there (%s), so its next run puts %s back; to keep the new "
                    "version, pin it in Hiera (microdeploy puppet-data --version %s)", ", ".join(names),
                    rollout.package, pinned, pin_path(rollout.package), pinned, rollout.version)


def refresh_lists(host: HostState, rollout: Rollout, clock: Clock, stop: threading.Event | None = None
                  ) -> CommandResult:
    """`apt-get update` on the host, tried again while the host's own apt holds the lists' lock; once it
    succeeds, the host is marked updated, with the sources it could not fetch (it keeps their old lists).

    apt-daily refreshes the lists soon after a host boots, and `apt-get update`
    fails at once on their lock instead of waiting for it, as apt-get install
    does for dpkg's. Gives up after LOCK_WAIT, or when `stop` is set.
    """
    deadline = clock.now() + LOCK_WAIT
    for attempt in itertools.count():
        result = host.remote.run(update_command(rollout.apt_source), sudo=rollout.sudo, timeout=APT_TIMEOUT)
        if not lists_locked(result) or clock.now() + LOCK_RETRY_INTERVAL > deadline or (stop and stop.is_set()):
            break
        if attempt == 0:
            log.info("%s: another apt holds the APT lists; waiting up to %.0f s for it", host.target.spec, LOCK_WAIT)
        clock.sleep(LOCK_RETRY_INTERVAL)
    if result.ok:
        host.updated = True
        host.stale = tuple(fetch_failures(result))
        if host.stale:
            log.warning("%s: apt could not refresh some of its lists (it keeps the ones it had): %s",
                        host.target.spec, "; ".join(host.stale))
    return result


def _resolve(rollout: Rollout, members: list[HostState], clock: Clock) -> None:
    """Set the version of the hosts of one release from the versions the first of them can install."""
    first = members[0]
    _require(first, refresh_lists(first, rollout, clock), update_command(rollout.apt_source),
             "refreshing the APT lists")
    listed = _checked(first, available_command(rollout.package), "listing versions").stdout
    versions = parse_madison(listed, rollout.package)
    # The failed sources that serve the package; all of them when no list names it yet (a first install).
    sources = madison_sources(listed, rollout.package)
    ours = [failure for failure in first.stale if not sources or any(failure.startswith(url) for url in sources)]
    for host in members:
        if host.before is not None and host.before not in versions:
            log.warning("%s: its version %s is not in the repository: a rollback there would fail",
                        host.target.spec, host.before)
    version = rollout.version if rollout.deb is not None else version_for(rollout.version, first.dist, versions)
    if version is None and ours:
        # Not a version missing from the repository: one that apt could not ask the repository about.
        raise MicrodeployError(
            f"version {rollout.version} of {rollout.package} is not in the APT lists of {first.target.spec}, which "
            f"apt could not refresh from {'; '.join(ours)}; no host was changed",
            hint=_apt_hint(first.target.spec, " ".join(ours)) or
            f"Check that {first.target.spec} reaches the repository (the URL in its APT sources, a proxy, a "
            "firewall) and that the version is published, then deploy again",
        )
    if version is None:
        available = ", ".join(versions) if versions else "none"
        own = "" if first.dist is None else \
            f", nor {SUFFIX_RE.sub('', rollout.version)}{first.dist.suffix} for its {first.dist.codename}"
        raise bad_input(
            f"version {rollout.version} of {rollout.package} is not in the APT repository of "
            f"{first.target.spec} (available: {available}){own}; no host was changed",
            hint="Publish that version first (`microdeploy publish`), or deploy one of the available versions",
        )
    if version != rollout.version:
        log.info("%s: %s, the build of %s", ", ".join(h.target.spec for h in members), version,
                 first.dist.codename if first.dist else "its release")
    for host in members:
        host.version = version


def _apt_hint(host: str, said: str) -> str | None:
    """What to do about the two faults of a host's apt that its words name: a key it does not have (the
    repository's was rotated, `publish --rotate-key`) and a clock behind the repository's Release date."""
    if "NO_PUBKEY" in said or "is not signed" in said or "EXPKEYSIG" in said:
        return (f"Give {host} the repository's current public key (its microdeploy-archive-keyring.gpg, at the path "
                "its APT source's Signed-By names; the Puppet module's apt_key_content), then deploy again")
    if "is not valid yet" in said:
        return f"Set {host}'s clock right (its Release file is dated in the host's future): NTP, timedatectl"
    return None


def _checked(host: HostState, command: str, what: str) -> CommandResult:
    return _require(host, host.remote.run(command), command, what)


def _require(host: HostState, result: CommandResult, command: str, what: str) -> CommandResult:
    """The command's result when it succeeded; bad input naming the host and the command when not."""
    if not result.ok:
        raise MicrodeployError(
            f"{host.target.spec}: {what} failed (exit status {result.exit_code}); no host was changed\n"
            f"    $ {command}\n{tail(result)}",
            hint=_apt_hint(host.target.spec, result.stdout + result.stderr)
            or "Fix the host's APT configuration (or its sudo rights) and deploy again",
        )
    return result


def each(hosts: Sequence[HostState], work: Callable[[HostState], None], stop: threading.Event | None = None) -> None:
    """Run `work` on every host in parallel, re-raising the first exception (a bug, not a host's failure).

    Ctrl-C reaches this thread while the hosts' threads work: `stop` tells them to end at their next step (before
    the pool waits for them), so that the interrupt is not held until every health check has timed out."""
    if len(hosts) == 1:
        with _stopping(stop):
            work(hosts[0])
        return
    # The pool waits for its threads (their reports final before the caller reads them) after `stop` is set.
    with ThreadPoolExecutor(max_workers=min(16, len(hosts))) as pool, _stopping(stop):
        futures = [pool.submit(work, host) for host in hosts]
        # Timed waits: CPython takes Ctrl-C in this thread only between them; an untimed wait holds it until
        # every host's work has ended.
        while wait(futures, timeout=0.2).not_done:
            pass
    for future in futures:
        future.result()


@contextmanager
def _stopping(stop: threading.Event | None) -> Iterator[None]:
    """Set `stop` when Ctrl-C ends the block."""
    try:
        yield
    except KeyboardInterrupt:
        if stop is not None:
            stop.set()
        raise


def tail(result: CommandResult, lines: int = 10) -> str:
    """What a failed command said: the lines of its standard output that report an error (dpkg and the
    maintainer scripts it runs write theirs there; apt only its summary to stderr), then its stderr's last lines;
    its stdout's last lines when neither has any."""
    said = [line for line in result.stdout.splitlines() if _ERROR_WORDS.search(line)][-lines:]
    said += result.stderr.strip().splitlines()[-lines:]
    text = "\n".join(said) or result.stdout.strip()
    return "\n".join(f"    {line}" for line in text.splitlines()[-2 * lines:])
