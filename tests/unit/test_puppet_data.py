"""`microdeploy puppet-data`: SPEC §7 data, typing and quoting, merging, levels and bad input (hermetic)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner
from ruamel.yaml import YAML

from microdeploy.cli import main
from microdeploy.config import validate
from microdeploy.errors import MicrodeployError
from microdeploy.hiera import (
    PuppetDataSettings,
    merge_document,
    puppet_data,
    render_document,
    service_entry,
    service_version,
)
from microdeploy.hierarepo import data_file
from microdeploy.process import Result
from microdeploy.resources import template_folder
from tests.support import ORDERS_API_PYPROJECT, file_bytes, service_project

# A real Ed25519 public key (a throw-away one's), as `gpg --armor --export` writes it.
KEY = """\
-----BEGIN PGP PUBLIC KEY BLOCK-----

mDMEaxafVRYJKwYBBAHaRw8BAQdAXcIT+4JEIHkVaOSHXc2GP9ixucMINASW4bJW
jggKWWu0D3QgPHRAdC5pbnZhbGlkPoiQBBMWCAA4FiEE5ejr/ur0a/Klt9c6ahuE
FtQGnpsFAmsWn1UCGwMFCwkIBwIGFQoJCAsCBBYCAwECHgECF4AACgkQahuEFtQG
nptIeAEA0f/HvWokj9VTp7EONTVg2ktib3SBXcQroOpq4pQn9OwA/2fQKNHc1bNe
+xKIsgtnyZLEBUNBMqcY+BEnpb2pE4IE
=KTTn
-----END PGP PUBLIC KEY BLOCK-----
"""
# The start of an Ed25519 secret key as `gpg --armor --export-secret-keys` writes it (the rest left out).
SECRET = "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nlFgEaxafVRYJKwYBBAHaRw8BAQdAXcIT+4JEIHkVaOSHXc2GP9ixucMINASW4bJW\n" \
         "-----END PGP PRIVATE KEY BLOCK-----\n"

PYPROJECT = ORDERS_API_PYPROJECT + """\
workers = 4

[tool.microdeploy.settings.app]
debug = false
greeting = "hello"
ratio = 1.5

[tool.microdeploy.settings.database]
pool = 5
"""

EXPECTED_ORDERS = """\
---
microdeploy::services:
  orders-api:
    ensure: '1.4.0-1'
    config_path: '/etc/orders-api/config.ini'
    log_dir: '/var/log/orders-api'
    user: 'orders-api'
    port: 8001
    bind: '127.0.0.1'
    workers: 4
    settings:
      app:
        debug: false
        greeting: 'hello'
        ratio: 1.5
      database:
        pool: 5
"""

# A hand-edited data file: foreign keys, comments everywhere, an old entry of ours.
EXISTING = """\
---
# Common data, maintained by ops. Do not reorder.
ntp::servers:   # the site's time servers
  - 'ntp1.example.com'
  - 'ntp2.example.com'
microdeploy::services:
  # orders team
  orders-api:
    ensure: '1.3.0-1'   # old release
    port: 8000
  # billing team owns this one
  billing-api:
    ensure: "2.0.1-3"   # pinned by billing
    settings: {app: {mode: strict}}
# after the services
profile::base::motd: 'Managed by Puppet'
"""


def load(text: str) -> Any:
    """Parse YAML the strict, non-round-trip way a consumer would."""
    return YAML(typ="safe").load(text)


def invoke(*args: str) -> click.testing.Result:
    """Run the CLI in-process."""
    return CliRunner().invoke(main, ["puppet-data", *args])


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A service project with port, workers and typed settings."""
    return service_project(tmp_path / "orders-api", PYPROJECT)


@pytest.fixture
def control_repo(tmp_path: Path) -> Path:
    """The files of a control repository as `control-repo init` renders them (without git)."""
    path = tmp_path / "control"
    source = template_folder("r10k")
    for name in ("hiera.yaml", "data/common.yaml"):
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_bytes((source / name).read_bytes())
    return path


def test_stdout_is_the_spec_shape_with_typed_and_quoted_values(project: Path) -> None:
    """Without a target the SPEC §7 document goes to stdout: strings quoted, numbers and booleans typed."""
    result = invoke(str(project), "--version", "1.4.0-1")
    assert result.exit_code == 0, result.output
    assert result.stdout == EXPECTED_ORDERS
    data = load(result.stdout)["microdeploy::services"]["orders-api"]
    assert data["port"] == 8001 and data["workers"] == 4
    assert data["settings"]["app"] == {"debug": False, "greeting": "hello", "ratio": 1.5}


def test_flags_override_the_project_configuration(project: Path) -> None:
    """service_options flags (port, bind, settings) change the entry as they change the build: a --setting its key
    of the project's settings, the others kept."""
    result = invoke(str(project), "--version", "1.4.0-1", "--port", "9001", "--bind", "[::1]",
                    "--setting", "app.greeting=bonjour")
    assert result.exit_code == 0, result.output
    entry = load(result.stdout)["microdeploy::services"]["orders-api"]
    assert entry["port"] == 9001
    assert entry["bind"] == "::1"  # the module wants IPv6 without brackets
    assert entry["settings"] == {"app": {"debug": False, "greeting": "bonjour", "ratio": 1.5},
                                 "database": {"pool": 5}}


def test_settings_from_the_command_line_are_written_as_typed(tmp_path: Path, project: Path) -> None:
    """`--setting` values reach the Hiera file as the text typed, single-quoted strings, so config.ini gets that text
    (TOML made 1.10 1.1, 0o755 493, 0x1F90 8080, dropped the quotes of "quoted" and refused a date); `false` and a
    plain integer are typed, as pyproject's would be."""
    typed = {"version": "1.10", "mode": "0o755", "port": "0x1F90", "n": "1_000", "x": "inf", "day": "1979-05-27",
             "s": '"quoted"', "debug": "false", "workers": "3"}
    flags = [arg for key, value in typed.items() for arg in ("--setting", f"app.{key}= {value} ")]
    output = tmp_path / "orders-api.yaml"
    result = invoke(str(project), "--version", "1.4.0-1", "-o", str(output), *flags)
    assert result.exit_code == 0, result.output
    text = output.read_text()
    settings = load(text)["microdeploy::services"]["orders-api"]["settings"]
    assert settings["app"] == {**typed, "debug": False, "workers": 3, "greeting": "hello", "ratio": 1.5}
    assert "      version: '1.10'\n" in text and "      s: '\"quoted\"'\n" in text
    assert "      debug: false\n" in text and "      workers: 3\n" in text


def test_version_defaults_to_what_build_computes(project: Path) -> None:
    """Without --version the entry pins the version `microdeploy build` would give the project now."""
    config = validate({"name": ("orders-api", "t"), "version": ("1.4.0rc1", "t")})

    def not_git(argv: Sequence[str], **_: object) -> Result:
        return Result(tuple(argv), 128, "", "fatal: not a git repository")

    assert service_version(project, config, {}, not_git) == "1.4.0~rc1-1"
    assert service_version(project, config, {"BUILD_NUMBER": "42"}, not_git) == "1.4.0~rc1-42"


def test_several_projects_give_several_entries(tmp_path: Path, project: Path) -> None:
    """Several PROJECTs each add their own entry, in the order given."""
    other = tmp_path / "billing-api"
    other.mkdir()
    (other / "pyproject.toml").write_text('[project]\nname = "billing-api"\nversion = "2.0.1"\n')
    result = puppet_data(PuppetDataSettings(projects=(project, other), environ={"BUILD_NUMBER": "3"}),
                         runner=lambda argv, **_: Result(tuple(argv), 128, "", ""))
    assert list(result.services) == ["orders-api", "billing-api"]
    assert result.services["billing-api"]["ensure"] == "2.0.1-3"
    assert result.services["orders-api"]["ensure"] == "1.4.0-3"


HOSTILE = [
    "a: b",
    "{x}",
    "[1, 2]",
    "!!python/object:os.system",
    "!ruby/object:Gem::Installer",
    "*alias",
    "&anchor value",
    "- item",
    "? key",
    "# not a comment",
    "'quoted' \"twice\"",
    "%YAML 1.1",
    "--- a new document",
    "... end",
    "yes",
    "null",
    "0o17",
    "1_000",
    "@at `tick` |pipe >fold",
    "ünïcødé ✓",
    "",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_setting_values_stay_single_strings(value: str) -> None:
    """A setting value that looks like YAML syntax, a tag, an alias or a YAML 1.1 literal reads back as that string."""
    config = validate({"name": ("orders-api", "t"), "settings": ({"app": {"greeting": value}}, "t")})
    text = render_document({}, {"orders-api": service_entry(config, "1.0-1")})
    data = load(text)
    assert list(data) == ["microdeploy::services"]
    assert list(data["microdeploy::services"]) == ["orders-api"]
    assert data["microdeploy::services"]["orders-api"]["settings"] == {"app": {"greeting": value}}
    # Single-quoted: YAML 1.1 readers (Puppet's Psych) take it as a string too.
    assert f"greeting: '{value.replace(chr(39), chr(39) * 2)}'" in text or "\t" in value


@pytest.mark.parametrize("name", ["yes", "no", "on", "off", "true", "null"])
def test_service_names_that_yaml_1_1_reads_as_booleans_are_quoted(name: str) -> None:
    """A service named like a YAML 1.1 boolean or null is quoted, so Puppet reads the name, not true or nil."""
    config = validate({"name": (name, "t")})
    text = render_document({}, {name: service_entry(config, "1.0-1")})
    assert f"\n  '{name}':\n" in text
    assert list(load(text)["microdeploy::services"]) == [name]


def test_setting_keys_that_yaml_1_1_reads_as_booleans_are_quoted() -> None:
    """Section and key names such as `on` or `y` are quoted too."""
    config = validate({"name": ("orders-api", "t"), "settings": ({"on": {"y": 1, "n.x": 2}}, "t")})
    text = render_document({}, {"orders-api": service_entry(config, "1.0-1")})
    assert "      'on':\n        'y': 1\n        n.x: 2\n" in text


def test_hiera_interpolation_is_escaped_in_keys_and_values() -> None:
    """Every `%{` of a key or a value is written as Hiera's `%{literal('%')}{`, so Hiera returns the text."""
    text = render_document({}, {"orders-api": {"settings": {"a%{x}": {"k": "%{lookup('y')} and %{::fqdn}"}}}})
    data = load(text)["microdeploy::services"]["orders-api"]["settings"]
    assert data == {"a%{literal('%')}{x}": {"k": "%{literal('%')}{lookup('y')} and %{literal('%')}{::fqdn}"}}
    assert text.count("%{literal") == 3


def test_a_carriage_return_in_a_setting_is_refused(project: Path) -> None:
    """A value with a carriage return (a control character) is bad input, exit 2, before any write."""
    result = invoke(str(project), "--version", "1.4.0-1", "--setting", "app.greeting=a\rb")
    assert result.exit_code == 2
    assert "settings.app.greeting" in result.stderr and "control character U+000D" in result.stderr


def test_newlines_in_settings_are_refused_by_the_config_model(project: Path) -> None:
    """A multi-line setting never reaches the YAML: the config model refuses it with exit 2."""
    result = invoke(str(project), "--version", "1.4.0-1", "--setting", "app.greeting=a\nb: c")
    assert result.exit_code == 2
    assert "settings.app.greeting" in result.stderr


def test_output_into_a_file_people_wrote_is_refused(tmp_path: Path, project: Path) -> None:
    """-o FILE never rewrites a file microdeploy did not write (the release that deleted ops' keys): exit 2."""
    common = tmp_path / "common.yaml"
    common.write_text(EXISTING)
    result = invoke(str(project), "--version", "1.4.0-1", "-o", str(common))
    assert result.exit_code == 2, result.output
    assert f"{common} is not a file microdeploy wrote" in result.stderr
    assert "hint: Pass --control-repo DIR" in result.stderr
    assert common.read_text() == EXISTING


def test_merge_replaces_our_entries_and_keeps_the_others() -> None:
    """In a file microdeploy owns, a service's entry is replaced whole and other services stay as read."""
    config = validate({"name": ("orders-api", "t"), "port": (8001, "t")})
    owned = "---\n# Written by `microdeploy puppet-data`: x.\n" + EXISTING.removeprefix("---\n")
    merged = merge_document(owned, {}, {"orders-api": service_entry(config, "1.4.0-1")})
    assert merged.startswith("---\n# Written by `microdeploy puppet-data`: services' defaults and release pins.\n")
    data = load(merged)
    assert list(data) == ["ntp::servers", "microdeploy::services", "profile::base::motd"]
    assert list(data["microdeploy::services"]) == ["orders-api", "billing-api"]
    assert data["microdeploy::services"]["orders-api"]["ensure"] == "1.4.0-1"
    assert "port" in data["microdeploy::services"]["orders-api"] and "old release" not in merged
    assert data["microdeploy::services"]["billing-api"] == {"ensure": "2.0.1-3",
                                                            "settings": {"app": {"mode": "strict"}}}


def test_merging_the_same_data_twice_changes_nothing(control_repo: Path, project: Path) -> None:
    """A second identical run leaves the file byte for byte as it was and reports no change."""
    settings = PuppetDataSettings(projects=(project,), version="1.4.0-1", control_repo=control_repo)
    first = puppet_data(settings)
    before = file_bytes(control_repo)
    second = puppet_data(settings)
    assert first.changed and not second.changed
    assert file_bytes(control_repo) == before


def test_control_repo_release_writes_the_owned_file_and_leaves_common_alone(control_repo: Path, project: Path) -> None:
    """--control-repo alone writes data/services/NAME.yaml with a do-not-edit header; common.yaml is not touched."""
    common = (control_repo / "data" / "common.yaml").read_bytes()
    result = invoke(str(project), "--version", "1.4.0-1", "--control-repo", str(control_repo))
    assert result.exit_code == 0, result.output
    path = control_repo / "data" / "services" / "orders-api.yaml"
    assert f"Wrote {path} (orders-api)" in result.stderr
    text = path.read_text()
    assert text.startswith("---\n# Written by `microdeploy puppet-data` for orders-api: its defaults and release pin.")
    assert text.endswith(EXPECTED_ORDERS.removeprefix("---\n"))
    assert (control_repo / "data" / "common.yaml").read_bytes() == common


@pytest.mark.parametrize(
    ("flags", "relative", "level"),
    [
        ([], "data/services/orders-api.yaml", "common"),
        (["--env", "staging"], "data/environments/staging.yaml", "environment"),
        (["--node", "app1.example.com"], "data/nodes/app1.example.com.yaml", "node"),
    ],
)
def test_env_and_node_select_the_level_of_hiera_yaml(
    control_repo: Path, project: Path, flags: list[str], relative: str, level: str
) -> None:
    """--env and --node write the files of the levels that the repository's hiera.yaml declares."""
    result = invoke(str(project), "--version", "1.4.0-1", "--control-repo", str(control_repo), "--json", *flags)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["path"] == str(control_repo / relative)
    assert report["level"] == level and report["changed"] is True
    assert report["services"]["orders-api"]["ensure"] == "1.4.0-1"
    assert "yaml" not in report
    assert (control_repo / relative).is_file()


def test_levels_follow_the_repositorys_own_hiera_yaml(tmp_path: Path) -> None:
    """Another datadir and `%{environment}` in the repository's hiera.yaml are honoured."""
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "hiera.yaml").write_text(
        "version: 5\ndefaults: {datadir: hieradata, data_hash: yaml_data}\nhierarchy:\n"
        "  - {name: env, path: 'env/%{environment}.yaml'}\n  - {name: all, paths: ['site.yaml']}\n")
    assert data_file(repo, env="prod") == (repo / "hieradata/env/prod.yaml", "environment")
    assert data_file(repo) == (repo / "hieradata/site.yaml", "common")
    with pytest.raises(MicrodeployError, match="has no node level") as info:
        data_file(repo, node="app1.example.com")
    assert info.value.exit_code == 2


def test_output_file_is_written_and_merged(tmp_path: Path, project: Path) -> None:
    """--output FILE writes a file microdeploy owns (an empty one, as `mktemp` makes, is new); the next run of
    another service adds to it."""
    out = tmp_path / "services.yaml"
    out.touch()
    result = invoke(str(project), "--version", "1.4.0-1", "--output", str(out))
    assert result.exit_code == 0, result.output
    assert out.read_text().startswith("---\n# Written by `microdeploy puppet-data`")
    other = tmp_path / "billing-api"
    other.mkdir()
    (other / "pyproject.toml").write_text('[project]\nname = "billing-api"\nversion = "2.0.1"\n'
                                          '[tool.microdeploy.settings.app]\nx = "%{y}"\n')
    assert invoke(str(other), "--version", "2.0.1-1", "--output", str(out)).exit_code == 0
    assert invoke(str(project), "--version", "1.4.0-2", "--output", str(out)).exit_code == 0
    services = load(out.read_text())["microdeploy::services"]
    assert {name: entry["ensure"] for name, entry in services.items()} == {"orders-api": "1.4.0-2",
                                                                          "billing-api": "2.0.1-1"}
    assert services["billing-api"]["settings"]["app"]["x"] == "%{literal('%')}{y}"  # escaped once, kept so


def test_apt_source_keys_are_written_with_the_key_as_a_literal_block(tmp_path: Path, project: Path) -> None:
    """--apt-location and --apt-key add manage_apt_source, the URL and the armored key as a literal block."""
    key = tmp_path / "key.asc"
    key.write_text(KEY)
    result = invoke(str(project), "--version", "1.4.0-1", "--apt-location", "http://10.231.1.1:8080/",
                    "--apt-key", str(key))
    assert result.exit_code == 0, result.output
    assert "microdeploy::apt_key_content: |\n  -----BEGIN PGP PUBLIC KEY BLOCK-----\n" in result.stdout
    data = load(result.stdout)
    assert data["microdeploy::manage_apt_source"] is True
    assert data["microdeploy::apt_location"] == "http://10.231.1.1:8080/"
    assert data["microdeploy::apt_key_content"] == KEY
    assert list(data)[-1] == "microdeploy::services"


def test_apt_source_goes_to_the_owned_apt_file(control_repo: Path, project: Path, tmp_path: Path) -> None:
    """In a control repository the APT source keys go to data/microdeploy.yaml, which microdeploy owns."""
    key = tmp_path / "key.asc"
    key.write_text(KEY)
    common = (control_repo / "data/common.yaml").read_bytes()
    result = invoke(str(project), "--version", "1.4.0-1", "--control-repo", str(control_repo), "--json",
                    "--apt-location", "http://apt.example.com/", "--apt-key", str(key))
    assert result.exit_code == 0, result.output
    apt = control_repo / "data/microdeploy.yaml"
    assert json.loads(result.stdout)["written"] == [str(control_repo / "data/services/orders-api.yaml"), str(apt)]
    assert load(apt.read_text()) == {"microdeploy::manage_apt_source": True,
                                     "microdeploy::apt_location": "http://apt.example.com/",
                                     "microdeploy::apt_key_content": KEY}
    assert apt.read_text().startswith("---\n# Written by `microdeploy puppet-data`: the signed APT source")
    assert (control_repo / "data/common.yaml").read_bytes() == common


BAD_INPUT = [
    (["--version", "1.4.0"], None),  # the baseline: accepted
    (["--version", "latest"], "invalid Debian version 'latest' (from --version)"),
    (["--version", "1.4.0-"], "invalid Debian version '1.4.0-'"),
    (["--version", "v1.4.0-1"], "invalid Debian version 'v1.4.0-1'"),
    (["--version", "1.4 0-1"], "invalid Debian version '1.4 0-1'"),
    (["--version", "1-1", "--control-repo", "{repo}", "--env", "Prod"], "invalid environment name 'Prod'"),
    (["--version", "1-1", "--control-repo", "{repo}", "--env", "../x"], "invalid environment name '../x'"),
    (["--version", "1-1", "--control-repo", "{repo}", "--env", "stag-ing"], "invalid environment name 'stag-ing'"),
    (["--version", "1-1", "--control-repo", "{repo}", "--node", "App1.example.com"], "invalid node name"),
    (["--version", "1-1", "--control-repo", "{repo}", "--node", "../../etc/passwd"], "invalid node name"),
    (["--version", "1-1", "--control-repo", "{repo}", "--node", "a..b"], "invalid node name 'a..b'"),
    (["--version", "1-1", "--control-repo", "{repo}", "--node", "-a.example.com"], "invalid node name"),
    (["--version", "1-1", "--control-repo", "{repo}", "--node", "a_b.example.com"], "invalid node name"),
    (["--version", "1-1", "--control-repo", "{repo}", "--env", "prod", "--node", "a.b"], "--env and --node"),
    (["--version", "1-1", "--env", "prod"], "--env needs --control-repo"),
    (["--version", "1-1", "--node", "a.example.com"], "--node needs --control-repo"),
    (["--version", "1-1", "--control-repo", "{repo}", "--output", "{tmp}/x.yaml"], "--output and --control-repo"),
    (["--version", "1-1", "--control-repo", "{tmp}/nowhere"], "is not a control repository (no hiera.yaml)"),
    (["--version", "1-1", "--control-repo", "{project}"], "is not a control repository (no hiera.yaml)"),
    (["--version", "1-1", "--apt-location", "http://x/"], "--apt-location and --apt-key go together"),
    (["--version", "1-1", "--apt-location", "not a url", "--apt-key", "{key}"], "invalid APT repository URL"),
    # No host, an unclosed IPv6 address, credentials (they would be committed; apt reads auth.conf.d).
    (["--version", "1-1", "--apt-location", "http://", "--apt-key", "{key}"], "invalid APT repository URL"),
    (["--version", "1-1", "--apt-location", "http://[::1/", "--apt-key", "{key}"], "invalid APT repository URL"),
    (["--version", "1-1", "--apt-location", "https://ci:s3cret@apt.example.com/", "--apt-key", "{key}"],
     "invalid APT repository URL"),
    (["--version", "1-1", "--apt-location", "http://x/", "--apt-key", "{project}/pyproject.toml"],
     "is not an ASCII-armored OpenPGP key"),
    # The repository's .asc with the signing key appended: nothing of it may go into Hiera data.
    (["--version", "1-1", "--apt-location", "http://x/", "--apt-key", "{both}"],
     "key-and-secret.asc holds a PRIVATE KEY BLOCK, not only the public key"),
    (["--version", "1-1", "--apt-location", "http://x/", "--apt-key", "{fake}"],
     "has a public key block that holds no OpenPGP public key"),
    (["--version", "1-1", "--port", "0"], "invalid port 0 (from --port)"),
    (["--version", "1-1", "--control-repo", "{repo}", "--env", "prod", "--port", "8002"],
     "--env writes the release pin alone; --port would be lost"),
    (["--version", "1-1", "--control-repo", "{repo}", "--node", "a.example.com", "--setting", "app.x=1",
      "--workers", "3"], "--node writes the release pin alone; --workers, --setting would be lost"),
    (["--version", "1-1", "--control-repo", "{repo}", "--env", "prod", "--apt-location", "http://x/",
      "--apt-key", "{key}"], "--apt-location/--apt-key would be lost"),
]


@pytest.mark.parametrize(("args", "message"), BAD_INPUT)
def test_bad_input_exits_2_with_the_value_named_and_writes_nothing(
    tmp_path: Path, project: Path, control_repo: Path, args: list[str], message: str | None
) -> None:
    """Bad versions, environments, nodes, targets and APT flags exit 2, name the value, and write nothing."""
    key = tmp_path / "key.asc"
    key.write_text(KEY)
    both = tmp_path / "key-and-secret.asc"
    both.write_text(KEY + SECRET)
    fake = tmp_path / "fake.asc"
    fake.write_text(KEY.replace("mDMEaxafVRYJ", "AAAAaxafVRYJ"))
    values = {"repo": str(control_repo), "tmp": str(tmp_path), "project": str(project), "key": str(key),
              "both": str(both), "fake": str(fake)}
    argv = [arg.format(**values) for arg in args]
    before = file_bytes(tmp_path)
    result = invoke(str(project), *argv)
    if message is None:
        assert result.exit_code == 0, result.output
        return
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert "hint: " in result.stderr
    assert file_bytes(tmp_path) == before


@pytest.mark.parametrize(
    ("existing", "message"),
    [
        ("---\nmicrodeploy::services:\n  orders-api: {ensure: '1'\n", "cannot parse"),
        ("key: [unclosed\n", "cannot parse"),
        ("- a list\n- at the top\n", "its top level is not a mapping"),
        ("just a string\n", "its top level is not a mapping"),
        ("microdeploy::services:\n  - orders-api\n", "microdeploy::services in"),
        ("a: *undefined_alias\n", "cannot parse"),
        ("a: 1\na: 2\n", "cannot parse"),
        ("a: &x [*x]\n", "holds a recursive alias"),
    ],
)
def test_an_unparsable_existing_data_file_is_left_alone(
    control_repo: Path, project: Path, existing: str, message: str
) -> None:
    """An environment file that is not YAML, or not a Hiera mapping, is reported (exit 2) and not touched."""
    path = control_repo / "data" / "environments" / "production.yaml"
    path.parent.mkdir()
    path.write_text(existing)
    before = file_bytes(control_repo)
    result = invoke(str(project), "--version", "1.4.0-1", "--control-repo", str(control_repo), "--env", "production")
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert str(path) in result.stderr
    assert file_bytes(control_repo) == before  # nothing written, no temporary file left


def test_an_unparsable_hiera_yaml_is_bad_input(control_repo: Path, project: Path) -> None:
    """A hiera.yaml that does not parse, or is not version 5, is reported with exit 2."""
    (control_repo / "hiera.yaml").write_text("version: [5\n")
    result = invoke(str(project), "--version", "1-1", "--control-repo", str(control_repo))
    assert result.exit_code == 2 and "cannot parse" in result.stderr
    (control_repo / "hiera.yaml").write_text("version: 3\n")
    result = invoke(str(project), "--version", "1-1", "--control-repo", str(control_repo))
    assert result.exit_code == 2 and "is not a Hiera 5 configuration" in result.stderr


def test_version_with_several_projects_and_duplicate_services_are_refused(tmp_path: Path, project: Path) -> None:
    """--version applies to one project only, and two projects of one service name are refused."""
    result = invoke(str(project), str(project), "--version", "1-1")
    assert result.exit_code == 2 and "--version 1-1 given for 2 projects" in result.stderr
    result = puppet_data_error(PuppetDataSettings(projects=(project, project)))
    assert "two projects are the service orders-api" in result


def puppet_data_error(settings: PuppetDataSettings) -> str:
    """The message of the bad-input error that puppet_data raises for `settings`."""
    with pytest.raises(MicrodeployError) as info:
        puppet_data(settings, runner=lambda argv, **_: Result(tuple(argv), 128, "", ""))
    assert info.value.exit_code == 2
    return info.value.message


def test_a_file_where_the_services_directory_goes_is_bad_input(control_repo: Path, project: Path) -> None:
    """data/services a file (a hand-made data file of that name): exit 2 naming it, nothing written (it was "File
    exists" with exit 1 and the hint about free space)."""
    (control_repo / "data" / "services").write_text("x\n")
    before = file_bytes(control_repo)
    result = invoke(str(project), "--version", "1.4.0-1", "--control-repo", str(control_repo))
    assert result.exit_code == 2, result.output
    assert f"{control_repo / 'data' / 'services'} is not a directory" in result.stderr
    assert file_bytes(control_repo) == before
