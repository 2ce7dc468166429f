"""The service model: defaults, sources, overrides and validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from microdeploy.config import (
    ServiceConfig,
    load_config,
    parse_setting_assignments,
)
from microdeploy.errors import EXIT_BAD_INPUT, MicrodeployError
from microdeploy.summary import project_summary

DEFAULT_PROJECT = 'name = "Orders_API"\nversion = "1.2.0"\n'


def write_pyproject(project: Path, tool: str = "", project_table: str = DEFAULT_PROJECT) -> Path:
    project.mkdir(parents=True, exist_ok=True)
    (project / "pyproject.toml").write_text(f"[project]\n{project_table}\n[tool.microdeploy]\n{tool}\n")
    return project


def bad(project: Path, overrides: dict[str, object] | None = None) -> MicrodeployError:
    with pytest.raises(MicrodeployError) as info:
        load_config(project, overrides)
    assert info.value.exit_code == EXIT_BAD_INPUT
    return info.value


def test_defaults_from_project_metadata(tmp_path: Path) -> None:
    """A project that never heard of microdeploy gets a name, app and defaults from [project]."""
    config = load_config(write_pyproject(tmp_path / "p"))
    assert config == ServiceConfig(name="orders-api", app="orders_api.application:create_app()", version="1.2.0")
    assert (config.port, config.workers, config.health_path, config.python) == (8000, 2, None, "python3")


def test_tool_table_overrides_project_and_flags_override_tool_table(tmp_path: Path) -> None:
    """Later sources win: [project], then [tool.microdeploy], then flags."""
    project = write_pyproject(tmp_path / "p", 'name = "orders"\nport = 8001\nworkers = 4\n')
    config = load_config(project, {"port": 9000, "app": "orders.wsgi:app", "name": None})
    assert (config.name, config.port, config.workers, config.app) == ("orders", 9000, 4, "orders.wsgi:app")


def test_microdeploy_toml_beside_setup_py(tmp_path: Path) -> None:
    """A setup.py project declares itself in microdeploy.toml."""
    tmp_path.joinpath("microdeploy.toml").write_text('name = "legacy-app"\napp = "legacy:app"\n')
    config = load_config(tmp_path)
    assert (config.name, config.app) == ("legacy-app", "legacy:app")


def test_both_files_are_refused(tmp_path: Path) -> None:
    """Configuration in two places is ambiguous and refused."""
    write_pyproject(tmp_path, 'name = "a1"\n')
    tmp_path.joinpath("microdeploy.toml").write_text('name = "b1"\n')
    assert "both" in bad(tmp_path).message


def test_settings_and_relations_are_kept(tmp_path: Path) -> None:
    """Settings tables and Debian relations survive validation."""
    project = write_pyproject(
        tmp_path / "p",
        'depends = ["libpq5", "nginx (>= 1.22) | apache2"]\n[tool.microdeploy.settings.app]\ndebug = false\n',
    )
    config = load_config(project)
    assert config.depends == ("libpq5", "nginx (>= 1.22) | apache2")
    assert config.settings == {"app": {"debug": False}}


def test_extras_are_normalised_names_each_once(tmp_path: Path) -> None:
    """extras in the file, or --extra, are the project's extras as PEP 685 normalises them; one name is a list."""
    project = write_pyproject(tmp_path / "p", 'extras = ["Postgres", "LDAP_Auth", "postgres"]\n')
    assert load_config(project).extras == ("postgres", "ldap-auth")
    assert load_config(project, {"extras": ("redis",)}).extras == ("redis",)
    assert load_config(write_pyproject(tmp_path / "q", 'extras = "redis"\n')).extras == ("redis",)
    assert load_config(write_pyproject(tmp_path / "r")).extras == ()
    error = bad(write_pyproject(tmp_path / "s", 'extras = ["-x"]\n'))
    assert "invalid extras '-x' (from " in error.message and "pyproject.toml key 'extras'" in error.message
    assert "invalid extras 7 (from --extra)" in bad(write_pyproject(tmp_path / "t"), {"extras": 7}).message


@pytest.mark.parametrize(
    ("overrides", "key", "value"),
    [
        ({"name": "Bad_Name"}, "name", "Bad_Name"),
        ({"name": "../x"}, "name", "../x"),
        ({"name": "9lives"}, "name", "9lives"),
        ({"name": "a" * 33}, "name", "a" * 33),
        ({"app": "orders api"}, "app", "orders api"),
        ({"app": "orders:"}, "app", "orders:"),
        ({"port": 70000}, "port", "70000"),
        ({"port": 0}, "port", "0"),
        ({"workers": 0}, "workers", "0"),
        ({"compression_level": 10}, "compression_level", "10"),
        ({"compression_level": -1}, "compression_level", "-1"),
        ({"compression_level": 0}, "compression_level", "0"),
        ({"compression": "zstd"}, "compression", "zstd"),
        ({"health_path": "health"}, "health_path", "health"),
        ({"maintainer": "nobody"}, "maintainer", "nobody"),
        ({"python": "python2"}, "python", "python2"),
        ({"depends": ("libpq5; rm -rf /",)}, "depends", "libpq5; rm -rf /"),
        ({"version": "not a version"}, "version", "not a version"),
        ({"dist": ("sid",)}, "dist", "sid"),
        ({"dist": ("bookworm", "Trixie")}, "dist", "Trixie"),
        ({"write_execute_memory": "yes"}, "write_execute_memory", "yes"),
    ],
)
def test_invalid_values_name_key_value_and_origin(
    tmp_path: Path, overrides: dict[str, object], key: str, value: str
) -> None:
    """Each bad value is refused with exit 2, naming the key, the value and the flag it came from."""
    error = bad(write_pyproject(tmp_path / "p"), overrides)
    assert f"invalid {key} " in error.message
    assert value in error.message
    assert f"--{key.replace('_', '-')}" in error.message
    assert error.hint and error.hint.startswith("Use ")


def test_write_execute_memory_is_a_boolean_of_the_file_that_the_build_flag_sets_and_leaves(tmp_path: Path) -> None:
    """true or false in [tool.microdeploy] (a string is refused, naming the file); the build's flag sets it, and
    without the flag (None) the file's value stands."""
    assert load_config(write_pyproject(tmp_path / "a", "write_execute_memory = true\n")).write_execute_memory
    assert not load_config(write_pyproject(tmp_path / "b")).write_execute_memory
    assert load_config(write_pyproject(tmp_path / "c"), {"write_execute_memory": True}).write_execute_memory
    assert load_config(write_pyproject(tmp_path / "d", "write_execute_memory = true\n"),
                       {"write_execute_memory": None}).write_execute_memory
    error = bad(write_pyproject(tmp_path / "e", 'write_execute_memory = "true"\n'))
    assert "pyproject.toml key 'write_execute_memory'" in error.message and error.hint == "Use true or false"


def test_invalid_app_in_file_names_the_file(tmp_path: Path) -> None:
    """A bad value in pyproject.toml names the file and key."""
    error = bad(write_pyproject(tmp_path / "p", 'app = "no-colon"\n'))
    assert "pyproject.toml key 'app'" in error.message


def test_unknown_key_is_refused(tmp_path: Path) -> None:
    """A misspelt key is an error, not silently ignored."""
    error = bad(write_pyproject(tmp_path / "p", "prot = 8000\n"))
    assert "prot" in error.message and error.hint and "port" in error.hint


def test_settings_with_nested_or_multiline_values_are_refused(tmp_path: Path) -> None:
    """Settings must be scalars on one line (they become INI and YAML)."""
    error = bad(write_pyproject(tmp_path / "p", '[tool.microdeploy.settings.app]\nx = "a\\nb"\n'))
    assert "settings.app.x" in error.message


def test_missing_name_is_explained(tmp_path: Path) -> None:
    """A project with no name anywhere asks for --name."""
    tmp_path.joinpath("setup.py").write_text("")
    assert "--name" in (bad(tmp_path).hint or "")


def test_missing_project_directory(tmp_path: Path) -> None:
    """A project path that does not exist is bad input."""
    assert "not found" in bad(tmp_path / "nope").message


def test_broken_toml_is_bad_input(tmp_path: Path) -> None:
    """A TOML syntax error is reported with the file."""
    tmp_path.joinpath("pyproject.toml").write_text("[project\n")
    assert "cannot parse" in bad(tmp_path).message


# What TOML made of a --setting value, which config.ini then held instead of the text typed.
AS_TOML_READ = {
    "1.10": "1.1",
    "0o755": "493",
    "0x1F90": "8080",
    "1_000": "1000",
    "inf": "a float",
    "nan": "a float",
    "1979-05-27": "a date, refused",
    "07:32:00": "a time, refused",
    '"quoted"': "quoted",
    "'single'": "single",
    '"a\\tb"': "a, a tab, b (then refused)",
    "[1, 2]": "a list, refused",
    "007": "7",
    "+5": "5",
    "99999999999999999999": "an integer Puppet cannot hold",
    "True": "True, a boolean",
    "  1.10  ": "1.1",
}


@pytest.mark.parametrize("typed", AS_TOML_READ, ids=repr)
def test_a_setting_value_is_the_text_as_typed(typed: str) -> None:
    """A --setting value is the text typed, only the spaces around it trimmed: nothing parses it (TOML made 1.10
    1.1, 0o755 493, 1979-05-27 a date, and dropped the quotes of "quoted"), so config.ini gets what was typed."""
    assert parse_setting_assignments((f"app.x={typed}",)) == {"app": {"x": typed.strip(" ")}}


@pytest.mark.parametrize(("typed", "value"), [("true", True), ("false", False), ("0", 0), ("8080", 8080),
                                               ("-12", -12), (" 4 ", 4)])
def test_a_setting_value_whose_text_says_its_type_is_typed(typed: str, value: bool | int) -> None:
    """`true`, `false` and plain decimal integers are typed, as in pyproject (Hiera's `debug: false`): each is
    written back as the text typed, so config.ini gets the same line."""
    parsed = parse_setting_assignments((f"app.x={typed}",))["app"]["x"]
    assert parsed == value and type(parsed) is type(value)
    assert (str(parsed).lower() if isinstance(parsed, bool) else str(parsed)) == typed.strip()


def test_a_setting_as_typed_passes_the_config_model_as_text(tmp_path: Path) -> None:
    """--setting values go through load_config as the strings typed (a date or a list was refused as not a
    scalar); the control characters and lengths it refuses are checked on that text (tests/hostile.py)."""
    project = write_pyproject(tmp_path / "p")
    flags = ("app.day=1979-05-27", "app.version=1.10", "app.list=[1, 2]", "app.debug=false")
    config = load_config(project, {"settings": parse_setting_assignments(flags)})
    assert config.settings == {"app": {"day": "1979-05-27", "version": "1.10", "list": "[1, 2]", "debug": False}}


def test_setting_assignment_without_section_is_refused() -> None:
    """A --setting without SECTION.KEY=VALUE shape is bad input."""
    with pytest.raises(MicrodeployError) as info:
        parse_setting_assignments(("debug",))
    assert info.value.exit_code == EXIT_BAD_INPUT


def test_dist_is_a_release_or_a_list_of_them_each_once(tmp_path: Path) -> None:
    """dist = "trixie" and dist = ["trixie", "bookworm", "trixie"] give the releases in order, each once."""
    assert load_config(write_pyproject(tmp_path / "a", 'dist = "trixie"\n')).dist == ("trixie",)
    listed = write_pyproject(tmp_path / "b", 'dist = ["trixie", "bookworm", "trixie"]\n')
    assert load_config(listed).dist == ("trixie", "bookworm")
    assert load_config(write_pyproject(tmp_path / "c")).dist == ()


def test_empty_or_non_string_dist_in_the_file_is_refused(tmp_path: Path) -> None:
    """dist = [] and dist = 13 are refused with the key, the file and the known releases."""
    for index, value in enumerate(("[]", "13")):
        error = bad(write_pyproject(tmp_path / f"p{index}", f"dist = {value}\n"))
        assert "invalid dist" in error.message and "pyproject.toml key 'dist'" in error.message
        assert error.hint is not None and "bookworm, trixie" in error.hint


def test_a_setup_py_project_takes_the_name_it_states_elsewhere(tmp_path: Path) -> None:
    """Trac's sdist (setup.py, no [project]) names itself in PKG-INFO, else a checkout in setup.cfg: normalised, it
    is the service's name; the flag and [tool.microdeploy] come first; without either, no name is exit 2."""
    project = tmp_path / "Trac-1.6"
    project.mkdir()
    (project / "setup.py").write_text("from setuptools import setup\nsetup()\n")
    (project / "setup.cfg").write_text("[metadata]\nname = Trac_From.Cfg\n")
    assert load_config(project, {"app": "trac.web.main:dispatch_request"}).name == "trac-from-cfg"
    (project / "PKG-INFO").write_text("Metadata-Version: 2.1\nName: Trac\nVersion: 1.6\n")
    assert load_config(project, {"app": "trac.web.main:dispatch_request"}).name == "trac"
    assert load_config(project, {"name": "wiki", "app": "trac.web.main:dispatch_request"}).name == "wiki"
    (project / "PKG-INFO").unlink()
    (project / "setup.cfg").unlink()
    assert "the service has no name" in bad(project, {"app": "trac.web.main:dispatch_request"}).message


def setup_py_sdist(project: Path, pkg_info: str) -> Path:
    """An unpacked sdist of a setup.py project: its metadata in PKG-INFO alone."""
    project.mkdir()
    (project / "setup.py").write_text("from setuptools import setup\nsetup()\n")
    (project / "PKG-INFO").write_text(pkg_info)
    return project


def test_a_project_without_project_description_takes_the_summary_it_states_elsewhere(tmp_path: Path) -> None:
    """An unpacked sdist's PKG-INFO Summary (archivy's, a setup.py project), else setup.cfg's [metadata]
    description (not a file: reference); [project].description and [tool.microdeploy] description come first; a
    summary of UNKNOWN, a setup.cfg that is not INI or not UTF-8 give the default."""
    project = setup_py_sdist(tmp_path / "archivy",
                             "Metadata-Version: 2.1\nName: archivy\nVersion: 1.7.7\nSummary: Minimalist knowledge base "
                             "focused on digital preservation and building your second brain.\n\nLong text.\n")
    (project / "setup.cfg").write_text("[metadata]\ndescription = Not this one\n")
    overrides = {"name": "archivy", "app": "archivy:app"}
    assert load_config(project, overrides).description == (
        "Minimalist knowledge base focused on digital preservation")  # cut to fit, where a clause ends
    (project / "PKG-INFO").write_text("Metadata-Version: 2.1\nName: archivy\nSummary: UNKNOWN\n")
    assert load_config(project, overrides).description == "Not this one"
    (project / "setup.cfg").write_text("[metadata]\ndescription = file: README.md\n")
    assert load_config(project, overrides).summary == "Python web service"
    (project / "setup.cfg").write_text("description = no section\n")
    assert load_config(project, overrides).summary == "Python web service"
    (project / "setup.cfg").write_bytes(b"[metadata]\ndescription = Caf\xe9\n")
    assert load_config(project, overrides).summary == "Python web service"

    (project / "setup.cfg").write_text("[metadata]\ndescription = From setup.cfg\n")
    (project / "pyproject.toml").write_text('[project]\nname = "archivy"\ndescription = "From pyproject"\n')
    assert load_config(project, overrides).description == "From pyproject"
    (project / "pyproject.toml").write_text('[tool.microdeploy]\ndescription = "From the tool table"\n')
    assert load_config(project, overrides).description == "From the tool table"


def test_a_long_project_description_becomes_a_short_summary(tmp_path: Path) -> None:
    """[project].description of any length gives a one-line summary (first sentence, cut at a word)."""
    project = tmp_path / "p"
    project.mkdir()
    long_text = ("An Otter Wiki is Python-based software for collaborative content management, called a wiki. "
                 "The content is stored in a git repository.")
    (project / "pyproject.toml").write_text(f'[project]\nname = "wiki"\ndescription = "{long_text}"\n')
    assert load_config(project).description == ("An Otter Wiki is Python-based software for collaborative content "
                                                "management")
    (project / "pyproject.toml").write_text('[project]\nname = "wiki"\ndescription = "A wiki.  Second."\n')
    assert load_config(project).description == "A wiki"


def test_a_summary_leaves_the_projects_name_out_before_it_is_cut(tmp_path: Path) -> None:
    """The project's name in front of its description ("rq-dashboard is a ...") goes before the sentence is cut to
    80 characters, and a cut sentence ends where a clause or a list's item does, not after "your" or "and"."""
    project = setup_py_sdist(tmp_path / "rq_dashboard-0.9.0",
                             "Metadata-Version: 2.1\nName: rq-dashboard\nVersion: 0.9.0\nSummary: rq-dashboard is a "
                             "general purpose, lightweight, web interface to monitor your RQ queues, jobs, and workers "
                             "in realtime.\n")
    config = load_config(project)
    assert config.description == "General purpose, lightweight, web interface to monitor your RQ queues, jobs"
    assert config.summary == config.description
    # Under another package name too: the text is the project's.
    assert load_config(project, {"name": "queues-ui"}).summary == config.description
    (project / "PKG-INFO").write_text("Metadata-Version: 2.1\nName: archivy\nVersion: 1.7.7\nSummary: Archivy\n")
    assert load_config(project).description == "Archivy"  # nothing after the name: kept as it is
    (project / "PKG-INFO").write_text(f"Metadata-Version: 2.1\nName: archivy\nVersion: 1.7.7\nSummary: {'x' * 90}\n")
    assert load_config(project).description == "x" * 80  # one word longer than the line


@pytest.mark.parametrize(("description", "summary"), [
    # No clause ends in the line's second half: the cut goes before the last preposition there.
    ("Manage the inventory of warehouses across several regions using the shared database of the company",
     "Manage the inventory of warehouses across several regions"),
    # A cut that leaves a word leading into the next one drops it, however many in a row.
    ("Aaaa bbbb cccc dddd eeee ffff gggg hhhh iiii jjjj kkkk llll mmmm nnnn oooo the qqqq rrrr",
     "Aaaa bbbb cccc dddd eeee ffff gggg hhhh iiii jjjj kkkk llll mmmm nnnn oooo"),
    # Nothing to go by: cut at the word.
    ("Aaaa bbbb cccc dddd eeee ffff gggg hhhh iiii jjjj kkkk llll mmmm nnnn oooo pppp qqqq",
     "Aaaa bbbb cccc dddd eeee ffff gggg hhhh iiii jjjj kkkk llll mmmm nnnn oooo pppp"),
])
def test_a_cut_summary_ends_where_a_phrase_does(description: str, summary: str) -> None:
    """A description longer than the line, without a clause ending late enough, is cut where a phrase ends, not
    after "the shared" or "your"."""
    assert project_summary(description) == summary


@pytest.mark.parametrize("name", ["root", "www-data", "nobody", "staff", "sudo", "systemd", "systemd-resolve"])
def test_a_name_a_debian_host_already_has_is_refused(tmp_path: Path, name: str) -> None:
    """base-passwd's accounts and groups and systemd's names: the service would run as root, or own and purge
    /etc/systemd and /var/lib/systemd. Exit 2 with the reason; other names pass."""
    with pytest.raises(MicrodeployError) as raised:
        load_config(tmp_path, {"name": name, "app": "app:app"})
    assert raised.value.exit_code == 2
    assert f"invalid name '{name}'" in raised.value.message
    assert load_config(tmp_path, {"name": f"orders-{name}", "app": "app:app"}).name == f"orders-{name}"


@pytest.mark.parametrize(
    ("tool", "overrides", "origin"),
    [
        ('description = ""', {}, "pyproject.toml key 'description'"),
        ('description = "   "', {}, "pyproject.toml key 'description'"),
        ('description = "Orders API"', {"description": ""}, "--description"),
        ("", {"description": "  "}, "--description"),
    ],
)
def test_a_blank_description_given_for_the_service_is_refused(
    tmp_path: Path, tool: str, overrides: dict[str, object], origin: str
) -> None:
    """An empty or blank description in [tool.microdeploy] or --description is exit 2 naming where it came from,
    not a package described as "Python web service"."""
    error = bad(write_pyproject(tmp_path / "p", tool), overrides)
    assert error.message.startswith("invalid description ")
    assert f"(from {origin}): blank" in error.message
    assert error.hint is not None and "leave description out" in error.hint


def test_a_project_that_describes_itself_with_nothing_gets_the_generic_summary(tmp_path: Path) -> None:
    """An empty [project].description, as a missing one, is no error: the package says "Python web service"."""
    project = write_pyproject(tmp_path / "p", project_table=DEFAULT_PROJECT + 'description = ""\n')
    assert load_config(project).summary == "Python web service"
    assert load_config(write_pyproject(tmp_path / "q")).summary == "Python web service"


def test_a_setting_flag_overrides_its_key_and_keeps_the_files_others(tmp_path: Path) -> None:
    """--setting app.debug=true changes that key of pyproject's settings; its other keys and sections stay."""
    project = write_pyproject(tmp_path / "p", '[tool.microdeploy.settings.app]\ndebug = false\ngreeting = "hi"\n'
                                              '[tool.microdeploy.settings.db]\nurl = "sqlite:///x"\n')
    flags = parse_setting_assignments(("app.debug=true", "cache.ttl=60"))
    config = load_config(project, {"settings": flags})
    assert config.settings == {"app": {"debug": True, "greeting": "hi"}, "db": {"url": "sqlite:///x"},
                               "cache": {"ttl": 60}}
    assert load_config(project).settings == {"app": {"debug": False, "greeting": "hi"}, "db": {"url": "sqlite:///x"}}
