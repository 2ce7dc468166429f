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

import functools
import hashlib
import json
import logging
import shutil
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from microdeploy import dists, validate
from microdeploy.errors import bad_input
from microdeploy.fsutil import atomic_write, check_writable
from microdeploy.generations import (
    Layout,
    by_hash_files,
    clone_generation,
    copy_file,
    keep_recent_by_hash,
    next_generation,
    prune_generations,
    repository_lock,
    served_generations,
    swap_public,
)
from microdeploy.process import Runner, run
from microdeploy.signing import SigningKey, export_keyring, own_key, resolve_key, rotate_own_key, stop_agent

log = logging.getLogger(__name__)

DEFAULT_DIST = "bookworm"
DEFAULT_COMPONENT = "main"
DEFAULT_KEEP = 5
# Where `repo serve` listens unless told otherwise (a service's port is config.DEFAULT_PORT).
SERVE_BIND = "127.0.0.1"
SERVE_PORT = 8080
KEYRING_NAME = "microdeploy-archive-keyring.gpg"
ARMORED_KEY_NAME = "microdeploy-archive-keyring.asc"
# Where hosts are told to put the keyring (apt's documented place for Signed-By keys).
HOST_KEYRING_DIR = "/etc/apt/keyrings"

ENDPOINT = "filesystem:microdeploy:."
# What --gpg-key may name: a key id or fingerprint, or an e-mail address of the key's user id.
GPG_KEY = validate.rule(r"(?:0x)?[0-9A-Fa-f]{8,40}|<?[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+>?",
                        "a key id or fingerprint (hex) or the key's e-mail address", 256)
# How long a key rotated out with --rotate-key stays in the exported keyring.
KEY_TRANSITION_DAYS = 90
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


@dataclass(frozen=True, order=True)
class PackageRef:
    """A binary package in a repository: name, version, architecture."""

    name: str
    version: str
    architecture: str

    @property
    def key(self) -> str:
        """aptly's package key, as `aptly repo show -with-packages` prints it."""
        return f"{self.name}_{self.version}_{self.architecture}"

    @property
    def filename(self) -> str:
        """The Debian file name of the package (the epoch is not part of it)."""
        return f"{self.name}_{self.version.partition(':')[2] or self.version}_{self.architecture}.deb"

    def query(self) -> str:
        """An aptly query matching exactly this package."""
        return f"Name (= {self.name}), $Version (= {self.version}), $Architecture (= {self.architecture})"


@dataclass(frozen=True)
class DebFile:
    """A validated .deb given to publish: its package, checksum and size."""

    path: Path
    package: PackageRef
    sha256: str
    size: int
    dist: str = DEFAULT_DIST  # the suite it is published into


@dataclass(frozen=True)
class SuitePlan:
    """What one publish does to one suite."""

    dist: str
    new: tuple[DebFile, ...]
    unchanged: tuple[DebFile, ...]
    removed: tuple[PackageRef, ...]
    skipped: tuple[DebFile, ...]


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


@dataclass(frozen=True)
class ServedPackage:
    """A package as the served index lists it."""

    package: PackageRef
    sha256: str


@dataclass(frozen=True)
class Manifest:
    """What a generation publishes: per distribution its architectures and a snapshot per component."""

    dists: Mapping[str, Mapping[str, Any]]
    key_fingerprint: str | None = None
    # Keys rotated out (fingerprint -> when, seconds since the epoch): still in the exported keyring for a while.
    retired_keys: Mapping[str, float] = field(default_factory=dict)

    def components(self, dist: str) -> dict[str, str]:
        """component -> published snapshot of `dist`."""
        return dict(self.dists.get(dist, {}).get("components", {}))

    def architectures(self, dist: str) -> list[str]:
        """The architectures `dist` is published for."""
        return list(self.dists.get(dist, {}).get("architectures", []))

    def to_json(self) -> str:
        """The manifest file's text."""
        return json.dumps({"dists": self.dists, "key_fingerprint": self.key_fingerprint,
                           "retired_keys": self.retired_keys}, indent=2, sort_keys=True) + "\n"

    @classmethod
    def load(cls, path: Path) -> Manifest:
        """Read a generation's manifest; a missing one is an empty repository."""
        if not path.is_file():
            return cls({})
        data = json.loads(path.read_text())
        return cls(data.get("dists", {}), data.get("key_fingerprint"), data.get("retired_keys", {}))


# --- validation -------------------------------------------------------------


def inspect_deb(path: Path, runner: Runner = run) -> DebFile:
    """Validate a .deb with dpkg-deb and return its package, checksum and size (bad input: exit 2)."""
    if not path.is_file():
        raise bad_input(f"no such file: {path}", hint="Pass the path of a built .deb")
    check_ar_archive(path)
    info = runner(["dpkg-deb", "--info", str(path)], check=False)
    fields = runner(["dpkg-deb", "--field", str(path), "Package", "Version", "Architecture"], check=False)
    if info.returncode != 0 or fields.returncode != 0:
        reason = (info.stderr or fields.stderr).strip().splitlines()
        raise bad_input(f"{path} is not a valid Debian package: {reason[-1] if reason else 'dpkg-deb failed'}",
                        hint="Rebuild it with `microdeploy build` (or dpkg-deb --build)")
    values = parse_fields(fields.stdout)
    package = PackageRef(values.get("Package", ""), values.get("Version", ""), values.get("Architecture", ""))
    for what, value, spec in (("package name", package.name, validate.PACKAGE_NAME),
                              ("version", package.version, validate.DEBIAN_VERSION),
                              ("architecture", package.architecture, validate.ARCHITECTURE)):
        validate.check(spec, what, value, str(path))
    return DebFile(path, package, sha256_of(path), path.stat().st_size)


def check_ar_archive(path: Path) -> None:
    """Refuse a file that is not a complete ar archive (a truncated or foreign file), before dpkg-deb sees it."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        if handle.read(8) != b"!<arch>\n":
            raise bad_input(f"{path} is not a Debian package (no ar archive header)",
                            hint="Pass a .deb built by `microdeploy build` or dpkg-deb")
        offset = 8
        while offset < size:
            handle.seek(offset)
            header = handle.read(60)
            try:
                member = int(header[48:58].decode("ascii").strip())
            except (UnicodeDecodeError, ValueError):
                member = -1
            if len(header) < 60 or (member >= 0 and offset + 60 + member > size):
                raise bad_input(f"{path} is a truncated Debian package ({size} bytes)",
                                hint="Rebuild it or copy it again")
            if header[58:60] != b"`\n" or member < 0:
                raise bad_input(f"{path} is a corrupt Debian package (bad member header at byte {offset})",
                                hint="Rebuild it or copy it again")
            offset += 60 + member + (member % 2)  # members are padded to even offsets


def parse_fields(text: str) -> dict[str, str]:
    """`Key: value` lines (as dpkg-deb --field prints them) into a dict."""
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and not line.startswith((" ", "\t")):
            fields[key.strip()] = value.strip()
    return fields


def sha256_of(path: Path) -> str:
    """The SHA-256 of a file, in hex."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(functools.partial(handle.read, 1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_settings(settings: PublishSettings) -> None:
    """Refuse bad distribution/component names and --keep values before anything is touched."""
    check_suite(settings.dist or DEFAULT_DIST, settings.component)
    validate.integer("--keep", settings.keep, "the command line", 1, 10_000)
    if settings.gpg_key is not None:
        validate.check(GPG_KEY, "--gpg-key", settings.gpg_key, "the command line")
    if settings.repo.exists() and not settings.repo.is_dir():
        raise bad_input(f"repository {settings.repo} is not a directory", hint="Pass a directory with --repo")


def check_suite(dist: str, component: str) -> None:
    """Refuse a distribution or component that is not one path segment of dists/ (publish and serve)."""
    validate.check(validate.SUITE, "distribution", dist, "--dist")
    validate.check(validate.COMPONENT, "component", component, "--component")


def check_served(bind: str, port: int, dist: str | None, component: str) -> None:
    """Refuse `repo serve` values that would make a bad listener or a bad sources snippet."""
    validate.bind_address("bind", bind, "--bind")
    validate.port("port", port, "--port", allow_zero=True)
    check_suite(dist or DEFAULT_DIST, component)


# --- planning (pure) --------------------------------------------------------


def served_packages(published: Path, dist: str, component: str) -> dict[PackageRef, ServedPackage]:
    """The packages the served index of `dist`/`component` lists, with their checksums."""
    # python-debian is imported where it is used: the CLI imports this module
    # for every command, `microdeploy build` among them.
    from debian.deb822 import Packages

    packages: dict[PackageRef, ServedPackage] = {}
    for index in sorted((published / "dists" / dist / component).glob("binary-*/Packages")):
        with index.open(encoding="utf-8") as handle:
            for para in Packages.iter_paragraphs(handle, use_apt_pkg=False):
                ref = PackageRef(para["Package"], para["Version"], para["Architecture"])
                packages[ref] = ServedPackage(ref, para["SHA256"])
    return packages


def suite_of(deb: DebFile, asked: str | None) -> str:
    """The suite a package goes into: its release's (the +debN its version ends in), else --dist, else bookworm.

    A package built for one release is never published into another's
    suite: its Depends name that release's Python.
    """
    built_for = dists.of_version(deb.package.version)
    if built_for is None:
        return asked or DEFAULT_DIST
    if asked is not None and asked != built_for.codename:
        raise bad_input(
            f"{deb.path.name} is built for {built_for.codename} (its version ends in {built_for.suffix}), "
            f"not for --dist {asked}",
            hint=f"Leave out --dist (each package goes into its release's suite), or build it with --dist {asked}",
        )
    return built_for.codename


def plan_suite(dist: str, debs: Sequence[DebFile], served: Mapping[PackageRef, ServedPackage],
               keep: int) -> SuitePlan:
    """What to add to and remove from one suite, keeping the `keep` newest versions of each package."""
    new, unchanged = split_new(debs, served)
    _, removed = select_kept([*served, *(d.package for d in new)], keep)
    # A new version older than the `keep` newest is not added at all.
    skipped = [d for d in new if d.package in removed]
    for deb in skipped:
        log.warning("not adding %s to %s: older than the %d kept versions", deb.package.key, dist, keep)
    return SuitePlan(dist, tuple(d for d in new if d.package not in removed), tuple(unchanged),
                     tuple(ref for ref in removed if ref in served), tuple(skipped))


def split_new(debs: Sequence[DebFile], served: Mapping[PackageRef, ServedPackage]) -> tuple[
        list[DebFile], list[DebFile]]:
    """(new, unchanged) debs; a different file for a name+version+arch already there is bad input."""
    new: list[DebFile] = []
    unchanged: list[DebFile] = []
    seen: dict[PackageRef, DebFile] = {}
    for deb in debs:
        earlier = seen.get(deb.package)
        if earlier is not None:
            if earlier.sha256 != deb.sha256:
                raise bad_input(
                    f"{deb.path} and {earlier.path} are different files for {deb.package.key}",
                    hint="Publish only one of them, or give the new one a higher version")
            continue
        seen[deb.package] = deb
        there = served.get(deb.package)
        if there is None:
            new.append(deb)
        elif there.sha256 == deb.sha256:
            unchanged.append(deb)
        else:
            raise bad_input(
                f"{deb.package.key} is already published with different contents "
                f"(sha256 {there.sha256[:12]}…, this file {deb.sha256[:12]}…)",
                hint="Never replace a published version: bump the version (e.g. from BUILD_NUMBER) and publish again")
    return new, unchanged


def select_kept(packages: Iterable[PackageRef], keep: int) -> tuple[list[PackageRef], list[PackageRef]]:
    """(kept, removed): the `keep` highest versions (Debian ordering) of each name and architecture."""
    from debian.debian_support import Version  # see served_packages

    groups: dict[tuple[str, str], list[PackageRef]] = {}
    for ref in packages:
        groups.setdefault((ref.name, ref.architecture), []).append(ref)
    kept: list[PackageRef] = []
    removed: list[PackageRef] = []
    for refs in groups.values():
        ordered = sorted(refs, key=lambda r: Version(r.version), reverse=True)
        kept += ordered[:keep]
        removed += ordered[keep:]
    return sorted(kept), sorted(removed)


def repo_name(dist: str, component: str) -> str:
    """The aptly local repository of one distribution and component."""
    return f"{dist}_{component}"


def aptly_commands(
    manifest: Manifest,
    *,
    dist: str,
    component: str,
    generation: str,
    add: Sequence[Path],
    remove: Sequence[PackageRef],
    architectures: Sequence[str],
    key: SigningKey,
) -> tuple[list[list[str]], Manifest]:
    """The aptly commands (without `aptly -config=...`) that take `manifest` to the next state, and that state."""
    repo = repo_name(dist, component)
    components = manifest.components(dist)
    commands: list[list[str]] = []
    if component not in components:
        commands.append(["repo", "create", f"-distribution={dist}", f"-component={component}", repo])
    if add:
        commands.append(["repo", "add", repo, *map(str, add)])
    if remove:
        commands.append(["repo", "remove", repo, *(ref.query() for ref in remove)])
    snapshot = f"{repo}_{generation}"
    commands.append(["snapshot", "create", snapshot, "from", "repo", repo])
    old_snapshot = components.get(component)
    new_components = {**components, component: snapshot}
    archs = sorted(set(architectures) | set(manifest.architectures(dist)))
    sign = ["-batch", f"-gpg-key={key.fingerprint}"]
    by_hash = bool(manifest.dists.get(dist, {}).get("acquire_by_hash"))
    if components and component in components and set(archs) == set(manifest.architectures(dist)) and by_hash:
        # The usual case: one atomic switch of this component to the new snapshot.
        commands.append(["publish", "switch", *sign, f"-component={component}", dist, ENDPOINT, snapshot])
    else:
        if components:
            # A new component or architecture cannot be switched in, and a dist published
            # before microdeploy asked for by-hash indexes gets them only from a new
            # publish: publish the dist afresh.
            commands.append(["publish", "drop", "-skip-cleanup", dist, ENDPOINT])
        names = sorted(new_components)
        commands.append([
            "publish", "snapshot", *sign, f"-distribution={dist}", f"-component={','.join(names)}",
            f"-architectures={','.join(archs)}", "-origin=microdeploy", "-label=microdeploy", "-acquire-by-hash",
            *(new_components[name] for name in names), ENDPOINT,
        ])  # fmt: skip
    if old_snapshot is not None:
        commands.append(["snapshot", "drop", old_snapshot])
    commands.append(["db", "cleanup"])
    dists = {**manifest.dists,
             dist: {"architectures": archs, "components": new_components, "acquire_by_hash": True}}
    return commands, Manifest(dists, key.fingerprint, manifest.retired_keys)


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
    files = [inspect_deb(Path(p), runner) for p in debs]
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
    created = not layout.root.exists()
    try:
        with repository_lock(layout.lock) as waited:
            timings["lock_wait"] = waited
            current = layout.current()
            manifest = Manifest.load(current / "manifest.json") if current else Manifest({})
            plans = [
                plan_suite(dist, [deb for deb in files if deb.dist == dist],
                           served_packages(current / "published", dist, settings.component) if current else {},
                           settings.keep)
                for dist in suites
            ]
            try:
                key, next_manifest = signing_key(layout, manifest, explicit, settings.rotate_key, wall(), runner)
                changed = (any(plan.new or plan.removed for plan in plans) or current is None
                           or next_manifest != manifest)
                if changed:
                    current = _make_generation(layout, current, next_manifest, settings, plans, key, runner,
                                               timings, clock)
            finally:
                if layout.gnupghome.is_dir():
                    # Signing started a gpg-agent in our GNUPGHOME: leave nothing running.
                    stop_agent(layout.gnupghome, runner)
    except BaseException:
        if created and layout.current() is None:
            # A first publish that failed leaves no lock and no empty repository behind.
            shutil.rmtree(layout.root, ignore_errors=True)
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


def signing_key(layout: Layout, manifest: Manifest, explicit: SigningKey | None, rotate: bool, now: float,
                runner: Runner = run) -> tuple[SigningKey, Manifest]:
    """The key to sign with, and the manifest that records it; the key changes only with --rotate-key."""
    expected = manifest.key_fingerprint
    if explicit is not None:
        key = explicit
    elif rotate and expected is not None:
        key = rotate_own_key(layout.gnupghome, expected, runner)
    else:
        key = own_key(layout.gnupghome, expected, runner)
    retired = dict(manifest.retired_keys)
    if expected not in (None, key.fingerprint):
        if not rotate:
            raise bad_input(
                f"the repository is signed with key {expected}, not with {key.fingerprint}",
                hint=f"Sign with key {expected} (leave out --gpg-key/--gnupghome for the repository's own key), "
                     "or pass --rotate-key to change keys on purpose")
        log.warning("rotating the signing key from %s to %s: %s carries both for %d days; give hosts the new "
                    "keyring before then", expected, key.fingerprint, KEYRING_NAME, KEY_TRANSITION_DAYS)
        retired[expected] = now
        if layout.public.is_dir():
            # The keyring hosts have now (the old key and any still in transition) stays exportable.
            layout.retired_keys.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(layout.public / KEYRING_NAME, layout.retired_keys / f"{expected}.gpg")
    retired = {fpr: when for fpr, when in retired.items()
               if fpr != key.fingerprint and now - when < KEY_TRANSITION_DAYS * 86400}
    return key, Manifest(manifest.dists, key.fingerprint, retired)


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
        retired = [layout.retired_keys / f"{fpr}.gpg" for fpr in sorted(manifest.retired_keys)
                   if (layout.retired_keys / f"{fpr}.gpg").is_file()]
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
    "DebFile",
    "Layout",
    "PackageRef",
    "PublishResult",
    "PublishSettings",
    "inspect_deb",
    "publish",
    "select_kept",
    "served_suites",
    "sources_snippet",
]
