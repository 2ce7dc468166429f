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


def app_only_rebuild(project: Path, tmp_path: Path, cache: Path) -> dict[str, bytes]:
    """Commit a change to the app alone and build again: what the package holds, which has the change, built on the
    layer the first build saved."""
    greeting = project / "src" / "hello_api" / "greeting.py"
    greeting.write_text(greeting.read_text() + "\nCHANGED = True\n")
    commit(project, "app-only")
    again = payload(build_with(project, tmp_path / "again", cache).deb)
    assert b"CHANGED = True" in again[f"{SITE}/hello_api/greeting.py"]
    assert len(list((cache / "layers").glob("*/venv"))) == 1, "the locked layer is reused"
    return again


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

    assert "flask-3.1.2" in distributions(app_only_rebuild(project, tmp_path, cache))

    pinned = '"gunicorn==23.0.0",'
    pyproject.write_text(pyproject.read_text().replace(pinned, pinned + '\n    "click<8.2",'))
    commit(project, "a dependency, not locked")
    out = tmp_path / "stale"
    with pytest.raises(MicrodeployError) as caught:
        build_with(project, out, cache)
    assert caught.value.exit_code == 2
    assert "uv.lock" in str(caught.value) and "uv lock" in (caught.value.hint or "")
    assert not out.exists() or not any(out.iterdir())


LOCKERS = {
    # pip's own: the project in it as a directory entry (path ".").
    "pip lock": lambda venv, constraints: [str(venv / "pip"), "lock", "--quiet", ".", "-c", str(constraints),
                                           "-o", "pylock.toml"],
    # uv's: the dependencies of pyproject.toml, without the project.
    "uv pip compile": lambda venv, constraints: [find_uv(os.environ) or "uv", "pip", "compile", "--quiet",
                                                 "pyproject.toml", "-c", str(constraints), "--format", "pylock.toml",
                                                 "-o", "pylock.toml"],
}


@pytest.mark.parametrize("locker", LOCKERS)
def test_a_pylock_pins_what_ships_and_what_it_lacks_is_resolved_beside_it(tmp_path: Path, locker: str) -> None:
    """click, which flask allows from 8.1.3, locked at 8.1.8 in a pylock.toml that pip or uv wrote (a resolution
    would take the newest) ships 8.1.8, also after an app-only change that reuses the layer; a dependency added to
    pyproject.toml that the lock does not list goes in beside what it pins; one that its pins exclude fails the
    build with the hint to lock again."""
    project = checkout(tmp_path / "hello-api")
    constraints = tmp_path / "constraints.txt"
    constraints.write_text("click==8.1.8\n")
    bin_dir = Path(os.environ.get("VIRTUAL_ENV", Path(__file__).resolve().parents[2] / ".venv")) / "bin"
    subprocess.run(LOCKERS[locker](bin_dir, constraints), cwd=project, check=True,
                   env={**os.environ, "UV_SYSTEM_CERTS": "1"})
    assert 'name = "click"\nversion = "8.1.8"' in (project / "pylock.toml").read_text()
    commit(project, "locked")
    cache = tmp_path / "cache"

    first = payload(build_with(project, tmp_path / "first", cache).deb)
    assert {"click-8.1.8", "flask-3.1.3", "gunicorn-23.0.0", "hello_api-0.1.0"} <= distributions(first)
    assert not any(name.startswith("/opt/venvs/hello-api/bin/uv-pip") for name in first)

    assert "click-8.1.8" in distributions(app_only_rebuild(project, tmp_path, cache))

    pyproject = project / "pyproject.toml"
    pinned = '"gunicorn==23.0.0",'
    pyproject.write_text(pyproject.read_text().replace(pinned, pinned + '\n    "idna==3.10",'))
    commit(project, "a dependency the lock does not list")
    added = distributions(payload(build_with(project, tmp_path / "added", cache).deb))
    assert {"idna-3.10", "click-8.1.8"} <= added

    pyproject.write_text(pyproject.read_text().replace('"idna==3.10",', '"click<8.1.8",'))
    commit(project, "a dependency that the lock's pins exclude")
    with pytest.raises(MicrodeployError) as caught:
        build_with(project, tmp_path / "stale", cache)
    assert caught.value.exit_code == 1 and "click" in str(caught.value)
    assert "lock again and commit pylock.toml" in (caught.value.hint or "")


def test_a_pylock_pins_what_ships_in_a_trixie_build_too(tmp_path: Path) -> None:
    """The same lock, built for Debian 13 in its build root (its python3.13, uv inside that root): click ships at the
    version the lock pins, not the newest that flask allows."""
    project = checkout(tmp_path / "hello-api")
    constraints = tmp_path / "constraints.txt"
    constraints.write_text("click==8.1.8\n")
    subprocess.run([*LOCKERS["uv pip compile"](Path(), constraints), "--python-version", "3.13"], cwd=project,
                   check=True, env={**os.environ, "UV_SYSTEM_CERTS": "1"})
    commit(project, "locked")
    files = payload(build_with(project, tmp_path / "out", tmp_path / "cache", dist="trixie").deb)
    assert "/opt/venvs/hello-api/lib/python3.13/site-packages/click/__init__.py" in files
    assert {"click-8.1.8", "flask-3.1.3"} <= distributions(files)
