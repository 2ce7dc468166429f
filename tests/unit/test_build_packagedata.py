"""Files of the project's packages that its checkout has and its wheel leaves out (build/packagedata.py)."""

from __future__ import annotations

import subprocess
import zipfile
from pathlib import Path

from microdeploy.build import packagedata


def wheel(path: Path, members: list[str]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name in members:
            archive.writestr(name, "")
        archive.writestr("shopweb-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: shopweb\n")
    return path


def checkout(root: Path, files: list[str], *, untracked: tuple[str, ...] = ()) -> Path:
    """A git checkout with `files` committed and `untracked` beside them."""
    for name in (*files, *untracked):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("x\n")
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    subprocess.run(["git", "-C", str(root), "add", *files], check=True)
    return root


def test_templates_and_static_files_the_wheel_lacks_are_counted_per_directory(tmp_path: Path) -> None:
    """A src layout whose wheel has the modules alone (setuptools without MANIFEST.in): its templates/ and static/
    folders beside modules (a blueprint's too) are named; other files (a schema, the sources of built scripts, a
    templates/ folder of isso's scripts where no module is), TypeScript, tests, dotfiles and untracked files are
    not."""
    source = checkout(tmp_path / "shop", [
        "pyproject.toml", "src/shopweb/__init__.py", "src/shopweb/views.py",
        "src/shopweb/templates/base.html", "src/shopweb/templates/shop/index.html", "src/shopweb/static/site.css",
        "src/shopweb/admin/templates/admin.html", "src/shopweb/static/src/app.ts",
        "src/shopweb/schema.json", "src/shopweb/py.typed", "src/shopweb/js/src/widget.js",
        "src/shopweb/js/app/templates/comment.js", "src/shopweb/admin/__init__.py",
        "src/shopweb/tests/templates/fixture.html", "src/shopweb/templates/.keep",
    ], untracked=("src/shopweb/templates/scratch.html",))
    built = wheel(tmp_path / "shopweb-1.0-py3-none-any.whl",
                  ["shopweb/__init__.py", "shopweb/views.py", "shopweb/py.typed", "shopweb/admin/__init__.py"])
    assert packagedata.missing(built, source) == {"shopweb/templates/": 2, "shopweb/static/": 1,
                                                  "shopweb/admin/templates/": 1}
    assert packagedata.said({"shopweb/templates/": 2, "shopweb/static/": 1}).startswith(
        "shopweb/static/ (1 file), shopweb/templates/ (2 files): in the project's checkout but not in its wheel, so "
        "not in the package: the service cannot load them")


def test_a_wheel_with_its_package_data_has_nothing_missing(tmp_path: Path) -> None:
    """A flat layout, no git (an unpacked sdist): every file walked, each in the wheel."""
    for name in ("shopweb/__init__.py", "shopweb/templates/index.html", "shopweb/static/site.css"):
        (tmp_path / "shop" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "shop" / name).write_text("x\n")
    built = wheel(tmp_path / "w.whl", ["shopweb/__init__.py", "shopweb/templates/index.html",
                                       "shopweb/static/site.css"])
    assert packagedata.missing(built, tmp_path / "shop") == {}
    (tmp_path / "shop" / "shopweb/templates/new.html").write_text("x\n")
    assert packagedata.missing(built, tmp_path / "shop") == {"shopweb/templates/": 1}


def test_more_directories_than_shown_are_counted(tmp_path: Path) -> None:
    gaps = {f"shopweb/d{i}/": 1 for i in range(7)}
    assert packagedata.said(gaps).startswith("shopweb/d0/ (1 file), shopweb/d1/ (1 file), shopweb/d2/ (1 file), "
                                             "shopweb/d3/ (1 file), shopweb/d4/ (1 file) and 2 more: ")
