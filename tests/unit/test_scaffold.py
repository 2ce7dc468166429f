"""`microdeploy new` renders the conventional layout."""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from microdeploy.config import load_config, validate
from microdeploy.errors import MicrodeployError
from microdeploy.process import Result
from microdeploy.scaffold import default_maintainer, scaffold

COMMON = {
    ".gitignore", "Jenkinsfile", "README.md", "pyproject.toml",
    "src/orders_api/__init__.py", "src/orders_api/api.py", "src/orders_api/application.py",
    "src/orders_api/default_config.ini", "src/orders_api/extensions.py", "src/orders_api/health.py",
    "src/orders_api/logs.py", "src/orders_api/manage.py", "src/orders_api/schemas.py",
    "src/orders_api/settings.py", "src/orders_api/store.py", "src/orders_api/wsgi.py",
    "tests/conftest.py", "tests/test_api.py", "tests/test_health.py", "tests/test_settings.py",
}
MIGRATIONS = {
    "src/orders_api/migrations/alembic.ini", "src/orders_api/migrations/env.py",
    "src/orders_api/migrations/script.py.mako", "src/orders_api/migrations/versions/0001_create_items.py",
}


def apt_knows(*rows: str) -> Callable[..., Result]:
    """A runner whose `apt-cache madison` prints `rows` (none: apt knows no package of the name)."""
    def answer(argv: Sequence[str], **_: object) -> Result:
        assert list(argv[:2]) == ["apt-cache", "madison"], argv
        return Result(tuple(argv), 0, "".join(f"{row}\n" for row in rows), "")
    return answer


def make(tmp_path: Path, with_db: bool = False, port: int = 8001) -> Path:
    config = validate({"name": ("orders-api", "NAME"), "port": (port, "--port")})
    dest = tmp_path / "orders-api"
    scaffold(config, dest, with_db=with_db, runner=apt_knows())
    return dest


def test_a_name_apt_already_knows_is_refused(tmp_path: Path) -> None:
    """A name that apt's lists here know (Debian's keystone, epoch 2) is refused with its version and source:
    apt would take Debian's 2:22.0.2 for a newer version of the service."""
    config = validate({"name": ("keystone", "NAME")})
    runner = apt_knows("  keystone | 2:22.0.2-0+deb12u6 | http://deb.debian.org/debian-security "
                       "bookworm-security/main amd64 Packages")
    with pytest.raises(MicrodeployError) as info:
        scaffold(config, tmp_path / "keystone", runner=runner)
    assert info.value.exit_code == 2
    assert info.value.message == ("invalid name 'keystone': apt already knows a package keystone (2:22.0.2-0+deb12u6 "
                                  "from http://deb.debian.org/debian-security bookworm-security/main amd64); apt would "
                                  "take the service and it for one package, and install either")
    assert not (tmp_path / "keystone").exists()


def files_of(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def test_layout_without_db(tmp_path: Path) -> None:
    """The plain service has exactly the conventional files."""
    assert files_of(make(tmp_path)) == COMMON


def test_layout_with_db_adds_migrations(tmp_path: Path) -> None:
    """--with-db adds the Flask-Migrate directory with a first migration."""
    assert files_of(make(tmp_path, with_db=True)) == COMMON | MIGRATIONS


@pytest.mark.parametrize("with_db", [False, True])
def test_generated_python_parses(tmp_path: Path, with_db: bool) -> None:
    """Every generated Python file is valid Python."""
    root = make(tmp_path, with_db=with_db)
    for path in root.rglob("*.py"):
        ast.parse(path.read_text(), filename=str(path))


def test_pyproject_declares_the_service_for_microdeploy(tmp_path: Path) -> None:
    """The generated [tool.microdeploy] loads back into the same service model."""
    root = make(tmp_path)
    config = load_config(root)
    assert (config.name, config.app, config.port, config.health_path) == (
        "orders-api", "orders_api.application:create_app()", 8001, "/health")
    data = tomllib.loads((root / "pyproject.toml").read_text())
    assert data["project"]["scripts"] == {"orders-api-manage": "orders_api.manage:main"}
    assert "flask-sqlalchemy>=3.1" not in data["project"]["dependencies"]


def test_with_db_depends_on_sqlalchemy_and_defaults_to_var_lib(tmp_path: Path) -> None:
    """The database variant declares its extensions and keeps SQLite under /var/lib/NAME."""
    root = make(tmp_path, with_db=True)
    data = tomllib.loads((root / "pyproject.toml").read_text())
    assert {"flask-sqlalchemy>=3.1", "flask-migrate>=4.0"} <= set(data["project"]["dependencies"])
    assert "uri = sqlite:////var/lib/orders-api/orders-api.sqlite3" in (
        root / "src/orders_api/default_config.ini").read_text()


def test_existing_non_empty_directory_is_refused_untouched(tmp_path: Path) -> None:
    """A non-empty destination is bad input and is left as it was."""
    dest = tmp_path / "orders-api"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine")
    config = validate({"name": ("orders-api", "NAME")})
    with pytest.raises(MicrodeployError) as info:
        scaffold(config, dest)
    assert info.value.exit_code == 2
    assert files_of(dest) == {"keep.txt"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["orders-api"]


def test_default_maintainer_from_debian_variables() -> None:
    """DEBFULLNAME and DEBEMAIL make the maintainer, as dch does."""
    assert default_maintainer({"DEBFULLNAME": "Ann Ops", "DEBEMAIL": "ann@example.org"}) == "Ann Ops <ann@example.org>"
    assert default_maintainer({}) == "Service Maintainer <maintainer@example.org>"
