"""Broken variants of a built package, made in a second by editing its tree and packing it again with dpkg-deb.

`microdeploy check` must catch each of them; rebuilding a service per
variant would cost a dh-virtualenv build each.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
from collections.abc import Callable
from pathlib import Path


def repack(deb: Path, out: Path, edit: Callable[[Path], None], *, version: str | None = None) -> Path:
    """A copy of `deb` with `edit(tree)` applied to its unpacked tree (DEBIAN/ included), md5sums kept right."""
    tree = out / f"tree-{deb.stem}-{len(list(out.glob('tree-*')))}"
    subprocess.run(["dpkg-deb", "--raw-extract", str(deb), str(tree)], check=True)
    edit(tree)
    control = tree / "DEBIAN" / "control"
    if version is not None:
        control.write_text(re.sub(r"(?m)^Version: .*$", f"Version: {version}", control.read_text()))
    sums = []
    for path in sorted(tree.rglob("*")):
        relative = path.relative_to(tree).as_posix()
        if path.is_file() and not path.is_symlink() and not relative.startswith("DEBIAN/"):
            sums.append(f"{hashlib.md5(path.read_bytes()).hexdigest()}  {relative}\n")
    (tree / "DEBIAN" / "md5sums").write_text("".join(sums))
    fields = dict(re.findall(r"(?m)^(Package|Version|Architecture): (.*)$", control.read_text()))
    target = out / f"{fields['Package']}_{fields['Version']}_{fields['Architecture']}.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(tree), str(target)],
                   check=True, capture_output=True)
    return target


def replace_in(path: Path, old: str, new: str) -> None:
    """Replace `old` (which must be there) by `new` in a text file."""
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def add_to_postinst(tree: Path, shell: str) -> None:
    """Run `shell` at the end of the postinst's configure (before debhelper's part)."""
    replace_in(tree / "DEBIAN" / "postinst", "\t\twait \"$compiling\" || true\n",
               f"\t\twait \"$compiling\" || true\n\t\t{shell}\n")
