"""A project whose version comes from git (setuptools-scm), built from its git checkout.

The build copies the project without its .git; the project's wheel and the
version hooks must still see the checkout's history, and the wheel kept for
an unchanged source must not hide a new tag.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from microdeploy.build.release.metadata import metadata_version
from tests.integration.test_build_caches import GIT, build_with, commit, payload

pytestmark = pytest.mark.integration

PYPROJECT = """\
[build-system]
requires = ["setuptools>=64", "setuptools-scm>=8"]
build-backend = "setuptools.build_meta"

[project]
name = "tagged-api"
dynamic = ["version"]
requires-python = ">=3.11"
dependencies = ["flask==3.1.3"]

[tool.setuptools_scm]

[tool.microdeploy]
name = "tagged-api"
app = "tagged_api:app"
maintainer = "Test Maintainer <test@example.org>"
description = "A service versioned by its git tags"
"""


def pinned_version(project: Path, cache: Path) -> str:
    """The `ensure` that `microdeploy puppet-data PROJECT` gives the service, as a user runs it."""
    environ = {**os.environ, "MICRODEPLOY_CACHE_DIR": str(cache)}
    environ.pop("BUILD_NUMBER", None)
    result = subprocess.run([sys.executable, "-m", "microdeploy", "puppet-data", str(project), "--json"],
                            capture_output=True, text=True, env=environ, timeout=600)
    assert result.returncode == 0, result.stderr
    return str(json.loads(result.stdout)["services"]["tagged-api"]["ensure"])


def shipped_version(deb: Path) -> str | None:
    """The Version of the project's dist-info METADATA in the package."""
    [metadata] = [data for name, data in payload(deb).items()
                  if re.search(r"/tagged_api-[^/]+\.dist-info/METADATA$", name)]
    return metadata_version(metadata.decode())


@pytest.mark.parametrize(("dist", "suffix"), [(None, "+deb12"), ("trixie", "+deb13")])
def test_a_version_from_git_is_built_and_a_new_tag_is_not_hidden_by_the_kept_wheel(
    tmp_path: Path, dist: str | None, suffix: str
) -> None:
    """One commit past v1.2.0 builds as setuptools-scm's 1.2.1.dev1+gSHA, in the Debian version and in the shipped
    metadata alike; tagging that commit v1.3.0, files unchanged, builds 1.3.0 in both. Natively, and in trixie's
    build root, where the checkout's .git is bound at its own path."""
    project = tmp_path / "tagged-api"
    (project / "src" / "tagged_api").mkdir(parents=True)
    (project / "pyproject.toml").write_text(PYPROJECT)
    module = project / "src" / "tagged_api" / "__init__.py"
    module.write_text("from flask import Flask\n\napp = Flask(__name__)\n")
    subprocess.run([*GIT, "init", "-q"], cwd=project, check=True)
    commit(project, "first")
    subprocess.run([*GIT, "tag", "v1.2.0"], cwd=project, check=True)
    module.write_text(module.read_text() + "\n\n@app.get('/health')\ndef health() -> str:\n    return 'ok'\n")
    commit(project, "health")
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=project, check=True, capture_output=True,
                         text=True).stdout.strip()
    cache = tmp_path / "cache"

    past_tag = build_with(project, tmp_path / "past-tag", cache, dist=dist)
    shipped = shipped_version(past_tag.deb)
    assert re.fullmatch(r"1\.2\.1\.dev1\+g([0-9a-f]{7,})", shipped) and sha.startswith(shipped.split("+g")[1])
    assert past_tag.version == f"{shipped.replace('.dev', '~~dev')}-1{suffix}"
    # puppet-data pins the version the build gave (without the release's suffix), as its --help says.
    assert pinned_version(project, cache) == past_tag.version.removesuffix(suffix)

    subprocess.run([*GIT, "tag", "v1.3.0"], cwd=project, check=True)
    tagged = build_with(project, tmp_path / "tagged", cache, dist=dist)
    assert tagged.version == f"1.3.0-1{suffix}"
    assert shipped_version(tagged.deb) == "1.3.0"


def monorepo(root: Path) -> tuple[Path, Path]:
    """A repository tagged v2.0.0 with a service in services/api whose setuptools-scm looks two levels up and writes
    a version file (ignored by git); the repository and the service."""
    repository = root / "monorepo"
    project = repository / "services" / "api"
    (project / "src" / "tagged_api").mkdir(parents=True)
    (project / "pyproject.toml").write_text(PYPROJECT.replace(
        "[tool.setuptools_scm]\n",
        '[tool.setuptools_scm]\nroot = "../.."\nversion_file = "src/tagged_api/_version.py"\n'))
    (project / "src" / "tagged_api" / "__init__.py").write_text("from flask import Flask\n\napp = Flask(__name__)\n")
    (repository / ".gitignore").write_text("_version.py\n")
    (repository / "README.md").write_text("Several services\n")
    subprocess.run([*GIT, "init", "-q"], cwd=repository, check=True)
    commit(repository, "first")
    subprocess.run([*GIT, "tag", "v2.0.0"], cwd=repository, check=True)
    return repository, project


@pytest.mark.parametrize(("dist", "suffix"), [(None, "+deb12"), ("trixie", "+deb13")])
def test_a_project_below_the_top_of_its_repository_gets_the_version_setuptools_scm_gives_it_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dist: str | None, suffix: str
) -> None:
    """A service in services/api of a larger repository, whose setuptools-scm looks two levels up (root = "../..",
    the layout of a monorepo), and writes a version file: at the tag it builds 2.0.0; after a commit elsewhere in
    the repository, setuptools-scm's 2.0.1.dev1+gSHA, as it says in the checkout, in the Debian version and in the
    shipped metadata alike. The checkout stays as it was (no version file written into it). A version the caller
    gives setuptools-scm stands. Natively, and in trixie's build root."""
    repository, project = monorepo(tmp_path)
    cache = tmp_path / "cache"

    tagged = build_with(project, tmp_path / "tagged", cache, dist=dist)
    assert tagged.version == f"2.0.0-1{suffix}" and shipped_version(tagged.deb) == "2.0.0"

    (repository / "README.md").write_text("Several services, and a web UI\n")
    commit(repository, "readme")
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repository, check=True, capture_output=True,
                         text=True).stdout.strip()
    past_tag = build_with(project, tmp_path / "past-tag", cache, dist=dist)
    shipped = shipped_version(past_tag.deb)
    assert re.fullmatch(r"2\.0\.1\.dev1\+g([0-9a-f]{7,})", shipped) and sha.startswith(shipped.split("+g")[1])
    assert past_tag.version == f"{shipped.replace('.dev', '~~dev')}-1{suffix}"
    status = subprocess.run(["git", "status", "--porcelain", "--ignored"], cwd=repository, check=True,
                            capture_output=True, text=True).stdout
    assert status == "" and not (project / "src" / "tagged_api" / "_version.py").exists()

    # Past the tag, a version that is not setuptools-scm's own gets microdeploy's ~dev suffix (version.py).
    monkeypatch.setenv("SETUPTOOLS_SCM_PRETEND_VERSION", "3.0.0")
    given = build_with(project, tmp_path / "given", cache, dist=dist)
    assert shipped_version(given.deb) == "3.0.0" and given.version == f"3.0.0~dev1.g{sha[:7]}-1{suffix}"


def test_without_uv_a_project_below_the_top_of_its_repository_gets_its_version_too(tmp_path: Path) -> None:
    """dh-virtualenv's pip builds the monorepo's service (past its tag) with setuptools-scm's version, asked in a
    venv of the build requirements made for it, the checkout left as it was."""
    repository, project = monorepo(tmp_path)
    (repository / "README.md").write_text("Several services, and a web UI\n")
    commit(repository, "readme")
    built = build_with(project, tmp_path / "dist", tmp_path / "cache", environ={"MICRODEPLOY_UV": ""})
    shipped = shipped_version(built.deb)
    assert re.fullmatch(r"2\.0\.1\.dev1\+g[0-9a-f]{7,}", shipped)
    assert built.version == f"{shipped.replace('.dev', '~~dev')}-1+deb12"
    assert subprocess.run(["git", "status", "--porcelain", "--ignored"], cwd=repository, check=True,
                          capture_output=True, text=True).stdout == ""
