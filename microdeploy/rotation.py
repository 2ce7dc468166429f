"""`publish --rotate-key`: the new key, and the keyring of the old one, staged until the generation they sign is
served; then made the repository's own, or else removed (`settle_rotation`).

A rotation from key OLD stages, beside what the repository has:

    state/gnupg.new/                    the new own key (a GnuPG home), with a file naming OLD
    state/retired-keys/OLD.gpg.new      the keyring hosts have now, exported beside the new key

and signs the new generation from there. Swapping `public` to that generation
is the one step that changes keys: the manifest it serves names the new key.
Every publish, under the repository lock, settles what is staged against what
is served, before and after its own work: a served key other than OLD means the
rotation took effect, and its staged files take their places (`state/gnupg`
moves aside to `state/gnupg.retired-OLD`); the served key still OLD means it
did not, and they are removed. Each step is a rename or a removal that the
next settle repeats or completes, so a publish killed at any point (SIGKILL
too) leaves the key the served repository names as the repository's own, or
(when killed after the swap) puts it there at the next publish.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from microdeploy.fsutil import atomic_write, sync_directory
from microdeploy.generations import Layout
from microdeploy.process import Runner, run
from microdeploy.signing import SigningKey, create_key, stop_agent

log = logging.getLogger(__name__)

# The file in a staged GnuPG home that names the key it replaces; written before the key is made.
REPLACES = "microdeploy-replaces"
STAGED = ".new"


def staged_home(layout: Layout) -> Path:
    """Where a rotation makes the new own key (short: gpg-agent's sockets live in the home, in at most 107 bytes)."""
    return layout.gnupghome.with_name(layout.gnupghome.name + STAGED)


def retired_keyring(layout: Layout, fingerprint: str) -> Path:
    """Where the keyring of a key rotated out is kept for the transition period."""
    return layout.retired_keys / f"{fingerprint}.gpg"


def stage_own_key(layout: Layout, old: str, runner: Runner = run) -> SigningKey:
    """Make a new own key to replace `old` in the staged home; the repository's own home stays as it is."""
    home = staged_home(layout)
    home.mkdir(mode=0o700)  # settle_rotation removed any left over: one that is there now is not ours to reuse
    atomic_write(home / REPLACES, f"{old}\n", 0o600)
    fingerprint = create_key(home, runner)
    return SigningKey(fingerprint, home, created=True)


def stage_retired_keyring(layout: Layout, old: str, keyring: Path) -> None:
    """Keep `keyring` (what hosts have now) as the keyring of `old`, once the rotation takes effect."""
    staged = retired_keyring(layout, old).with_name(f"{old}.gpg{STAGED}")
    staged.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(keyring, staged)


def retired_keyrings(layout: Layout, fingerprints: Iterable[str]) -> list[Path]:
    """The keyring of each key rotated out that has one: staged by this publish's rotation, or kept from before."""
    found = []
    for fingerprint in sorted(fingerprints):
        kept = retired_keyring(layout, fingerprint)
        staged = kept.with_name(kept.name + STAGED)
        found += [path for path in (staged, kept) if path.is_file()][:1]
    return found


def settle_rotation(layout: Layout, served: str | None, runner: Runner = run) -> None:
    """Make a staged rotation current if the served repository is signed with its key (`served` is not the key it
    replaces), else remove it. Without anything staged, nothing is done."""
    if layout.retired_keys.is_dir():
        for staged in sorted(layout.retired_keys.glob(f"*.gpg{STAGED}")):
            old = staged.name.removesuffix(f".gpg{STAGED}")
            if served not in (None, old):
                os.replace(staged, retired_keyring(layout, old))
            else:
                staged.unlink()
    home = staged_home(layout)
    if not home.is_dir():
        return
    stop_agent(home, runner)  # a killed rotation's agent too; one in a renamed or removed home is never stopped
    marker = home / REPLACES
    replaced = marker.read_text().strip() if marker.is_file() else None
    if replaced is None or served in (None, replaced):
        # Never served (made before its marker, or the publish failed): the key signed nothing anyone has.
        shutil.rmtree(home, onerror=_unless_gone)
        log.info("removed the new signing key of a rotation that did not take effect (%s)", home)
        return
    own = layout.gnupghome
    if own.exists():  # absent after a settle killed between these renames, or a key that was lost
        stop_agent(own, runner)
        own.rename(own.with_name(f"{own.name}.retired-{replaced}"))
    home.rename(own)
    (own / REPLACES).unlink(missing_ok=True)
    sync_directory(layout.state)
    log.info("the repository's own signing key is now %s (key %s kept in %s.retired-%s)", served, replaced,
             own.name, replaced)


def _unless_gone(function: Callable[..., Any], path: str, exc_info: Any) -> None:
    """rmtree's error handler: a file already gone is fine (the gpg-agent just stopped removes its sockets)."""
    if not isinstance(exc_info[1], FileNotFoundError):
        raise exc_info[1]
