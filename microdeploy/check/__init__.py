"""`microdeploy check`: prove a package before it ships, the way the project's own tests prove theirs.

lintian and piuparts run beside a fresh host of the package's release booted
with systemd, on which the package is installed, probed as a running service,
upgraded and purged. Every check becomes one line of the report (and one
JUnit test case); the host, its network namespace and the temporary files
are removed whatever happens, Ctrl-C included.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from pathlib import Path

from debian.debian_support import Version

from microdeploy.dists import DEFAULT_DIST
from microdeploy.errors import bad_input
from microdeploy.fsutil import atomic_write
from microdeploy.mirrors import release_mirrors
from microdeploy.proctree import children
from microdeploy.repo import KEYRING_NAME, Layout
from microdeploy.testbed import image_cache
from microdeploy.testbed.image import ensure_image, ensure_piuparts_base
from microdeploy.validate import DEBIAN_VERSION

from . import qa
from .feed import serving_feed
from .onhost import DEFAULT_MAX_EXPOSURE, HostPlan, host_checks
from .package import DebInfo, read_deb, release_of
from .report import FAILED, SKIPPED, Outcome, Report

__all__ = ["DEFAULT_MAX_EXPOSURE", "STAGES", "CheckSettings", "Report", "check", "write_junit"]

log = logging.getLogger(__name__)

# The stages a run can leave out with --skip.
STAGES = ("lintian", "piuparts", "host")


@dataclass(frozen=True)
class CheckSettings:
    """What `microdeploy check` was asked to do."""

    deb: Path
    previous: str | None = None
    dist: str | None = None
    repo: Path | None = None
    refresh_images: bool = False
    skip: frozenset[str] = field(default_factory=frozenset)
    max_exposure: float = DEFAULT_MAX_EXPOSURE
    # A script run as root on the host once the package is installed (the administrator's part).
    setup: Path | None = None
    # The host images' cache is pruned to this after the check (image_cache.py).
    images_max_size: int = field(default_factory=lambda: image_cache.default_max_size({}))


def check(settings: CheckSettings, *, is_root: Callable[[], bool] = lambda: os.geteuid() == 0) -> Report:
    """Run every check on the package and return the report (exit 2 for bad input, before anything runs)."""
    if not is_root():
        raise bad_input(
            "microdeploy check needs root: it boots a host with systemd-nspawn in its own network namespace",
            hint=f"Run it as root: sudo {_command_line(settings)}",
        )
    info = read_deb(settings.deb)
    release = release_of(info, settings.dist)
    unknown = sorted(settings.skip - set(STAGES))
    if unknown:
        raise bad_input(f"unknown stage(s) to skip: {', '.join(unknown)}", hint=f"Use some of: {', '.join(STAGES)}")
    _check_setup(settings)
    repo_public = _repo_public(settings.repo)
    previous, previous_version = _previous(settings.previous, info, repo_public)
    repo_dist = release if repo_public and (repo_public / "dists" / release).is_dir() else DEFAULT_DIST

    report = Report(info.name, info.version, release)
    started = time.monotonic()

    def record(outcome: Outcome) -> None:
        report.outcomes.append(outcome)
        log.info("%s", outcome.line())

    log.info("checking %s %s on %s", info.name, info.version, release)
    # The pool is left last: its threads wait for lintian and piuparts, whose
    # feed (in `tools_stack`) must outlive them; the host goes first.
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="check") as pool, ExitStack() as tools_stack:
        # lintian and piuparts run beside the host checks: each mostly waits.
        tools: list[tuple[str, Future[Outcome]]] = []
        if "lintian" not in settings.skip:
            tools.append(("lintian", pool.submit(_timed, lambda: qa.lintian(info, release))))
        if "piuparts" not in settings.skip:
            # piuparts' chroot shares our network: it gets the mirror through a
            # feed on loopback, whose cache spares it the downloads of earlier runs.
            mirrors = release_mirrors(release)
            feed = tools_stack.enter_context(serving_feed("127.0.0.1", mirrors[:1], None))
            tools.append(("piuparts", pool.submit(_timed, lambda: qa.piuparts(
                info, release=release, base=ensure_piuparts_base(suite=release, refresh=settings.refresh_images),
                mirror=f"{feed.url}mirror/0/", previous=previous, repo_public=repo_public,
                repo_dist=repo_dist, upgrade_from_repo=previous_version is not None))))
        try:
            if "host" not in settings.skip:
                image = ensure_image(suite=release, refresh=settings.refresh_images)
                plan = HostPlan(info, release, image, previous, previous_version, repo_public, repo_dist,
                                settings.max_exposure, settings.setup)
                with ExitStack() as host_stack:
                    host_checks(plan, record, host_stack)
        except BaseException:
            # Interrupted (Ctrl-C reaches the tools too; SIGTERM only us): the
            # host is gone, end lintian and piuparts, our own children, by pid.
            _end_children()
            raise
        finally:
            for name, future in tools:
                try:
                    outcome = future.result()
                except Exception as exc:  # a tool that could not run is a failed check, not a crash
                    outcome = Outcome(name, FAILED, str(exc).splitlines()[0], details=str(exc))
                record(outcome)
    for stage in sorted(settings.skip):
        record(Outcome(stage, SKIPPED, "skipped (--skip)"))
    report.outcomes.sort(key=_report_order)
    report.seconds = time.monotonic() - started
    for entry in image_cache.prune_after_check(settings.images_max_size):
        log.info("removed %s from the cache of host images, the least recently used", entry.path.name)
    return report


def write_junit(report: Report, path: Path) -> None:
    """Write the report as JUnit XML to `path`, atomically."""
    atomic_write(path, report.junit_xml())


def _end_children() -> None:
    """SIGINT, as Ctrl-C would, to the programs this process still runs: piuparts cleans its chroot up on it."""
    for pid in children(os.getpid()):
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGINT)


def _timed(func: Callable[[], Outcome]) -> Outcome:
    """Run a check and give its outcome the time it took."""
    started = time.monotonic()
    outcome = func()
    return Outcome(outcome.name, outcome.status, outcome.summary, time.monotonic() - started, outcome.details)


def _report_order(outcome: Outcome) -> int:
    """lintian, piuparts, then the host's checks in the order they ran."""
    return {"lintian": 0, "piuparts": 1}.get(outcome.name, 2)


def _check_setup(settings: CheckSettings) -> None:
    """--setup names a non-empty file, and the host it runs on is not skipped."""
    script = settings.setup
    if script is None:
        return
    if "host" in settings.skip:
        raise bad_input("--setup runs on the host, which --skip host leaves out", hint="Pass one of the two")
    if not script.is_file():
        raise bad_input(f"no such setup script: {script}", hint="Pass a shell script (or a program with #!) to "
                        "run as root on the host after the install")
    if script.stat().st_size == 0:
        raise bad_input(f"the setup script {script} is empty", hint="Write the administrator's steps into it, or "
                        "leave out --setup")


def _repo_public(repo: Path | None) -> Path | None:
    """The published tree of --repo, which must hold a published, signed repository."""
    if repo is None:
        return None
    public = Layout(repo.absolute()).public
    if not (public / KEYRING_NAME).is_file():
        raise bad_input(f"no published repository in {repo}", hint="Run `microdeploy publish DEB --repo DIR` first")
    return public.resolve()


def _previous(value: str | None, info: DebInfo, repo_public: Path | None) -> tuple[DebInfo | None, str | None]:
    """--previous as a .deb of the same package (older), or as a version to take from --repo."""
    if value is None:
        return None, None
    if value.endswith(".deb") or Path(value).is_file():
        previous = read_deb(Path(value))
        if previous.name != info.name:
            raise bad_input(f"--previous {value} is package {previous.name}, not {info.name}",
                            hint=f"Pass an older .deb of {info.name}")
        if Version(previous.version) >= Version(info.version):
            raise bad_input(f"--previous {previous.version} is not older than {info.version}",
                            hint="Pass an older build to upgrade from")
        return previous, None
    # python-debian takes almost any text for a version ("not-a-version" sorted below 0.1.0-1).
    if DEBIAN_VERSION.pattern.fullmatch(value) is None:
        raise bad_input(f"--previous {value!r} is neither a .deb nor a Debian version",
                        hint="Pass an older .deb or a version in --repo")
    if not Version(value) < Version(info.version):
        raise bad_input(f"--previous {value} is not older than {info.version}", hint="Pass an older version")
    if repo_public is None:
        raise bad_input(f"--previous {value} is a version, and no --repo to install it from",
                        hint="Add --repo DIR with the published repository that holds it, or pass the .deb")
    return None, value


def _command_line(settings: CheckSettings) -> str:
    """The command a user would type for these settings (for the not-root hint)."""
    words = ["microdeploy", "check", str(settings.deb)]
    if settings.previous:
        words += ["--previous", settings.previous]
    if settings.repo:
        words += ["--repo", str(settings.repo)]
    if settings.dist:
        words += ["--dist", settings.dist]
    return " ".join(words)

