"""Start-up: Ctrl-C or SIGTERM while microdeploy still imports its CLI ends as in any command, without a traceback."""

from __future__ import annotations

import signal
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import microdeploy
from tests.support import service_project, signalled_while_importing

CHECKOUT = Path(microdeploy.__file__).resolve().parents[1]


def console_script() -> list[str]:
    """What the console script pip makes from pyproject.toml's entry point runs, as a `python -c` argv (the venv's
    own script is the editable install's of another checkout; test_wheel runs an installed one)."""
    with (CHECKOUT / "pyproject.toml").open("rb") as file:
        entry = tomllib.load(file)["project"]["scripts"]["microdeploy"]
    module, function = entry.split(":")
    return [sys.executable, "-c", f"import sys\nfrom {module} import {function}\nsys.exit({function}())"]


STARTS = {
    "python -m microdeploy": [sys.executable, "-m", "microdeploy"],
    "console script": console_script(),
}


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("start", STARTS, ids=list(STARTS))
def test_a_signal_during_start_up_is_an_interruption_without_traceback(tmp_path: Path, start: str,
                                                                         signum: signal.Signals) -> None:
    """Ctrl-C (SIGINT) or a CI job's abort (SIGTERM) while the CLI is still being imported: `error: interrupted`
    and exit status 130, as later in every command, not a KeyboardInterrupt traceback or death by the signal."""
    done = signalled_while_importing([*STARTS[start], "config", "--help"], signum, tmp_path, [CHECKOUT])
    assert "Traceback" not in done.stderr
    assert (done.returncode, done.stdout, done.stderr) == (130, "", "error: interrupted\n")


def test_sigterm_while_a_command_runs_is_an_interruption_and_writes_nothing(tmp_path: Path) -> None:
    """SIGTERM while puppet-data works (here: as it imports its Hiera module) ends it as Ctrl-C does, in this
    command as in build, publish, deploy and check: `error: interrupted`, exit status 130, no file (it ended by
    the signal, and a half-written file would have stayed)."""
    project = service_project(tmp_path / "orders-api", '[project]\nname = "orders-api"\nversion = "1.0.0"\n')
    output = tmp_path / "data" / "orders-api.yaml"
    argv = [sys.executable, "-m", "microdeploy", "puppet-data", str(project), "--version", "1.0.0-1", "-o",
            str(output)]
    done = signalled_while_importing(argv, signal.SIGTERM, tmp_path, [CHECKOUT], module="microdeploy.hiera")
    assert (done.returncode, done.stdout, done.stderr) == (130, "", "error: interrupted\n")
    assert not (tmp_path / "data").exists()


def test_repo_serve_stopped_by_sigterm_exits_0(tmp_path: Path) -> None:
    """`repo serve` under systemd or a CI job ends with SIGTERM, as with Ctrl-C: it stops serving, exit 0, no
    traceback (not an interruption of work under way)."""
    (tmp_path / "g" / "published").mkdir(parents=True)
    (tmp_path / "public").symlink_to("g/published")
    with subprocess.Popen([sys.executable, "-m", "microdeploy", "repo", "serve", str(tmp_path), "--port", "0"],
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True) as server:
        try:
            assert server.stdout is not None
            assert server.stdout.readline().startswith("Serving ")
            server.send_signal(signal.SIGTERM)
            _, err = server.communicate(timeout=60)
        finally:
            if server.poll() is None:
                server.kill()
    assert (server.returncode, err) == (0, "")
