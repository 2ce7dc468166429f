"""The build tree: a copy of the project with a rendered debian/, outside the checkout."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from microdeploy.build.source import IGNORED
from microdeploy.render import render_tree
from microdeploy.resources import template_folder

EXECUTABLE = ("rules", "finalize-venv", "make-venv", "uv-pip", "cached-shlibdeps")
# The project sits beside debian/, not around it: build backends that package
# every file they see (hatchling) would otherwise put debian/ into the wheel.
SOURCE_SUBDIR = "src-project"


def copy_source(project: Path, dest: Path) -> None:
    """Copy the project's source to `dest`, leaving out what must not be packaged (IGNORED)."""
    shutil.copytree(project, dest, ignore=shutil.ignore_patterns(*IGNORED), symlinks=True)


def date_tree(root: Path, epoch: int) -> None:
    """Date `root` and everything below it `epoch`, symlinks themselves rather than their targets.

    dpkg-deb clamps times newer than SOURCE_DATE_EPOCH, not older ones: a
    checkout whose files predate the commit would otherwise date the package.
    """
    for path in [root, *root.rglob("*")]:
        os.utime(path, (epoch, epoch), follow_symlinks=False)


def render_debian(dest: Path, context: Mapping[str, Any], changelog: str) -> list[Path]:
    """Render debian_templates/ into dest/debian and write the changelog."""
    debian = dest / "debian"
    written = render_tree(template_folder("debian_templates"), debian, context)
    (debian / "README.md").unlink(missing_ok=True)
    written = [path for path in written if path.name != "README.md"]
    for name in EXECUTABLE:
        (debian / name).chmod(0o755)
    (debian / "changelog").write_text(changelog, encoding="utf-8")
    return [*written, debian / "changelog"]
