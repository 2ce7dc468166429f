"""`publish`: a signed APT repository on aptly, published atomically (`repo serve`: repo_server).

The layout of a repository directory and its generations are in
`microdeploy.generations`.

Every publish works on a fresh generation: a copy of the current one (the
aptly database and index files copied, the immutable .deb files hard-linked),
changes it with aptly (repo add/remove, snapshot, `publish switch` with by-hash
indexes, signed with gpg), and only then swings the `public` symlink over with
one rename. A failed or killed publish therefore leaves the previous, signed,
consistent state served and the aptly state that goes with it; its half-made
generation is removed by the next publish. aptly rather than reprepro because
reprepro keeps one version per package, and rollback needs the last N.
"""


from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from microdeploy import validate
from microdeploy.debfile import DebFile, PackageRef, inspect_deb, sha256_of
from microdeploy.dists import DEFAULT_DIST
from microdeploy.errors import bad_input
from microdeploy.fsutil import atomic_write, check_writable
from microdeploy.generations import (
    ARMORED_KEY_NAME,
    KEYRING_NAME,
    Layout,
    by_hash_files,
    clone_generation,
    copy_file,
    keep_recent_by_hash,
    next_generation,
    not_ours,
    prune_generations,
    repository_lock,
    served_generations,
    swap_public,
)
from microdeploy.process import Runner, run
from microdeploy.repo_keys import served_fingerprint, settle_after_failure, signing_key
from microdeploy.repo_plan import (
    Manifest,
    SuitePlan,
    aptly_commands,
    plan_suite,
    repository_packages,
    served_indexes,
    suite_of,
)
from microdeploy.rotation import retired_keyrings, settle_rotation
from microdeploy.signing import SigningKey, export_keyring, resolve_key, stop_agent

log = logging.getLogger(__name__)

DEFAULT_COMPONENT = "main"
DEFAULT_KEEP = 5
# Where `repo serve` listens unless told otherwise (a service's port is config.DEFAULT_PORT).
SERVE_BIND = "127.0.0.1"
SERVE_PORT = 8080
# Where hosts are told to put the keyring (apt's documented place for Signed-By keys).
HOST_KEYRING_DIR = "/etc/apt/keyrings"
# What --gpg-key may name: a key id or fingerprint, or an e-mail address of the key's user id.
GPG_KEY = validate.rule(r"(?:0x)?[0-9A-Fa-f]{8,40}|<?[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+>?",
                        "a key id or fingerprint (hex) or the key's e-mail address", 256)
APTLY_TIMEOUT = 600.0



@dataclass(frozen=True)
class PublishSettings:
    """What `microdeploy publish` was asked to do (besides the .deb files)."""

    repo: Path
    dist: str | None = None  # None: each package's own release's suite (its +debN), else DEFAULT_DIST
    component: str = DEFAULT_COMPONENT
    gpg_key: str | None = None
    gnupghome: Path | None = None
    keep: int = DEFAULT_KEEP
    rotate_key: bool = False


@dataclass(frozen=True)
class PublishResult:
    """What a publish did, for people and (as JSON) for CI."""

    repo: Path
    public_dir: Path
    dists: tuple[str, ...]
    component: str
    added: tuple[DebFile, ...]
    unchanged: tuple[DebFile, ...]
    removed: tuple[PackageRef, ...]
    skipped: tuple[DebFile, ...]
    key_fingerprint: str
    keyring: Path
    armored_key: Path
    generation: str
    changed: bool
    timings: Mapping[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready description: paths, packages with versions and sizes, key, timings."""

        def deb(d: DebFile) -> dict[str, Any]:
            return {"name": d.package.name, "version": d.package.version, "dist": d.dist,
                    "architecture": d.package.architecture, "file": str(d.path),
                    "size": d.size, "sha256": d.sha256}

        return {
            "repo": str(self.repo),
            "public_dir": str(self.public_dir),
            "dists": list(self.dists),
            "component": self.component,
            "added": [deb(d) for d in self.added],
            "unchanged": [deb(d) for d in self.unchanged],
            "skipped": [deb(d) for d in self.skipped],
            "removed": [{"name": p.name, "version": p.version, "architecture": p.architecture}
                        for p in self.removed],
            "key_fingerprint": self.key_fingerprint,
            "keyring": str(self.keyring),
            "armored_key": str(self.armored_key),
            "generation": self.generation,
            "changed": self.changed,
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
        }


def check_settings(settings: PublishSettings) -> None:
    """Refuse bad distribution/component names and --keep values before anything is touched."""
    check_suite(settings.dist or DEFAULT_DIST, settings.component)
    validate.integer("--keep", settings.keep, "the command line", 1, 10_000)
    if settings.gpg_key is not None:
        validate.check(GPG_KEY, "--gpg-key", settings.gpg_key, "the command line")
    if settings.repo.exists() and not settings.repo.is_dir():
        raise bad_input(f"repository {settings.repo} is not a directory", hint="Pass a directory with --repo")
    if settings.repo.is_dir():
        found = not_ours(Layout(settings.repo))
        if found is not None:
            raise bad_input(f"{settings.repo} is not a microdeploy repository: {found}",
                            hint="Pass a new or empty directory, or one that `microdeploy publish` made, with --repo")


def check_suite(dist: str, component: str) -> None:
    """Refuse a distribution or component that is not one path segment of dists/ (publish and serve)."""
    validate.check(validate.SUITE, "distribution", dist, "--dist")
    validate.check(validate.COMPONENT, "component", component, "--component")


def check_served(bind: str, port: int, dist: str | None, component: str) -> None:
    """Refuse `repo serve` values that would make a bad listener or a bad sources snippet."""
    validate.bind_address("bind", bind, "--bind")
    validate.port("port", port, "--port", allow_zero=True)
    check_suite(dist or DEFAULT_DIST, component)


# --- publish ----------------------------------------------------------------


def host_architecture(runner: Runner = run) -> str:
    """This machine's Debian architecture (published even for arch-all-only repositories)."""
    return runner(["dpkg", "--print-architecture"]).stdout.strip()


def publish(
    settings: PublishSettings,
    debs: Sequence[Path],
    *,
    runner: Runner = run,
    clock: Callable[[], float] = time.monotonic,
    wall: Callable[[], float] = time.time,
) -> PublishResult:
    """Add `debs` to the signed repository `settings.repo` (created on first use) and serve the result atomically."""
    started = clock()
    timings: dict[str, float] = {}
    if not debs:
        raise bad_input("no .deb files given", hint="Pass one or more .deb files to publish")
    check_settings(settings)
    files = [inspect_deb(Path(p)) for p in debs]
    files = [replace(deb, dist=suite_of(deb, settings.dist)) for deb in files]
    suites = sorted({deb.dist for deb in files})
    timings["validate"] = clock() - started
    layout = Layout(settings.repo.absolute())
    check_writable(layout.state, "--repo")
    explicit = None
    if settings.gpg_key is not None or settings.gnupghome is not None:
        # A key asked for is found before anything is made, so a wrong one leaves no trace.
        explicit = resolve_key(layout.gnupghome, key_id=settings.gpg_key, gnupghome=settings.gnupghome,
                               runner=runner)
    # What this publish makes (the directory, its key, the lock): removed again unless it serves something new.
    made = [path for path in (layout.root, layout.state, layout.gnupghome, layout.retired_keys, layout.generations)
            if not path.exists() and not path.is_symlink()]
    served = layout.current()
    try:
        with repository_lock(layout.lock) as waited:
            timings["lock_wait"] = waited
            current = layout.current()
            manifest = Manifest.load(current / "manifest.json") if current else Manifest({})
            indexes = served_indexes(current / "published") if current else {}
            everywhere = repository_packages(indexes)
            plans = [
                plan_suite(dist, [deb for deb in files if deb.dist == dist],
                           indexes.get((dist, settings.component), {}), settings.keep, everywhere)
                for dist in suites
            ]
            try:
                # A rotation takes effect only once the generation it signed is served: what is staged is settled
                # against what is served (made current or removed), first what a killed publish left, then ours.
                settle_rotation(layout, manifest.key_fingerprint, runner)
                key, next_manifest = signing_key(layout, manifest, explicit, settings.rotate_key, wall(), runner)
                changed = (any(plan.new or plan.removed for plan in plans) or current is None
                           or next_manifest != manifest)
                if changed:
                    current = _make_generation(layout, current, next_manifest, settings, plans, key, runner,
                                               timings, clock)
                settle_rotation(layout, served_fingerprint(layout), runner)
            except BaseException:
                settle_after_failure(layout, runner)
                raise
            finally:
                if layout.gnupghome.is_dir():
                    # Signing started a gpg-agent in our GNUPGHOME: leave nothing running.
                    stop_agent(layout.gnupghome, runner)
    except BaseException:
        if layout.current() == served:
            # A refused or failed publish leaves no directory, key or lock of its own behind.
            for path in made:
                shutil.rmtree(path, ignore_errors=True)
        raise
    timings["total"] = clock() - started
    return PublishResult(
        repo=layout.root, public_dir=layout.public, dists=tuple(suites), component=settings.component,
        added=tuple(d for plan in plans for d in plan.new),
        unchanged=tuple(d for plan in plans for d in plan.unchanged),
        removed=tuple(ref for plan in plans for ref in plan.removed),
        skipped=tuple(d for plan in plans for d in plan.skipped),
        key_fingerprint=key.fingerprint, keyring=layout.public / KEYRING_NAME,
        armored_key=layout.public / ARMORED_KEY_NAME, generation=current.name if current else "",
        changed=changed, timings=timings,
    )  # fmt: skip


def _make_generation(
    layout: Layout,
    current: Path | None,
    manifest: Manifest,
    settings: PublishSettings,
    plans: Sequence[SuitePlan],
    key: SigningKey,
    runner: Runner,
    timings: dict[str, float],
    clock: Callable[[], float],
) -> Path:
    """Build the next generation beside the served one, every suite of `plans` changed in it, and swap it in.

    On any failure the generation is removed.
    """
    step = clock()
    name = next_generation(layout)
    gen = layout.generations / name
    # Leftovers of killed publishes are never served; drop them before making more.
    prune_generations(layout, served_generations(layout, current))
    try:
        clone_generation(current, gen)
        commands: list[list[str]] = []
        host_arch = host_architecture(runner)
        for plan in plans:
            add = stage_incoming(gen / "incoming" / plan.dist, plan.new)
            archs = {host_arch, "all", *(d.package.architecture for d in plan.new)}
            suite_commands, manifest = aptly_commands(
                manifest, dist=plan.dist, component=settings.component, generation=name,
                add=add, remove=plan.removed, architectures=sorted(archs), key=key,
            )  # fmt: skip
            commands += suite_commands
        timings["stage"] = clock() - step
        step = clock()
        earlier = by_hash_files(current / "published") if current is not None else {}
        for command in commands:
            runner(["aptly", f"-config={gen / 'aptly.conf'}", *command], env=key.env, timeout=APTLY_TIMEOUT)
        if current is not None:
            keep_recent_by_hash(earlier, current / "published", gen / "published", time.time())
        shutil.rmtree(gen / "incoming", ignore_errors=True)
        timings["aptly"] = clock() - step
        step = clock()
        retired = retired_keyrings(layout, manifest.retired_keys)
        export_keyring(key, gen / "published" / KEYRING_NAME, gen / "published" / ARMORED_KEY_NAME, retired, runner)
        atomic_write(gen / "manifest.json", manifest.to_json())
        swap_public(layout, gen)
        timings["swap"] = clock() - step
    except BaseException:
        if layout.current() != gen:  # never remove what is already served
            shutil.rmtree(gen, ignore_errors=True)
        raise
    prune_generations(layout, [gen, *([current] if current else [])])
    log.info("published %s to %s (%s)", ", ".join(d.package.key for p in plans for d in p.new) or "no new packages",
             layout.public, name)
    return gen


def stage_incoming(incoming: Path, debs: Sequence[DebFile]) -> list[Path]:
    """Copy `debs` into `incoming` under Debian's file names, which aptly gives its pool files.

    A copy (or a reflink), never a hard link: the caller may overwrite its
    file later, and the published package must not change with it.
    """
    incoming.mkdir(parents=True)
    staged = []
    for deb in debs:
        path = incoming / deb.package.filename
        copy_file(deb.path, path)
        if sha256_of(path) != deb.sha256:
            raise bad_input(f"{deb.path} changed while it was being published",
                            hint="Publish it again once it is no longer being written")
        staged.append(path)
    return staged


# --- hosts: sources snippet and a static server -----------------------------


def served_suites(repo: Path) -> list[str]:
    """The suites the repository at `repo` serves (one per release it has packages for), sorted."""
    return sorted(path.name for path in (repo / "public" / "dists").glob("*") if (path / "InRelease").is_file())


def check_offered(repo: Path, dist: str | None, component: str) -> None:
    """Refuse a suite or component the repository does not serve: the sources snippet `repo serve` prints for it
    would fail every host's apt-get update."""
    suites = served_suites(repo)
    if not suites:
        return  # nothing published yet: make_server says so
    if dist is not None and dist not in suites:
        raise bad_input(f"the repository {repo} serves no suite {dist!r}; it serves {', '.join(suites)}",
                        hint="Pass one of those with --dist, or publish a build for that release first")
    missing = [suite for suite in ([dist] if dist else suites)
               if not (repo / "public" / "dists" / suite / component).is_dir()]
    if missing:
        raise bad_input(f"the repository {repo} has no component {component!r} in {', '.join(missing)}",
                        hint="Pass the component its packages were published in with --component (default main)")


def sources_snippet(
    url: str, keyring_path: str = f"{HOST_KEYRING_DIR}/{KEYRING_NAME}",
    dist: str = DEFAULT_DIST, component: str = DEFAULT_COMPONENT,
) -> str:
    """A deb822 `.sources` stanza for hosts of release `dist`, bound to the repository key with Signed-By.

    Give each host its own codename's suite: it then gets the builds for its
    release, and the usual dist-upgrade step (the old codename replaced by the
    new one in every sources file) moves it to the new release's builds.
    """
    return (
        "Types: deb\n"
        f"URIs: {url}\n"
        f"Suites: {dist}\n"
        f"Components: {component}\n"
        f"Signed-By: {keyring_path}\n"
    )


__all__ = [
    "ARMORED_KEY_NAME",
    "KEYRING_NAME",
    "Layout",
    "PublishResult",
    "PublishSettings",
    "publish",
    "served_suites",
    "sources_snippet",
]
