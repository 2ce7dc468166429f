"""The version setuptools-scm gives a project below the top of its repository: when it is asked, how, and what of
its answer the build takes (the real git and setuptools-scm: tests/integration/test_build_git_version.py)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from microdeploy.build.release import scmversion
from microdeploy.process import Result
from microdeploy.pyproject import read_pyproject

SCM_PROJECT = """\
[project]
name = "Tagged.API_svc"
dynamic = ["version"]

[tool.setuptools_scm]
root = "../.."
write_to = "src/tagged/_version.py"
version-file = "src/tagged/_version.py"
tag_regex = "^api-v(?P<version>.+)$"
"""


class Answering:
    """A runner that answers every command with one result, and records what it was asked, where."""

    def __init__(self, returncode: int = 0, stdout: str = "", stderr: str = "") -> None:
        self.answer = (returncode, stdout, stderr)
        self.calls: list[tuple[tuple[str, ...], Path | None]] = []

    def __call__(self, argv: Sequence[str], *, cwd: Path | None = None, env: Mapping[str, str] | None = None,
                 check: bool = True, input: str | None = None, timeout: float | None = None,
                 inherit_env: bool = True) -> Result:
        self.calls.append((tuple(argv), cwd))
        return Result(tuple(argv), *self.answer)


def scm_project(root: Path, text: str = SCM_PROJECT) -> Path:
    project = root / "services" / "api"
    project.mkdir(parents=True)
    (project / "pyproject.toml").write_text(text)
    return project


def test_the_variable_is_setuptools_scm_s_for_the_distribution_as_it_spells_the_name() -> None:
    """Runs of '-', '_' and '.' become one '_', upper case: the one distribution's variable, not the generic one."""
    assert scmversion.pretend_variable("tagged-api") == "SETUPTOOLS_SCM_PRETEND_VERSION_FOR_TAGGED_API"
    assert scmversion.pretend_variable("Tagged.API__svc") == "SETUPTOOLS_SCM_PRETEND_VERSION_FOR_TAGGED_API_SVC"


def test_the_checkout_is_asked_only_for_a_setuptools_scm_project_below_the_top_of_its_repository(
    tmp_path: Path,
) -> None:
    """git's top above the project: asked there. Not when the project is the top, has its own .git, states no
    [tool.setuptools_scm], is outside git, or the caller gives setuptools-scm a version."""
    project = scm_project(tmp_path)
    pyproject = read_pyproject(project)
    above = Answering(stdout=f"{tmp_path}\n")
    assert scmversion.repository_top(pyproject, {}, above) == tmp_path.resolve()
    assert above.calls == [(("git", "-C", str(project), "rev-parse", "--show-toplevel"), None)]

    assert scmversion.repository_top(pyproject, {}, Answering(stdout=f"{project}\n")) is None
    assert scmversion.repository_top(pyproject, {}, Answering(128, "", "fatal: not a git repository")) is None
    for given in ("SETUPTOOLS_SCM_PRETEND_VERSION", "SETUPTOOLS_SCM_PRETEND_VERSION_FOR_TAGGED_API_SVC"):
        asked = Answering(stdout=f"{tmp_path}\n")
        assert scmversion.repository_top(pyproject, {given: "9.9"}, asked) is None and asked.calls == []

    plain = scm_project(tmp_path / "plain", SCM_PROJECT.split("[tool.setuptools_scm]")[0])
    asked = Answering(stdout=f"{tmp_path}\n")
    assert scmversion.repository_top(read_pyproject(plain), {}, asked) is None and asked.calls == []

    (project / ".git").mkdir()
    asked = Answering(stdout=f"{tmp_path}\n")
    assert scmversion.repository_top(pyproject, {}, asked) is None and asked.calls == []


def test_setuptools_scm_is_asked_with_the_project_s_settings_in_the_checkout_and_writes_nothing(
    tmp_path: Path,
) -> None:
    """get_version gets [tool.setuptools_scm] as keyword arguments (dashes as underscores) without the settings
    that write a file, relative to the project's pyproject.toml, run by the build requirements' interpreter in the
    project's directory; its last line is the version, under setuptools-scm's variable for this distribution."""
    project = scm_project(tmp_path)
    runner = Answering(stdout="some warning on stdout\n2.0.1.dev3+g1234abc.d20261206\n")
    python = tmp_path / "env" / "bin" / "python"
    found = scmversion.pretend_version(read_pyproject(project), lambda: python, runner)
    assert found == {"SETUPTOOLS_SCM_PRETEND_VERSION_FOR_TAGGED_API_SVC": "2.0.1.dev3+g1234abc.d20261206"}
    [(argv, cwd)] = runner.calls
    assert argv[:3] == (str(python), "-c", scmversion.ASK) and cwd == project.resolve()
    assert json.loads(argv[3]) == {"root": "../..", "tag_regex": "^api-v(?P<version>.+)$",
                                   "relative_to": str((project / "pyproject.toml").resolve())}


@pytest.mark.parametrize("answer", [(1, "", "LookupError: unable to detect version"), (0, "", ""),
                                    (0, "not a version\n", ""), (0, "1.0\n<garbage>\n", "")])
def test_no_answer_from_setuptools_scm_gives_no_variable(tmp_path: Path, answer: tuple[int, str, str]) -> None:
    """A failure, no output, or a last line that is no version: nothing is set (the build then fails with
    setuptools-scm's words and the hint that says what to set)."""
    project = scm_project(tmp_path)
    assert scmversion.pretend_version(read_pyproject(project), lambda: tmp_path / "python", Answering(*answer)) == {}


def test_no_interpreter_with_the_build_requirements_asks_nothing(tmp_path: Path) -> None:
    """When the build requirements cannot be installed, setuptools-scm is not run."""
    runner = Answering(stdout="1.0\n")
    assert scmversion.pretend_version(read_pyproject(scm_project(tmp_path)), lambda: None, runner) == {}
    assert runner.calls == []
