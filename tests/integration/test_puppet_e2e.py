"""End to end: `control-repo init`, `puppet-data`, r10k and `puppet apply` of the role, with the real tools.

The control repository (and, in one test, a module repository of its own)
are local git repositories; r10k deploys the production environment from
them over file:// into a temporary environment path, exactly as it would on
a Puppet server. The host test applies the environment of the repository
that `control-repo init` made, as it is (the module vendored in it), on a
booted Debian 12 host that installs a real microdeploy package from a signed
repository served on the host's 10.231.N.1 link.
"""

from __future__ import annotations

import difflib
import itertools
import json
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from ruamel.yaml import YAML

from microdeploy.controlrepo import MODULE_PARTS
from microdeploy.repo import PublishSettings, publish
from tests.aptrepo import ServedRepo, installed_version, serve_repository
from tests.hostcheck import health, main_pid

if TYPE_CHECKING:
    from microdeploy.testbed.host import Host
    from tests.packages import BuiltService
    from tests.testbed.fixtures import NetworkedHosts

pytest_plugins = ["tests.testbed.fixtures"]

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
MODULE = REPO / "puppet"
# git without the user's configuration, as on a fresh CI agent.
GIT_ENV = {
    "GIT_AUTHOR_NAME": "ops", "GIT_AUTHOR_EMAIL": "ops@example.com",
    "GIT_COMMITTER_NAME": "ops", "GIT_COMMITTER_EMAIL": "ops@example.com", "GIT_CONFIG_NOSYSTEM": "1",
}
HOST_ENVIRONMENTS = "/var/tmp/environments"
APPLY_TIMEOUT = 600.0

# What ops wrote in common.yaml: a key of their own, comments, an override of a packaged default
# and a setting of their own; puppet-data must keep every byte, and the host must get the merge.
FOREIGN = """
# ops: the banner of every host
profile::motd: 'Managed by Puppet'  # keep me
microdeploy::services:
  orders-api:
    workers: 3  # INC-1234
    settings:
      app:
        owner: "%{literal('%')}{ops}"
"""


def tool(argv: list[str], cwd: Path | None = None, env: dict[str, str] | None = None,
         timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run a real tool on this machine; fail the test (never skip) if it is missing or fails."""
    if shutil.which(argv[0]) is None:
        pytest.fail(f"{argv[0]} not found: run `make setup`")
    result = subprocess.run(argv, cwd=cwd, env={**os.environ, **GIT_ENV, **(env or {})}, capture_output=True,
                            text=True, timeout=timeout, check=False, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, f"`{shlex.join(argv)}` exited {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


def microdeploy(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The real CLI in a child process, as CI runs it; it must succeed."""
    return tool([sys.executable, "-m", "microdeploy", *args], env=env)


def commit(repo: Path, message: str) -> None:
    """Commit everything in `repo`."""
    tool(["git", "-C", str(repo), "add", "--all"])
    tool(["git", "-C", str(repo), "commit", "--quiet", "-m", message])


def puppet_dirs(root: Path) -> list[str]:
    """Options that keep what Puppet reads and writes on this machine under `root`."""
    options = []
    for setting in ("confdir", "vardir", "codedir", "logdir", "rundir", "publicdir"):
        (root / setting).mkdir(parents=True, exist_ok=True)
        options.append(f"--{setting}={root / setting}")
    return options


@pytest.fixture
def module_repo(tmp_path: Path) -> tuple[str, str]:
    """The Puppet module as its own git repository (a copy of puppet/); its file:// URL and commit."""
    path = tmp_path / "puppet-microdeploy"
    path.mkdir()
    for part in MODULE_PARTS:
        source = MODULE / part
        if source.is_dir():
            shutil.copytree(source, path / part)
        else:
            shutil.copy2(source, path / part)
    tool(["git", "init", "--quiet", "--initial-branch=main", str(path)])
    commit(path, "microdeploy module")
    sha = tool(["git", "-C", str(path), "rev-parse", "HEAD"]).stdout.strip()
    return f"file://{path}", sha


@pytest.fixture
def control(tmp_path: Path) -> Path:
    """A control repository made by `control-repo init` (module vendored), deploying into tmp_path/environments."""
    path = tmp_path / "control"
    microdeploy("control-repo", "init", str(path),
                "--basedir", str(tmp_path / "environments"), "--cachedir", str(tmp_path / "r10k-cache"))
    return path


@pytest.fixture
def control_with_module_repo(tmp_path: Path, module_repo: tuple[str, str]) -> Path:
    """A control repository made by `control-repo init` whose Puppetfile pins a module repository."""
    url, sha = module_repo
    path = tmp_path / "control"
    microdeploy("control-repo", "init", str(path), "--module-url", url, "--module-ref", sha,
                "--basedir", str(tmp_path / "environments"), "--cachedir", str(tmp_path / "r10k-cache"))
    return path


def r10k_deploy(control: Path) -> Path:
    """`r10k deploy environment production --modules` with the repository's r10k.yaml; the environment's path."""
    tool(["r10k", "deploy", "environment", "production", "--modules", "-c", str(control / "r10k.yaml")],
         cwd=control, timeout=120)
    config = YAML(typ="safe").load((control / "r10k.yaml").read_text())
    return Path(config["sources"]["control"]["basedir"]) / "production"


def test_deployed_environment_compiles_data_from_all_three_levels(tmp_path: Path,
                                                                   control_with_module_repo: Path) -> None:
    """r10k deploys the pinned module; `puppet apply --noop` of site.pp combines common, environment and node data."""
    control = control_with_module_repo
    project = tmp_path / "orders-api"
    project.mkdir()
    (project / "pyproject.toml").write_text('[project]\nname = "orders-api"\nversion = "1.4.0"\n'
                                            '[tool.microdeploy.settings.app]\ngreeting = "a: b"\n')
    other = tmp_path / "billing-api"
    other.mkdir()
    (other / "pyproject.toml").write_text('[project]\nname = "billing-api"\nversion = "2.0.1"\n')
    microdeploy("puppet-data", str(project), "--control-repo", str(control), "--version", "1.4.0-1")
    microdeploy("puppet-data", str(other), "--control-repo", str(control), "--env", "production",
                "--version", "2.0.1-3")
    microdeploy("puppet-data", str(project), "--control-repo", str(control), "--node", "app1.example.com",
                "--version", "1.4.1-1")
    commit(control, "release")

    environment = r10k_deploy(control)
    module = environment / "modules" / "microdeploy"
    assert (module / "manifests" / "service.pp").read_text() == (MODULE / "manifests" / "service.pp").read_text()
    assert sorted(p.name for p in environment.iterdir() if p.suffix == ".json") == [".r10k-deploy.json"]

    tool(["puppet", "parser", "validate", *puppet_dirs(tmp_path / "p1"), str(environment / "manifests/site.pp"),
          *map(str, sorted((environment / "site-modules").rglob("*.pp")))])
    tool(["puppet-lint", "--fail-on-warnings", str(environment / "site-modules"),
          str(environment / "manifests")])
    result = tool(["puppet", "apply", "--noop", "--color=false", *puppet_dirs(tmp_path / "p2"),
                   f"--environmentpath={environment.parent}", "--environment=production",
                   "--certname=app1.example.com", str(environment / "manifests/site.pp")])
    out = result.stdout
    # The node's version wins over common's; the environment adds billing-api.
    # The pins carry no release: the module installs this machine's release's build (+deb12).
    assert "Package[orders-api]/ensure: current_value 'purged', should be '1.4.1-1+deb12' (noop)" in out
    assert "Package[billing-api]/ensure: current_value 'purged', should be '2.0.1-3+deb12' (noop)" in out
    assert "Service[orders-api]/ensure: current_value 'stopped', should be 'running' (noop)" in out
    assert "Stage[main]/Microdeploy" in out
    warnings = [line for line in result.stderr.splitlines() if line.startswith(("Warning", "Error"))
                and "Facter" not in line]
    assert warnings == []
    assert not Path("/etc/orders-api").exists()


# --- On a booted Debian 12 host ----------------------------------------------------


@pytest.fixture
def served_repo(tmp_path: Path) -> Iterator[Callable[[Path, str], ServedRepo]]:
    """A factory: serve a published repository on an address; every server is stopped by pid afterwards."""
    logs = itertools.count()
    with ExitStack() as servers:

        def _serve(repo: Path, bind: str) -> ServedRepo:
            log = tmp_path / f"serve-{next(logs)}.log"
            return servers.enter_context(serve_repository(repo, bind, log))

        yield _serve


def apply(host: Host, environment: Path) -> tuple[int, str]:
    """Copy the deployed environment into the host and `puppet apply` its site.pp there; exit code and output."""
    host.run(["rm", "-rf", f"{HOST_ENVIRONMENTS}/production"])
    host.copy_in(environment, f"{HOST_ENVIRONMENTS}/production")
    result = host.run(["puppet", "apply", "--detailed-exitcodes", "--color=false",
                       f"--environmentpath={HOST_ENVIRONMENTS}", "--environment=production",
                       f"{HOST_ENVIRONMENTS}/production/manifests/site.pp"], check=False, timeout=APPLY_TIMEOUT)
    assert result.returncode in (0, 2), f"puppet apply failed:\n{result.stdout}\n{result.stderr}"
    return result.returncode, result.stdout + result.stderr


@pytest.mark.host
def test_puppet_apply_of_the_role_installs_configures_pins_and_upgrades_the_service(
    tmp_path: Path, control: Path, plain_service: BuiltService, plain_service_v2: BuiltService,
    puppet_host_image: Path, networked_hosts: NetworkedHosts, served_repo: Callable[[Path, str], ServedRepo],
) -> None:
    """The environment r10k deploys from `control-repo init`'s repository installs, configures, holds, moves a pin."""
    name, version, newer = plain_service.name, plain_service.result.version, plain_service_v2.result.version
    port = 8001
    # Publish the real package into a signed repository, serve it on the host's link.
    published = publish(PublishSettings(repo=tmp_path / "apt"), [plain_service.result.deb])
    [host] = networked_hosts(1, image=puppet_host_image)
    assert host.netns is not None
    server = served_repo(tmp_path / "apt", host.netns.host_address)

    # Ops' own data in common.yaml, committed before microdeploy touches it.
    common = control / "data" / "common.yaml"
    common.write_text(common.read_text() + FOREIGN)
    commit(control, "ops: motd, workers, owner")
    ops_common = common.read_bytes()

    def release(*extra: str) -> dict[str, Any]:
        result = microdeploy(
            "puppet-data", str(plain_service.project), "--control-repo", str(control), "--json",
            "--port", str(port), "--setting", "app.greeting=%{lookup('profile::motd')}",
            # The text typed: config.ini gets 1.10 (TOML read the float 1.1).
            "--setting", "app.release=1.10",
            "--apt-location", server.url, "--apt-key", str(published.armored_key), *extra,
            env={"BUILD_NUMBER": ""},
        )
        commit(control, f"{name}: release")
        report: dict[str, Any] = json.loads(result.stdout)
        return report

    # Without --version, puppet-data pins what `microdeploy build` built, without its release's +deb12:
    # the module installs each host's release's build of that version.
    pinned = version.removesuffix("+deb12")
    assert pinned != version
    report = release()
    assert report["services"][name]["ensure"] == pinned
    assert report["path"] == str(control / "data" / "services" / f"{name}.yaml")
    assert common.read_bytes() == ops_common
    apt = YAML(typ="safe").load((control / "data" / "microdeploy.yaml").read_text())
    assert apt["microdeploy::manage_apt_source"] is True and apt["microdeploy::apt_location"] == server.url

    environment = r10k_deploy(control)
    assert (environment / "site-modules" / "microdeploy" / "manifests" / "init.pp").is_file()

    # First apply: source, package at exactly the Hiera version, config from all layers, running service.
    code, out = apply(host, environment)
    assert code == 2, out
    assert installed_version(host, name) == version
    sources = host.read_file("/etc/apt/sources.list.d/microdeploy.sources")
    assert f"URIs: {server.url}\n" in sources
    stat = host.run(["stat", "-c", "%U:%G %a", f"/etc/{name}/config.ini", f"/etc/{name}",
                     f"/var/log/{name}"]).stdout.splitlines()
    assert stat == [f"root:{name} 640", f"root:{name} 750", f"{name}:adm 2750"]
    config = host.read_file(f"/etc/{name}/config.ini")
    # Hiera interpolated nothing from the service's settings; ops' override and their own setting are there;
    # --setting's values are as typed, over the project's own settings (its debug and logging level stay).
    assert "[app]\ndebug = false\ngreeting = %{lookup('profile::motd')}\nowner = %{ops}\nrelease = 1.10\n" in config
    assert "[logging]\nlevel = INFO\n" in config
    assert f"[server]\nbind = 127.0.0.1\nport = {port}\nworkers = 3\n" in config
    assert host.run(["systemctl", "is-active", name]).stdout.strip() == "active"
    assert health(host, port, plain_service.health_path, timeout=90)["status"] == "ok"
    first_pid = main_pid(host, name)
    assert first_pid > 0

    # Nothing changed: a second apply changes nothing.
    code, out = apply(host, environment)
    assert code == 0, out
    assert main_pid(host, name) == first_pid

    # A newer version in the repository: apt knows it, and `apt-get upgrade` keeps the pin.
    publish(PublishSettings(repo=tmp_path / "apt"), [plain_service_v2.result.deb])
    host.run(["apt-get", "update", "-o", "Dir::Etc::SourceList=/etc/apt/sources.list.d/microdeploy.sources",
              "-o", "Dir::Etc::SourceParts=-"], timeout=120)
    assert "Package: " in host.run(["apt-cache", "show", f"{name}={newer}"]).stdout
    host.run(["apt-get", "upgrade", "-y", "-q"], timeout=300)
    assert installed_version(host, name) == version
    assert main_pid(host, name) == first_pid

    # Bumping the pin in Hiera upgrades on the next apply; the owned file's diff is the pin line.
    owned = control / "data" / "services" / f"{name}.yaml"
    before = owned.read_text()
    release("--version", newer)
    diff = [line for line in difflib.unified_diff(before.splitlines(), owned.read_text().splitlines(), n=0,
                                                   lineterm="") if line[:1] in "+-" and line[:3] not in "+++---"]
    assert diff == [f"-    ensure: '{pinned}'", f"+    ensure: '{newer}'"]
    environment = r10k_deploy(control)
    code, out = apply(host, environment)
    assert code == 2, out
    assert installed_version(host, name) == newer
    assert f"Pin: version {newer}\n" in host.read_file(f"/etc/apt/preferences.d/microdeploy-{name}.pref")
    assert host.run(["systemctl", "is-active", name]).stdout.strip() == "active"
    assert health(host, port, plain_service.health_path, timeout=90)["status"] == "ok"
    assert main_pid(host, name) not in (0, first_pid)

    # Pinning the previous version again downgrades on the next apply (a rollback through Hiera).
    release("--version", version)
    code, out = apply(host, r10k_deploy(control))
    assert code == 2, out
    assert installed_version(host, name) == version
    assert f"Pin: version {version}\n" in host.read_file(f"/etc/apt/preferences.d/microdeploy-{name}.pref")
    assert health(host, port, plain_service.health_path, timeout=90)["status"] == "ok"
