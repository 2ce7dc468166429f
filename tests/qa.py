"""Runners of the Debian QA tools for integration tests (real tools, parsed results)."""

from __future__ import annotations

import re
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

EXPOSURE_RE = re.compile(r"Overall exposure level for \S+: (\d+\.\d+)")
# What trixie's systemd 257 leaves behind when piuparts itself installs it (to
# test a package's logrotate file it installs logrotate, which pulls in cron
# and systemd): its provisioning links and directories, and debconf's
# template cache. Bookworm's piuparts 1.1 does not know these yet; none of
# them is the tested package's.
TRIXIE_NOT_OURS = ("/etc/default/locale", "/etc/vconsole.conf", "/root/.ssh/", "/var/cache/debconf/tmp.ci/",
                   "/var/cache/private/", "/var/lib/private/", "/var/log/private/")


def lintian_tags(deb: Path) -> list[str]:
    """The E: and W: lines lintian reports for `deb` (overrides applied)."""
    result = subprocess.run(["lintian", "--no-tag-display-limit", str(deb)], capture_output=True, text=True)
    return [line for line in result.stdout.splitlines() if line.startswith(("E:", "W:"))]


def deb_member(deb: Path, member: str) -> str:
    """One file of a .deb's data, as text."""
    tar = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], capture_output=True, check=True).stdout
    return subprocess.run(["tar", "-xO", f".{member}"], input=tar, capture_output=True, check=True).stdout.decode()


def deb_members(deb: Path) -> list[str]:
    """The ar members of a .deb, in order (debian-binary, control.tar.*, data.tar.*)."""
    return subprocess.run(["ar", "t", str(deb)], capture_output=True, text=True, check=True).stdout.split()


def xz_dictionaries(deb: Path) -> set[str]:
    """The LZMA2 dictionary sizes of a .deb's data.tar.xz blocks (xz preset 0: 256KiB, 1: 1MiB, 6: 8MiB)."""
    data = subprocess.run(["ar", "p", str(deb), "data.tar.xz"], capture_output=True, check=True).stdout
    with tempfile.NamedTemporaryFile(suffix=".xz") as handle:  # xz --list reads a file, not a pipe
        handle.write(data)
        handle.flush()
        listing = subprocess.run(["xz", "--list", "-vv", handle.name], capture_output=True, text=True, check=True)
    return set(re.findall(r"--lzma2=dict=(\w+)", listing.stdout))


def deb_paths(deb: Path) -> list[str]:
    """Every path in a .deb's data, without the leading '.'."""
    listing = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], capture_output=True, check=True).stdout
    names = subprocess.run(["tar", "-t"], input=listing, capture_output=True, check=True).stdout.decode()
    return [name[1:] for name in names.splitlines()]


def exposure(unit_text: str, unit_name: str) -> tuple[float, str]:
    """systemd-analyze security's overall exposure of a unit file, and its report."""
    with tempfile.TemporaryDirectory() as tmp:
        unit = Path(tmp) / unit_name
        unit.write_text(unit_text)
        result = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--no-pager", str(unit)],
                                capture_output=True, text=True)
    match = EXPOSURE_RE.search(result.stdout)
    assert match, result.stdout + result.stderr
    return float(match.group(1)), result.stdout


def piuparts(
    debs: Sequence[Path], base: Path, mirror: str, previous: Path | None = None, distribution: str = "bookworm",
) -> subprocess.CompletedProcess[str]:
    """Run piuparts on `debs`; with `previous`, also test the upgrade from that older .deb.

    piuparts tests an upgrade from the version its chroot's apt knows, so the
    previous build is offered in a flat repository bind-mounted into the
    throwaway chroot (trusted there: the chroot exists only for this test).
    """
    argv = ["piuparts", "--basetgz", str(base), "--distribution", distribution, "--mirror", mirror]
    if distribution == "trixie":
        argv += [f"--ignore={path}" for path in TRIXIE_NOT_OURS]
    with tempfile.TemporaryDirectory(prefix="piuparts-previous.") as tmp:
        if previous is not None:
            repo = Path(tmp)
            (repo / previous.name).write_bytes(previous.read_bytes())
            packages = subprocess.run(["dpkg-scanpackages", "--multiversion", "."], cwd=repo,
                                      capture_output=True, text=True, check=True).stdout
            (repo / "Packages").write_text(packages)
            argv += ["--bindmount", str(repo), "--extra-repo", f"deb [trusted=yes] file://{repo} ./"]
        else:
            argv.append("--no-upgrade-test")
        return subprocess.run([*argv, *map(str, debs)], capture_output=True, text=True, timeout=900)
