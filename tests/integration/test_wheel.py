"""The wheel ships the template folders and finds them through importlib.resources."""

from __future__ import annotations

import signal
import subprocess
import zipfile
from pathlib import Path

import pytest

from tests.support import make_venv, signalled_while_importing

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built from an sdist, the way a release is built."""
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([str(REPO / ".venv/bin/python"), "-m", "build", "--outdir", str(out), str(REPO)],
                   check=True, capture_output=True)
    [wheel] = out.glob("microdeploy-*.whl")
    return wheel


def test_wheel_contains_template_folders(wheel: Path) -> None:
    """Every top-level template folder and the service template are inside the wheel."""
    names = zipfile.ZipFile(wheel).namelist()
    for folder in ("debian_templates", "puppet", "r10k", "jenkins"):
        assert any(n.startswith(f"microdeploy/_data/{folder}/") for n in names), folder
    assert "microdeploy/service_template/src/{{ module }}/application.py.j2" in names
    assert "microdeploy/py.typed" in names


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with the wheel installed; its bin directory."""
    bin_dir = make_venv(tmp_path_factory.mktemp("installed") / "venv")
    subprocess.run([str(bin_dir / "pip"), "install", "-q", str(wheel)], check=True)
    return bin_dir


def test_installed_wheel_finds_packaged_templates(installed: Path, tmp_path: Path) -> None:
    """Installed from the wheel (not the checkout), the locator returns the packaged copy."""
    bin_dir = installed
    code = "from microdeploy.resources import template_folder as t; print(t('debian_templates'))"
    found = subprocess.run([str(bin_dir / "python"), "-c", code], cwd=tmp_path, check=True,
                           capture_output=True, text=True).stdout.strip()
    assert found.startswith(str(bin_dir.parent))
    assert found.endswith("microdeploy/_data/debian_templates")
    new = subprocess.run([str(bin_dir / "microdeploy"), "new", "svc-from-wheel", "--no-input"],
                         cwd=tmp_path, capture_output=True, text=True)
    assert new.returncode == 0, new.stderr
    assert (tmp_path / "svc-from-wheel/src/svc_from_wheel/application.py").is_file()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_installed_console_script_stops_cleanly_during_start_up(installed: Path, tmp_path: Path,
                                                                  signum: signal.Signals) -> None:
    """The console script pip wrote from the entry point, stopped while it imports the CLI: `error: interrupted`,
    exit status 130, no traceback (its import of microdeploy.cli was outside every handler)."""
    done = signalled_while_importing([str(installed / "microdeploy"), "config", "--help"], signum, tmp_path)
    assert "Traceback" not in done.stderr
    assert (done.returncode, done.stdout, done.stderr) == (130, "", "error: interrupted\n")
