"""A private index and constraints configured for pip alone (pip.conf) serve the build with uv too."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from microdeploy.build.fastpath.installer import find_uv
from tests.integration.test_build_caches import build_with, checkout, commit, payload

pytestmark = pytest.mark.integration

PRIVATE = "mdtest-private-helper"  # a name that is not on PyPI


def private_index(root: Path) -> Path:
    """A PEP 503 simple index at root/simple holding one wheel of PRIVATE, built by uv from a small project."""
    project = root / "helper"
    (project / "mdtest_private_helper").mkdir(parents=True)
    (project / "mdtest_private_helper" / "__init__.py").write_text('SECRET_SAUCE = "from the private index"\n')
    (project / "pyproject.toml").write_text(
        f'[project]\nname = "{PRIVATE}"\nversion = "1.0"\n'
        '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n')
    files = root / "files"
    subprocess.run([find_uv(os.environ) or "uv", "build", "--wheel", "--quiet", "--out-dir", str(files), str(project)],
                   check=True, env={**os.environ, "UV_SYSTEM_CERTS": "1"})
    [wheel] = files.glob("*.whl")
    return simple_index(root, PRIVATE, wheel)


def depending_checkout(dest: Path, *requirements: str) -> Path:
    """The benchmark service's checkout at `dest`, with `requirements` added to its dependencies and committed."""
    project = checkout(dest)
    pyproject = project / "pyproject.toml"
    pinned = '"gunicorn==23.0.0",'
    pyproject.write_text(pyproject.read_text().replace(pinned, pinned + "".join(f'\n    "{each}",'
                                                                             for each in requirements)))
    commit(project, "dependencies: " + ", ".join(requirements))
    return project


def simple_index(root: Path, project: str, wheel: Path) -> Path:
    """root/simple, a PEP 503 index whose page of `project` links `wheel` (in root/files)."""
    page = root / "simple" / project / "index.html"
    page.parent.mkdir(parents=True)
    page.write_text(f'<html><body><a href="../../files/{wheel.name}">{wheel.name}</a></body></html>\n')
    return root / "simple"


@pytest.mark.parametrize(("dist", "python"), [(None, "3.11"), ("trixie", "3.13")])
def test_a_private_index_and_a_constraint_in_pip_conf_serve_the_build_with_uv(tmp_path: Path, dist: str | None,
                                                                               python: str) -> None:
    """The service depends on a package only the private index has, and on six, which a constraint file holds
    back; both are in a pip configuration file ($PIP_CONFIG_FILE, as a CI agent sets it) and nowhere in uv's
    settings. Without pip's settings uv looks the name up on PyPI alone and the build fails, and it takes the
    newest six; in trixie's build root, without the index's and the constraint's directories bound in, uv finds
    neither."""
    simple = private_index(tmp_path / "index")
    constraints = tmp_path / "team-constraints" / "constraints.txt"
    constraints.parent.mkdir()
    constraints.write_text("six==1.16.0\n")
    pip_conf = tmp_path / "pip.conf"
    pip_conf.write_text(f"[global]\nextra-index-url = file://{simple}\nconstraint = {constraints}\n")
    project = depending_checkout(tmp_path / "hello-api", f"{PRIVATE}==1.0", "six")

    built = build_with(project, tmp_path / "out", tmp_path / "cache", {"PIP_CONFIG_FILE": str(pip_conf)}, dist=dist)
    site = f"/opt/venvs/hello-api/lib/python{python}/site-packages"
    files = payload(built.deb)
    assert b"from the private index" in files[f"{site}/mdtest_private_helper/__init__.py"]
    assert f"{site}/flask/app.py" in files  # PyPI's packages still come
    assert b'__version__ = "1.16.0"' in files[f"{site}/six.py"], "the newest six is 1.17.0: the constraint holds"
