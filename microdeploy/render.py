"""jinja2 over template folders: templates are data, logic stays in Python.

Only files ending in `.j2` are rendered (the suffix is dropped); every other
file is copied byte for byte. Path names may hold jinja expressions
(`src/{{ package }}/...`); a name that renders empty is skipped with
everything below it, which is how optional parts of a template are left out.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import jinja2

TEMPLATE_SUFFIX = ".j2"


def toml_string(value: object) -> str:
    """Quote a value as a TOML basic string (JSON string escapes are valid TOML)."""
    return json.dumps(str(value), ensure_ascii=False)


def environment(root: Path | None = None) -> jinja2.Environment:
    """A strict, newline-preserving jinja2 environment, over `root` when given."""
    # Imported on first use: commands that render nothing (and a build whose
    # project wheel is started before debian/ is rendered) do not wait for it.
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(root)) if root is not None else None,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["toml_string"] = toml_string
    return env


def render_string(source: str, context: Mapping[str, Any]) -> str:
    """Render one template string with the strict settings."""
    return environment().from_string(source).render(**context)


def render_file(root: Path, relative: str, context: Mapping[str, Any]) -> str:
    """Render one template file of `root`."""
    return environment(root).get_template(relative).render(**context)


def render_tree(root: Path, dest: Path, context: Mapping[str, Any]) -> list[Path]:
    """Render or copy every file of `root` into `dest`; return the written paths, sorted.

    `dest` is a directory nobody reads yet (a staging directory renamed into
    place, a build tree): files are written directly, without a rename and
    an fsync each.
    """
    env = environment(root)
    written: list[Path] = []
    for source in sorted(root.rglob("*")):
        if not source.is_file() or "__pycache__" in source.parts:
            continue
        relative = source.relative_to(root)
        target_parts = [_render_name(env, part, context) for part in relative.parts]
        if any(not part for part in target_parts):
            continue
        target = dest.joinpath(*target_parts)
        if target.name.endswith(TEMPLATE_SUFFIX):
            target = target.with_name(target.name[: -len(TEMPLATE_SUFFIX)])
            text = env.get_template(relative.as_posix()).render(**context)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
            target.chmod(source.stat().st_mode & 0o777)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
            target.chmod(source.stat().st_mode & 0o777)
        written.append(target)
    return sorted(written)


def _render_name(env: jinja2.Environment, part: str, context: Mapping[str, Any]) -> str:
    if "{" not in part:
        return part
    return env.from_string(part).render(**context).strip()
