"""A project managed with uv: the package installs what its uv.lock pins, and a stale lock stops the build."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from microdeploy.build.fastpath.installer import find_uv
from microdeploy.errors import MicrodeployError
from tests.integration.test_build_caches import build_with, checkout, commit, payload

pytestmark = pytest.mark.integration

SITE = "/opt/venvs/hello-api/lib/python3.11/site-packages"


def uv(*args: str, cwd: Path) -> None:
    """uv as microdeploy finds it (the one installed with it)."""
    subprocess.run([find_uv(os.environ) or "uv", *args], cwd=cwd, check=True,
                   env={**os.environ, "UV_SYSTEM_CERTS": "1"})


def distributions(files: dict[str, bytes]) -> set[str]:
    """The dist-info directories the package ships, as name-version."""
    return {name.split("/")[-2].removesuffix(".dist-info") for name in files if name.endswith(".dist-info/METADATA")}


def test_the_lock_pins_what_ships_and_a_stale_lock_exits_2_writing_nothing(tmp_path: Path) -> None:
    """flask allowed from 3.0 but locked at 3.1.2 ships 3.1.2 (a resolution would take the newest), also after an
    app-only change; a dependency added to pyproject.toml without `uv lock` stops the build with exit status 2
    and leaves the output directory as it was."""
    project = checkout(tmp_path / "hello-api")
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"flask==3.1.3"', '"flask>=3.0"'))
    uv("lock", "--quiet", "--upgrade-package", "flask==3.1.2", cwd=project)
    commit(project, "locked")
    cache = tmp_path / "cache"

    first = payload(build_with(project, tmp_path / "first", cache).deb)
    assert {"flask-3.1.2", "gunicorn-23.0.0"} <= distributions(first)

    greeting = project / "src" / "hello_api" / "greeting.py"
    greeting.write_text(greeting.read_text() + "\nCHANGED = True\n")
    commit(project, "app-only")
    again = payload(build_with(project, tmp_path / "again", cache).deb)
    assert "flask-3.1.2" in distributions(again)
    assert b"CHANGED = True" in again[f"{SITE}/hello_api/greeting.py"]
    assert len(list((cache / "layers").glob("*/venv"))) == 1, "the locked layer is reused"

    pinned = '"gunicorn==23.0.0",'
    pyproject.write_text(pyproject.read_text().replace(pinned, pinned + '\n    "click<8.2",'))
    commit(project, "a dependency, not locked")
    out = tmp_path / "stale"
    with pytest.raises(MicrodeployError) as caught:
        build_with(project, out, cache)
    assert caught.value.exit_code == 2
    assert "uv.lock" in str(caught.value) and "uv lock" in (caught.value.hint or "")
    assert not out.exists() or not any(out.iterdir())
