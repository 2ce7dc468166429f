"""What a publish changes, decided before anything is written (pure): the packages a suite serves, the new
ones, those kept, and the aptly commands that make it so."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from microdeploy import dists
from microdeploy.debfile import DebFile, PackageRef
from microdeploy.dists import DEFAULT_DIST
from microdeploy.errors import MicrodeployError, bad_input
from microdeploy.signing import SigningKey

log = logging.getLogger(__name__)


ENDPOINT = "filesystem:microdeploy:."


@dataclass(frozen=True)
class SuitePlan:
    """What one publish does to one suite."""

    dist: str
    new: tuple[DebFile, ...]
    unchanged: tuple[DebFile, ...]
    removed: tuple[PackageRef, ...]
    skipped: tuple[DebFile, ...]


@dataclass(frozen=True)
class ServedPackage:
    """A package as the served index lists it."""

    package: PackageRef
    sha256: str
    dist: str = ""  # the suite whose index lists it


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
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, OSError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise MicrodeployError(
                f"the repository's state is damaged: {path} is not a manifest microdeploy wrote ({exc})",
                hint="Restore the repository's directory from a backup") from exc
        if not isinstance(data, dict):
            raise MicrodeployError(f"the repository's state is damaged: {path} is not a manifest microdeploy wrote",
                                   hint="Restore the repository's directory from a backup")
        return cls(data.get("dists", {}), data.get("key_fingerprint"), data.get("retired_keys", {}))


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
                packages[ref] = ServedPackage(ref, para["SHA256"], dist)
    return packages


def served_indexes(published: Path) -> dict[tuple[str, str], dict[PackageRef, ServedPackage]]:
    """The packages of every suite and component of the served tree, by (suite, component), each index read once."""
    return {(component.parent.name, component.name): served_packages(published, component.parent.name, component.name)
            for component in sorted(path for path in (published / "dists").glob("*/*") if path.is_dir())}


def repository_packages(indexes: Mapping[tuple[str, str], Mapping[PackageRef, ServedPackage]],
                        ) -> dict[PackageRef, ServedPackage]:
    """The packages the served `indexes` list (one of each, in suite order).

    The suites share one pool, where a name, version and architecture is one
    file: aptly cannot serve two different files under it.
    """
    packages: dict[PackageRef, ServedPackage] = {}
    for listed in indexes.values():
        for ref, served in listed.items():
            packages.setdefault(ref, served)
    return packages


def suite_of(deb: DebFile, asked: str | None) -> str:
    """The suite a package goes into: its release's (the +debN its version ends in), else --dist, else bookworm.

    A package built for one release is never published into another's
    suite: its Depends name that release's Python.
    """
    built_for = dists.of_version(deb.package.version)
    suffix = dists.SUFFIX_RE.search(deb.package.version)
    if built_for is None and suffix is not None and asked is None:
        # A release microdeploy does not know (+deb14): its suite cannot be told, and bookworm's would be wrong.
        known = ", ".join(f"{dist.codename} ({dist.suffix})" for dist in dists.DISTS.values())
        raise bad_input(
            f"{deb.path.name} is built for Debian {suffix['number']} (its version ends in {suffix.group(0)}), "
            f"a release microdeploy does not know; it knows {known}",
            hint="Pass --dist with the suite to publish it into, or rebuild it for a known release")
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
               keep: int, repository: Mapping[PackageRef, ServedPackage] | None = None) -> SuitePlan:
    """What to add to and remove from one suite, keeping the `keep` newest versions of each package.

    `repository` is what every suite serves (a package in another suite must be the same file).
    """
    new, unchanged = split_new(debs, served, repository)
    _, removed = select_kept([*served, *(d.package for d in new)], keep)
    # A new version older than the `keep` newest is not added at all.
    skipped = [d for d in new if d.package in removed]
    for deb in skipped:
        log.warning("not adding %s to %s: older than the %d kept versions", deb.package.key, dist, keep)
    return SuitePlan(dist, tuple(d for d in new if d.package not in removed), tuple(unchanged),
                     tuple(ref for ref in removed if ref in served), tuple(skipped))


def split_new(debs: Sequence[DebFile], served: Mapping[PackageRef, ServedPackage],
              repository: Mapping[PackageRef, ServedPackage] | None = None) -> tuple[list[DebFile], list[DebFile]]:
    """(new, unchanged) debs; a different file for a name+version+arch already in the suite, or in any suite of
    the `repository`, is bad input, and so is a version whose pool file name another version has."""
    new: list[DebFile] = []
    unchanged: list[DebFile] = []
    pool = {p.package.filename: p.package for p in [*(repository or {}).values(), *served.values()]}
    seen: dict[str, DebFile] = {}  # by pool file name
    for deb in debs:
        earlier = seen.get(deb.package.filename)
        if earlier is not None:
            if earlier.package != deb.package:
                raise _same_file_name(deb, earlier.package, f"{earlier.path} is")
            if earlier.sha256 != deb.sha256:
                raise bad_input(
                    f"{deb.path} and {earlier.path} are different files for {deb.package.key}",
                    hint="Publish only one of them, or give the new one a higher version")
            continue
        seen[deb.package.filename] = deb
        there = served.get(deb.package) or (repository or {}).get(deb.package)
        if there is None and deb.package.filename in pool:
            raise _same_file_name(deb, pool[deb.package.filename], "the repository already serves")
        if there is not None and there.sha256 != deb.sha256:
            where = f" in {there.dist}" if there.dist and deb.package not in served else ""
            raise bad_input(
                f"{deb.package.key} is already published{where} with different contents "
                f"(sha256 {there.sha256[:12]}…, this file {deb.sha256[:12]}…)",
                hint="Never replace a published version: bump the version (e.g. from BUILD_NUMBER) and publish again")
        if deb.package in served:
            unchanged.append(deb)
        else:
            new.append(deb)
    return new, unchanged


def _same_file_name(deb: DebFile, other: PackageRef, whose: str) -> Exception:
    """Two versions that differ only in their epoch: Debian's pool cannot hold both."""
    # A .deb's file name leaves the epoch out (1:1.0-1 and 1.0-1 are both NAME_1.0-1_ARCH.deb, and so
    # is 0:1.0-1), so their pool files would be one path with two contents.
    return bad_input(
        f"{deb.path} is {deb.package.name} {deb.package.version} and {whose} {other.name} {other.version}: "
        f"versions that differ only in their epoch have the same pool file name {deb.package.filename}",
        hint="Give the package a version that differs beyond its epoch (a higher upstream version or revision)")


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
