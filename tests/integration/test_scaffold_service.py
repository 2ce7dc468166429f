"""A scaffolded service installs, passes its own tests and serves its health check."""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from microdeploy.cli import main
from tests.support import free_port, make_venv, stop, wait_for_json

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", params=[False, True], ids=["plain", "with-db"])
def installed_service(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path, bool]:
    """`microdeploy new` then `pip install ./orders-api[test]` in a new virtualenv."""
    with_db: bool = request.param
    root = tmp_path_factory.mktemp("scaffold")
    args = ["new", "orders-api", "--dir", str(root / "orders-api"), "--no-input"]
    result = CliRunner().invoke(main, [*args, "--with-db"] if with_db else args)
    assert result.exit_code == 0, result.output
    bin_dir = make_venv(root / "venv")
    subprocess.run([str(bin_dir / "pip"), "install", "-q", f"{root / 'orders-api'}[test]"], check=True)
    return root / "orders-api", bin_dir, with_db


def test_generated_tests_pass(installed_service: tuple[Path, Path, bool]) -> None:
    """The service's own pytest suite passes as generated."""
    project, bin_dir, _ = installed_service
    result = subprocess.run([str(bin_dir / "pytest"), "-q", "-p", "no:cacheprovider"], cwd=project,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert " passed" in result.stdout and "failed" not in result.stdout


def test_gunicorn_serves_health(installed_service: tuple[Path, Path, bool], tmp_path: Path) -> None:
    """Served by gunicorn from the installed package, GET /health is 200 JSON."""
    _, bin_dir, with_db = installed_service
    env = {"ORDERS_API_CONFIG": str(tmp_path / "absent.ini"), "ORDERS_API_LOGGING__DIR": str(tmp_path),
           "PATH": "/usr/bin:/bin"}
    if with_db:
        env["ORDERS_API_DATABASE__URI"] = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    port = free_port()
    server = subprocess.Popen(
        [str(bin_dir / "gunicorn"), "--bind", f"127.0.0.1:{port}", "--workers", "1",
         "orders_api.application:create_app()"],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        status, body = wait_for_json(f"http://127.0.0.1:{port}/health", server)
    finally:
        stop(server)
    if with_db:
        # the schema is missing until `db upgrade`, but SELECT 1 still answers
        assert body["database"] == "ok"
    assert status == 200
    assert body["status"] == "ok" and body["version"] == "0.1.0"
    assert "orders-api configured" in (tmp_path / "app.log").read_text()


def test_manage_db_upgrade_creates_the_schema(installed_service: tuple[Path, Path, bool], tmp_path: Path) -> None:
    """`orders-api-manage db upgrade` runs the shipped migration (with --with-db), and routes lists the API."""
    _, bin_dir, with_db = installed_service
    database = tmp_path / "orders.sqlite3"
    env = {"ORDERS_API_CONFIG": "/nonexistent", "ORDERS_API_DATABASE__URI": f"sqlite:///{database}",
           "ORDERS_API_LOGGING__DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    routes = subprocess.run([str(bin_dir / "orders-api-manage"), "routes"], env=env, capture_output=True, text=True)
    assert routes.returncode == 0, routes.stderr
    assert "/api/v1/items" in routes.stdout and "/health" in routes.stdout
    upgrade = subprocess.run([str(bin_dir / "orders-api-manage"), "db", "upgrade"], env=env,
                             capture_output=True, text=True)
    if not with_db:
        assert upgrade.returncode != 0  # no database, so no `db` command
        return
    assert upgrade.returncode == 0, upgrade.stderr
    tables = {row[0] for row in sqlite3.connect(database).execute("SELECT name FROM sqlite_master")}
    assert {"items", "alembic_version"} <= tables


def test_new_refuses_a_name_this_machines_apt_knows(tmp_path: Path) -> None:
    """`new keystone` on a Debian 12 machine whose apt lists have Debian's archive (make setup refreshes them):
    refused, with Debian's version (epoch 2), which apt would install over the service; nothing is written."""
    known = subprocess.run(["apt-cache", "madison", "keystone"], capture_output=True, text=True, timeout=60).stdout
    assert "keystone |" in known, "this machine's apt lists lack Debian 12's main: run apt-get update"
    result = CliRunner().invoke(main, ["new", "keystone", "--dir", str(tmp_path / "keystone"), "--no-input"])
    assert result.exit_code == 2, result.output
    assert "invalid name 'keystone': apt already knows a package keystone (2:" in result.stderr
    assert list(tmp_path.iterdir()) == []
