"""Unit tests of the test bed's bounded waits and tear-down (microdeploy.testbed), without booting anything."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import pytest

from microdeploy.errors import MicrodeployError
from microdeploy.process import Result, Spawned
from microdeploy.testbed import host as host_module
from microdeploy.testbed import network as network_module
from microdeploy.testbed.host import Host
from microdeploy.testbed.network import Netns, delete_netns


class RunningProcess:
    """A systemd-nspawn that is still running."""

    def poll(self) -> int | None:
        """Not exited."""
        return None


def test_a_boot_probe_that_times_out_is_polled_again(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """`systemctl is-system-running` not answering in time (a busy PID 1) is "not yet", not a failed boot."""
    answers: list[str | MicrodeployError] = [
        MicrodeployError("`nsenter ... systemctl is-system-running` did not finish within 15 s"), "starting\n",
        "running\n"]
    calls: list[Sequence[str]] = []

    def run(argv: Sequence[str], **_: Any) -> Result:
        calls.append(argv)
        answer = answers.pop(0)
        if isinstance(answer, MicrodeployError):
            raise answer
        return Result(tuple(argv), 0, answer, "")

    monkeypatch.setattr(host_module, "run", run)
    monkeypatch.setattr("microdeploy.testbed.host.time.sleep", lambda seconds: None)
    host = Host("mdtb-unit", tmp_path, cast(Spawned, RunningProcess()), 4242)
    assert host.wait_until_running(timeout=60) == "running"
    assert len(calls) == 3 and all(argv[-1] == "is-system-running" for argv in calls)


@pytest.mark.parametrize(("ifname", "fails"), [("mdtb-no-such-link", False), ("lo", True)])
def test_a_veth_that_vanishes_during_its_delete_is_deleted(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, ifname: str, fails: bool
) -> None:
    """`ip link delete` failing because the kernel freed the pair meanwhile is fine; failing on a link that
    is still there is an error."""
    monkeypatch.setattr(network_module, "_REGISTRY", tmp_path)
    monkeypatch.setattr(network_module, "run", lambda argv, **_: Result(
        tuple(argv), 2, "", "RTNETLINK answers: No such device"))
    ns = Netns(name="mdtb-unit-no-such-netns", index=254, host_ifname=ifname)
    if fails:
        with pytest.raises(MicrodeployError, match="cannot delete veth lo: RTNETLINK answers: No such device"):
            delete_netns(ns)
    else:
        delete_netns(ns)


def test_masked_units_are_masked_on_the_hosts_command_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """boot(masked=...) hands systemd.mask= to the host's systemd (its kernel command line), after -b."""
    started: list[Sequence[str]] = []

    def spawn(argv: Sequence[str], **_: Any) -> Spawned:
        started.append(argv)
        return cast(Spawned, RunningProcess())

    monkeypatch.setattr(host_module, "spawn", spawn)
    host_module._start_nspawn(tmp_path, "mdtb-unit", None, ["timers.target"])
    host_module._start_nspawn(tmp_path, "mdtb-unit", None, [])
    assert started[0][-3:] == ["mdtb-unit", "-b", "systemd.mask=timers.target"]
    assert started[1][-2:] == ["mdtb-unit", "-b"]
