"""`microdeploy cache`: what the caches hold, and their prune.

Three places, each with a size of its own: the build cache (per user), the
build roots of other releases and the host images of `check` (both shared by
the machine's builds and checks, made and removed by root only).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import click

from microdeploy.build import cache
from microdeploy.build.buildroot import roots_dir
from microdeploy.cli_base import print_json
from microdeploy.testbed import CACHE_DIR, image_cache

Prune = Callable[[int | None, float | None], list[cache.Entry]]


@dataclass(frozen=True)
class Shared:
    """A cache the machine's root keeps (build roots, host images): where, its kinds, its entries, its prune."""

    name: str
    path: Path
    kinds: tuple[str, ...]
    entries: Callable[[], list[cache.Entry]]
    prune: Prune

    def info(self) -> list[cache.KindInfo]:
        """Entries, size and last use per kind."""
        return cache.summaries(self.entries(), self.kinds)

    def prunable(self) -> bool:
        """Whether this user may remove its entries (root's), and there are any."""
        return self.path.is_dir() and os.access(self.path, os.W_OK)


def shared_caches() -> tuple[Shared, Shared]:
    """The build roots and the host images."""
    roots = roots_dir(os.environ)
    return (
        Shared("roots", roots, (cache.ROOTS_KIND,), lambda: cache.root_entries(roots),
               lambda size, days: cache.prune_roots(roots, max_size=size, older_than_days=days)),
        Shared("images", CACHE_DIR, (image_cache.IMAGES_KIND, image_cache.MIRROR_KIND),
               lambda: image_cache.image_entries(CACHE_DIR),
               lambda size, days: image_cache.prune(CACHE_DIR, max_size=size, older_than_days=days)),
    )


@click.group("cache")
def cache_group() -> None:
    """Inspect and prune the build cache ($MICRODEPLOY_CACHE_DIR, else ~/.cache/microdeploy), the build roots of
    other releases ($MICRODEPLOY_ROOTS_DIR, else /var/cache/microdeploy/roots) and the host images of `check`
    (/var/cache/microdeploy/hosts)."""


@cache_group.command("info")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
def cache_info(as_json: bool) -> None:
    """Size, entries and last use of each kind of entry, in each cache."""
    root = cache.cache_root(os.environ)
    areas = [(root, cache.info(root)), *((shared.path, shared.info()) for shared in shared_caches())]
    if as_json:
        [build, roots, images] = [{"path": str(path), "kinds": [kind.as_dict() for kind in kinds],
                                   "size": sum(kind.size for kind in kinds)} for path, kinds in areas]
        print_json({"root": str(root), "kinds": build["kinds"], "size": build["size"], "roots": roots,
                    "images": images})
        return
    for path, kinds in areas:
        click.echo(f"{path}: {human_size(sum(kind.size for kind in kinds))}")
        for kind in kinds:
            last = kind.as_dict()["last_use"] or "never"
            click.echo(f"  {kind.kind:<11} {human_size(kind.size):>9}  {kind.entries:>5} entries  last used {last}")


@cache_group.command("prune")
@click.option("--max-size", metavar="SIZE",
              help=f"Remove the least recently used entries until the build cache fits (e.g. 500M, 4G; "
                   f"default ${cache.MAX_SIZE_VAR}, else {cache.DEFAULT_MAX_SIZE}).")
@click.option("--roots-max-size", metavar="SIZE",
              help=f"The same for the build roots (default ${cache.ROOTS_MAX_SIZE_VAR}, else "
                   f"{cache.DEFAULT_ROOTS_MAX_SIZE}).")
@click.option("--images-max-size", metavar="SIZE",
              help=f"The same for the host images (default ${image_cache.MAX_SIZE_VAR}, else "
                   f"{image_cache.DEFAULT_MAX_SIZE}).")
@click.option("--older-than", metavar="DAYS", type=click.FloatRange(min=0),
              help="Remove every entry unused for more than DAYS days (then no size unless one is given).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
def cache_prune(max_size: str | None, roots_max_size: str | None, images_max_size: str | None,
                older_than: float | None, as_json: bool) -> None:
    """Remove entries, least recently used first (a later build or check makes them again); never a build root
    or host image in use."""
    sizes = [cache.parse_size(text) if text is not None else None
             for text in (max_size, roots_max_size, images_max_size)]
    if older_than is None:
        defaults = (cache.default_max_size, cache.default_roots_max_size, image_cache.default_max_size)
        sizes = [default(os.environ) if size is None else size for size, default in zip(sizes, defaults, strict=True)]
    root = cache.cache_root(os.environ)
    removed = cache.prune(root, max_size=sizes[0], older_than_days=older_than)
    shared = [(area, area.prune(size, older_than) if area.prunable() else None)
              for area, size in zip(shared_caches(), sizes[1:], strict=True)]
    if as_json:
        result: dict[str, object] = {"root": str(root), "removed": [str(entry.path) for entry in removed],
                                     "freed": sum(entry.size for entry in removed)}
        for area, gone in shared:
            result[area.name] = {"path": str(area.path), "removed": [str(entry.path) for entry in gone or []],
                                 "freed": sum(entry.size for entry in gone or [])}
        print_json(result)
        return
    click.echo(f"removed {len(removed)} entries, {human_size(sum(entry.size for entry in removed))} freed "
               f"from {root}")
    for area, gone in shared:
        if gone is not None:
            click.echo(f"removed {len(gone)} entries, {human_size(sum(entry.size for entry in gone))} freed "
                       f"from {area.path}")
        elif area.path.is_dir():
            click.echo(f"left {area.path} as it is (only root can remove its entries)")


def human_size(size: int) -> str:
    """Bytes as the largest binary unit that keeps a number of at least 1 (e.g. 12.3 MiB)."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"

