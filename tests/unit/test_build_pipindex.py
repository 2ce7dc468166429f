"""pip's index settings and constraints given to uv (pipindex.py): pip's files and variables in pip's order, uv's own
settings first."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from microdeploy.build.fastpath.pipindex import (
    local_sources,
    pip_config_files,
    pip_settings,
    pip_variables,
    shown,
)


def environ_for(tmp_path: Path, **variables: str) -> dict[str, str]:
    """An environment whose pip files all lie under `tmp_path` (home, XDG dirs), nothing from this machine."""
    (tmp_path / "home").mkdir(exist_ok=True)
    return {"HOME": str(tmp_path / "home"), "XDG_CONFIG_DIRS": str(tmp_path / "xdg"), **variables}


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_files_are_read_in_pips_order_the_later_key_by_key_and_variables_last(tmp_path: Path) -> None:
    environ = environ_for(tmp_path)
    write(tmp_path / "xdg" / "pip" / "pip.conf",
          "[global]\nindex-url = https://system.example/simple\ntrusted-host = system.example\n")
    write(tmp_path / "home" / ".pip" / "pip.conf", "[global]\nextra-index-url = https://legacy.example/simple\n")
    write(tmp_path / "home" / ".config" / "pip" / "pip.conf",
          "[global]\nextra-index-url = https://user.example/simple\n"
          "[install]\nextra_index_url = https://a.example/simple\n  https://b.example/simple\n"
          "[download]\nindex-url = https://not-for-install.example/simple\n")
    assert pip_settings(environ) == {
        "index-url": "https://system.example/simple",
        "trusted-host": "system.example",
        "extra-index-url": "https://a.example/simple\nhttps://b.example/simple",
    }
    environ["PIP_INDEX_URL"] = "https://variable.example/simple"
    assert pip_settings(environ)["index-url"] == "https://variable.example/simple"


def test_pip_config_file_is_read_last_instead_of_the_users_and_dev_null_reads_none(tmp_path: Path) -> None:
    chosen = write(tmp_path / "ci.conf", "[global]\nindex-url = https://ci.example/simple\n")
    write(tmp_path / "home" / ".config" / "pip" / "pip.conf",
          "[global]\nindex-url = https://user.example/simple\nfind-links = /srv/user-wheels\n")
    write(tmp_path / "xdg" / "pip" / "pip.conf", "[global]\ntrusted-host = system.example\n")
    assert pip_config_files(environ_for(tmp_path, PIP_CONFIG_FILE=str(chosen)))[-1] == chosen
    assert pip_settings(environ_for(tmp_path, PIP_CONFIG_FILE=str(chosen))) == {
        "index-url": "https://ci.example/simple", "trusted-host": "system.example"}
    assert pip_settings(environ_for(tmp_path, PIP_CONFIG_FILE=str(tmp_path / "missing.conf")))["find-links"] == (
        "/srv/user-wheels")
    assert pip_settings(environ_for(tmp_path, PIP_CONFIG_FILE=os.devnull)) == {}
    assert pip_settings(environ_for(tmp_path, PIP_CONFIG_FILE=os.devnull, PIP_FIND_LINKS="/srv")) == {
        "find-links": "/srv"}


def test_a_broken_pip_file_is_passed_over(tmp_path: Path) -> None:
    write(tmp_path / "xdg" / "pip" / "pip.conf", "index-url = no section\n")
    write(tmp_path / "home" / ".config" / "pip" / "pip.conf", "[global]\nindex-url = https://user.example/simple\n")
    assert pip_settings(environ_for(tmp_path)) == {"index-url": "https://user.example/simple"}


def test_uv_gets_pips_indexes_with_pips_choice_among_them(tmp_path: Path) -> None:
    links = tmp_path / "wheels"
    links.mkdir()
    write(tmp_path / "home" / ".config" / "pip" / "pip.conf",
          "[global]\nindex-url = https://private.example/simple\n"
          "extra-index-url = https://one.example/simple https://two.example/simple\n"
          f"find-links = {links} {tmp_path / 'gone'} file://{links} https://links.example/\n"
          "trusted-host = private.example one.example\n")
    assert pip_variables(environ_for(tmp_path), {}, {}) == {
        "UV_DEFAULT_INDEX": "https://private.example/simple",
        "UV_INDEX": "https://one.example/simple https://two.example/simple",
        "UV_FIND_LINKS": f"{links},file://{links},https://links.example/",  # the missing directory left out
        "UV_INSECURE_HOST": "private.example one.example",
        "UV_INDEX_STRATEGY": "unsafe-best-match",
    }


def test_a_relative_find_links_directory_is_the_callers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "wheels").mkdir()
    monkeypatch.chdir(tmp_path)
    assert pip_variables(environ_for(tmp_path, PIP_CONFIG_FILE=os.devnull, PIP_FIND_LINKS="wheels gone"), {}, {}) == {
        "UV_FIND_LINKS": str(tmp_path / "wheels")}


def test_the_users_strategy_stands_and_an_index_url_alone_needs_none(tmp_path: Path) -> None:
    write(tmp_path / "home" / ".config" / "pip" / "pip.conf", "[global]\nextra-index-url = https://one.example/s\n")
    assert "UV_INDEX_STRATEGY" not in pip_variables(environ_for(tmp_path, UV_INDEX_STRATEGY="first-index"), {}, {})
    assert pip_variables(environ_for(tmp_path, PIP_CONFIG_FILE=os.devnull,
                                       PIP_INDEX_URL="https://private.example/simple"), {}, {}) == {
        "UV_DEFAULT_INDEX": "https://private.example/simple"}


@pytest.mark.parametrize(("variables", "uv_configs", "project_uv"), [
    ({"UV_INDEX": "https://uv.example/simple"}, {}, {}),
    ({"UV_DEFAULT_INDEX": "https://uv.example/simple"}, {}, {}),
    ({"UV_FIND_LINKS": "/srv/wheels"}, {}, {}),
    ({}, {"user": '[[index]]\nurl = "https://uv.example/simple"\n'}, {}),
    ({}, {"system": '[pip]\nindex-url = "https://uv.example/simple"\n'}, {}),
    ({}, {"project": "not = [toml\n"}, {}),
    ({}, {}, {"index": [{"url": "https://uv.example/simple"}]}),
    ({}, {}, {"pip": {"extra-index-url": ["https://uv.example/simple"]}}),
])
def test_uvs_own_index_settings_stand_alone(tmp_path: Path, variables: dict[str, str], uv_configs: dict[str, str],
                                           project_uv: dict[str, object]) -> None:
    write(tmp_path / "home" / ".config" / "pip" / "pip.conf", "[global]\nindex-url = https://pip.example/simple\n")
    assert pip_variables(environ_for(tmp_path, **variables), uv_configs, project_uv) == {}


def test_uv_settings_of_other_things_leave_pips_indexes_in(tmp_path: Path) -> None:
    write(tmp_path / "home" / ".config" / "pip" / "pip.conf", "[global]\nindex-url = https://pip.example/simple\n")
    assert pip_variables(environ_for(tmp_path), {"user": "native-tls = true\n"}, {"dev-dependencies": []}) == {
        "UV_DEFAULT_INDEX": "https://pip.example/simple"}


def test_pips_constraint_files_go_to_uv_unless_uv_has_constraints_of_its_own(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """pip's `constraint` (files, then PIP_CONSTRAINT) becomes UV_CONSTRAINT, a relative file the caller's; not when
    UV_CONSTRAINT or constraint-dependencies say what uv keeps to, nor when a uv.toml cannot be read. uv's own index
    settings leave pip's constraints in."""
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "xdg" / "pip" / "pip.conf", "[global]\nconstraint = /etc/caps.txt\n")
    write(tmp_path / "home" / ".config" / "pip" / "pip.conf",
          "[install]\nconstraint = team.txt /srv/more.txt\nindex-url = https://pip.example/simple\n")
    team = str(tmp_path / "team.txt")
    assert pip_variables(environ_for(tmp_path), {}, {}) == {
        "UV_DEFAULT_INDEX": "https://pip.example/simple", "UV_CONSTRAINT": f"{team} /srv/more.txt"}
    assert pip_variables(environ_for(tmp_path, PIP_CONSTRAINT="/ci/pins.txt"), {}, {})["UV_CONSTRAINT"] == (
        "/ci/pins.txt")
    assert pip_variables(environ_for(tmp_path, UV_INDEX="https://uv.example/simple"), {}, {}) == {
        "UV_CONSTRAINT": f"{team} /srv/more.txt"}
    for variables, uv_configs, project_uv in [
        ({"UV_CONSTRAINT": "/uv/own.txt"}, {}, {}),
        ({}, {"user": 'constraint-dependencies = ["flask<4"]\n'}, {}),
        ({}, {}, {"constraint-dependencies": ["flask<4"]}),
        ({}, {"project": "not = [toml\n"}, {}),
    ]:
        assert "UV_CONSTRAINT" not in pip_variables(environ_for(tmp_path, **variables), uv_configs, project_uv)


def test_the_log_line_hides_credentials_in_urls() -> None:
    line = shown({"UV_DEFAULT_INDEX": "https://ci:s3cret@private.example/simple",
                  "UV_INDEX": "https://TOKEN123@one.example/simple https://open.example/simple",
                  "UV_FIND_LINKS": "/srv/wheels"})
    assert "s3cret" not in line and "TOKEN123" not in line
    assert line == ("UV_DEFAULT_INDEX=https://***@private.example/simple "
                    "UV_INDEX=https://***@one.example/simple https://open.example/simple UV_FIND_LINKS=/srv/wheels")


def test_local_sources_are_the_find_links_directories_the_directory_above_a_file_index_and_constraints_directories(
        tmp_path: Path) -> None:
    for directory in ("wheels", "more", "mirror/simple", "named/simple", "caps", "overrides"):
        (tmp_path / directory).mkdir(parents=True)
    environ = {
        "UV_FIND_LINKS": f"{tmp_path / 'wheels'},file://{tmp_path / 'more'},https://links.example/,{tmp_path / 'gone'}",
        "UV_INDEX": f"file://{tmp_path / 'mirror/simple'} internal=file://{tmp_path / 'named/simple'} "
                    "https://remote.example/simple",
        "UV_DEFAULT_INDEX": f"file://{tmp_path / 'mirror/simple'}",
        "UV_CONSTRAINT": f"{tmp_path / 'caps' / 'a.txt'} {tmp_path / 'caps' / 'b.txt'} relative.txt",
        "UV_OVERRIDE": str(tmp_path / "overrides" / "o.txt"),
    }
    assert local_sources(environ) == [tmp_path / "wheels", tmp_path / "more", tmp_path / "caps",
                                      tmp_path / "overrides", tmp_path / "mirror", tmp_path / "named"]
    assert local_sources({"UV_INDEX": "https://remote.example/simple"}) == []
