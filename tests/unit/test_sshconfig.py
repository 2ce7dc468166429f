"""ssh configs with Include lines, as people and Debian write them: deploy follows them as ssh(1) does."""

from __future__ import annotations

from pathlib import Path

import fabric
import paramiko
import pytest

from microdeploy import sshconfig
from microdeploy.errors import EXIT_BAD_INPUT, MicrodeployError
from microdeploy.hosts import Target
from microdeploy.remote import FabricConnector


def load(path: Path | None) -> paramiko.SSHConfig | None:
    """The expanded configuration as paramiko reads it (as deploy's connector hands it to Fabric)."""
    text = sshconfig.expanded_text(path)
    return None if text is None else paramiko.SSHConfig.from_text(text)


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A HOME with ~/.ssh, and a system config of its own (none unless a test writes it)."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home" / ".ssh" / "config.d").mkdir(parents=True)
    (tmp_path / "etc-ssh").mkdir()
    monkeypatch.setattr(sshconfig, "SYSTEM_CONFIG", tmp_path / "etc-ssh" / "ssh_config")
    return tmp_path / "home"


def test_a_users_hosts_in_included_files_apply_and_the_lines_after_the_include_apply_to_every_host(
        home: Path) -> None:
    """~/.ssh/config: `Include config.d/*.conf` (relative to ~/.ssh, files in sorted order), then defaults for
    every host; the fleet's hosts are in the included files, as people keep them."""
    (home / ".ssh" / "config.d" / "20-web.conf").write_text(
        "Host web1\n    HostName 10.0.0.5\n    Port 2222\n    User deployer\n    ProxyJump bastion\n")
    (home / ".ssh" / "config.d" / "10-db.conf").write_text("Host db1\n    User postgres\n")
    (home / ".ssh" / "config").write_text(
        "# my hosts\nInclude config.d/*.conf ~/.ssh/none-yet/*.conf\n\nUserKnownHostsFile ~/.ssh/fleet_hosts\n")
    config = load(None)
    assert config is not None
    web = config.lookup("web1")
    assert (web["hostname"], web["port"], web["user"], web["proxyjump"]) == ("10.0.0.5", "2222", "deployer", "bastion")
    assert config.lookup("db1")["user"] == "postgres"
    # After the included files' blocks, the main file's lines are for every host again, as ssh reads them.
    assert config.lookup("other")["userknownhostsfile"] == "~/.ssh/fleet_hosts"
    assert web["userknownhostsfile"] == "~/.ssh/fleet_hosts"


def test_the_systems_include_is_relative_to_etc_ssh_and_the_users_settings_come_first(home: Path) -> None:
    """Debian's /etc/ssh/ssh_config starts with `Include /etc/ssh/ssh_config.d/*.conf`; a relative one is under
    /etc/ssh. The user's file is read first, and the first value of a setting wins."""
    system = sshconfig.SYSTEM_CONFIG
    (system.parent / "ssh_config.d").mkdir()
    (system.parent / "ssh_config.d" / "fleet.conf").write_text("Host *.internal\n    Port 2200\n    User ops\n")
    system.write_text("Include ssh_config.d/*.conf\nHost *\n    SendEnv LANG LC_*\n")
    (home / ".ssh" / "config").write_text("Host web1.internal\n    User me\n")
    config = load(None)
    assert config is not None
    found = config.lookup("web1.internal")
    assert (found["user"], found["port"], found["sendenv"]) == ("me", "2200", "LANG LC_*")


def test_an_include_inside_a_host_block_applies_to_that_host_only(home: Path, tmp_path: Path) -> None:
    """A file of settings without blocks, included inside `Host web1`: its settings are web1's alone."""
    (tmp_path / "jump.conf").write_text("ProxyJump bastion\nPort 2222\n")
    given = tmp_path / "given_config"
    given.write_text(f"Host web1\n    Include {tmp_path}/jump.conf\n    User deployer\nHost web2\n    User other\n")
    config = load(given)
    assert config is not None
    assert (config.lookup("web1")["proxyjump"], config.lookup("web1")["user"]) == ("bastion", "deployer")
    assert "proxyjump" not in config.lookup("web2")


def test_a_config_without_include_is_left_to_fabric(home: Path, tmp_path: Path) -> None:
    """Nothing to follow: Fabric reads the files itself, as before (None)."""
    given = tmp_path / "given_config"
    given.write_text("Host web1\n    User deployer\n    # Include is only a word in a comment here\n")
    assert load(given) is None
    assert load(None) is None


@pytest.mark.parametrize(("main", "included", "message"), [
    ("Host web1\n    Include {dir}/blocks.conf\n", "Host db1\n    User x\n",
     "is inside a Host or Match block and {dir}/blocks.conf has blocks of its own"),
    ("Include {dir}/blocks.conf\n", "Include {dir}/blocks.conf\n", "Include nested more than 16 deep"),
])
def test_what_paramiko_cannot_follow_is_bad_input_before_any_host_is_touched(
        home: Path, tmp_path: Path, main: str, included: str, message: str) -> None:
    """Blocks inside a block, or a file that includes itself: exit status 2 with what to change."""
    (tmp_path / "blocks.conf").write_text(included.format(dir=tmp_path))
    given = tmp_path / "given_config"
    given.write_text(main.format(dir=tmp_path))
    with pytest.raises(MicrodeployError) as caught:
        FabricConnector(ssh_config=given)
    assert caught.value.exit_code == EXIT_BAD_INPUT
    assert message.format(dir=tmp_path) in caught.value.message


def test_deploys_connection_goes_where_the_included_file_says(
        home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The connection deploy opens for `web1` takes the address, port and user of the included file."""
    (home / ".ssh" / "config.d" / "web.conf").write_text("Host web1\n    HostName 10.0.0.5\n    Port 2222\n"
                                                         "    User deployer\n")
    given = tmp_path / "given_config"
    given.write_text("Include config.d/*.conf\n")
    opened: list[fabric.Connection] = []
    monkeypatch.setattr(fabric.Connection, "open", lambda self: opened.append(self))
    FabricConnector(ssh_config=given, known_hosts=tmp_path / "known_hosts")(Target("web1", "web1"))
    [connection] = opened
    assert (connection.host, connection.port, connection.user) == ("10.0.0.5", 2222, "deployer")
