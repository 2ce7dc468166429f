"""pylock.toml (PEP 751) as the build installs it with uv: the layer's copy without the project, the pins as
constraints; what it cannot use that way is said, and bad files are bad input.

The two locks in tests/data/pylock were written by pip 26.3 (`pip lock .`, sub-tables) and uv 0.13.9 (`uv export
--format pylock.toml`, inline tables, the project as an editable directory) for bench/service."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from microdeploy.build.fastpath.pylock import CONSTRAINTS, LAYER_LOCK, constraint_lines, layer_lock
from microdeploy.errors import MicrodeployError

DATA = Path(__file__).resolve().parents[1] / "data" / "pylock"
PINNED = ["blinker==1.9.0", "click==8.5.1", "flask==3.1.3", "gunicorn==23.0.0", "itsdangerous==2.2.0",
          "jinja2==3.1.6", "markupsafe==3.0.4", "packaging==26.4", "six==1.17.0", "werkzeug==3.1.9"]


def project_with(tmp_path: Path, text: str) -> Path:
    source = tmp_path / "src"
    source.mkdir(parents=True)
    (source / "pylock.toml").write_text(text)
    return source


@pytest.mark.parametrize("written_by", ["pip-lock.toml", "uv-export.toml"])
def test_the_layer_lock_is_the_lock_without_the_project(tmp_path: Path, written_by: str) -> None:
    text = (DATA / written_by).read_text()
    source = project_with(tmp_path, text)
    found = layer_lock(source, tmp_path / "work", "hello-api")
    assert not isinstance(found, str)
    assert found.lock == tmp_path / "work" / LAYER_LOCK and found.constraints == tmp_path / "work" / CONSTRAINTS
    original, layer = tomllib.loads(text), tomllib.loads(found.lock.read_text())
    assert [package["name"] for package in layer["packages"]] == [
        package["name"] for package in original["packages"] if package["name"] != "hello-api"]
    assert {key: value for key, value in layer.items() if key != "packages"} == {
        key: value for key, value in original.items() if key != "packages"}
    kept = found.lock.read_text()
    assert kept.splitlines()[:2] == text.splitlines()[:2], "the rest of the file as it was, comments too"
    assert "hello-api" not in kept and 'path = "."' not in kept
    assert found.constraints.read_text().split() == PINNED


def test_the_project_is_found_by_its_name_too(tmp_path: Path) -> None:
    text = ('lock-version = "1.0"\ncreated-by = "hand"\n\n[[packages]]\nname = "Orders_API"\nversion = "2.0"\n'
            'index = "https://pypi.org/simple"\n\n[[packages]]\nname = "six"\nversion = "1.16.0"\n'
            'index = "https://pypi.org/simple"\n\n[tool.someone]\nkept = true\n')
    found = layer_lock(project_with(tmp_path, text), tmp_path / "work", "orders-api")
    assert not isinstance(found, str)
    layer = tomllib.loads(found.lock.read_text())
    assert [package["name"] for package in layer["packages"]] == ["six"]
    assert layer["tool"] == {"someone": {"kept": True}}, "a table after the packages stays"
    assert found.constraints.read_text() == "six==1.16.0\n"


@pytest.mark.parametrize(("text", "reason"), [
    ('lock-version = "1.0"\ncreated-by = "x"\n[[packages]]\nname = "shared"\ndirectory = { path = "../shared" }\n',
     "it installs from a path relative to it (../shared)"),
    ('lock-version = "1.0"\ncreated-by = "x"\npackages = [{ name = "app", directory = { path = "." } }, '
     '{ name = "six", version = "1.16.0" }]\n', "its packages are not written as [[packages]] tables"),
])
def test_a_lock_it_cannot_use_that_way_is_said_why_and_nothing_written(tmp_path: Path, text: str,
                                                                         reason: str) -> None:
    assert layer_lock(project_with(tmp_path, text), tmp_path / "work", "app") == reason
    assert not (tmp_path / "work").exists()


@pytest.mark.parametrize(("text", "words"), [
    ("lock-version = \"1.0\"\n[[packages]\n", "pylock.toml is not a TOML file"),
    ('lock-version = "2.0"\ncreated-by = "future"\n', "lock-version 2.0: the build reads lock-version 1.x"),
    ('created-by = "nobody"\n', "lock-version (none)"),
    ('lock-version = "1.0"\npackages = ["six==1.16.0"]\n', "pylock.toml's packages are not an array of tables"),
])
def test_a_broken_or_unknown_lock_is_bad_input(tmp_path: Path, text: str, words: str) -> None:
    with pytest.raises(MicrodeployError) as caught:
        layer_lock(project_with(tmp_path, text), tmp_path / "work", "app")
    assert caught.value.exit_code == 2 and words in str(caught.value)
    assert not (tmp_path / "work").exists()


def test_a_name_locked_twice_is_pinned_under_each_marker_that_a_requirements_file_can_hold() -> None:
    packages = [
        {"name": "numpy", "version": "1.26.4", "marker": "python_version < '3.12'"},
        {"name": "numpy", "version": "2.1.0", "marker": "python_version >= '3.12'"},
        {"name": "Typing_Extensions", "version": "4.12.2"},
        {"name": "tomli", "version": "2.0.1", "marker": "'dev' in dependency_groups"},
        {"name": "tomli", "version": "2.2.1", "marker": "'test' in extras"},
        {"name": "app", "directory": {"path": "."}},
    ]
    assert constraint_lines(packages) == ["numpy==1.26.4 ; python_version < '3.12'",
                                          "numpy==2.1.0 ; python_version >= '3.12'", "typing-extensions==4.12.2"]
