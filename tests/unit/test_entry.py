"""Start-up: Ctrl-C or SIGTERM while microdeploy still imports its CLI ends as in any command, without a traceback."""

from __future__ import annotations

import signal
import sys
import tomllib
from pathlib import Path

import pytest

import microdeploy
from tests.support import signalled_during_start_up

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
    done = signalled_during_start_up([*STARTS[start], "config", "--help"], signum, tmp_path, [CHECKOUT])
    assert "Traceback" not in done.stderr
    assert (done.returncode, done.stdout, done.stderr) == (130, "", "error: interrupted\n")
