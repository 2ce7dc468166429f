"""Templates are data: .j2 rendered, the rest copied, optional parts by name."""

from __future__ import annotations

from pathlib import Path

import jinja2
import pytest

from microdeploy.render import render_string, render_tree, toml_string


def test_render_tree_renders_j2_copies_others_and_skips_empty_names(tmp_path: Path) -> None:
    """Only .j2 files are rendered; a path part that renders empty is left out."""
    src = tmp_path / "src"
    (src / "{{ pkg }}").mkdir(parents=True)
    (src / "{{ pkg }}" / "mod.py.j2").write_text("NAME = '{{ pkg }}'\n")
    (src / "raw.txt").write_text("{{ not rendered }}")
    (src / "{% if extra %}extra{% endif %}").mkdir()
    (src / "{% if extra %}extra{% endif %}" / "x.txt").write_text("x")
    written = render_tree(src, tmp_path / "out", {"pkg": "orders", "extra": False})
    assert [p.relative_to(tmp_path / "out").as_posix() for p in written] == ["orders/mod.py", "raw.txt"]
    assert (tmp_path / "out/orders/mod.py").read_text() == "NAME = 'orders'\n"
    assert (tmp_path / "out/raw.txt").read_text() == "{{ not rendered }}"


def test_undefined_variables_fail_loudly() -> None:
    """StrictUndefined: a missing variable is an error, not an empty string."""
    with pytest.raises(jinja2.UndefinedError):
        render_string("{{ missing }}", {})


def test_toml_string_escapes_quotes_and_newlines() -> None:
    """Values are quoted so they cannot break out of a TOML string."""
    assert toml_string('a "b"\nc') == '"a \\"b\\"\\nc"'
