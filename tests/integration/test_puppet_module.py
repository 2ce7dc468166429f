"""The Puppet module in puppet/: validated, linted and spec-tested with the real Puppet tools."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
MODULE = REPO / "puppet"
MANIFESTS = sorted((MODULE / "manifests").glob("*.pp")) + sorted((MODULE / "types").glob("*.pp"))
TEMPLATES = sorted((MODULE / "templates").glob("*.epp"))

# The Debian package that provides each tool, for the failure message.
APT_PACKAGE_OF = {"puppet": "puppet-agent", "puppet-lint": "puppet-lint", "rspec": "ruby-rspec-puppet"}


def run(argv: list[str], cwd: Path = MODULE, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run a tool (failing, never skipping, when it is missing) and fail the test if it fails."""
    if shutil.which(argv[0]) is None:
        pytest.fail(f"{argv[0]} not found: install it with `apt-get install {APT_PACKAGE_OF[argv[0]]}` "
                    "(or run `make setup`)")
    result = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)
    assert result.returncode == 0, (
        f"`{shlex.join(argv)}` exited {result.returncode}\n{result.stdout}\n{result.stderr}"
    )
    return result


def puppet_dirs(root: Path) -> list[str]:
    """Options that keep every directory Puppet reads or writes under `root`, off the machine's."""
    options = []
    for setting in ("confdir", "vardir", "codedir", "logdir", "rundir", "publicdir"):
        path = root / setting
        path.mkdir(parents=True, exist_ok=True)
        options.append(f"--{setting}={path}")
    return options


def test_module_has_the_expected_files() -> None:
    """The module has the manifests, templates, data and docs that its class interface needs."""
    for name in ("manifests/init.pp", "manifests/apt_source.pp", "manifests/service.pp",
                 "templates/config.ini.epp", "templates/environment.epp",
                 "templates/microdeploy.sources.epp", "hiera.yaml", "data/common.yaml",
                 "metadata.json", "README.md", "REFERENCE.md"):
        assert (MODULE / name).is_file(), name


def test_manifests_pass_puppet_parser_validate(tmp_path: Path) -> None:
    """Every manifest and type alias parses under `puppet parser validate`."""
    assert MANIFESTS
    run(["puppet", "parser", "validate", *puppet_dirs(tmp_path), *map(str, MANIFESTS)])


def test_templates_pass_puppet_epp_validate(tmp_path: Path) -> None:
    """Every EPP template parses under `puppet epp validate`."""
    assert TEMPLATES
    run(["puppet", "epp", "validate", *puppet_dirs(tmp_path), *map(str, TEMPLATES)])


def test_manifests_are_clean_under_puppet_lint() -> None:
    """puppet-lint reports no warning and no error on the manifests and type aliases."""
    # --relative: the module lives in puppet/, not in a directory named microdeploy/.
    result = run(["puppet-lint", "--relative", "--fail-on-warnings", "manifests", "types"])
    assert result.stdout.strip() == ""


def test_metadata_json_describes_a_self_contained_debian_12_module() -> None:
    """metadata.json is valid JSON with the Forge's required keys, no dependencies, Debian 12 and Puppet >= 7."""
    metadata = json.loads((MODULE / "metadata.json").read_text())
    for key in ("name", "version", "author", "summary", "license", "source", "dependencies"):
        assert metadata.get(key) not in (None, ""), key
    assert re.fullmatch(r"[a-z0-9]+-microdeploy", metadata["name"])
    assert re.fullmatch(r"\d+\.\d+\.\d+", metadata["version"])
    assert metadata["dependencies"] == []
    assert {"operatingsystem": "Debian", "operatingsystemrelease": ["12"]} in metadata["operatingsystem_support"]
    [puppet] = [r for r in metadata["requirements"] if r["name"] == "puppet"]
    assert puppet["version_requirement"].startswith(">= 7")


def test_rspec_puppet_specs_pass(tmp_path: Path) -> None:
    """The rspec-puppet specs run, at least one example, with no failure, and leave the checkout clean."""
    report = tmp_path / "rspec.json"
    run(["rspec", "--format", "progress", "--format", "json", "--out", str(report)])
    summary = json.loads(report.read_text())["summary"]
    assert summary["example_count"] > 0
    assert summary["failure_count"] == 0
    assert summary["pending_count"] == 0
    assert summary["errors_outside_of_examples_count"] == 0
    assert not (MODULE / "spec" / "fixtures").exists()


HIERA_CONFIG = """\
---
version: 5
defaults:
  datadir: data
  data_hash: yaml_data
hierarchy:
  - name: 'Per node'
    path: 'nodes/%{trusted.certname}.yaml'
  - name: 'Common'
    path: 'common.yaml'
"""

# SPEC §7 data at the common level; the node level adds a service and tunes one.
COMMON_DATA = """\
---
microdeploy::services:
  orders-api:
    ensure: '1.4.0-1'
    config_path: /etc/orders-api/config.ini
    log_dir: /var/log/orders-api
    user: orders-api
    port: 8001
    settings:
      app:
        debug: false
"""

NODE_DATA = """\
---
microdeploy::manage_apt_source: true
microdeploy::apt_location: 'http://10.231.1.1:8080/microdeploy'
microdeploy::apt_key_content: |
  -----BEGIN PGP PUBLIC KEY BLOCK-----
  -----END PGP PUBLIC KEY BLOCK-----
microdeploy::services:
  orders-api:
    workers: 4
  billing-api:
    ensure: '2.0.1-3'
    port: 8002
"""


def test_puppet_apply_noop_compiles_services_from_hiera(tmp_path: Path) -> None:
    """`puppet apply --noop` of `include microdeploy` with two Hiera levels plans both services, changing nothing."""
    modules = tmp_path / "modules"
    modules.mkdir()
    (modules / "microdeploy").symlink_to(MODULE)
    hiera = tmp_path / "hiera"
    (hiera / "data" / "nodes").mkdir(parents=True)
    (hiera / "hiera.yaml").write_text(HIERA_CONFIG)
    (hiera / "data" / "common.yaml").write_text(COMMON_DATA)
    (hiera / "data" / "nodes" / "app1.example.com.yaml").write_text(NODE_DATA)
    manifest = tmp_path / "site.pp"
    manifest.write_text("include microdeploy\n")

    result = run([
        "puppet", "apply", "--noop", "--color=false", *puppet_dirs(tmp_path / "puppet"),
        f"--modulepath={modules}", f"--hiera_config={hiera / 'hiera.yaml'}",
        "--certname=app1.example.com", str(manifest),
    ])

    out = result.stdout
    assert "Package[orders-api]/ensure: current_value 'purged', should be '1.4.0-1' (noop)" in out
    assert "Package[billing-api]/ensure: current_value 'purged', should be '2.0.1-3' (noop)" in out
    assert "File[/etc/apt/sources.list.d/microdeploy.sources]/ensure" in out
    assert "File[/etc/orders-api/config.ini]/ensure: current_value [redacted], should be [redacted] (noop)" in out
    assert "Service[billing-api]/ensure: current_value 'stopped', should be 'running' (noop)" in out
    # Facter on this machine cannot read /proc/1/environ; anything else is ours.
    errors = [line for line in result.stderr.splitlines() if "Error" in line and "Facter" not in line]
    assert errors == []
    assert not Path("/etc/orders-api").exists()
    assert not Path("/etc/apt/sources.list.d/microdeploy.sources").exists()
