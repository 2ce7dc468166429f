"""What Puppet reads: `puppet lookup --node` over a control repository that `control-repo init` made and people edited.

The repository is used as the `production` environment directly (r10k would
deploy the same tree); the module's own data brings the deep merge. An
offline lookup takes the node's certname from `trusted` in its facts file.
Ops turned on hiera-eyaml for their levels and keep real encrypted secrets
(one-line and multi-line blocks) in the node's file that the canary pin goes
into.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_puppet_e2e import microdeploy, puppet_dirs, tool
from tests.support import ORDERS_API_PYPROJECT, service_project

pytestmark = pytest.mark.integration

PYPROJECT = ORDERS_API_PYPROJECT + """
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


# What ops put into hiera.yaml to read eyaml in the node and common levels.
EYAML_OPTIONS = """\
    lookup_key: eyaml_lookup_key
    options:
      pkcs7_private_key: '{keys}/private.pem'
      pkcs7_public_key: '{keys}/public.pem'
"""


def eyaml(keys: Path, secret: str, *, label: str | None = None) -> str:
    """`eyaml encrypt` of `secret`: a one-line ENC[PKCS7,...] string, or a labelled multi-line block."""
    form = ["-o", "string"] if label is None else ["-o", "block", f"--label={label}"]
    return tool(["eyaml", "encrypt", "-s", secret, f"--pkcs7-public-key={keys / 'public.pem'}", *form]).stdout.strip()


def node_file(keys: Path) -> str:
    """The canary's data file as ops wrote it: comments, a pin, eyaml secrets in both forms."""
    block = eyaml(keys, "line-secret", label="password")
    indented = "\n".join("          " + line for line in block.splitlines())
    return (f"---\n# app1: the canary (INC-1300). Secrets are eyaml.\nmicrodeploy::services:\n  orders-api:\n"
            f"    ensure: \"1.4.0-1\"   # canary\n"
            f"    environment:\n      API_TOKEN: {eyaml(keys, 's3cret-token')}  # rotated 2026-11\n"
            f"    settings:\n      database:\n{indented}\n")


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
    project = service_project(root / "orders-api", PYPROJECT)
    microdeploy("puppet-data", str(project), "--control-repo", str(control), "--version", "1.4.0-1")
    common = control / "data" / "common.yaml"
    common.write_text(common.read_text() + OPS_COMMON)
    keys = root / "keys"
    keys.mkdir()
    tool(["eyaml", "createkeys", f"--pkcs7-private-key={keys / 'private.pem'}",
          f"--pkcs7-public-key={keys / 'public.pem'}"])
    hiera = control / "hiera.yaml"
    options = EYAML_OPTIONS.format(keys=keys)
    hiera.write_text(hiera.read_text().replace("    path: 'nodes/%{trusted.certname}.yaml'\n",
                                               "    path: 'nodes/%{trusted.certname}.yaml'\n" + options))
    node = control / "data" / "nodes" / "app1.example.com.yaml"
    node.parent.mkdir()
    ops_node = node_file(keys)
    node.write_text(ops_node)
    microdeploy("puppet-data", str(project), "--control-repo", str(control), "--node", "app1.example.com",
                "--version", "1.4.0-2")
    # The canary pin changed one line of ops' file; every eyaml byte is as ops wrote it.
    old, new = ops_node.splitlines(), node.read_text().splitlines()
    assert [(a, b) for a, b in zip(old, new, strict=True) if a != b] == [
        ('    ensure: "1.4.0-1"   # canary', '    ensure: "1.4.0-2"   # canary')]
    return root / "environments"


def test_a_node_pin_keeps_commons_port_and_settings(looked_up: dict[str, dict[str, Any]]) -> None:
    """The canary node gets its pinned version and everything else from common and the owned file, deep-merged."""
    service = looked_up["app1.example.com"]
    assert service["ensure"] == "1.4.0-2"
    assert service["port"] == 9001
    assert service["settings"]["app"]["mode"] == "ops"
    assert service["config_path"] == "/etc/orders-api/config.ini"
    # Ops' eyaml secrets in the node file decrypt as before the pin was set.
    assert service["settings"]["database"]["password"] == "line-secret"
    assert service["environment"] == {"API_TOKEN": "s3cret-token"}
    other = looked_up["app2.example.com"]
    assert other["ensure"] == "1.4.0-1"
    node_only = ("ensure", "environment", "settings")
    assert {key: value for key, value in other.items() if key not in node_only} == \
        {key: value for key, value in service.items() if key not in node_only}
    assert other["settings"]["app"] == service["settings"]["app"]


def test_hiera_interpolation_in_a_setting_comes_back_literally(looked_up: dict[str, dict[str, Any]]) -> None:
    """`%{lookup(...)}` and other `%{...}` in a service's settings come back as written, never resolved."""
    settings = looked_up["app2.example.com"]["settings"]["app"]
    assert settings["greeting"] == "%{lookup('ops::db_password')}"
    assert settings["percent"] == "100%{} %%{x} %{literal('%')}"
    assert "s3cret" not in json.dumps(settings)
