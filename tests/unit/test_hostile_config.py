"""Hostile values for `microdeploy config`: every service flag and every config key is refused whole."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.hostile import (
    SERVICE_FLAGS,
    SETTING_OK,
    assert_refused,
    cases,
    ids,
    invoke,
    service,
    toml_string,
    tree,
    values,
    with_key,
)

FLAGS = SERVICE_FLAGS
KEYS = {key.removeprefix("--").replace("-", "_"): spec for key, spec in FLAGS.items() if key != "--setting"}
CASES = cases(FLAGS)
KEY_CASES = cases(KEYS)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One scaffolded service for the module (the flags never change it)."""
    return service(tmp_path_factory.mktemp("config"))


@pytest.mark.parametrize(("flag", "kind", "value"), CASES, ids=ids(CASES))
def test_every_flag_refuses_hostile_values(project: Path, flag: str, kind: str, value: str) -> None:
    """A flag with a control character, a substitution or an overlong value: exit 2, one message, nothing written."""
    before = tree(project.parent)
    result = invoke(["config", str(project), flag, value])
    assert_refused(result, before, tree(project.parent))


@pytest.mark.parametrize(("key", "kind", "value"), KEY_CASES, ids=ids(KEY_CASES))
def test_every_config_key_refuses_hostile_values(tmp_path: Path, key: str, kind: str, value: str) -> None:
    """The same values in [tool.microdeploy] are refused naming the key and the file."""
    project = service(tmp_path)
    # A string where a number belongs (port, workers) is refused too; relations go in a list.
    with_key(project, key, f"[{toml_string(value)}]" if key.endswith("depends") else toml_string(value))
    before = tree(tmp_path)
    result = invoke(["config", str(project)])
    assert_refused(result, before, tree(tmp_path), key)
    assert "pyproject.toml" in result.stderr


@pytest.mark.parametrize(("kind", "value"), values("hello", SETTING_OK))
def test_a_setting_in_the_config_file_refuses_hostile_values(tmp_path: Path, kind: str, value: str) -> None:
    """A [tool.microdeploy.settings] value with a control character or over 4096 characters is refused."""
    project = service(tmp_path)
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace("debug = false", f"debug = {toml_string(value)}"))
    before = tree(tmp_path)
    assert_refused(invoke(["config", str(project)]), before, tree(tmp_path), "settings.app.debug")


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "+nan"])
def test_a_setting_that_is_not_a_finite_number_is_refused(tmp_path: Path, value: str) -> None:
    """TOML's nan and inf: `config` printed NaN and Infinity, which no JSON reader takes, and Hiera got .nan."""
    project = service(tmp_path)
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace("debug = false", f"debug = {value}"))
    before = tree(tmp_path)
    result = invoke(["config", str(project)])
    assert_refused(result, before, tree(tmp_path), "settings.app.debug")
    assert "Use a finite number" in result.stderr


def test_a_project_version_that_is_not_a_string_is_refused(tmp_path: Path) -> None:
    """`[project] version = 3` was taken for no version, and the error said there was none to find."""
    project = service(tmp_path)
    pyproject = project / "pyproject.toml"
    text = pyproject.read_text()
    assert 'version = "0.1.0"' in text
    pyproject.write_text(text.replace('version = "0.1.0"', "version = 3", 1))
    before = tree(tmp_path)
    result = invoke(["config", str(project)])
    assert_refused(result, before, tree(tmp_path), "invalid version 3 (from [project].version): not a string")
