"""Debian 13 (trixie) from this Debian 12 machine: the build in trixie's clean root, its QA, a trixie host.

The trixie builds come from the cached build root (made once with mmdebstrap,
as a user's first trixie build makes it); the host images and the piuparts
base of trixie are cached by the test bed like bookworm's.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from debian.deb822 import Changes, Deb822

from microdeploy.testbed.image import ensure_piuparts_base
from tests.aptrepo import add_source, apt, installed_version, publish, serve_repository
from tests.hostcheck import main_pid, proc_status, wait_for
from tests.packages import BuiltService, build_service, new_service
from tests.qa import deb_member, lintian_tags, piuparts

if TYPE_CHECKING:
    # Only for annotations: importing the plugin before pytest loads it would
    # keep pytest from rewriting its asserts.
    from tests.testbed.fixtures import BootHost, NetworkedHosts

pytestmark = [pytest.mark.integration, pytest.mark.host]


@pytest.fixture(scope="session")
def trixie_piuparts_base() -> Path:
    """The cached gzipped trixie minbase for `piuparts -b`."""
    return ensure_piuparts_base(suite="trixie")


def control_fields(deb: Path) -> Deb822:
    """The control fields of a .deb."""
    return Deb822(subprocess.run(["dpkg-deb", "--field", str(deb)], capture_output=True, text=True,
                                 check=True).stdout)


def test_the_trixie_build_carries_its_release(trixie_service: BuiltService, plain_service: BuiltService) -> None:
    """+deb13 sorting above the same commit's +deb12, python3.13 in Depends and the venv, trixie in the changelog."""
    result = trixie_service.result
    assert (result.version, result.dist) == ("0.1.0-1+deb13", "trixie")
    assert plain_service.result.version == "0.1.0-1+deb12"
    newer = subprocess.run(["dpkg", "--compare-versions", result.version, "gt", plain_service.result.version])
    assert newer.returncode == 0
    fields = control_fields(result.deb)
    assert "python3.13" in fields["Depends"].split(", ") and "python3.11" not in fields["Depends"]
    assert "executable = /usr/bin/python3.13" in deb_member(result.deb, "/opt/venvs/orders-api/pyvenv.cfg")
    changes = Changes(result.changes.read_text())
    assert (changes["Distribution"], changes["Version"]) == ("trixie", "0.1.0-1+deb13")


@pytest.mark.parametrize("fixture", ["trixie_service", "trixie_public_service"])
def test_trixie_builds_are_lintian_clean(fixture: str, request: pytest.FixtureRequest) -> None:
    """No lintian error or warning on the trixie builds of the scaffold and of the public Flask project."""
    service: BuiltService = request.getfixturevalue(fixture)
    assert lintian_tags(service.result.deb) == []


def test_a_wheel_s_embedded_library_is_overridden_in_a_trixie_build_too(tmp_path: Path) -> None:
    """PyYAML's extension links libyaml in: the trixie build overrides lintian's embedded-library for that path, as
    trixie's lintian tables say (its build root has lintian), and the package is lintian-clean."""
    project = new_service(tmp_path, "yaml-api")
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('    "gunicorn>=21.2",\n',
                                                       '    "gunicorn>=21.2",\n    "pyyaml==6.0.4",\n'))
    result = build_service(project, tmp_path / "dist", dist="trixie")
    overrides = deb_member(result.deb, "/usr/share/lintian/overrides/yaml-api")
    assert ("embedded-library libyaml [opt/venvs/yaml-api/lib/python3.13/site-packages/yaml/"
            "_yaml.cpython-313-x86_64-linux-gnu.so]") in overrides
    assert lintian_tags(result.deb) == []


def test_public_trixie_build_passes_piuparts(
    trixie_public_service: BuiltService, trixie_piuparts_base: Path, debian_mirror_uri: str
) -> None:
    """piuparts in a trixie chroot: the public project with compiled wheels installs, removes and purges."""
    result = piuparts([trixie_public_service.result.deb], trixie_piuparts_base, debian_mirror_uri,
                      distribution="trixie")
    assert result.returncode == 0, result.stdout[-4000:]
    assert "PASS: All tests." in result.stdout


@pytest.mark.parametrize("fixture", ["trixie_service", "trixie_public_service"])
def test_a_trixie_host_installs_from_the_signed_repository_and_runs_it_hardened(
    fixture: str, request: pytest.FixtureRequest, plain_service: BuiltService, networked_hosts: NetworkedHosts,
    trixie_host_image: Path, tmp_path: Path,
) -> None:
    """Both releases' builds in one repository; a trixie host gets the +deb13 one: active, healthy, hardened."""
    service: BuiltService = request.getfixturevalue(fixture)
    repo = tmp_path / "repo"
    data = publish(repo, plain_service.result.deb, service.result.deb)
    assert data["dists"] == ["bookworm", "trixie"]
    assert {(p["name"], p["dist"]) for p in data["added"]} == {("orders-api", "bookworm"), (service.name, "trixie")}
    host = networked_hosts(1, trixie_host_image)[0]
    assert host.netns is not None
    with serve_repository(repo, host.netns.host_address, tmp_path / "serve.log") as served:
        add_source(host, served)
        assert "Suites: trixie\n" in host.read_file("/etc/apt/sources.list.d/microdeploy.sources")
        apt(host, "update")
        apt(host, "install", "--no-install-recommends", service.name)
    assert installed_version(host, service.name) == service.result.version
    assert host.run(["systemctl", "is-active", service.name]).stdout.strip() == "active"
    # The scaffold answers JSON; the public project's health check a plain 200.
    wait_for(host, ["curl", "-fsS", "--max-time", "5", f"http://127.0.0.1:{service.port}{service.health_path}"],
             timeout=90)
    status = proc_status(host, main_pid(host, service.name))
    # Under the unit's sandbox: no new privileges, a seccomp filter, no capabilities.
    assert (status["NoNewPrivs"], status["Seccomp"], status["CapEff"]) == ("1", "2", "0000000000000000")
    assert host.run(["readlink", f"/opt/venvs/{service.name}/bin/python"]).stdout.strip().endswith("python3.13")


def test_a_bookworm_package_is_refused_on_trixie(plain_service: BuiltService, boot_host: BootHost,
                                                 trixie_host_image: Path) -> None:
    """The +deb12 build needs python3.11, which trixie lacks: apt refuses it and names the dependency."""
    host = boot_host(trixie_host_image)
    host.copy_in(plain_service.result.deb, "/root/bookworm.deb")
    result = host.run(["apt-get", "install", "-y", "/root/bookworm.deb"], check=False, timeout=300)
    assert result.returncode != 0
    assert "python3.11" in result.stdout + result.stderr
    assert host.run(["dpkg-query", "-W", "orders-api"], check=False).returncode != 0
