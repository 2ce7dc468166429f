"""debian/changelog, written with python-debian."""

from __future__ import annotations

import textwrap
import time
from collections.abc import Sequence

MAX_ENTRIES = 30


def changelog_date(epoch: int) -> str:
    """The RFC 2822 date dpkg expects, in UTC."""
    return time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(epoch))


def render_changelog(
    *, name: str, version: str, distribution: str, maintainer: str, changes: Sequence[str], epoch: int
) -> str:
    """One changelog entry listing `changes` (commit subjects), newest first."""
    # Imported here: a build renders its changelog after the project's wheel
    # has started, so the wheel does not wait for python-debian to load.
    from debian.changelog import Changelog

    changelog = Changelog()
    changelog.new_block(
        package=name,
        version=version,
        distributions=distribution,
        urgency="medium",
        author=maintainer,
        date=changelog_date(epoch),
    )
    changelog.add_change("")
    items = list(changes)[:MAX_ENTRIES] or [f"Build of {name} {version}."]
    if len(changes) > MAX_ENTRIES:
        items.append(f"... and {len(changes) - MAX_ENTRIES} earlier changes.")
    for item in items:
        # lintian wants lines under 80 columns.
        lines = textwrap.wrap(" ".join(item.split()), width=74) or ["(no subject)"]
        changelog.add_change(f"  * {lines[0]}")
        for line in lines[1:]:
            changelog.add_change(f"    {line}")
    changelog.add_change("")
    return str(changelog)
