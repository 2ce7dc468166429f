"""microdeploy's modules and the scripts it renders into debian/ stay small: one job each, at most 400 lines."""

from __future__ import annotations

from pathlib import Path

import microdeploy

PACKAGE = Path(microdeploy.__file__).parent
DEBIAN_TEMPLATES = PACKAGE.parent / "debian_templates"
MAX_LINES = 400


def test_no_module_or_debian_script_is_over_400_lines() -> None:
    """A module past 400 lines has grown a second job: split it where its sections are."""
    sources = [*PACKAGE.rglob("*.py"), *DEBIAN_TEMPLATES.glob("*.j2")]
    assert len(sources) > 50  # both trees were found
    too_long = {str(path.relative_to(PACKAGE.parent)): length for path in sources
                if (length := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert too_long == {}
