"""Session fixtures: each test package is built once per session with the real toolchain.

Loaded as a pytest plugin by tests/conftest.py. Builds use a fixed
SOURCE_DATE_EPOCH so that rebuilds of the same input are comparable.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from microdeploy.build.output import BuildResult
from microdeploy.build.pipeline import build
from microdeploy.build.release.settings import BuildSettings
from microdeploy.config import validate
from microdeploy.scaffold import scaffold

EPOCH = "1767225600"  # 2026-01-01T00:00:00Z
# The public Flask project built as it is: ihatemoney, with compiled
# dependencies (SQLAlchemy, greenlet, MarkupSafe) and its own static assets,
# served by its app factory called with a literal argument.
PUBLIC_PROJECT = ("ihatemoney", "7.2.1")
PUBLIC_OVERRIDES = {"name": "ihatemoney", "app": "ihatemoney.run:create_app(instance_path='/etc/ihatemoney')"}
# sdists of public projects, downloaded once per machine (pip's own files, unmodified).
SDIST_CACHE = Path("/var/cache/microdeploy-tests/sdists")


@dataclass(frozen=True)
class BuiltService:
    """A service project and the package built from it."""

    project: Path
    result: BuildResult
    health_path: str = "/health"
    port: int = 8000

    @property
    def name(self) -> str:
        """The package name."""
        return self.result.name


def build_service(project: Path, out: Path, revision: str = "1", dist: str | None = None,
                  **overrides: object) -> BuildResult:
    """Build `project` into `out` as microdeploy build would (for `dist`), with a fixed SOURCE_DATE_EPOCH."""
    environ = {**os.environ, "SOURCE_DATE_EPOCH": EPOCH}
    environ.pop("BUILD_NUMBER", None)
    return build(BuildSettings(project=project, out=out, overrides=overrides, revision=revision, environ=environ,
                               dist=dist))


def new_service(root: Path, name: str, *, with_db: bool = False) -> Path:
    """Scaffold a service with `microdeploy new`'s library function."""
    config = validate({"name": (name, "NAME"), "description": ("Orders of the shop", "test")})
    scaffold(config, root / name, with_db=with_db)
    return root / name


@pytest.fixture(scope="session")
def plain_service(tmp_path_factory: pytest.TempPathFactory) -> BuiltService:
    """orders-api as `microdeploy new` makes it, built as revision 1."""
    root = tmp_path_factory.mktemp("plain")
    project = new_service(root, "orders-api")
    return BuiltService(project, build_service(project, root / "dist"))


@pytest.fixture(scope="session")
def plain_service_v2(plain_service: BuiltService, tmp_path_factory: pytest.TempPathFactory) -> BuiltService:
    """The same service rebuilt as revision 2, to upgrade to."""
    out = tmp_path_factory.mktemp("plain-v2")
    return BuiltService(plain_service.project, build_service(plain_service.project, out, revision="2"))


@pytest.fixture(scope="session")
def db_service(tmp_path_factory: pytest.TempPathFactory) -> BuiltService:
    """stock-api made with `microdeploy new --with-db`, built."""
    root = tmp_path_factory.mktemp("withdb")
    project = new_service(root, "stock-api", with_db=True)
    return BuiltService(project, build_service(project, root / "dist"))


@pytest.fixture(scope="session")
def public_service(tmp_path_factory: pytest.TempPathFactory) -> BuiltService:
    """ihatemoney from PyPI, unmodified, packaged with only --name/--app/--health-path."""
    root = tmp_path_factory.mktemp("public")
    project = unpacked_sdist(*PUBLIC_PROJECT, root)
    result = build_service(project, root / "dist", **PUBLIC_OVERRIDES)
    return BuiltService(project, result, health_path="/healthcheck")


def unpacked_sdist(name: str, version: str, root: Path) -> Path:
    """The sdist of `name`==`version` from PyPI (downloaded once into SDIST_CACHE), unpacked into `root`."""
    wanted = f"{name}-{version}.tar.gz".lower().replace("-", "_")

    def cached() -> list[Path]:
        return [path for path in SDIST_CACHE.glob("*.tar.gz") if path.name.lower().replace("-", "_") == wanted]

    SDIST_CACHE.mkdir(parents=True, exist_ok=True)
    if not cached():
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
             "--dest", str(SDIST_CACHE), f"{name}=={version}"],
            check=True,
        )
    [sdist] = cached()
    subprocess.run(["tar", "-xzf", str(sdist), "-C", str(root)], check=True)
    return root / sdist.name.removesuffix(".tar.gz")


@dataclass(frozen=True)
class PublicApp:
    """A public Flask application from PyPI, built with only --name, --app and --port."""

    project: str
    version: str
    name: str
    app: str
    port: int
    # What its own documentation asks for before it serves: variables (into
    # /etc/NAME/environment), configuration files (path, text), then commands,
    # each run through NAME-run (a venv program, else the host's), then a
    # restart of the service.
    environment: str = ""
    files: tuple[tuple[str, str], ...] = ()
    setup: tuple[tuple[str, ...], ...] = ()


# Together: wheels with bundled libraries (otterwiki: Pillow, lxml, PyYAML),
# dynamic versions (sqlite-web: setuptools `attr:`; photo-burst-detection:
# setuptools-scm; flaskrrr: setup.py), SQLite in the instance folder
# (flaskrrr, Flask's tutorial app), a factory with arguments (ihatemoney, above),
# package data under directories named dist/ and build/ (anitya), a WSGI app that is not Flask's (pypiserver),
# poetry-core's build and programs in a wheel linked without PIE (pytaku).
PUBLIC_APPS = {
    "flaskr": PublicApp("flaskrrr", "1.0.0", "flaskr", "flaskr:create_app()", 8101,
                        setup=(("flask", "init-db"),)),
    "sqlite-web": PublicApp("sqlite-web", "0.8.2", "sqlite-web", "sqlite_web.sqlite_web:app", 8102),
    "photo-burst-detection": PublicApp(
        "photo_burst_detection", "1.5.0", "photo-burst-detection", "photo_burst_detection:app", 8103,
        environment=("PHOTO_BURST_DETECTION_PATH=/var/lib/photo-burst-detection\nSECRET_KEY=3f1c0e9a\n"
                     "LDAP_HOST=ad.example.org\nLDAP_BASE_DN=dc=example,dc=org\n"),
    ),
    # otterwiki's installation guide (from source): git on the host (the test's
    # image), REPOSITORY, SQLALCHEMY_DATABASE_URI and a random SECRET_KEY of
    # 16 or more characters (any config key is read from the environment),
    # and `git init` of the repository.
    "otterwiki": PublicApp(
        "otterwiki", "2.26.1", "otterwiki", "otterwiki.server:app", 8104,
        environment=("REPOSITORY=/var/lib/otterwiki/repository\n"
                     "SQLALCHEMY_DATABASE_URI=sqlite:////var/lib/otterwiki/db.sqlite\n"
                     f"SECRET_KEY={secrets.token_hex(16)}\n"),
        setup=(("git", "init", "/var/lib/otterwiki/repository"),),
    ),
    # httpbin's documentation runs `gunicorn httpbin:app` and asks for no setup.
    "httpbin": PublicApp("httpbin", "0.10.2", "httpbin", "httpbin:app", 8105),
    # anitya (release-monitoring.org) ships its web UI's npm packages in its wheel
    # (pyproject: include anitya/static/node_modules/**), bootstrap/dist/ and
    # jquery-ui/build/ among them. Its admin guide: /etc/anitya/anitya.toml, then
    # the schema by createdb.py. createdb's alembic stamp finds alembic.ini's
    # relative script_location only from a checkout of the repository, so an
    # empty --alembic-config (its own option) leaves the stamp out.
    "anitya": PublicApp(
        "anitya", "2.3.0", "anitya", "anitya.wsgi:application", 8106,
        files=(("/etc/anitya/anitya.toml",
                'secret_key = "5d0c7e1b9a"\ndb_url = "sqlite:////var/lib/anitya/anitya.sqlite"\n'),),
        setup=(("python", "-m", "createdb", "--alembic-config="),),
    ),
    # pypiserver, a package index: a Bottle app, not Flask's, with hatchling's version from a file, and a factory
    # called with a keyword argument, the packages' directory the service's state directory.
    "pypiserver": PublicApp("pypiserver", "2.4.2", "pypiserver", "pypiserver:app(root='/var/lib/pypiserver')", 8107),
    # pytaku, a manga reader: poetry-core's build, two packages from src/, apsw's wheel with its own sqlite tools
    # (position-dependent programs), argon2-cffi's. Its production guide: a goodconf configuration (its fields are
    # read from the environment too; pytaku.conf.json in the working directory otherwise), then `pytaku-migrate`,
    # which makes db.sqlite3 in the working directory.
    "pytaku": PublicApp(
        "pytaku", "0.8.2", "pytaku", "pytaku.main:app", 8108,
        environment=(f"FLASK_SECRET_KEY={secrets.token_urlsafe(32)}\nOUTGOING_PROXY_NETLOC=proxy.example.org\n"
                     "OUTGOING_PROXY_KEY=unused\n"),
        setup=(("pytaku-migrate",),),
    ),
}


@pytest.fixture(scope="session")
def public_apps(tmp_path_factory: pytest.TempPathFactory) -> dict[str, BuiltService]:
    """Every PUBLIC_APPS project downloaded, unmodified, and built once."""
    built = {}
    for key, spec in PUBLIC_APPS.items():
        root = tmp_path_factory.mktemp(key)
        project = unpacked_sdist(spec.project, spec.version, root)
        result = build_service(project, root / "dist", name=spec.name, app=spec.app, port=spec.port)
        built[key] = BuiltService(project, result, health_path="/", port=spec.port)
    return built


def rebuilt(service: BuiltService, out: Path) -> BuiltService:
    """The same project built again as revision 2 (the dependency layer and wheel caches make it quick)."""
    overrides = PUBLIC_OVERRIDES if service.name == PUBLIC_OVERRIDES["name"] else {}
    result = build_service(service.project, out, revision="2", **overrides)
    return BuiltService(service.project, result, health_path=service.health_path, port=service.port)


@pytest.fixture(scope="session")
def trixie_service(plain_service: BuiltService, tmp_path_factory: pytest.TempPathFactory) -> BuiltService:
    """orders-api, the same commit as plain_service, built for Debian 13 (trixie) in its clean root."""
    out = tmp_path_factory.mktemp("trixie")
    return BuiltService(plain_service.project, build_service(plain_service.project, out, dist="trixie"))


@pytest.fixture(scope="session")
def trixie_service_v2(trixie_service: BuiltService, tmp_path_factory: pytest.TempPathFactory) -> BuiltService:
    """The trixie build again as revision 2, to upgrade to."""
    out = tmp_path_factory.mktemp("trixie-v2")
    return BuiltService(trixie_service.project, build_service(trixie_service.project, out, "2", dist="trixie"))


@pytest.fixture(scope="session")
def trixie_public_service(public_service: BuiltService, tmp_path_factory: pytest.TempPathFactory) -> BuiltService:
    """ihatemoney from PyPI, unmodified, built for trixie."""
    out = tmp_path_factory.mktemp("trixie-public")
    result = build_service(public_service.project, out, dist="trixie", **PUBLIC_OVERRIDES)
    return BuiltService(public_service.project, result, health_path="/healthcheck")


@pytest.fixture(scope="session")
def db_service_v2(db_service: BuiltService, tmp_path_factory: pytest.TempPathFactory) -> BuiltService:
    """stock-api rebuilt as revision 2, to upgrade to."""
    return rebuilt(db_service, tmp_path_factory.mktemp("withdb-v2"))


@pytest.fixture(scope="session")
def public_service_v2(public_service: BuiltService, tmp_path_factory: pytest.TempPathFactory) -> BuiltService:
    """ihatemoney rebuilt as revision 2, to upgrade to."""
    return rebuilt(public_service, tmp_path_factory.mktemp("public-v2"))
