"""Cached Debian images built with mmdebstrap, per release: target-host tarballs and piuparts bases."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from microdeploy.build.cache import lock_beside
from microdeploy.dists import DEFAULT_DIST
from microdeploy.errors import MicrodeployError
from microdeploy.mirrors import SOURCES_FILE, debian_mirror, release_mirrors, release_sources
from microdeploy.process import run

from . import CACHE_DIR, file_lock
from .image_cache import mark_used

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
    "lower_layer",
    "release_mirrors",
    "sources_file",
    "unpacked",
]

log = logging.getLogger(__name__)

# The release a host is made of unless a test asks for another.
SUITE = DEFAULT_DIST

# The machine's mirror is configured in SOURCES_FILE; mmdebstrap accepts a
# sources file as its mirror argument (a bare URL is rejected here).

# What every target host needs: systemd as PID 1 (systemd-sysv provides
# /sbin/init), dbus for systemctl, sshd and sudo for deploys (as root, or as
# a user with --sudo), and the tools the service's maintainer scripts and the
# tests call.
BASE_PACKAGES: tuple[str, ...] = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "python3",
    "curl",
    "openssh-server",
    "sudo",
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


def sources_file(suite: str, directory: Path, sources: Path = SOURCES_FILE) -> Path:
    """A deb822 sources file for `suite` on the machine's mirrors, in `directory` (for its own release: its own)."""
    if suite == SUITE:
        return sources
    path = directory / f"{suite}.sources"
    path.write_text(release_sources(suite, sources), encoding="utf-8")
    return path


def image_path(
    packages: Sequence[str], *, kind: str = "host", suffix: str = ".tar", suite: str = SUITE
) -> Path:
    """Where the cached image for this exact release and package set lives (the key is a content hash)."""
    wanted = sorted(set(packages))
    digest = hashlib.sha256("\n".join([_RECIPE_VERSION, kind, suite, *wanted]).encode()).hexdigest()[:16]
    return CACHE_DIR / f"{suite}-{kind}-{digest}{suffix}"


def ensure_image(extra_packages: Sequence[str] = (), *, suite: str = SUITE, refresh: bool = False) -> Path:
    """Build (once, cached; again when `refresh`) a target-host tarball of `suite` with the base and extra packages."""
    packages = sorted(set(BASE_PACKAGES) | set(extra_packages))
    target = image_path(packages, suite=suite)
    if refresh:
        _discard(target)
    return build_cached(target, lambda tmp: _mmdebstrap(tmp, variant="apt", packages=packages, suite=suite))


def ensure_piuparts_base(*, suite: str = SUITE, refresh: bool = False) -> Path:
    """Build (once, cached; again when `refresh`) the gzipped minbase tarball piuparts wants for `-b`."""
    # piuparts' own bases are debootstrap minbase chroots; keep to that so a
    # package's missing Depends are caught rather than masked by extra packages.
    target = image_path((), kind="piuparts-minbase", suffix=".tar.gz", suite=suite)
    if refresh:
        _discard(target)
    return build_cached(target, lambda tmp: _mmdebstrap(tmp, variant="minbase", packages=(), suite=suite))


def unpacked(image: Path) -> Path:
    """The image unpacked once into a cached directory: the shared, read-only lower layer of host roots."""
    # Unpacking ~12,000 files takes 5-10 s here; an overlay over this tree
    # makes each host's root in milliseconds.
    target = _tree_of(image)
    return build_cached(target, lambda tmp: _untar(image, tmp))


@contextmanager
def lower_layer(image: Path) -> Iterator[Path]:
    """The image unpacked, kept from the cache's prune while the block mounts it (a mounted tree stays anyway)."""
    # A prune may remove the tree between unpacked() and the lock: it is unpacked again, once.
    for _ in range(2):
        tree = unpacked(image)
        with file_lock(lock_beside(tree), shared=True):
            if tree.is_dir():
                yield tree
                return
    raise MicrodeployError(f"the unpacked image {_tree_of(image)} was removed twice while a host waited for it",
                           hint="Boot the host again, and prune the host images at another time")


def _tree_of(image: Path) -> Path:
    """Where `image` is unpacked."""
    return image.with_name(image.name.removesuffix(".tar") + ".tree")


def _discard(image: Path) -> None:
    """Remove a cached image and its unpacked tree (under the build lock), so the next use rebuilds them.

    A tree still under a running host's overlay is renamed away rather than
    deleted: the host keeps its lower layer, the next host gets a new one.
    """
    for target in (image, _tree_of(image)):
        if not target.exists():
            continue
        with file_lock(lock_beside(target)):
            if target.is_dir():
                in_use = f"lowerdir={target}," in Path("/proc/self/mountinfo").read_text()
                old = target.with_name(f".old-{os.getpid()}-{time.time_ns()}-{target.name}")
                os.replace(target, old)
                if not in_use:
                    shutil.rmtree(old)
            else:
                target.unlink(missing_ok=True)
    log.info("discarded the cached image %s", image.name)


def _untar(image: Path, directory: Path) -> None:
    """Untar `image` into the new directory `directory`, keeping owners, modes and xattrs."""
    if not image.is_file():
        raise MicrodeployError(f"image {image} does not exist", hint="Build it with ensure_image()")
    directory.mkdir()
    run(
        [
            "tar", "--extract", "--file", str(image), "--directory", str(directory),
            # mmdebstrap writes pax tarballs with xattrs (file capabilities, e.g. ping's).
            "--numeric-owner", "--preserve-permissions", "--xattrs", "--xattrs-include=*",
        ],
        timeout=300,
    )  # fmt: skip


def _mmdebstrap(output: Path, *, variant: str, packages: Sequence[str], suite: str) -> None:
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
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="microdeploy-sources.") as tmp:
        argv += [suite, str(output), str(sources_file(suite, Path(tmp)))]
        run(argv, timeout=_BUILD_TIMEOUT)
    log.info("built %s in %.1f s", output, time.monotonic() - started)


def build_cached(target: Path, build: Callable[[Path], None]) -> Path:
    """Return `target` (file or directory), building it first with `build(tmp)` under a lock, renamed atomically;
    its use is noted for the cache's prune (image_cache.py)."""
    if target.exists():
        mark_used(target)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(lock_beside(target)):
        # Another session may have built it while we waited for the lock.
        if target.exists():
            return target
        # Same directory, so the rename is atomic; same suffix, because
        # mmdebstrap picks the output format and compression from the name.
        tmp = target.with_name(f".tmp-{os.getpid()}-{target.name}")
        try:
            build(tmp)
            if not tmp.exists():
                raise MicrodeployError(f"building {target.name} produced nothing at {tmp}")
            os.replace(tmp, target)
        finally:
            if tmp.is_dir() and not tmp.is_symlink():
                shutil.rmtree(tmp)
            else:
                tmp.unlink(missing_ok=True)
    return target
