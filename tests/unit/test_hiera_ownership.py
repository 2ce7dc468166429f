"""A control repository that people edit: a release changes the pin line(s) and nothing else, byte for byte."""

from __future__ import annotations

import difflib
import json
import os
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from ruamel.yaml import YAML

from microdeploy.cli import main
from microdeploy.errors import MicrodeployError
from microdeploy.hierarepo import set_pin
from microdeploy.resources import template_folder
from tests.support import ORDERS_API_PYPROJECT, file_bytes, service_project

PYPROJECT = ORDERS_API_PYPROJECT + """
[tool.microdeploy.settings.app]
greeting = "hello"
"""

# What ops wrote: eyaml blocks (one-line, folded and literal multi-line), comments everywhere,
# keys of their own, overrides of microdeploy's defaults, four-space indentation, their key order.
OPS_COMMON = """\
---
# Common data, maintained by ops. Do not reorder.
role: 'role::microservice_host'
ntp::servers:   # the site's time servers
    - 'ntp1.example.com'
microdeploy::services:
    # orders team
    orders-api:
        workers: 8  # INC-1234
        environment:
            SENTRY_DSN: ENC[PKCS7,MIIBiQYJKoZIhvcNAQcDoIIBejCCAXYCAQAxggEhMIIBHQIBADAFMAACAQEwDQYJKo==]
        settings:
            database:
                password: >
                    ENC[PKCS7,MIIBiQYJKoZIhvcNAQcDoIIBejCCAXYCAQAxggEhMIIBHQIBADAFMAACAQEw
                    DQYJKoZIhvcNAQEBBQAEggEAabc==]
                certificate: |
                    ENC[PKCS7,MIIBiQYJKoZIhvcNAQcDoIIBejCCAXYCAQAxggEhMIIBHQIBADAFMAACAQEw
                    DQYJKoZIhvcNAQEBBQAEggEAxyz==]
            app:
                greeting: 'bonjour'   # overrides the packaged default
# after the services
profile::base::motd: "Managed by Puppet"
"""

OPS_ENV = """\
---
# production: canaries go to nodes, not here
microdeploy::services:
  orders-api:
    ensure: "1.3.0-2"   # held back, INC-1200
    settings: {app: {greeting: 'salut'}}
  billing-api:
    port: 8200
"""


def invoke(*args: str) -> click.testing.Result:
    """Run the CLI in-process."""
    return CliRunner().invoke(main, ["puppet-data", *args])


def changed_lines(old: str, new: str) -> list[str]:
    """The lines a unified diff removes (-) and adds (+), without context."""
    diff = difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True), n=0)
    return [line for line in diff if line[:1] in "+-" and not line.startswith(("---", "+++"))]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A service project with a port and one setting."""
    return service_project(tmp_path / "orders-api", PYPROJECT)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A control repository (template files) where ops edited common.yaml and production.yaml."""
    path = tmp_path / "control"
    source = template_folder("r10k")
    (path / "data" / "environments").mkdir(parents=True)
    (path / "hiera.yaml").write_bytes((source / "hiera.yaml").read_bytes())
    (path / "data" / "common.yaml").write_text(OPS_COMMON)
    (path / "data" / "environments" / "production.yaml").write_text(OPS_ENV)
    return path


def release(project: Path, repo: Path, version: str, *flags: str) -> dict[str, object]:
    """One `puppet-data --control-repo` run; its JSON report."""
    result = invoke(str(project), "--control-repo", str(repo), "--version", version, "--json", *flags)
    assert result.exit_code == 0, result.output
    report: dict[str, object] = json.loads(result.stdout)
    return report


def test_a_release_bump_changes_exactly_the_pin_line_of_the_owned_file(project: Path, repo: Path) -> None:
    """From one release to the next the only changed line in the repository is the owned file's ensure."""
    release(project, repo, "1.4.0-1")
    before = file_bytes(repo)
    report = release(project, repo, "1.4.1-1")
    after = file_bytes(repo)
    owned = "data/services/orders-api.yaml"
    assert report["written"] == [str(repo / owned)]
    assert [name for name in after if after[name] != before.get(name)] == [owned]
    assert changed_lines(before[owned].decode(), after[owned].decode()) == [
        "-    ensure: '1.4.0-1'\n", "+    ensure: '1.4.1-1'\n"]
    assert after["data/common.yaml"] == OPS_COMMON.encode()
    assert after["data/environments/production.yaml"] == OPS_ENV.encode()


def test_a_new_default_appears_and_an_overridden_one_stays_overridden(project: Path, repo: Path) -> None:
    """A setting added to pyproject.toml reaches the owned file; ops' override in common.yaml is not touched."""
    release(project, repo, "1.4.0-1")
    (project / "pyproject.toml").write_text(PYPROJECT + 'farewell = "bye"\n')
    release(project, repo, "1.5.0-1")
    owned = YAML(typ="safe").load((repo / "data/services/orders-api.yaml").read_text())
    assert owned["microdeploy::services"]["orders-api"]["settings"]["app"] == {"greeting": "hello",
                                                                              "farewell": "bye"}
    assert (repo / "data/common.yaml").read_text() == OPS_COMMON  # greeting stays 'bonjour' there


def test_an_environment_pin_replaces_the_one_scalar_and_keeps_its_quotes_and_comment(
    project: Path, repo: Path
) -> None:
    """--env rewrites only the ensure scalar of the environment file: same quotes, same comment, same line."""
    path = repo / "data/environments/production.yaml"
    report = release(project, repo, "1.4.0-2", "--env", "production")
    assert report["written"] == [str(path)]
    assert changed_lines(OPS_ENV, path.read_text()) == [
        '-    ensure: "1.3.0-2"   # held back, INC-1200\n', '+    ensure: "1.4.0-2"   # held back, INC-1200\n']
    assert not (repo / "data/services").exists()  # a pin alone: the defaults come from the layers above


def test_a_pin_is_inserted_under_an_existing_entry_with_its_indentation(project: Path, repo: Path) -> None:
    """A service without ensure gets one line, at the indentation of its other keys."""
    path = repo / "data/environments/production.yaml"
    path.write_text(OPS_ENV.replace("orders-api", "stock-api"))
    before = path.read_text()
    release(project, repo, "1.4.0-2", "--env", "production")
    assert changed_lines(before, path.read_text()) == ["+  orders-api:\n", "+    ensure: '1.4.0-2'\n"]


def test_a_node_pin_in_common_data_goes_where_it_takes_effect(project: Path, repo: Path) -> None:
    """An edited file in four-space style gets the pin as the service's first key, nothing else moves."""
    common = repo / "data/common.yaml"
    node = repo / "data/nodes/app1.example.com.yaml"
    node.parent.mkdir(parents=True)
    node.write_text(OPS_COMMON)
    release(project, repo, "1.4.0-3", "--node", "app1.example.com")
    assert changed_lines(OPS_COMMON, node.read_text()) == ["+        ensure: '1.4.0-3'\n"]
    lines = node.read_text().splitlines()
    assert lines[lines.index("    orders-api:") + 1] == "        ensure: '1.4.0-3'"
    assert common.read_text() == OPS_COMMON


def test_a_new_node_file_holds_the_pin_alone(project: Path, repo: Path) -> None:
    """--node on a node without a file creates it with the pin and nothing else."""
    release(project, repo, "1.4.0-3", "--node", "app2.example.com")
    text = (repo / "data/nodes/app2.example.com.yaml").read_text()
    assert text == "---\nmicrodeploy::services:\n  orders-api:\n    ensure: '1.4.0-3'\n"


def test_a_pin_left_in_common_by_an_older_microdeploy_moves_with_the_release(project: Path, repo: Path) -> None:
    """When common.yaml pins the service, that one line follows the release (else it would win over it)."""
    common = repo / "data/common.yaml"
    pinned = OPS_COMMON.replace("    orders-api:\n", "    orders-api:\n        ensure: '1.3.0-1'  # old\n")
    common.write_text(pinned)
    report = release(project, repo, "1.4.0-1")
    assert report["written"] == [str(repo / "data/services/orders-api.yaml"), str(common)]
    assert changed_lines(pinned, common.read_text()) == [
        "-        ensure: '1.3.0-1'  # old\n", "+        ensure: '1.4.0-1'  # old\n"]


def test_a_state_in_common_is_left_alone(project: Path, repo: Path) -> None:
    """`ensure: absent` (or latest) in common.yaml is a person's decision: a release does not turn it into a pin."""
    common = repo / "data/common.yaml"
    removed = OPS_COMMON.replace("    orders-api:\n", "    orders-api:\n        ensure: absent\n")
    common.write_text(removed)
    report = release(project, repo, "1.4.0-1")
    assert report["written"] == [str(repo / "data/services/orders-api.yaml")]
    assert common.read_text() == removed


def test_twice_the_same_pin_writes_nothing(project: Path, repo: Path) -> None:
    """A second run with the same version leaves every file as it was and reports no change."""
    release(project, repo, "1.4.0-2", "--env", "production")
    before = file_bytes(repo)
    report = release(project, repo, "1.4.0-2", "--env", "production")
    assert report["changed"] is False and report["written"] == []
    assert file_bytes(repo) == before


def test_hiera_interpolation_in_settings_is_escaped(project: Path, repo: Path) -> None:
    """A `%{...}` in a setting is written as Hiera's literal escape, so lookup returns the text as written."""
    (project / "pyproject.toml").write_text(PYPROJECT.replace('"hello"', "\"%{lookup('ops::db_password')}\""))
    release(project, repo, "1.4.0-1")
    text = (repo / "data/services/orders-api.yaml").read_text()
    assert "greeting: '%{literal(''%'')}{lookup(''ops::db_password'')}'" in text
    assert "%{lookup" not in text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("microdeploy::services: {orders-api: {ensure: '1'}}\n", "flow-style"),
        ("microdeploy::services:\n  orders-api: {ensure: '1'}\n", "flow-style"),
        ("microdeploy::services:\n  orders-api:\n    ensure: |\n      1.0-1\n", "not a one-line scalar"),
        ("microdeploy::services:\n  orders-api: '1.0'\n", "is not a mapping"),
        ("microdeploy::services:\n  orders-api:\n    ensure: 1.0\n      -1\n", "cannot edit"),
        # The services merged in from an anchor, at the top or per service: the anchor's lines are shared.
        ("base: &b\n  microdeploy::services:\n    orders-api:\n      ensure: '0.1'\n<<: *b\nfoo: 1\n", "is merged in"),
        ("x: &o\n  ensure: '0.1'\ny: &s\n  orders-api: *o\nmicrodeploy::services:\n  <<: *s\n  b-api: {}\n",
         "is merged in"),
    ],
)
def test_a_file_that_cannot_be_edited_line_by_line_is_refused(
    project: Path, repo: Path, text: str, message: str
) -> None:
    """Shapes the pin cannot be set in by one line are bad input (exit 2), with the file untouched."""
    path = repo / "data/environments/production.yaml"
    path.write_text(text)
    result = invoke(str(project), "--control-repo", str(repo), "--version", "1.4.0-2", "--env", "production")
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "hint: Set the pin by hand" in result.stderr
    assert path.read_text() == text


def test_a_hiera_yaml_without_the_owned_level_names_the_level_to_add(project: Path, repo: Path) -> None:
    """A control repository from an older microdeploy is told which hierarchy level to add (exit 2)."""
    hiera = repo / "hiera.yaml"
    hiera.write_text(hiera.read_text().split("  - name: 'Written by")[0])
    before = file_bytes(repo)
    result = invoke(str(project), "--control-repo", str(repo), "--version", "1.4.0-1")
    assert result.exit_code == 2
    assert "has no level for the files microdeploy writes" in result.stderr
    assert "- 'services/*.yaml'" in result.stderr
    assert file_bytes(repo) == before


@pytest.mark.parametrize(
    ("level", "where"),
    [
        ("  - name: 'Per node'\n    datadir: {outside}\n    path: 'nodes/%{{trusted.certname}}.yaml'\n",
         ["--node", "app1.example.com"]),
        ("  - name: 'Per environment'\n    path: '../../escape/%{{environment}}.yaml'\n", ["--env", "staging"]),
        ("  - name: 'Common'\n    path: '../{link}/common.yaml'\n", []),
    ],
    ids=["absolute-datadir", "dotdot-path", "through-a-link"],
)
def test_a_level_whose_file_is_outside_the_control_repository_is_refused(
    project: Path, repo: Path, tmp_path: Path, level: str, where: list[str]
) -> None:
    """hiera.yaml may take a level out of the repository (an absolute datadir, `..`, a link to elsewhere):
    microdeploy writes only what the repository holds, which r10k deploys. Exit 2, nothing written anywhere."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (repo / "data" / "elsewhere").symlink_to(outside)
    hiera = repo / "hiera.yaml"
    hiera.write_text(hiera.read_text().replace("hierarchy:\n", "hierarchy:\n" + level.format(
        outside=outside, link="data/elsewhere")))
    before = file_bytes(tmp_path)
    result = invoke(str(project), "--control-repo", str(repo), "--version", "1.4.0-2", *where)
    assert result.exit_code == 2, result.output
    assert "outside the control repository" in result.stderr
    assert file_bytes(tmp_path) == before


def test_a_common_level_written_as_a_plain_glob_is_the_common_level(project: Path, repo: Path) -> None:
    """`glob: 'common.yaml'` names one file as `path` does: the release finds it, and the pin common.yaml holds
    follows the release (it was "has no common level", exit 2)."""
    hiera = repo / "hiera.yaml"
    hiera.write_text(hiera.read_text().replace("    path: 'common.yaml'", "    glob: 'common.yaml'"))
    common = repo / "data/common.yaml"
    common.write_text(OPS_COMMON.replace("    orders-api:\n", "    orders-api:\n        ensure: '1.3.0-1'\n"))
    report = release(project, repo, "1.4.0-3")
    assert report["written"] == [str(repo / "data/services/orders-api.yaml"), str(common)]
    assert "        ensure: '1.4.0-3'\n" in common.read_text()


def test_set_pin_keeps_crlf_line_endings() -> None:
    """A file with Windows line endings gets the inserted lines with the same endings."""
    text = "---\r\nmicrodeploy::services:\r\n  a-api:\r\n    port: 1\r\n"
    assert set_pin(text, "a-api", "2-1") == "---\r\nmicrodeploy::services:\r\n  a-api:\r\n    ensure: '2-1'\r\n" \
                                            "    port: 1\r\n"
    with pytest.raises(MicrodeployError):
        set_pin("- a\n", "a-api", "2-1")


def test_a_crlf_file_keeps_every_other_byte(project: Path, repo: Path) -> None:
    """A node file with Windows line endings (edited on Windows, or with core.autocrlf): the release rewrites the
    ensure line alone, CRLF and all; the file was read with its endings turned into LF and written back so."""
    node = repo / "data/nodes/app1.example.com.yaml"
    node.parent.mkdir(parents=True)
    text = "---\r\n# c\r\nmicrodeploy::services:\r\n  orders-api:\r\n    ensure: 0.1.0-1\r\n    port: 80\r\n"
    node.write_bytes(text.encode())
    release(project, repo, "0.2.0-1", "--node", "app1.example.com")
    assert node.read_bytes() == text.replace("ensure: 0.1.0-1", "ensure: '0.2.0-1'").encode()


def test_an_entry_that_merges_its_defaults_gets_a_pin_of_its_own(project: Path, repo: Path) -> None:
    """`<<: *defaults` brings ensure from an anchor: the entry gets its own ensure line, which wins over the merged
    one in Hiera's reading, and the anchor, shared with other entries, is left as it is (it was a traceback)."""
    node = repo / "data/nodes/app1.example.com.yaml"
    node.parent.mkdir(parents=True)
    text = ("---\ndefaults: &defaults\n  ensure: '0.1.0-1'\n  workers: 2\nmicrodeploy::services:\n"
            "  orders-api:\n    <<: *defaults\n    port: 8081\n  billing-api:\n    <<: *defaults\n")
    node.write_text(text)
    release(project, repo, "0.2.0-1", "--node", "app1.example.com")
    assert changed_lines(text, node.read_text()) == ["+    ensure: '0.2.0-1'\n"]
    data = YAML(typ="safe").load(node.read_text())["microdeploy::services"]
    assert data["orders-api"] == {"ensure": "0.2.0-1", "workers": 2, "port": 8081}
    assert data["billing-api"]["ensure"] == "0.1.0-1"


def test_a_tag_only_hieras_backends_know_is_refused_in_common_data(project: Path, repo: Path) -> None:
    """common.yaml with a tag this reader cannot construct (`!secret`) and a version pin to move: exit 2 with the
    reason, nothing written (it was a traceback)."""
    common = repo / "data/common.yaml"
    text = "---\nsecret: !secret abc\nmicrodeploy::services:\n  orders-api:\n    ensure: '1.0.0-1'\n"
    common.write_text(text)
    before = file_bytes(repo)
    result = invoke(str(project), "--control-repo", str(repo), "--version", "1.4.0-1")
    assert result.exit_code == 2, result.output
    assert "cannot edit" in result.stderr and "!secret" in result.stderr
    assert file_bytes(repo) == before


def test_a_symlinked_data_file_is_refused(project: Path, repo: Path) -> None:
    """A node file that is a link to a file other nodes share: written through, the pin would reach every node;
    replaced, the nodes would part silently. Exit 2, the link and its target as they were."""
    nodes = repo / "data/nodes"
    nodes.mkdir(parents=True)
    (nodes / "shared.yaml").write_text(OPS_COMMON)
    (nodes / "app1.example.com.yaml").symlink_to("shared.yaml")
    result = invoke(str(project), "--control-repo", str(repo), "--version", "1.4.0-3", "--node", "app1.example.com")
    assert result.exit_code == 2, result.output
    assert "is a symbolic link (to shared.yaml)" in result.stderr
    assert (nodes / "app1.example.com.yaml").readlink() == Path("shared.yaml")
    assert (nodes / "shared.yaml").read_text() == OPS_COMMON


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_a_persons_file_keeps_its_owner_and_group(project: Path, repo: Path) -> None:
    """Root releasing into a checkout that a person owns: the rewritten file keeps its owner, group and mode."""
    path = repo / "data/environments/production.yaml"
    os.chown(path, 1000, 1000)
    path.chmod(0o640)
    release(project, repo, "1.4.0-2", "--env", "production")
    status = path.stat()
    assert (status.st_uid, status.st_gid, status.st_mode & 0o777) == (1000, 1000, 0o640)
    assert "1.4.0-2" in path.read_text()
