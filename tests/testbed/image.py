"""Cached Debian 12 images built with mmdebstrap: target-host tarballs and piuparts bases."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from . import CACHE_DIR, TestbedError, file_lock, run_tool

__all__ = [
    "BASE_PACKAGES",
    "PUPPET_PACKAGES",
    "SOURCES_FILE",
    "SUITE",
    "build_cached",
    "debian_mirror",
    "ensure_image",
    "ensure_piuparts_base",
    "image_path",
    "unpacked",
]

log = logging.getLogger(__name__)

SUITE = "bookworm"

# The machine's mirror is configured here; mmdebstrap accepts the file itself as
# its mirror argument (a bare URL is rejected here), so no mirror host is ever
# written into the repository.
SOURCES_FILE = Path("/etc/apt/sources.list.d/debian.sources")

# What every target host needs: systemd as PID 1 (systemd-sysv provides
# /sbin/init), dbus for systemctl, sshd for deploys, and the tools the
# service's maintainer scripts and the tests call.
BASE_PACKAGES: tuple[str, ...] = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "python3",
    "curl",
    "openssh-server",
    "adduser",
    "logrotate",
    "procps",
    "iproute2",
    "ca-certificates",
)

# Extra packages for hosts the Puppet tests apply manifests on.
PUPPET_PACKAGES: tuple[str, ...] = ("puppet-agent",)

# Bump when the way images are built changes, so stale cached images are not reused.
_RECIPE_VERSION = "2"

# mmdebstrap copies its mirror argument into the image as
# /etc/apt/sources.list.d/0000debian.sources. Drop it: target hosts have no
# route to the mirror (a stale entry makes every `apt-get update` there wait
# and fail; tests add their own repository), and piuparts writes its own
# sources.list from --mirror (a second entry only adds warnings).
_DROP_MIRROR_HOOK = 'rm -f "$1"/etc/apt/sources.list.d/0000*'


# mmdebstrap of a base image takes ~30 s; with puppet-agent longer.
_BUILD_TIMEOUT = 900.0


def debian_mirror(sources: Path = SOURCES_FILE, suite: str = SUITE) -> str:
    """The mirror URI of `suite` from the machine's deb822 sources file (e.g. for piuparts)."""
    try:
        text = sources.read_text(encoding="utf-8")
    except OSError as exc:
        raise TestbedError(
            f"cannot read the APT sources file {sources}: {exc.strerror}. "
            "Configure the Debian mirror there (deb822 format)."
        ) from exc
    for stanza in text.split("\n\n"):
        fields = _deb822_fields(stanza)
        if suite in fields.get("suites", "").split() and fields.get("uris"):
            return fields["uris"].split()[0]
    raise TestbedError(
        f"no `URIs:` line for suite {suite!r} in {sources}. "
        f"Add a deb822 stanza with `Suites: {suite}` and the mirror's `URIs:`."
    )


def _deb822_fields(stanza: str) -> dict[str, str]:
    """Single-line fields of one deb822 stanza, keys lower-cased; comments skipped."""
    fields: dict[str, str] = {}
    for line in stanza.splitlines():
        if line.startswith(("#", " ", "\t")) or ":" not in line:
            continue
        key, _, value = line.partition(":")
        fields[key.strip().lower()] = value.strip()
    return fields


def image_path(packages: Sequence[str], *, kind: str = "host", suffix: str = ".tar") -> Path:
    """Where the cached image for this exact package set lives (the key is a content hash)."""
    wanted = sorted(set(packages))
    digest = hashlib.sha256("\n".join([_RECIPE_VERSION, kind, SUITE, *wanted]).encode()).hexdigest()[:16]
    return CACHE_DIR / f"{SUITE}-{kind}-{digest}{suffix}"


def ensure_image(extra_packages: Sequence[str] = ()) -> Path:
    """Build (once, cached) a bookworm target-host tarball with the base and extra packages."""
    packages = sorted(set(BASE_PACKAGES) | set(extra_packages))
    target = image_path(packages)
    return build_cached(
        target,
        lambda tmp: _mmdebstrap(tmp, variant="apt", packages=packages),
    )


def ensure_piuparts_base() -> Path:
    """Build (once, cached) the gzipped minbase tarball piuparts wants for `-b`."""
    # piuparts' own bases are debootstrap minbase chroots; keep to that so a
    # package's missing Depends are caught rather than masked by extra packages.
    target = image_path((), kind="piuparts-minbase", suffix=".tar.gz")
    return build_cached(target, lambda tmp: _mmdebstrap(tmp, variant="minbase", packages=()))


def unpacked(image: Path) -> Path:
    """The image unpacked once into a cached directory: the shared, read-only lower layer of host roots."""
    # Unpacking ~12,000 files takes 5-10 s here; an overlay over this tree
    # makes each host's root in milliseconds.
    target = image.with_name(image.name.removesuffix(".tar") + ".tree")
    return build_cached(target, lambda tmp: _untar(image, tmp))


def _untar(image: Path, directory: Path) -> None:
    """Untar `image` into the new directory `directory`, keeping owners, modes and xattrs."""
    if not image.is_file():
        raise TestbedError(f"image {image} does not exist. Build it with ensure_image().")
    directory.mkdir()
    run_tool(
        [
            "tar", "--extract", "--file", str(image), "--directory", str(directory),
            # mmdebstrap writes pax tarballs with xattrs (file capabilities, e.g. ping's).
            "--numeric-owner", "--preserve-permissions", "--xattrs", "--xattrs-include=*",
        ],
        timeout=300,
    )  # fmt: skip


def _mmdebstrap(output: Path, *, variant: str, packages: Sequence[str]) -> None:
    """Run mmdebstrap into `output` (a .tar or .tar.gz, compression from the name)."""
    argv = [
        "mmdebstrap",
        "--quiet",
        f"--variant={variant}",
        "--format=tar",
        # A shell snippet run by mmdebstrap on the finished tree ("$1" is its root).
        f"--customize-hook={_DROP_MIRROR_HOOK}",
    ]
    if packages:
        argv.append("--include=" + ",".join(packages))
    argv += [SUITE, str(output), str(SOURCES_FILE)]
    started = time.monotonic()
    run_tool(argv, timeout=_BUILD_TIMEOUT)
    log.info("built %s in %.1f s", output, time.monotonic() - started)


def build_cached(target: Path, build: Callable[[Path], None]) -> Path:
    """Return `target` (file or directory), building it first with `build(tmp)` under a lock, renamed atomically."""
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(target.with_name(target.name + ".lock")):
        # Another session may have built it while we waited for the lock.
        if target.exists():
            return target
        # Same directory, so the rename is atomic; same suffix, because
        # mmdebstrap picks the output format and compression from the name.
        tmp = target.with_name(f".tmp-{os.getpid()}-{target.name}")
        try:
            build(tmp)
            if not tmp.exists():
                raise TestbedError(f"building {target.name} produced nothing at {tmp}")
            os.replace(tmp, target)
        finally:
            if tmp.is_dir() and not tmp.is_symlink():
                shutil.rmtree(tmp)
            else:
                tmp.unlink(missing_ok=True)
    return target
