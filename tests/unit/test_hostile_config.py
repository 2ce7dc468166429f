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


@pytest.mark.parametrize("key", ["port", "bind", "workers"])
def test_a_server_setting_the_services_own_key_owns_is_refused(tmp_path: Path, key: str) -> None:
    """`--setting server.port=9000` (or settings.server.port in the file) was overridden by the service's `port`
    in Hiera's entry and the Puppet module, without a word: it names the key that sets it. Another [server] key
    (gunicorn's timeout) stays a setting."""
    project = service(tmp_path)
    before = tree(tmp_path)
    result = invoke(["config", str(project), "--setting", f"server.{key}=9000"])
    assert_refused(result, before, tree(tmp_path), f"settings.server.{key}")
    assert f"Use the `{key}` key (--{key})" in result.stderr
    pyproject = project / "pyproject.toml"
    server_table = f"debug = false\n[tool.microdeploy.settings.server]\n{key} = 1"
    pyproject.write_text(pyproject.read_text().replace("debug = false", server_table))
    before = tree(tmp_path)
    assert_refused(invoke(["config", str(project)]), before, tree(tmp_path), f"settings.server.{key}")
    pyproject.write_text(pyproject.read_text().replace(f"{key} = 1", "timeout = 30"))
    assert invoke(["config", str(project)]).exit_code == 0


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


def test_a_project_path_that_is_a_file_is_named_as_such(tmp_path: Path) -> None:
    """`config FILE`: said the project directory was not found, though the path exists."""
    afile = tmp_path / "afile"
    afile.write_text("x\n")
    before = tree(tmp_path)
    assert_refused(invoke(["config", str(afile)]), before, tree(tmp_path), f"{afile} is not a directory")


def test_deploy_without_a_service_name_is_not_told_to_pass_a_flag_it_lacks(tmp_path: Path) -> None:
    """The hint for a service without a name named --name, which deploy does not take; it names the files."""
    result = invoke(["deploy", "--project", str(tmp_path), "--hosts", "127.0.0.1", "--version", "1.0-1"])
    assert result.exit_code == 2, result.output
    assert "the service has no name" in result.stderr
    assert "[tool.microdeploy]" in result.stderr and "or pass --name" not in result.stderr
