"""debian/venv-overrides against lintian itself: for the files a wheel may bring, the overrides it writes are the
tags this machine's lintian gives, path by path, no more and no fewer.

The unit tests (tests/unit/test_venv_overrides_tags.py) say what each file gets; here the same kinds of file go
into a real .deb, and lintian's own verdict, without the overrides, is compared with the overrides.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.debiandir import rendered_debian
from tests.unit.test_build_scripts import font
from tests.unit.test_venv_overrides_tags import SITE, hardening_variants, put

pytestmark = pytest.mark.integration

# The tags whose overrides are compared (venv-overrides writes others too, e.g. for the scripts' "#!" lines).
TAGS = ("hardening-no-pie", "hardening-no-relro", "shell-script-fails-syntax-check",
        "truetype-font-prohibits-installable-embedding")
SCRIPTS = {
    "bash-completion.template": "#!/bin/bash completion for {name}\n\n_{name}(){{\n    COMPREPLY=()\n}}\n",
    "array.sh": "#!/bin/sh\na=(1 2)\n",
    "env-broken": "#!/usr/bin/env bash\nfi\n",
    "ok.sh": "#!/bin/sh\necho hi\n",
    "array.bash": "#!/bin/bash\na=(1 2)\n",
    "polyglot": '#!/bin/sh\nexec python3 "$0" "$@"\nif __name__ == "__main__":\n    main()\n',
    "background": "#!/bin/sh\nprog=$0;\nfoo $prog $@ &\nexec true\nif x\n",
}


def wheel_files(package: Path, work: Path) -> None:
    """ELF files linked with and without RELRO and PIE, scripts and fonts, where a wheel puts them."""
    for name, path in hardening_variants(work).items():
        put(package / SITE / "tool" / "bin" / name, path.read_bytes(), 0o755)
    for name, text in SCRIPTS.items():
        put(package / SITE / "tool" / "scripts" / name, text)
    put(package / SITE / "tool" / "static" / "edit-only.ttf", font(b"\0\1\0\0", 0x0008))
    put(package / SITE / "tool" / "static" / "droid-sans.ttf", font(b"\0\1\0\0", 0x0008, version=5))


def tagged(lines: list[str]) -> list[tuple[str, str]]:
    """(tag, path) of each line of TAGS, from lintian's output ("W: PACKAGE: TAG [CONTEXT] [PATH]") or an
    overrides file ("PACKAGE: TAG [CONTEXT] [PATH]")."""
    found = []
    for line in lines:
        words = line.split()
        tag = words[words.index("orders-api:") + 1] if "orders-api:" in words[:2] else ""
        if tag in TAGS:
            found.append((tag, line.rsplit("[", 1)[1].rstrip("]")))
    return sorted(found)


def test_the_overrides_are_the_tags_lintian_gives(tmp_path: Path) -> None:
    """ELF files without RELRO or PIE, files that start like shell scripts (some of them none), fonts that restrict
    embedding: the overrides venv-overrides writes for them are, path by path, the tags lintian gives the package
    without its overrides."""
    debian = rendered_debian(tmp_path)
    package = tmp_path / "pkg"
    wheel_files(package, tmp_path / "elf")
    subprocess.run([str(debian / "venv-overrides"), str(package), "orders-api"], check=True)
    ours = tagged((package / "usr/share/lintian/overrides/orders-api").read_text().splitlines())
    (package / "DEBIAN").mkdir()
    (package / "DEBIAN" / "control").write_text(
        "Package: orders-api\nVersion: 1.0-1\nArchitecture: amd64\nMaintainer: A <a@example.org>\n"
        "Description: Orders of the shop\n A service.\n")
    deb = tmp_path / "orders-api_1.0-1_amd64.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(package), str(deb)], check=True,
                   capture_output=True)
    result = subprocess.run(["lintian", "--no-override", "--tag-display-limit", "0", str(deb)],
                            capture_output=True, text=True, timeout=600)
    given = tagged(result.stdout.splitlines())
    assert {tag for tag, _ in given} == set(TAGS), result.stdout
    assert ours == given
