"""Clean build roots of Debian releases: made with mmdebstrap, cached, entered without booting.

As with sbuild's unshare backend, each release has one root with the build
dependencies, made once with mmdebstrap from this machine's own mirror and
kept outside any checkout (the roots directory). A build never changes it:
it mounts a throwaway overlay over it in a mount namespace of its own, binds
its work directory, the build caches and uv at the same paths inside, and runs
each command there with chroot. Every mount lives in that namespace, so none
outlives the build, however it ends; the overlay's upper layer is a directory
of the build's work directory and goes with it.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from microdeploy.build.cache import (
    DEFAULT_ROOTS_MAX_SIZE,
    ROOTS_MAX_SIZE_VAR,
    default_roots_max_size,
    lock_beside,
    prune_roots_after_build,
    touch,
)
from microdeploy.dists import Dist, host_codename
from microdeploy.errors import MicrodeployError
from microdeploy.fsutil import replace_directory
from microdeploy.mirrors import SOURCES_FILE, release_sources
from microdeploy.process import Held, Result, Runner, hold, run

log = logging.getLogger(__name__)

# What dpkg-buildpackage needs for a dh-virtualenv build, a compiler and
# headers for the sdists among a service's dependencies, and lintian, whose
# own tables debian/venv-overrides reads to override, per path, what the
# wheels bring (embedded libraries, privacy breaches): the release's lintian
# is the one that checks its packages.
ROOT_PACKAGES = (
    "build-essential", "debhelper", "dh-virtualenv", "dh-python", "python3-dev", "python3-venv",
    "fakeroot", "git", "ca-certificates", "lintian",
)  # fmt: skip
# Bump when the way roots are made changes, so that no build uses an old one.
RECIPE = "2"
DEFAULT_ROOTS_DIR = Path("/var/cache/microdeploy/roots")
PATH_INSIDE = "/usr/sbin:/usr/bin:/sbin:/bin"
# Files of this machine a root reads as they are here: the certificates that
# reach the package index (a proxy's CA is there, not in a fresh root's store)
# and the resolver.
HOST_FILES = (Path("/etc/ssl/certs/ca-certificates.crt"), Path("/etc/resolv.conf"))
MMDEBSTRAP_TIMEOUT = 1800.0


def roots_dir(environ: Mapping[str, str]) -> Path:
    """$MICRODEPLOY_ROOTS_DIR, else /var/cache/microdeploy/roots."""
    return Path(environ.get("MICRODEPLOY_ROOTS_DIR") or DEFAULT_ROOTS_DIR)


def package_names(relations: Sequence[str]) -> list[str]:
    """The package names of Debian relations (`libpq-dev (>= 15)` -> `libpq-dev`), for mmdebstrap's --include."""
    return [re.split(r"[\s(:]", relation.strip(), maxsplit=1)[0] for relation in relations]


def root_path(roots: Path, dist: Dist, extra: Sequence[str] = ()) -> Path:
    """Where the root of `dist` with the extra build dependencies `extra` is kept."""
    wanted = sorted(set(ROOT_PACKAGES) | set(package_names(extra)))
    digest = hashlib.sha256("\n".join([RECIPE, dist.codename, *wanted]).encode()).hexdigest()[:12]
    return roots / f"{dist.codename}-{digest}"


def sources_for(dist: Dist, sources: Path = SOURCES_FILE) -> str:
    """A deb822 sources text for `dist`: the machine's own stanzas, their suites renamed to `dist`'s."""
    return release_sources(dist.codename, sources)


@contextmanager
def locked(path: Path, operation: int) -> Iterator[None]:
    """Hold an flock on `path` (made if missing) for the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, operation)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def make_root(dist: Dist, tree: Path, extra: Sequence[str] = (), runner: Runner = run,
              sources: Path = SOURCES_FILE) -> float:
    """Make the root of `dist` at `tree` with mmdebstrap, atomically; return the seconds it took.

    An existing root at `tree` (a refresh) is replaced only once the new one is whole: a refresh that fails or
    is interrupted leaves the root that was there."""
    started = time.monotonic()
    packages = sorted(set(ROOT_PACKAGES) | set(package_names(extra)))
    staging = Path(tempfile.mkdtemp(prefix=f".{tree.name}.", dir=tree.parent))
    try:
        listed = staging.with_name(staging.name + ".sources")
        listed.write_text(sources_for(dist, sources), encoding="utf-8")
        log.info("making the %s build root with mmdebstrap (once; kept in %s)", dist.codename, tree.parent)
        try:
            runner(["mmdebstrap", "--quiet", "--variant=apt", "--include=" + ",".join(packages),
                    dist.codename, str(staging), str(listed)], timeout=MMDEBSTRAP_TIMEOUT)
        except MicrodeployError as exc:
            raise MicrodeployError(
                f"could not make the {dist.codename} build root:\n{exc.message}",
                hint="Check that this machine's mirror serves it and that build_depends names real packages",
            ) from exc
        finally:
            listed.unlink(missing_ok=True)
        replace_directory(staging, tree)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    seconds = time.monotonic() - started
    log.info("made the %s build root in %.1f s", dist.codename, seconds)
    return seconds


@contextmanager
def cached_root(dist: Dist, extra: Sequence[str] = (), *, environ: Mapping[str, str], refresh: bool = False,
                runner: Runner = run) -> Iterator[Path]:
    """The root of `dist` (made first when missing, or remade with `refresh`), kept from change for the block.

    Builds share a root (a shared lock); making or remaking one waits for
    them to end (an exclusive lock), since an overlay's lower layer must not
    change while it is mounted. A use marks the root as used now; after the
    block the roots are pruned to $MICRODEPLOY_ROOTS_MAX_SIZE (cache.py).
    """
    require_root(dist)
    max_size = default_roots_max_size(environ)
    roots = roots_dir(environ)
    tree = root_path(roots, dist, extra)
    lock = lock_beside(tree)
    # A prune may remove the root between the two locks; it is then made again, once.
    for _ in range(2):
        if refresh or not tree.is_dir():
            with locked(lock, fcntl.LOCK_EX):
                if refresh or not tree.is_dir():
                    make_root(dist, tree, extra, runner)
            refresh = False
        with locked(lock, fcntl.LOCK_SH):
            if tree.is_dir():
                touch(lock)
                yield tree
                break
    else:
        raise MicrodeployError(f"the build root {tree} was removed twice while this build waited for it",
                               hint="Run the build again, and no prune of the roots at the same time")
    for entry in prune_roots_after_build(roots, max_size):
        log.info("removed the build root %s, the least recently used, to keep %s within %s",
                 entry.path.name, roots, environ.get(ROOTS_MAX_SIZE_VAR) or DEFAULT_ROOTS_MAX_SIZE)


def require_root(dist: Dist) -> None:
    """Refuse, before anything is made, a build in a root by a user who cannot make or enter one."""
    if os.geteuid() != 0:
        raise MicrodeployError(
            f"building for {dist.codename} on this {host_codename()} machine needs root (mmdebstrap, mount "
            "namespaces, chroot)",
            hint="Run the build as root (sudo), or build for this machine's own release",
        )


@dataclass(frozen=True)
class EnteredRoot:
    """A build root mounted for one build; calling it runs a command inside (a `Runner`)."""

    merged: Path  # the overlay's mount point, as the namespace's processes see it
    holder: Held  # the process whose mount namespace holds the mounts
    runner: Runner = run  # what runs the commands (the entering prefix added)

    def __call__(
        self,
        argv: Sequence[str],
        *,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        check: bool = True,
        input: str | None = None,
        timeout: float | None = None,
        inherit_env: bool = True,
    ) -> Result:
        """Run `argv` inside the root, in `cwd` (the same path inside: it is under a bound directory)."""
        environment = {**(os.environ if inherit_env else {}), **(env or {})}
        # The root's own programs, never this machine's venv or pyenv.
        environment["PATH"] = PATH_INSIDE
        inside = [*self.namespace(), "chroot", str(self.merged), "/usr/bin/env", f"--chdir={cwd or '/'}", *argv]
        return self.runner(inside, env=environment, check=check, input=input, timeout=timeout, inherit_env=False)

    def namespace(self) -> list[str]:
        """The command prefix that enters the holder's mount namespace."""
        return ["nsenter", "-t", str(self.holder.pid), "-m", "--"]


@contextmanager
def entered(tree: Path, work: Path, binds: Sequence[Path], runner: Runner = run) -> Iterator[EnteredRoot]:
    """Mount a throwaway overlay of `tree` (its upper layer in `work`) with `binds` at their own paths inside.

    The mounts are made in the mount namespace of a holder process that lives
    as long as the block, or until this process ends (it waits on a pipe
    from us): then the namespace, and every mount in it, goes away.
    """
    layers = work / ".root"
    for name in ("upper", "work", "merged"):
        (layers / name).mkdir(parents=True, exist_ok=True)
    holder = hold(["unshare", "--mount", "--propagation", "private", "--", "cat"])
    try:
        wait_for_namespace(holder)
        entry = EnteredRoot(layers / "merged", holder, runner)
        prefix = entry.namespace()
        merged = str(entry.merged)
        options = f"lowerdir={tree},upperdir={layers / 'upper'},workdir={layers / 'work'}"
        runner([*prefix, "mount", "-t", "overlay", "overlay", "-o", options, merged])
        runner([*prefix, "mount", "--rbind", "/dev", merged + "/dev"])
        runner([*prefix, "mount", "-t", "proc", "proc", merged + "/proc"])
        for path in dict.fromkeys(binds):
            runner([*prefix, "mount", "--bind", "-o", "X-mount.mkdir", str(path), merged + str(path)])
        for path in HOST_FILES:
            if path.is_file() and (tree / path.relative_to("/")).exists():
                runner([*prefix, "mount", "--bind", "-o", "ro", str(path), merged + str(path)])
        yield entry
    finally:
        holder.close()


def wait_for_namespace(holder: Held, timeout: float = 30.0) -> None:
    """Wait until the holder runs cat: unshare has then made its namespace and made it private.

    Entering it before would mount into this machine's own namespace.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if Path(f"/proc/{holder.pid}/comm").read_text(encoding="utf-8").strip() == "cat":
                return
        except OSError:
            break  # it has ended
        time.sleep(0.002)
    raise MicrodeployError("could not make a mount namespace for the build root (unshare --mount)",
                           hint="Run the build as root on a kernel with mount namespaces")


def python_minor_inside(tree: Path, python: str) -> str | None:
    """The X.Y of `python` (python3, python3.13) in a root, from its /usr/bin links; None if it has none."""
    interpreter = tree / "usr" / "bin" / python
    # Absolute links in a root point into this machine: follow them by hand.
    for _ in range(8):
        if not interpreter.is_symlink():
            break
        target = Path(os.readlink(interpreter))
        interpreter = tree / target.relative_to("/") if target.is_absolute() else interpreter.parent / target
    named = re.fullmatch(r"python(\d+\.\d+)", interpreter.name)
    return named.group(1) if named and interpreter.is_file() else None
