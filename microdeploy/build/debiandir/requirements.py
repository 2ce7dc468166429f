"""The build tree's requirements files: nothing they install may point into the tree.

pip and uv install an editable requirement (`-e ./vendor/lib`, `-e .`) as a
.pth file or an import finder that points at its source directory. In a
package that directory is the build tree, gone once the package is built,
and the service cannot import the code on the host. So the build tree's
copies of the project's requirements files (requirements.txt and what it
includes) are rewritten before anything installs them: an editable
requirement becomes a plain one, and the project itself (`-e .`, which many
projects list for their development setup) is left out, since the build
installs the project from its wheel right after. A relative local path is
made absolute: pip reads it relative to its working directory (the build
tree's root), not to the file. The checkout's files stay as they are.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from microdeploy.build.fastpath.layer import requirement_files
from microdeploy.build.fastpath.lock import REQUIREMENTS_FILE
from microdeploy.fsutil import atomic_write

log = logging.getLogger(__name__)

EDITABLE_RE = re.compile(r"^(?P<indent>\s*)(?:-e|--editable)(?:\s*=\s*|\s+)(?P<target>\S+)(?P<rest>.*)$")
# The start of a requirement that is a local path rather than a name or a URL.
LOCAL_PATH_RE = re.compile(r"^(?:file:)?(?:\.{1,2}(?:/|$|\[)|/)")


def is_project_itself(target: str, directory: Path, project: Path) -> bool:
    """Whether `target` (a requirement as written in a file in `directory`) is the project at `project`, without
    extras (with them, it also asks for the extras' dependencies, and stays)."""
    if "[" in target or not LOCAL_PATH_RE.match(target):
        return False
    path = target.removeprefix("file:").split("#", 1)[0]
    return (directory / path).resolve() == project.resolve()


def absolute(target: str, directory: Path) -> str:
    """A relative local path requirement made absolute (extras kept): pip reads such a path relative to its
    working directory, which is the build tree's root and not the requirements file's directory."""
    path = target.removeprefix("file:")
    if not path.startswith("."):
        return target
    name, bracket, extras = path.partition("[")
    return f"{(directory / name).resolve()}{bracket}{extras}"


def rewritten_line(line: str, directory: Path, project: Path) -> str | None:
    """`line` as the package may install it; None when it is the project itself."""
    body = line.rstrip("\r\n")
    editable = EDITABLE_RE.match(body)
    if editable:
        indent, target, rest = editable["indent"], editable["target"], editable["rest"]
    else:
        stripped = body.lstrip()
        indent = body[:len(body) - len(stripped)]
        target, space, rest = stripped.partition(" ")
        rest = space + rest
    if not LOCAL_PATH_RE.match(target):
        # A name or a URL: only the -e goes (pip would clone a VCS URL into the venv's src/ and link it there).
        return f"{indent}{target}{rest}{line[len(body):]}" if editable else line
    if is_project_itself(target, directory, project) and not body.endswith("\\"):
        return None
    return f"{indent}{absolute(target, directory)}{rest}{line[len(body):]}"


def deploy_requirements(project: Path) -> list[str]:
    """Rewrite the requirements files of `project` (the build tree's copy of the project) in place; the lines
    changed, as they were."""
    changed: list[str] = []
    for path, text in requirement_files(project / REQUIREMENTS_FILE):
        if not path.resolve().is_relative_to(project.resolve()):
            continue  # not part of the copy: nothing of it is ours to rewrite
        lines = text.splitlines(keepends=True)
        kept = [rewritten_line(line, path.parent, project) for line in lines]
        if kept == lines:
            continue
        changed.extend(line.strip() for line, new in zip(lines, kept, strict=True) if new != line)
        atomic_write(path, "".join(line for line in kept if line is not None), durable=False)
    if changed:
        log.info("requirements files, as the package installs them: %s (editables as plain requirements, local "
                 "paths absolute; the project itself comes from its wheel)", ", ".join(changed))
    return changed
