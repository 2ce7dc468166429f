"""The wheel ships the template folders and finds them through importlib.resources."""

from __future__ import annotations

import subprocess
import zipfile
from pathlib import Path

import pytest

from tests.support import make_venv

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


def test_installed_wheel_finds_packaged_templates(wheel: Path, tmp_path: Path) -> None:
    """Installed from the wheel (not the checkout), the locator returns the packaged copy."""
    bin_dir = make_venv(tmp_path / "venv")
    subprocess.run([str(bin_dir / "pip"), "install", "-q", str(wheel)], check=True)
    code = "from microdeploy.resources import template_folder as t; print(t('debian_templates'))"
    found = subprocess.run([str(bin_dir / "python"), "-c", code], cwd=tmp_path, check=True,
                           capture_output=True, text=True).stdout.strip()
    assert found.startswith(str(tmp_path / "venv"))
    assert found.endswith("microdeploy/_data/debian_templates")
    new = subprocess.run([str(bin_dir / "microdeploy"), "new", "svc-from-wheel", "--no-input"],
                         cwd=tmp_path, capture_output=True, text=True)
    assert new.returncode == 0, new.stderr
    assert (tmp_path / "svc-from-wheel/src/svc_from_wheel/application.py").is_file()
