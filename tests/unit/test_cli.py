"""The command line: help, version, exit codes and nothing left behind on bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from microdeploy import __version__
from microdeploy.cli import main


def invoke(*args: str) -> click.testing.Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_version() -> None:
    """--version prints the package version."""
    result = invoke("--version")
    assert result.exit_code == 0
    assert __version__ in result.output


def test_every_command_has_help() -> None:
    """Each command answers --help with its usage."""
    for name in main.list_commands(click.Context(main)):
        result = invoke(name, "--help")
        assert result.exit_code == 0, name
        assert f"Usage: main {name}" in result.output


def test_new_creates_the_service(tmp_path: Path) -> None:
    """`new NAME --dir D --no-input` writes the service and says what to do next."""
    result = invoke("new", "orders-api", "--dir", str(tmp_path / "svc"), "--no-input", "--port", "8005")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "svc/src/orders_api/application.py").is_file()
    assert "port = 8005" in (tmp_path / "svc/pyproject.toml").read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["Bad_Name"], "invalid name 'Bad_Name' (from NAME)"),
        (["../x"], "invalid name '../x' (from NAME)"),
        (["orders-api", "--port", "70000"], "invalid port 70000 (from --port)"),
        # src/flask/ would be imported instead of Flask (its build then failed: "flask==0.1.0 has an incompatible
        # dependency on itself"); src/json/ would never be imported; dpkg is installed here (build refuses it).
        (["flask"], "invalid name 'flask': its Python package, flask, would have the name of a module of the "
                    "service's own dependencies"),
        (["flask-sqlalchemy"], "its Python package, flask_sqlalchemy, would have the name of a module"),
        (["json"], "invalid name 'json': its Python package, json, would have the name of a standard library "
                   "module"),
        (["dpkg"], "invalid name 'dpkg': dpkg is a package installed on this machine"),
    ],
)
def test_new_bad_input_exits_2_and_creates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str
) -> None:
    """Bad names and ports exit 2 with the problem named, and nothing is written."""
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["new", *args, "--no-input"])
    assert result.exit_code == 2
    assert message in result.stderr
    assert list(tmp_path.iterdir()) == []


def path_parameters(command: click.Command, words: tuple[str, ...] = ()) -> list[tuple[list[str], str]]:
    """Every (command words, parameter) of the CLI whose value is a path."""
    if isinstance(command, click.Group):
        return [found for name, sub in sorted(command.commands.items())
                for found in path_parameters(sub, (*words, name))]
    return [([*words, *([param.opts[0]] if isinstance(param, click.Option) else [])], param.name or "")
            for param in command.params if isinstance(param.type, click.Path)]


@pytest.mark.parametrize(("words", "param"), path_parameters(main), ids=lambda value: "-".join(value)
                         if isinstance(value, list) else value)
def test_an_empty_path_exits_2_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, words: list[str], param: str
) -> None:
    """`--out "$OUT"` with OUT unset: "" is not taken for the current directory (a build, a repository written
    there), whichever command and path it is."""
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, [*words, ""])
    assert result.exit_code == 2, result.output
    assert "'' is empty: give a path" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_the_cli_has_path_parameters_of_each_kind() -> None:
    """The test above covers options and arguments of commands and of groups' commands."""
    found = path_parameters(main)
    assert (["build", "--out"], "out") in found
    assert (["build"], "project") in found
    assert (["repo", "serve"], "repo_dir") in found
    assert (["publish", "--repo"], "repo_dir") in found


def test_new_into_non_empty_directory_exits_2(tmp_path: Path) -> None:
    """An existing non-empty directory is refused and left alone."""
    (tmp_path / "svc").mkdir()
    (tmp_path / "svc/keep").write_text("x")
    result = CliRunner().invoke(main, ["new", "orders-api", "--dir", str(tmp_path / "svc"), "--no-input"])
    assert result.exit_code == 2
    assert "already exists and is not empty" in result.stderr
    assert [p.name for p in (tmp_path / "svc").iterdir()] == ["keep"]


def test_invalid_app_in_config_exits_2(tmp_path: Path) -> None:
    """An invalid `app` in [tool.microdeploy] is bad input with the key named."""
    (tmp_path / "pyproject.toml").write_text('[tool.microdeploy]\nname = "svc1"\napp = "svc1"\n')
    result = CliRunner().invoke(main, ["config", str(tmp_path)])
    assert result.exit_code == 2
    assert "invalid app 'svc1' (from pyproject.toml key 'app')" in result.stderr
    assert "hint: Use 'module:name'" in result.stderr
    assert "Traceback" not in result.stderr


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    """--debug lets the error propagate with its traceback."""
    result = CliRunner().invoke(main, ["--debug", "config", str(tmp_path / "missing")])
    assert result.exit_code != 0
    assert result.exception is not None


def test_config_prints_json_with_overrides(tmp_path: Path) -> None:
    """`config` shows the validated model; flags override the file (a --setting value is the text typed)."""
    (tmp_path / "pyproject.toml").write_text('[tool.microdeploy]\nname = "svc1"\nport = 8100\n')
    result = invoke("config", str(tmp_path), "--port", "8200", "--setting", "app.debug=true")
    data = json.loads(result.output)
    assert (data["name"], data["port"], data["settings"]) == ("svc1", 8200, {"app": {"debug": True}})


def test_config_refuses_an_extra_the_project_does_not_declare(tmp_path: Path) -> None:
    """`config` printed `extras = ["nope"]` as validated; build refused it. Both refuse it now, naming the extras
    the project has."""
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "svc1"\nversion = "1.0"\n'
                                             '[project.optional-dependencies]\npostgres = ["psycopg"]\n')
    result = CliRunner().invoke(main, ["config", str(tmp_path), "--extra", "nope"])
    assert result.exit_code == 2, result.output
    assert "the project has no extra nope" in result.stderr and "has postgres" in result.stderr
    assert json.loads(invoke("config", str(tmp_path), "--extra", "postgres").output)["extras"] == ["postgres"]


def test_a_reader_that_stops_early_ends_the_command_quietly(tmp_path: Path) -> None:
    """`microdeploy cache info | head -1` where head has gone: no "error: Broken pipe" and no hint about free
    space, the status of a process that SIGPIPE ended."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    env = {**os.environ, "MICRODEPLOY_CACHE_DIR": str(tmp_path / "cache"),
           "MICRODEPLOY_ROOTS_DIR": str(tmp_path / "roots")}
    try:
        done = subprocess.run([sys.executable, "-m", "microdeploy", "cache", "info"], stdout=write_end,
                              stderr=subprocess.PIPE, text=True, env=env, timeout=60, check=False)
    finally:
        os.close(write_end)
    assert (done.returncode, done.stderr) == (141, "")


def test_new_with_standard_input_closed_takes_the_defaults(tmp_path: Path) -> None:
    """`microdeploy new NAME <&-` (a CI runner without stdin): Python's sys.stdin is None, which is no terminal to
    prompt at; the defaults are taken, as with --no-input (it was an AttributeError's traceback)."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    done = subprocess.run(["sh", "-c", 'exec <&-; exec "$0" -m microdeploy new closed-api', sys.executable],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert 'description = "Flask web service"' in (tmp_path / "closed-api" / "pyproject.toml").read_text()


@pytest.mark.parametrize("words", [["jenkinsfile"], ["puppet-data", "--version", "1.0-1"]])
def test_an_empty_output_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, words: list[str]) -> None:
    """`-o "$OUT"` with OUT unset: refused (exit 2) as an empty path is, not taken for the current directory."""
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, [*words, "-o", ""])
    assert result.exit_code == 2, result.output
    assert "'' is empty: give a file, or - for standard output" in result.stderr
    assert list(tmp_path.iterdir()) == []
