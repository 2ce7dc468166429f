"""Lock files of Poetry, PDM and Pipenv beside a project: the build does not install from them, and says so, with
the command that writes what they pin to requirements.txt (which it installs); not when requirements.txt or a used
uv.lock or pylock.toml is there. Without uv, neither of those is used, and the build says that."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from microdeploy.build.fastpath.installer import choose_installer
from microdeploy.build.fastpath.lock import unused_locks
from microdeploy.pyproject import read_pyproject

PYPROJECT = '[project]\nname = "orders-api"\nversion = "1.0"\ndependencies = ["flask>=3.0"]\n'


def project(tmp_path: Path, *files: str) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    tmp_path.joinpath("pyproject.toml").write_text(PYPROJECT)
    for name in files:
        tmp_path.joinpath(name).write_text("# locked\n")
    return tmp_path


@pytest.mark.parametrize(("lock", "export"), [
    ("poetry.lock", "(poetry export --format requirements.txt --output requirements.txt)"),
    ("pdm.lock", "(pdm export --format requirements --output requirements.txt)"),
    ("Pipfile.lock", "(pipenv requirements > requirements.txt)"),
])
def test_a_lock_the_build_does_not_install_from_is_named_with_its_export(
    tmp_path: Path, lock: str, export: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The warning is logged where the build chooses its installer, with uv and without it."""
    pyproject = read_pyproject(project(tmp_path, lock))
    [warning] = unused_locks(pyproject)
    assert warning.startswith(f"{lock} is not what the package installs: the build resolves the newest versions")
    assert export in warning
    for uv in ("", None):  # MICRODEPLOY_UV empty: dh-virtualenv's pip; unset: the uv installed with microdeploy
        caplog.clear()
        environ = {"MICRODEPLOY_CACHE_DIR": str(tmp_path / "cache"), **({"MICRODEPLOY_UV": uv} if uv == "" else {})}
        with caplog.at_level(logging.WARNING):
            choose_installer(pyproject, name="orders-api", python_minor="3.11", wsgi_server="gunicorn",
                             environ=environ)
        assert [record.getMessage() for record in caplog.records] == [warning]


def test_requirements_txt_or_a_uv_lock_silences_it(tmp_path: Path) -> None:
    """requirements.txt is installed first (an export of the lock, as the warning asks); uv.lock and pylock.toml are
    installed from."""
    assert unused_locks(read_pyproject(project(tmp_path / "exported", "poetry.lock", "requirements.txt"))) == []
    assert unused_locks(read_pyproject(project(tmp_path / "uv", "pdm.lock", "uv.lock"))) == []
    assert unused_locks(read_pyproject(project(tmp_path / "pep751", "pdm.lock", "pylock.toml"))) == []
    assert len(unused_locks(read_pyproject(project(tmp_path / "two", "pdm.lock", "Pipfile.lock")))) == 2


@pytest.mark.parametrize("lock", ["uv.lock", "pylock.toml"])
def test_without_uv_a_lock_it_would_install_from_is_named(tmp_path: Path, lock: str,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    """dh-virtualenv's pip installs from neither: the build says so, once."""
    pyproject = read_pyproject(project(tmp_path, lock))
    with caplog.at_level(logging.WARNING):
        installer = choose_installer(pyproject, name="orders-api", python_minor="3.11", wsgi_server="gunicorn",
                                     environ={"MICRODEPLOY_UV": "", "MICRODEPLOY_CACHE_DIR": str(tmp_path / "c")})
    assert installer.kind == "pip"
    assert [record.getMessage() for record in caplog.records] == [
        f"{lock} is not used without uv: dh-virtualenv's pip resolves the dependencies afresh"]
