"""A project whose version comes from git (setuptools-scm), built from its git checkout.

The build copies the project without its .git; the project's wheel and the
version hooks must still see the checkout's history, and the wheel kept for
an unchanged source must not hide a new tag.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from microdeploy.build.release.metadata import metadata_version
from microdeploy.errors import MicrodeployError
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

    subprocess.run([*GIT, "tag", "v1.3.0"], cwd=project, check=True)
    tagged = build_with(project, tmp_path / "tagged", cache, dist=dist)
    assert tagged.version == f"1.3.0-1{suffix}"
    assert shipped_version(tagged.deb) == "1.3.0"


def test_a_project_below_the_top_of_its_repository_says_what_to_set_and_builds_with_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A service in services/api of a larger repository, whose setuptools-scm looks two levels up (root = "../..",
    the layout of a monorepo): the build's copy reaches no git there, and the build fails with setuptools-scm's line
    and a hint naming SETUPTOOLS_SCM_PRETEND_VERSION, nothing in dist/. With that variable set it builds that
    version."""
    repository = tmp_path / "monorepo"
    project = repository / "services" / "api"
    (project / "src" / "tagged_api").mkdir(parents=True)
    (project / "pyproject.toml").write_text(PYPROJECT.replace("[tool.setuptools_scm]\n",
                                                              '[tool.setuptools_scm]\nroot = "../.."\n'))
    (project / "src" / "tagged_api" / "__init__.py").write_text("from flask import Flask\n\napp = Flask(__name__)\n")
    (repository / "README.md").write_text("Several services\n")
    subprocess.run([*GIT, "init", "-q"], cwd=repository, check=True)
    commit(repository, "first")
    subprocess.run([*GIT, "tag", "v2.0.0"], cwd=repository, check=True)

    with pytest.raises(MicrodeployError) as info:
        build_with(project, tmp_path / "dist", tmp_path / "cache")
    assert "setuptools-scm was unable to detect version" in info.value.message
    assert info.value.hint is not None and "SETUPTOOLS_SCM_PRETEND_VERSION" in info.value.hint
    assert not (tmp_path / "dist").exists() or not list((tmp_path / "dist").iterdir())

    monkeypatch.setenv("SETUPTOOLS_SCM_PRETEND_VERSION", "2.0.0")
    built = build_with(project, tmp_path / "dist", tmp_path / "cache")
    assert built.version == "2.0.0-1+deb12" and shipped_version(built.deb) == "2.0.0"
