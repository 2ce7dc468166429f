"""What Puppet reads: `puppet lookup --node` over a control repository that `control-repo init` made and people edited.

The repository is used as the `production` environment directly (r10k would
deploy the same tree); the module's own data brings the deep merge. An
offline lookup takes the node's certname from `trusted` in its facts file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_puppet_e2e import microdeploy, puppet_dirs, tool

pytestmark = pytest.mark.integration

PYPROJECT = """\
[project]
name = "orders-api"
version = "1.4.0"

[tool.microdeploy]
port = 8001

[tool.microdeploy.settings.app]
greeting = "%{lookup('ops::db_password')}"
mode = "packaged"
percent = "100%{} %%{x} %{literal('%')}"
"""

# What ops wrote in common.yaml: a secret, and overrides of the port and one setting.
OPS_COMMON = """
ops::db_password: 's3cret'
microdeploy::services:
  orders-api:
    port: 9001  # INC-1234
    settings:
      app:
        mode: 'ops'
"""


def lookup(tmp_path: Path, environments: Path, node: str) -> dict[str, Any]:
    """`puppet lookup microdeploy::services` for `node` in the production environment, as JSON."""
    facts = tmp_path / f"{node}.facts.yaml"
    facts.write_text(f"trusted:\n  certname: {node}\n  authenticated: remote\n  extensions: {{}}\n")
    result = tool(["puppet", "lookup", *puppet_dirs(tmp_path / "puppet"), f"--environmentpath={environments}",
                   "--environment=production", f"--node={node}", f"--facts={facts}", "--render-as=json",
                   "microdeploy::services"])
    services: dict[str, Any] = json.loads(result.stdout)
    return services


@pytest.fixture(scope="module")
def looked_up(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """orders-api as Puppet sees it on the canary node app1 and on app2, from a repository set up as below."""
    environments = control_repository(tmp_path_factory)
    root = tmp_path_factory.mktemp("puppet")
    return {node: lookup(root, environments, node)["orders-api"] for node in ("app1.example.com", "app2.example.com")}


def control_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A control repository as the production environment: a release, ops' overrides, a node pin."""
    root = tmp_path_factory.mktemp("lookup")
    control = root / "environments" / "production"
    microdeploy("control-repo", "init", str(control))
    project = root / "orders-api"
    project.mkdir()
    (project / "pyproject.toml").write_text(PYPROJECT)
    microdeploy("puppet-data", str(project), "--control-repo", str(control), "--version", "1.4.0-1")
    common = control / "data" / "common.yaml"
    common.write_text(common.read_text() + OPS_COMMON)
    microdeploy("puppet-data", str(project), "--control-repo", str(control), "--node", "app1.example.com",
                "--version", "1.4.0-2")
    return root / "environments"


def test_a_node_pin_keeps_commons_port_and_settings(looked_up: dict[str, dict[str, Any]]) -> None:
    """The canary node gets its pinned version and everything else from common and the owned file, deep-merged."""
    service = looked_up["app1.example.com"]
    assert service["ensure"] == "1.4.0-2"
    assert service["port"] == 9001
    assert service["settings"]["app"]["mode"] == "ops"
    assert service["config_path"] == "/etc/orders-api/config.ini"
    other = looked_up["app2.example.com"]
    assert other["ensure"] == "1.4.0-1"
    assert {key: value for key, value in other.items() if key != "ensure"} == \
        {key: value for key, value in service.items() if key != "ensure"}


def test_hiera_interpolation_in_a_setting_comes_back_literally(looked_up: dict[str, dict[str, Any]]) -> None:
    """`%{lookup(...)}` and other `%{...}` in a service's settings come back as written, never resolved."""
    settings = looked_up["app2.example.com"]["settings"]["app"]
    assert settings["greeting"] == "%{lookup('ops::db_password')}"
    assert settings["percent"] == "100%{} %%{x} %{literal('%')}"
    assert "s3cret" not in json.dumps(settings)
