"""The key a publish signs with: the repository's own, one given, or a rotation's new one, and the manifest that
records it and the keys rotated out (kept in the exported keyring for KEY_TRANSITION_DAYS)."""

from __future__ import annotations

import logging

from microdeploy.errors import bad_input
from microdeploy.generations import KEYRING_NAME, Layout
from microdeploy.process import Runner, run
from microdeploy.repo_plan import Manifest
from microdeploy.rotation import settle_rotation, stage_own_key, stage_retired_keyring
from microdeploy.signing import SigningKey, own_key

log = logging.getLogger(__name__)

# How long a key rotated out with --rotate-key stays in the exported keyring.
KEY_TRANSITION_DAYS = 90


def signing_key(layout: Layout, manifest: Manifest, explicit: SigningKey | None, rotate: bool, now: float,
                runner: Runner = run) -> tuple[SigningKey, Manifest]:
    """The key to sign with, and the manifest that records it; the key changes only with --rotate-key."""
    expected = manifest.key_fingerprint
    if explicit is not None:
        key = explicit
    elif rotate and expected is not None:
        key = stage_own_key(layout, expected, runner)
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
            stage_retired_keyring(layout, expected, layout.public / KEYRING_NAME)
    retired = {fpr: when for fpr, when in retired.items()
               if fpr != key.fingerprint and now - when < KEY_TRANSITION_DAYS * 86400}
    return key, Manifest(manifest.dists, key.fingerprint, retired)


def served_fingerprint(layout: Layout) -> str | None:
    """The key the served generation is signed with (its manifest's), or None before the first publish."""
    current = layout.current()
    return Manifest.load(current / "manifest.json").key_fingerprint if current is not None else None


def settle_after_failure(layout: Layout, runner: Runner) -> None:
    """Settle a rotation against what is served after a failed or stopped publish, without hiding why it failed:
    what cannot be settled now the next publish settles."""
    try:
        settle_rotation(layout, served_fingerprint(layout), runner)
    except Exception as exc:  # the publish's own error is the one to report
        log.warning("could not settle the key rotation in %s (the next publish will): %s", layout.state, exc)
