"""The Puppet module in puppet/: validated, linted and spec-tested with the real Puppet tools."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from microdeploy.testbed.image import PUPPET_PACKAGES, ensure_image
from tests.support import NOTIFY_READY
from tests.testbed.apt_locks import hold_apt_locks, install_waited, update_retried

if TYPE_CHECKING:
    # Only for annotations: importing the plugin before pytest loads it would
    # keep pytest from rewriting its asserts.
    from tests.testbed.fixtures import BootHost

# The test bed's fixtures (puppet_host_image, boot_host); pytest registers it once.
pytest_plugins = ["tests.testbed.fixtures"]

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
MODULE = REPO / "puppet"
MANIFESTS = sorted((MODULE / "manifests").glob("*.pp")) + sorted((MODULE / "functions").glob("*.pp")) + sorted(
    (MODULE / "types").glob("*.pp"))
TEMPLATES = sorted((MODULE / "templates").glob("*.epp"))

# The Debian package that provides each tool, for the failure message.
APT_PACKAGE_OF = {"puppet": "puppet-agent", "puppet-lint": "puppet-lint", "rspec": "ruby-rspec-puppet",
                  "dpkg-deb": "dpkg", "gpg": "gnupg"}


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
    result = run(["puppet-lint", "--relative", "--fail-on-warnings", "manifests", "functions", "types"])
    assert result.stdout.strip() == ""


def test_every_parameter_is_documented_in_the_manifest_and_reference() -> None:
    """Each class and define parameter has an @param doc comment and a section in REFERENCE.md."""
    reference = (MODULE / "REFERENCE.md").read_text()
    for manifest in sorted((MODULE / "manifests").glob("*.pp")):
        text = manifest.read_text()
        signature = re.search(r"^(?:class|define) ([a-z:_]+) \((.*?)^\) \{", text, re.MULTILINE | re.DOTALL)
        assert signature, manifest
        name, body = signature.groups()
        # One parameter a line: its type (capitalised), then its name, the first $ of the line.
        declared = re.findall(r"^\s+[A-Z][^$\n]*\$([a-z_]+)", body, re.MULTILINE)
        documented = re.findall(r"^# @param ([a-z_]+)$", text, re.MULTILINE)
        assert declared and declared == documented, name
        assert re.search(r"^# @summary \S", text, re.MULTILINE), name
        assert f"`{name}`" in reference, name
        if "@api private" not in text:
            for param in declared:
                assert f'<a name="{param}"></a>`{param}`' in reference, f"{name}: {param}"


def test_metadata_json_describes_a_self_contained_debian_12_and_13_module() -> None:
    """metadata.json is valid JSON with the Forge's required keys, no dependencies, Debian 12 and 13, Puppet 7-8."""
    metadata = json.loads((MODULE / "metadata.json").read_text())
    for key in ("name", "version", "author", "summary", "license", "source", "dependencies"):
        assert metadata.get(key) not in (None, ""), key
    assert re.fullmatch(r"[a-z0-9]+-microdeploy", metadata["name"])
    assert re.fullmatch(r"\d+\.\d+\.\d+", metadata["version"])
    assert metadata["dependencies"] == []
    assert {"operatingsystem": "Debian", "operatingsystemrelease": ["12", "13"]} in metadata["operatingsystem_support"]
    [puppet] = [r for r in metadata["requirements"] if r["name"] == "puppet"]
    assert puppet["version_requirement"] == ">= 7.0.0 < 9.0.0"


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
    # This machine's release's build of each pinned version.
    assert "Package[orders-api]/ensure: current_value 'purged', should be '1.4.0-1+deb12' (noop)" in out
    assert "Package[billing-api]/ensure: current_value 'purged', should be '2.0.1-3+deb12' (noop)" in out
    assert "File[/etc/apt/sources.list.d/microdeploy.sources]/ensure" in out
    assert "File[/etc/orders-api/config.ini]/ensure: current_value [redacted], should be [redacted] (noop)" in out
    assert "Service[billing-api]/ensure: current_value 'stopped', should be 'running' (noop)" in out
    # Facter on this machine cannot read /proc/1/environ; anything else is ours.
    errors = [line for line in result.stderr.splitlines() if "Error" in line and "Facter" not in line]
    assert errors == []
    assert not Path("/etc/orders-api").exists()
    assert not Path("/etc/apt/sources.list.d/microdeploy.sources").exists()


# --- On a booted Debian 12 host: the module applied for real -----------------

SERVICE = "mdtest-svc"

UNIT = f"""\
[Unit]
Description=microdeploy Puppet module test service

[Service]
User={SERVICE}
Group={SERVICE}
# Ready only once its start is logged, so `systemctl restart` (and Puppet)
# return after the line is written and the test can count it at once.
Type=notify
EnvironmentFile=-/etc/{SERVICE}/environment
ExecStart=/usr/bin/python3 /usr/lib/{SERVICE}/serve.py

[Install]
WantedBy=multi-user.target
"""

# Logs one line per start (pid, version, a setting, an environment variable),
# so the test counts restarts and sees what the service read; then tells
# systemd it is ready (sd_notify), so no reader races the line.
SERVE = f"""\
import configparser, os, signal, socket
config = configparser.ConfigParser(interpolation=None)
config.read("/etc/{SERVICE}/config.ini")
with open("/var/log/{SERVICE}/starts.log", "a") as log:
    log.write(" ".join([str(os.getpid()), "@VERSION@", config.get("app", "greeting", fallback="-"),
                        config.get("server", "port", fallback="-"), os.environ.get("GREETING", "-")]) + "\\n")
{NOTIFY_READY}signal.pause()
"""

# Like a microdeploy package: creates its user and its log directory (NAME:adm 2750), and restarts its unit on
# upgrade.
POSTINST = f"""\
#!/bin/sh
set -e
if [ "$1" = configure ]; then
    adduser --system --group --no-create-home --home /nonexistent --quiet {SERVICE}
    install -d -o {SERVICE} -g adm -m 2750 /var/log/{SERVICE}
    systemctl daemon-reload
    systemctl enable {SERVICE}.service
    systemctl restart {SERVICE}.service
fi
"""

PRERM = f"""\
#!/bin/sh
set -e
if [ "$1" = remove ]; then
    systemctl disable --now {SERVICE}.service || true
fi
"""


def build_test_deb(out: Path, version: str) -> Path:
    """A small package shaped like a microdeploy one (user, unit, restart on upgrade)."""
    tree = out / f"tree-{version}"
    files = {
        "DEBIAN/control": (
            f"Package: {SERVICE}\nVersion: {version}\nArchitecture: all\nSection: misc\nPriority: optional\n"
            "Maintainer: microdeploy tests <tests@microdeploy.invalid>\nDepends: python3, adduser\n"
            "Description: microdeploy Puppet module test service\n"
        ),
        "DEBIAN/postinst": POSTINST,
        "DEBIAN/prerm": PRERM,
        f"lib/systemd/system/{SERVICE}.service": UNIT,
        f"usr/lib/{SERVICE}/serve.py": SERVE.replace("@VERSION@", version),
    }
    for name, text in files.items():
        path = tree / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(0o755 if name in ("DEBIAN/postinst", "DEBIAN/prerm") else 0o644)
    deb = out / f"{SERVICE}_{version}_all.deb"
    run(["dpkg-deb", "--root-owner-group", "--build", str(tree), str(deb)], cwd=out)
    return deb


def publish_test_repo(repo: Path, debs: list[Path], gnupghome: Path, suite: str = "bookworm") -> None:
    """A signed SUITE/main APT repository of `debs` (index and InRelease written by hand)."""
    import email.utils
    import hashlib

    (repo / "pool").mkdir(parents=True, exist_ok=True)
    stanzas = []
    for deb in debs:
        shutil.copy2(deb, repo / "pool" / deb.name)
        control = run(["dpkg-deb", "--field", str(deb)], cwd=repo).stdout.rstrip("\n")
        data = deb.read_bytes()
        stanzas.append(f"{control}\nFilename: pool/{deb.name}\nSize: {len(data)}\n"
                       f"SHA256: {hashlib.sha256(data).hexdigest()}\n")
    packages = repo / f"dists/{suite}/main/binary-amd64/Packages"
    packages.parent.mkdir(parents=True, exist_ok=True)
    packages.write_text("\n".join(stanzas))
    index = packages.read_bytes()
    release = repo / f"dists/{suite}/Release"
    release.write_text(
        f"Origin: microdeploy-tests\nSuite: {suite}\nCodename: {suite}\n"
        f"Date: {email.utils.formatdate(usegmt=True)}\nArchitectures: amd64\nComponents: main\n"
        f"SHA256:\n {hashlib.sha256(index).hexdigest()} {len(index)} main/binary-amd64/Packages\n"
    )
    run(["gpg", "--homedir", str(gnupghome), "--batch", "--yes", "--clearsign",
         "--output", str(release.with_name("InRelease")), str(release)], cwd=repo)


@pytest.fixture
def gnupghome(tmp_path: Path) -> Iterator[Path]:
    """A throw-away GnuPG home with an Ed25519 signing key; its agent is stopped afterwards."""
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    run(["gpg", "--homedir", str(home), "--batch", "--passphrase", "", "--quick-generate-key",
         "microdeploy tests <tests@microdeploy.invalid>", "ed25519", "sign", "never"], cwd=tmp_path)
    yield home
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], check=False)


# The test repository, served inside the booted host (its own network namespace).
REPO_URL = "http://127.0.0.1:8080/"
# What puppet apply says when the module refreshed the lists for a version apt did not know.
REFRESHED = "Exec[microdeploy-apt-update-for-versions]/returns: executed successfully"

HOST_HIERA = """\
---
version: 5
defaults:
  datadir: data
  data_hash: yaml_data
hierarchy:
  - name: 'Common'
    path: 'common.yaml'
"""


def host_data(version: str, greeting: str, key: str, port: int = 8001, location: str = REPO_URL) -> str:
    """SPEC §7 Hiera data for the test service, with a signed APT source (the host's own HTTP server unless told)."""
    indented_key = "".join(f"  {line}\n" for line in key.splitlines())
    return (
        "---\n"
        "microdeploy::manage_apt_source: true\n"
        f"microdeploy::apt_location: '{location}'\n"
        f"microdeploy::apt_key_content: |\n{indented_key}"
        "microdeploy::services:\n"
        f"  {SERVICE}:\n"
        f"    ensure: '{version}'\n"
        f"    config_path: /etc/{SERVICE}/config.ini\n"
        f"    log_dir: /var/log/{SERVICE}\n"
        f"    user: {SERVICE}\n"
        f"    port: {port}\n"
        "    settings:\n"
        "      app:\n"
        f"        greeting: {greeting}\n"
        "      database:\n"
        "        password: s3cret-never-shown\n"
        "    environment:\n"
        "      GREETING: 'hello \"world\" $HOME'\n"
    )


@pytest.mark.host
@pytest.mark.parametrize("release", ["bookworm", "trixie"])
def test_module_applies_on_a_booted_host(
    release: str, tmp_path: Path, gnupghome: Path, puppet_host_image: Path, boot_host: BootHost
) -> None:
    """On a booted host (Puppet 7 on bookworm, 8 on trixie) the module installs the pinned version from its
    release's suite, writes config and restarts only on config changes."""
    key = run(["gpg", "--homedir", str(gnupghome), "--armor", "--export"], cwd=tmp_path).stdout
    repo = tmp_path / "repo"
    suffix = "+deb12" if release == "bookworm" else "+deb13"
    # Built as microdeploy builds: the release's +debN; Hiera pins the version without it.
    publish_test_repo(repo, [build_test_deb(tmp_path, f"1.0-1{suffix}")], gnupghome, suite=release)

    host = boot_host(puppet_host_image if release == "bookworm" else ensure_image(PUPPET_PACKAGES, suite=release))
    for part in ("manifests", "functions", "types", "templates", "data", "hiera.yaml", "metadata.json"):
        host.copy_in(MODULE / part, f"/var/tmp/modules/microdeploy/{part}")
    host.copy_in(repo, "/var/tmp/repo")
    # Served over HTTP as repositories are: apt reads a file: source's indexes in place, so a new version would be
    # known without the refresh the module runs for it.
    host.run(["systemd-run", "--unit=apt-repo", "python3", "-m", "http.server", "--bind", "127.0.0.1",
              "--directory", "/var/tmp/repo", REPO_URL.rsplit(":", 1)[1].strip("/")])
    host.run(["curl", "--silent", "--fail", "--retry", "20", "--retry-connrefused", "--retry-delay", "1",
              "--output", "/dev/null", f"{REPO_URL}dists/{release}/InRelease"])
    (tmp_path / "site.pp").write_text("include microdeploy\n")
    host.copy_in(tmp_path / "site.pp", "/var/tmp/site.pp")
    (tmp_path / "hiera.yaml").write_text(HOST_HIERA)
    host.copy_in(tmp_path / "hiera.yaml", "/var/tmp/hiera/hiera.yaml")

    def apply(version: str, greeting: str, port: int = 8001, location: str = REPO_URL,
              fails: bool = False) -> tuple[int, str]:
        (tmp_path / "common.yaml").write_text(host_data(version, greeting, key, port, location))
        host.copy_in(tmp_path / "common.yaml", "/var/tmp/hiera/data/common.yaml")
        result = host.run(["puppet", "apply", "--detailed-exitcodes", "--color=false",
                           "--modulepath=/var/tmp/modules", "--hiera_config=/var/tmp/hiera/hiera.yaml",
                           "/var/tmp/site.pp"], check=False, timeout=300)
        # --detailed-exitcodes: 4 or 6 when a resource failed.
        assert (result.returncode in (4, 6)) == fails and result.returncode in (0, 2, 4, 6), (
            f"puppet apply exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
        assert "s3cret-never-shown" not in result.stdout + result.stderr
        return result.returncode, result.stdout + result.stderr

    def starts() -> list[str]:
        return host.read_file(f"/var/log/{SERVICE}/starts.log").splitlines()

    def main_pid() -> str:
        return host.run(["systemctl", "show", "--value", "--property=MainPID", SERVICE]).stdout.strip()

    # First run: the source, the pinned package, the files, the service.
    code, _ = apply("1.0-1", "hello")
    assert code == 2
    assert host.run(["dpkg-query", "-W", "-f=${Version}", SERVICE]).stdout == f"1.0-1{suffix}"
    sources = host.read_file("/etc/apt/sources.list.d/microdeploy.sources")
    assert "Signed-By: /etc/apt/keyrings/microdeploy-archive-keyring.asc" in sources
    # The suite follows the host's codename fact.
    assert f"Suites: {release}\n" in sources
    stat = host.run(["stat", "-c", "%U:%G %a", f"/etc/{SERVICE}/config.ini", f"/etc/{SERVICE}/environment",
                     f"/etc/{SERVICE}", f"/var/log/{SERVICE}"]).stdout.split("\n")
    # The log directory as the package's postinst makes it (NAME:adm 2750), so Puppet and dpkg agree.
    assert stat[:4] == [f"root:{SERVICE} 640", f"root:{SERVICE} 640", f"root:{SERVICE} 750",
                        f"{SERVICE}:adm 2750"]
    config = host.read_file(f"/etc/{SERVICE}/config.ini")
    assert "[app]\ngreeting = hello\n" in config
    assert "[database]\npassword = s3cret-never-shown\n" in config
    assert "[server]\nport = 8001\n" in config
    assert host.run(["systemctl", "is-active", SERVICE]).stdout.strip() == "active"
    assert host.run(["systemctl", "is-enabled", SERVICE]).stdout.strip() == "enabled"
    # The service read the site config and the environment file (quotes and $ kept).
    assert starts()[-1].split(" ", 1)[1] == f'1.0-1{suffix} hello 8001 hello "world" $HOME'
    assert starts()[-1].split(" ", 1)[0] == main_pid()

    # Nothing changed: nothing to do.
    code, out = apply("1.0-1", "hello")
    assert code == 0, out

    # A setting changed: the file changes (no diff shown) and the service restarts once.
    before = len(starts())
    code, out = apply("1.0-1", "bonjour")
    assert code == 2
    assert f"File[/etc/{SERVICE}/config.ini]/content: changed [redacted] to [redacted]" in out
    assert len(starts()) == before + 1
    assert starts()[-1].split(" ", 1) == [main_pid(), f'1.0-1{suffix} bonjour 8001 hello "world" $HOME']

    # A release published after the last refresh: bumping ensure refreshes the
    # source, upgrades, and the service restarts once (by the package), not twice.
    publish_test_repo(repo, [build_test_deb(tmp_path, f"1.1-1{suffix}")], gnupghome, suite=release)
    host.copy_in(repo, "/var/tmp/repo")
    before = len(starts())
    code, out = apply("1.1-1", "bonjour")
    assert code == 2, out
    assert REFRESHED in out
    assert host.run(["dpkg-query", "-W", "-f=${Version}", SERVICE]).stdout == f"1.1-1{suffix}"
    assert len(starts()) == before + 1, starts()
    assert starts()[-1].split(" ", 1)[1].startswith(f"1.1-1{suffix} bonjour")
    code, out = apply("1.1-1", "bonjour")
    assert code == 0, out

    # A port below 1024, on a host that never had a drop-in for the service: the module's drop-in grants the
    # capability, and systemd reads it before the restart (it does not report a new drop-in directory as needing
    # a reload: the service came back without the capability, and crash-looped on its port).
    code, out = apply("1.1-1", "bonjour", port=80)
    assert code == 2, out
    assert starts()[-1].split(" ", 1) == [main_pid(), f'1.1-1{suffix} bonjour 80 hello "world" $HOME']
    effective = host.run(["sed", "-n", "s/^CapEff:\\s*//p", f"/proc/{main_pid()}/status"]).stdout
    assert int(effective, 16) == 1 << 10  # CAP_NET_BIND_SERVICE
    code, out = apply("1.1-1", "bonjour", port=80)
    assert code == 0, out

    # The host's own apt busy (apt-daily's refresh, unattended-upgrades): the module's refresh for a new version
    # waits for the lists' lock, and its install for dpkg's, instead of failing the run.
    publish_test_repo(repo, [build_test_deb(tmp_path, f"1.2-1{suffix}")], gnupghome, suite=release)
    host.copy_in(repo, "/var/tmp/repo")
    hold_apt_locks(host, until_retried=True)
    code, out = apply("1.2-1", "bonjour", port=80)
    assert code == 2, out
    assert REFRESHED in out
    assert update_retried(host) and install_waited(host), out
    assert host.run(["dpkg-query", "-W", "-f=${Version}", SERVICE]).stdout == f"1.2-1{suffix}"

    # The repository unreachable (nothing answers on the discard port): apt-get update would exit 0 and keep the
    # old lists, and the run fail later on a version apt cannot find; it fails at the refresh, naming the source.
    code, out = apply("1.3-1", "bonjour", port=80, location="http://127.0.0.1:9/repo", fails=True)
    assert "E: Failed to fetch http://127.0.0.1:9/repo/dists/" in out, out
    assert "was not found" not in out, out
    # The next run, nothing changed, refreshes the source again (a refreshonly exec ran only when a file changed,
    # so a source unreachable at its first refresh stayed without lists until it changed again).
    code, out = apply("1.3-1", "bonjour", port=80, location="http://127.0.0.1:9/repo", fails=True)
    assert "Exec[microdeploy-apt-update]/returns: E: Failed to fetch http://127.0.0.1:9/repo/dists/" in out, out
    assert host.run(["dpkg-query", "-W", "-f=${Version}", SERVICE]).stdout == f"1.2-1{suffix}"
    assert host.run(["systemctl", "is-active", SERVICE]).stdout.strip() == "active"

    # Removal keeps the administrator's config and the logs (SPEC §8).
    code, out = apply("absent", "bonjour")
    assert code == 2, out
    status = host.run(["dpkg-query", "-W", "-f=${db:Status-Status}", SERVICE], check=False).stdout
    assert status in ("config-files", "not-installed", "")
    assert host.run(["systemctl", "is-active", SERVICE], check=False).stdout.strip() != "active"
    assert "greeting = bonjour" in host.read_file(f"/etc/{SERVICE}/config.ini")
    assert starts()
    code, out = apply("absent", "bonjour")
    assert code == 0, out
