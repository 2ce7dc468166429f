"""The build tree: a copy of the project with a rendered debian/, outside the checkout."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from microdeploy import render
from microdeploy.build.cache import touch
from microdeploy.build.release.source import root_litter
from microdeploy.fsutil import staged_directory
from microdeploy.resources import template_folder

log = logging.getLogger(__name__)

# The project sits beside debian/, not around it: build backends that package
# every file they see (hatchling) would otherwise put debian/ into the wheel.
SOURCE_SUBDIR = "src-project"


def copy_source(project: Path, dest: Path, *, git: bool = False) -> list[str]:
    """Copy the project to `dest` without its root's build litter; return what else was left out.

    Below the root nothing is filtered by name. What cannot be copied (a
    socket, a FIFO, a device) is left out and named in one warning. With
    `git`, the copy's .git is a link to the checkout's: a version from git
    (setuptools-scm, hatch-vcs) and the files git tracks are then what the
    backend finds in the checkout itself. (git may then refresh the file
    times the checkout's index caches, as a `git status` there would.)
    """
    top = os.fspath(project)
    skipped: list[str] = []

    def ignore(directory: str, names: list[str]) -> set[str]:
        left_out = {name for name in names if root_litter(name)} if directory == top else set()
        for name in sorted(set(names) - left_out):
            path = os.path.join(directory, name)
            if not (os.path.islink(path) or os.path.isdir(path) or os.path.isfile(path)):
                left_out.add(name)
                skipped.append(os.path.relpath(path, top))
        return left_out

    shutil.copytree(project, dest, ignore=ignore, symlinks=True)
    if git and (project / ".git").exists():
        (dest / ".git").symlink_to((project / ".git").resolve())
    if skipped:
        log.warning("left out of the package (neither file, directory nor symlink): %s", ", ".join(skipped))
    return skipped


def date_tree(root: Path, epoch: int) -> None:
    """Date `root` and everything below it `epoch`, symlinks themselves rather than their targets.

    dpkg-deb clamps times newer than SOURCE_DATE_EPOCH, not older ones: a
    checkout whose files predate the commit would otherwise date the package.
    """
    for path in [root, *root.rglob("*")]:
        os.utime(path, (epoch, epoch), follow_symlinks=False)


def render_debian(dest: Path, context: Mapping[str, Any], changelog: str, cache: Path | None = None) -> list[Path]:
    """Render debian_templates/ into dest/debian and write the changelog; return the files written, sorted.

    With `cache`, a debian/ rendered before from the same templates, context
    and renderer is copied from there instead: the context holds no version
    (only the changelog does), so every build of a service renders the same
    files, and a build need not load jinja2 and compile the templates before
    dpkg-buildpackage can start.
    """
    debian = dest / "debian"
    templates = template_folder("debian_templates")
    rendered = cache / rendering_key(templates, context) if cache is not None else None
    if rendered is not None and rendered.is_dir():
        shutil.copytree(rendered, debian)
        touch(rendered)
    else:
        render.render_tree(templates, debian, context)
        (debian / "README.md").unlink(missing_ok=True)
        for path in debian.iterdir():
            if path.is_file() and path.read_bytes()[:2] == b"#!":
                path.chmod(0o755)  # debian/rules and the scripts it runs
        if rendered is not None:
            keep_rendering(debian, rendered)
    (debian / "changelog").write_text(changelog, encoding="utf-8")
    return sorted(path for path in debian.rglob("*") if path.is_file())


def rendering_key(templates: Path, context: Mapping[str, Any]) -> str:
    """What decides the rendered files: every template's path, mode and bytes, the context, and the renderer
    (render.py, this module, and the installed jinja2)."""
    digest = hashlib.sha256(json.dumps(context, sort_keys=True, default=repr).encode())
    for path in sorted(templates.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(f"\0{path.relative_to(templates)} {path.stat().st_mode & 0o777}\0".encode())
            digest.update(path.read_bytes())
    for module in (render.__file__, __file__):
        digest.update(Path(module).read_bytes())
    jinja2 = importlib.util.find_spec("jinja2")  # found, not imported
    if jinja2 is not None and jinja2.origin is not None:
        stat = os.stat(jinja2.origin)
        digest.update(f"\0{jinja2.origin} {stat.st_size} {stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:32]


def keep_rendering(debian: Path, rendered: Path) -> None:
    """Save a rendered debian/ (without its changelog) for the next build."""
    try:
        with staged_directory(rendered) as staging:
            shutil.copytree(debian, staging, dirs_exist_ok=True)
    except OSError:
        pass  # another build saved it first, or the cache is not writable: the next build renders
