"""debian/ rendered as a build renders it, for the unit tests of its scripts."""

from __future__ import annotations

import sys
from pathlib import Path

from microdeploy.build.debiandir.context import BuildFacts, debian_context
from microdeploy.build.debiandir.tree import render_debian
from microdeploy.build.release.changelog import render_changelog
from microdeploy.build.release.license import StatedLicense
from microdeploy.config import validate

FACTS = BuildFacts(upstream="1.0", version="1.0-1", python_minor=f"{sys.version_info[0]}.{sys.version_info[1]}",
                   distribution="bookworm", epoch=1767225600, license=StatedLicense("MIT"), installer="uv")


def rendered_debian(root: Path, name: str = "orders-api", facts: BuildFacts = FACTS, **values: str) -> Path:
    """debian/ rendered in root/tree for the service `name` (with `values`: its app, ...); its path."""
    config = validate({"name": (name, "t"), "description": (name.title(), "t"),
                       **{key: (value, "t") for key, value in values.items()}})
    changelog = render_changelog(name=name, version=facts.version, distribution=facts.distribution,
                                 maintainer="A <a@example.org>", changes=[], epoch=facts.epoch)
    render_debian(root / "tree", debian_context(config, facts), changelog)
    return root / "tree" / "debian"
