"""The Debian QA tools as checks: lintian (errors and warnings, overrides with their reasons) and piuparts."""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from microdeploy import dists
from microdeploy.build import buildroot
from microdeploy.process import Runner, output_tail, run

from .package import DebInfo
from .report import FAILED, PASSED, Outcome

__all__ = ["lintian", "piuparts"]

log = logging.getLogger(__name__)

# piuparts installs, purges and upgrades in a throwaway chroot: minutes on a slow mirror.
PIUPARTS_TIMEOUT = 1800.0
LINTIAN_TIMEOUT = 900.0

# "0m12.3s ERROR: FAIL: Package purging left files on system:" -> the words after the level.
_PIUPARTS_PROBLEM = re.compile(r"^\s*\d+m[\d.]+s (?:ERROR|FAIL): (.*)$")


def lintian(info: DebInfo, release: str) -> Outcome:
    """lintian's errors and warnings on the package (its own overrides applied); the overrides' reasons listed.

    The lintian is the release's: this machine's for its own release, else
    the one in the release's build root (buildroot.py), whose tables the
    package's per-path overrides were written from. Another release's lintian
    knows other tags (trixie's finds an embedded libzstd in Pillow, bookworm's
    does not, and calls that override mismatched).
    """
    with release_programs(release, [info.path.resolve().parent]) as runner:
        result = runner(["lintian", "--tag-display-limit", "0", str(info.path.resolve())], check=False,
                        timeout=LINTIAN_TIMEOUT)
        version = runner(["dpkg-query", "--show", "--showformat=${Version}", "lintian"], check=False, timeout=60)
    which = f"lintian {version.stdout.strip() or '(version unknown)'} of {release}"
    tags = [line for line in result.stdout.splitlines() if line.startswith(("E: ", "W: "))]
    errors = sum(line.startswith("E: ") for line in tags)
    warnings = len(tags) - errors
    overrides = "\n".join(f"override {o.tag}: {o.reason}" for o in info.overrides)
    details = "\n".join([*tags, *([overrides] if overrides else [])])
    counts = f"{errors} error{'s' * (errors != 1)}, {warnings} warning{'s' * (warnings != 1)}"
    # Exit status 1 is lintian's own failure; 2 means tags at --fail-on level.
    if result.returncode == 1 or (result.returncode and not tags):
        return Outcome("lintian", FAILED, f"{which} exited with status {result.returncode}",
                       details=output_tail(result.stderr or result.stdout))
    if tags:
        return Outcome("lintian", FAILED, f"{counts}, first: {tags[0]} ({which})", details=details)
    return Outcome("lintian", PASSED, f"{counts}, {len(info.overrides)} overrides with reasons ({which})",
                   details=details)


@contextmanager
def release_programs(release: str, binds: Sequence[Path]) -> Iterator[Runner]:
    """What runs the programs of `release`: this machine's own for its release, else its build root's (made
    first if it is missing), entered with `binds` at their own paths."""
    dist = dists.DISTS.get(release)
    if dist is None or release == dists.host_codename():
        yield run
        return
    with buildroot.cached_root(dist, environ=os.environ) as tree, \
            tempfile.TemporaryDirectory(prefix=f"microdeploy-{release}-programs.") as work, \
            buildroot.entered(tree, Path(work), binds) as inside:
        yield inside


def piuparts(
    info: DebInfo, *, release: str, base: Path, mirror: str,
    previous: DebInfo | None = None, repo_public: Path | None = None, repo_dist: str = "",
    upgrade_from_repo: bool = False,
) -> Outcome:
    """piuparts in a minbase chroot of `release`: install and purge, and the upgrade from `previous` when given."""
    argv = [
        "piuparts", "--basetgz", str(base), "--distribution", release, "--mirror", mirror,
        # The logrotate file is run by the real logrotate on the booted host
        # instead: piuparts would install logrotate from the mirror for it.
        "--skip-logrotatefiles-test",
        # trixie's debconf keeps this directory; bookworm's piuparts (1.1.7)
        # does not know it yet and would blame the package under test.
        "--ignore", "/var/cache/debconf/tmp.ci/",
    ]  # fmt: skip
    with _scratch() as tmp, _tmpfs(Path(tmp) / "chroot") as chroot:
        argv += ["--tmpdir", str(chroot)]
        if repo_public is not None:
            # piuparts reads it inside its chroot: bind-mount it there, trust it
            # (the chroot exists only for this run).
            argv += ["--bindmount", str(repo_public),
                     "--extra-repo", f"deb [trusted=yes] file://{repo_public} {repo_dist} main"]
        if previous is not None:
            # piuparts upgrades from the version its chroot's apt knows: offer the
            # previous build in a flat repository.
            flat = Path(tmp) / "previous"
            flat.mkdir()
            shutil.copy2(previous.path, flat / previous.path.name)
            packages = run(["dpkg-scanpackages", "--multiversion", "."], cwd=flat, timeout=120).stdout
            (flat / "Packages").write_text(packages, encoding="utf-8")
            argv += ["--bindmount", str(flat), "--extra-repo", f"deb [trusted=yes] file://{flat} ./"]
        elif not upgrade_from_repo:
            argv.append("--no-upgrade-test")
        result = run([*argv, str(info.path)], check=False, timeout=PIUPARTS_TIMEOUT)
    what = "install, purge" + (f", upgrade from {previous.version}" if previous else "")
    what += ", upgrade from the repository's version" if upgrade_from_repo else ""
    if result.returncode == 0:
        return Outcome("piuparts", PASSED, f"{what} in a minbase {release} chroot")
    return Outcome("piuparts", FAILED, _piuparts_reason(result.stdout + result.stderr),
                   details=output_tail(result.stdout + result.stderr, 60))


@contextmanager
def _scratch() -> Iterator[Path]:
    """A temporary directory, removed afterwards unless something is still mounted below it.

    piuparts bind-mounts directories (the repositories it is offered) into
    its chroot; if it is killed before it unmounts them, removing the tree
    would delete through those mounts. Then it is left for a person to look at.
    """
    directory = Path(tempfile.mkdtemp(prefix="microdeploy-piuparts."))
    try:
        yield directory
    finally:
        mounts = Path("/proc/self/mountinfo").read_text()
        if f" {directory}/" in mounts:
            log.warning("left %s in place: something is still mounted below it", directory)
        else:
            shutil.rmtree(directory, ignore_errors=True)


@contextmanager
def _tmpfs(directory: Path) -> Iterator[Path]:
    """A private tmpfs at `directory` for the block: piuparts' chroot is unpacked and deleted in memory.

    On disk, untarring the base and `rm -rf` of the chroot take most of a
    piuparts run; in memory they take a second or two.
    """
    directory.mkdir(mode=0o700)
    run(["mount", "-t", "tmpfs", "-o", "mode=0700,size=8g", "microdeploy-piuparts", str(directory)], timeout=60)
    try:
        yield directory
    finally:
        # Recursive: whatever an interrupted piuparts left mounted in its chroot goes too.
        run(["umount", "--recursive", str(directory)], check=False, timeout=120)


def _piuparts_reason(output: str) -> str:
    """One line out of piuparts' log: its first problem, with the first item it lists."""
    lines = output.splitlines()
    for index, line in enumerate(lines):
        match = _PIUPARTS_PROBLEM.match(line)
        if not match:
            continue
        reason = match.group(1).strip().removeprefix("FAIL: ").strip()
        if reason.endswith(":"):
            following = [item.strip() for item in lines[index + 1:index + 4] if item.strip()]
            items = [item for item in following if not _PIUPARTS_PROBLEM.match(item)][:2]
            reason = f"{reason} {', '.join(items)}" if items else reason.rstrip(":")
        return f"piuparts: {reason}"
    return "piuparts failed (see its log)"
