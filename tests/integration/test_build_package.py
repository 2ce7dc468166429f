"""Packages built by `microdeploy build` meet the quality bars of SPEC §8 (real tools)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
from pathlib import Path

import pytest
from debian.deb822 import Changes

from microdeploy.build.pipeline import build
from microdeploy.build.release.settings import BuildSettings
from microdeploy.config import load_config
from tests.packages import EPOCH, PUBLIC_OVERRIDES, BuiltService, build_service, new_service, unpacked_sdist
from tests.qa import deb_member, deb_paths, exposure, lintian_tags, piuparts

pytestmark = pytest.mark.integration
SERVICES = ["plain_service", "db_service", "public_service"]


@pytest.fixture(params=SERVICES)
def service(request: pytest.FixtureRequest) -> BuiltService:
    """Each kind of built service in turn: scaffolded, scaffolded --with-db, public project."""
    built: BuiltService = request.getfixturevalue(request.param)
    return built


def control_fields(deb: Path) -> dict[str, str]:
    output = subprocess.run(["dpkg-deb", "--field", str(deb)], capture_output=True, text=True, check=True).stdout
    fields: dict[str, str] = {}
    for line in output.splitlines():
        if line[:1].isspace():
            continue
        key, _, value = line.partition(": ")
        fields[key] = value
    return fields


def test_lintian_reports_no_errors_and_no_warnings(service: BuiltService) -> None:
    """lintian: 0 errors and 0 warnings, with overrides that carry reasons."""
    assert lintian_tags(service.result.deb) == []
    overrides = deb_member(service.result.deb, f"/usr/share/lintian/overrides/{service.name}")
    reason = False  # overrides follow a comment block that gives their reason
    for line in overrides.splitlines():
        if line.startswith("#"):
            reason = True
        elif not line.strip():
            reason = False
        else:
            assert reason, f"override without a reason: {line}"


def test_exposure_of_the_unit_is_at_most_1_5(service: BuiltService) -> None:
    """systemd-analyze security --offline rates the shipped unit 'OK', exposure <= 1.5."""
    unit = deb_member(service.result.deb, f"/lib/systemd/system/{service.name}.service")
    score, report = exposure(unit, f"{service.name}.service")
    assert score <= 1.5, report


def test_dist_holds_the_deb_buildinfo_and_changes_only(service: BuiltService) -> None:
    """The output directory holds the .deb, .buildinfo and .changes, and nothing else."""
    out = service.result.deb.parent
    version = service.result.version
    assert sorted(p.name for p in out.iterdir()) == [
        f"{service.name}_{version}_amd64.buildinfo",
        f"{service.name}_{version}_amd64.changes",
        f"{service.name}_{version}_amd64.deb",
    ]


def test_package_layout_follows_the_host_conventions(service: BuiltService) -> None:
    """venv under /opt/venvs/NAME with gunicorn, unit, logrotate; no bytecode, no installers, no config.ini."""
    name = service.name
    paths = deb_paths(service.result.deb)
    assert f"/opt/venvs/{name}/bin/gunicorn" in paths
    assert f"/lib/systemd/system/{name}.service" in paths
    assert f"/etc/logrotate.d/{name}" in paths
    assert f"/usr/share/{name}/gunicorn.conf.py" in paths
    assert not [p for p in paths if "__pycache__" in p or p.endswith(".pyc")]
    assert not [p for p in paths if "/site-packages/pip/" in p or p.endswith("/bin/pip")]
    assert not [p for p in paths if p.startswith(f"/etc/{name}/")], "config.ini must not be a conffile"
    assert not [p for p in paths if "/debian/" in p], "the build tree leaked into the venv"


def test_depends_pins_the_python_minor_version(service: BuiltService) -> None:
    """Depends names the python3.X the venv was built with, and the venv links to it."""
    fields = control_fields(service.result.deb)
    assert "python3.11" in fields["Depends"].split(", ")
    assert "adduser" in fields["Depends"]
    cfg = deb_member(service.result.deb, f"/opt/venvs/{service.name}/pyvenv.cfg")
    assert "executable = /usr/bin/python3.11" in cfg
    assert "command =" not in cfg, "pyvenv.cfg must not record the build directory"


def test_public_project_with_compiled_wheels_gets_shared_library_depends(public_service: BuiltService,
                                                                         tmp_path: Path) -> None:
    """dh_shlibdeps maps compiled wheels (greenlet's C++) to Debian library packages. It reads copies of the ELF
    files taken before dh_strip: its answer is what dpkg-shlibdeps says of the files as shipped."""
    depends = control_fields(public_service.result.deb)["Depends"].split(", ")
    assert [entry for entry in depends if entry.startswith(("libstdc++6 ", "libgcc-s1 "))]
    package = tmp_path / "debian" / public_service.name
    package.parent.mkdir()
    subprocess.run(["dpkg-deb", "-x", str(public_service.result.deb), str(package)], check=True)
    (package / "DEBIAN").mkdir()
    (tmp_path / "debian" / "control").write_text(f"Source: {public_service.name}\n\nPackage: {public_service.name}\n"
                                                 "Architecture: any\n")
    elf = [str(path.relative_to(tmp_path)) for path in sorted(package.rglob("*.so*"))
           if path.is_file() and path.read_bytes()[:4] == b"\x7fELF"]
    assert elf
    shipped = subprocess.run(["dpkg-shlibdeps", "-O", "--ignore-missing-info", *elf], cwd=tmp_path,
                             capture_output=True, text=True, check=True).stdout
    [line] = [line for line in shipped.splitlines() if line.startswith("shlibs:Depends=")]
    from_shipped = line.removeprefix("shlibs:Depends=").split(", ")
    assert [entry for entry in depends if entry.startswith("lib")] == from_shipped


def test_copyright_names_the_upstream_authors_and_license(public_service: BuiltService,
                                                          plain_service: BuiltService) -> None:
    """ihatemoney's debian/copyright names the holders its LICENSE's notice names, not the packager, and quotes
    that BSD license (its pyproject.toml's license = {file = "LICENSE"}); the scaffold, which has no license
    file and whose authors are its team, names the maintainer."""
    upstream = deb_member(public_service.result.deb, "/usr/share/doc/ihatemoney/copyright")
    assert "\nCopyright: 2011 by Alexis Métaireau and contributors. See AUTHORS for more details.\n" in upstream
    assert "\n Redistribution and use in source and binary forms of the software as well\n" in upstream
    assert load_config(public_service.project, PUBLIC_OVERRIDES).maintainer not in upstream
    ours = deb_member(plain_service.result.deb, "/usr/share/doc/orders-api/copyright")
    assert f"\nCopyright: {load_config(plain_service.project).maintainer}\n" in ours


def test_every_package_has_name_manage_running_flasks_command_line(public_service: BuiltService,
                                                                   plain_service: BuiltService,
                                                                   tmp_path: Path) -> None:
    """ihatemoney, which declares no ihatemoney-manage, gets one that runs Flask's command line over its app from the
    venv (`routes` lists its pages; run from the unpacked package); the scaffold keeps its own console script."""
    subprocess.run(["dpkg-deb", "-x", str(public_service.result.deb), str(tmp_path)], check=True)
    manage = tmp_path / "opt" / "venvs" / "ihatemoney" / "bin" / "ihatemoney-manage"
    assert manage.stat().st_mode & 0o777 == 0o755
    # ihatemoney's app upgrades its database when made: one in tmp_path, not its default /tmp/ihatemoney.db.
    settings = tmp_path / "ihatemoney.cfg"
    settings.write_text(f"SQLALCHEMY_DATABASE_URI = 'sqlite:///{tmp_path}/db.sqlite3'\nSECRET_KEY = 'test'\n")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "IHATEMONEY_SETTINGS_FILE_PATH": str(settings)}
    routes = subprocess.run([str(manage), "routes"], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=120)
    assert routes.returncode == 0, routes.stderr
    assert "/healthcheck" in routes.stdout and "/<project_id>/" in routes.stdout
    usage = subprocess.run([str(manage), "--help"], cwd=tmp_path, env=env, capture_output=True, text=True,
                           timeout=120)
    assert usage.returncode == 0 and "Usage: ihatemoney-manage [OPTIONS] COMMAND [ARGS]..." in usage.stdout
    own = deb_member(plain_service.result.deb, "/opt/venvs/orders-api/bin/orders-api-manage")
    assert own.startswith("#!/opt/venvs/orders-api/bin/python") and "orders_api.manage" in own


def test_interpreter_trigger_is_declared(plain_service: BuiltService) -> None:
    """The package is interested in the interpreter, so a Python upgrade reaches its postinst."""
    triggers = subprocess.run(["dpkg-deb", "--ctrl-tarfile", str(plain_service.result.deb)],
                              capture_output=True, check=True).stdout
    text = subprocess.run(["tar", "-xO", "./triggers"], input=triggers, capture_output=True, check=True).stdout
    assert "interest-noawait /usr/bin/python3.11" in text.decode()


def test_changelog_names_version_distribution_and_maintainer(plain_service: BuiltService) -> None:
    """The generated changelog carries the version (+deb12), the build host's codename and the maintainer."""
    fields = control_fields(plain_service.result.deb)
    assert fields["Version"] == "0.1.0-1+deb12"
    assert fields["Maintainer"] == "Service Maintainer <maintainer@example.org>"
    changes = plain_service.result.changes.read_text()
    assert "Distribution: bookworm" in changes


def test_changes_lists_the_deb_and_buildinfo_with_their_checksums(plain_service: BuiltService) -> None:
    """The .changes names exactly the .deb and .buildinfo beside it, with their sizes and sha256."""
    result = plain_service.result
    changes = Changes(result.changes.read_text())
    assert (changes["Source"], changes["Version"], changes["Architecture"]) == (plain_service.name, "0.1.0-1+deb12",
                                                                            "amd64")
    listed = {entry["name"]: entry for entry in changes["Checksums-Sha256"]}
    assert set(listed) == {result.deb.name, result.buildinfo.name}
    for path in (result.deb, result.buildinfo):
        assert listed[path.name]["size"] == str(path.stat().st_size)
        assert listed[path.name]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    buildinfo = result.buildinfo.read_text()
    assert f"Binary: {plain_service.name}" in buildinfo and "Installed-Build-Depends:" in buildinfo


# The scaffold's package (plain_service) goes through the same piuparts run, upgrade included, in test_check's
# test of a good package.
@pytest.mark.parametrize("fixture", [service for service in SERVICES if service != "plain_service"])
def test_piuparts_install_upgrade_and_purge(
    fixture: str, request: pytest.FixtureRequest, piuparts_base: Path, debian_mirror_uri: str
) -> None:
    """piuparts: install, upgrade from the previous build, remove and purge pass for every kind of service."""
    previous: BuiltService = request.getfixturevalue(fixture)
    upgrade: BuiltService = request.getfixturevalue(f"{fixture}_v2")
    result = piuparts([upgrade.result.deb], piuparts_base, debian_mirror_uri, previous=previous.result.deb)
    assert result.returncode == 0, result.stdout[-4000:]
    assert "PASS: Installation, upgrade and purging tests." in result.stdout


def test_build_json_output(plain_service: BuiltService, tmp_path: Path) -> None:
    """`microdeploy build --json` prints one object naming the artifacts, version and size."""
    repo = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [str(repo / ".venv/bin/microdeploy"), "build", str(plain_service.project), "--out", str(tmp_path),
         "--revision", "7", "--json"],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr
    # The scaffold's build has nothing to warn of: its progress lines alone.
    progress = ("uv takes pip's settings: ", "building orders-api ", "dpkg-buildpackage (dh-virtualenv) in ", "built ")
    assert [line for line in result.stderr.splitlines() if not line.startswith(progress)] == [], result.stderr
    data = json.loads(result.stdout)
    assert data["version"] == "0.1.0-7+deb12" and data["dist"] == "bookworm"
    assert Path(data["deb"]) == tmp_path / "orders-api_0.1.0-7+deb12_amd64.deb"
    assert data["size"] == (tmp_path / "orders-api_0.1.0-7+deb12_amd64.deb").stat().st_size


def test_directories_named_dist_and_build_below_the_root_are_packaged(tmp_path: Path) -> None:
    """A file under pkg/static/dist/ and a module under pkg/build/ are installed; the root's dist/ is not."""
    project = new_service(tmp_path, "layout-api")
    package = project / "src" / "layout_api"
    (package / "static" / "dist").mkdir(parents=True)
    (package / "static" / "dist" / "app.js").write_text("console.log('built UI');\n")
    (package / "build").mkdir()
    (package / "build" / "__init__.py").write_text("STEPS = ('compile',)\n")
    pyproject = project / "pyproject.toml"
    declared = pyproject.read_text().replace('["default_config.ini"', '["default_config.ini", "static/dist/*.js"')
    pyproject.write_text(declared)
    (project / "dist").mkdir()
    (project / "dist" / "stale.txt").write_text("an earlier build's output\n")
    result = build_service(project, tmp_path / "out")
    site = "/opt/venvs/layout-api/lib/python3.11/site-packages/layout_api"
    paths = deb_paths(result.deb)
    assert f"{site}/static/dist/app.js" in paths
    assert f"{site}/build/__init__.py" in paths
    assert not [path for path in paths if path.endswith("stale.txt")]


def test_templates_the_wheel_leaves_out_are_named_by_the_build(tmp_path: Path,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    """A template added to the package but not to setuptools' package-data is not in the wheel (the service would
    answer TemplateNotFound): the build names its folder; declared, it ships and the build is quiet."""
    project = new_service(tmp_path, "pages-api")
    (project / "src" / "pages_api" / "templates").mkdir()
    (project / "src" / "pages_api" / "templates" / "index.html").write_text("<h1>{{ title }}</h1>\n")
    with caplog.at_level(logging.WARNING):
        result = build_service(project, tmp_path / "out")
    site = "/opt/venvs/pages-api/lib/python3.11/site-packages/pages_api"
    assert f"{site}/templates/index.html" not in deb_paths(result.deb)
    assert [message for message in caplog.messages if message.startswith(
        "pages_api/templates/ (1 file): in the project's checkout but not in its wheel, so not in the package")]
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('["default_config.ini"', '["default_config.ini", "templates/*"'))
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        result = build_service(project, tmp_path / "declared")
    assert f"{site}/templates/index.html" in deb_paths(result.deb)
    assert not [message for message in caplog.messages if "not in its wheel" in message]


@pytest.mark.parametrize("uv", [None, ""])
def test_keep_installers_ships_pip_setuptools_and_wheel(tmp_path: Path, uv: str | None) -> None:
    """--keep-installers (the build's keep_installers) ships pip, setuptools and wheel in the venv, with uv (whose
    venvs never had them to keep) and with pip (MICRODEPLOY_UV empty: its pip's scripts named bin/python3.11, an
    unusual interpreter to lintian), lintian-clean; the scaffold's default package has none of them
    (test_package_layout_follows...)."""
    project = new_service(tmp_path, "tools-api")
    environ = {**os.environ, "SOURCE_DATE_EPOCH": EPOCH, **({"MICRODEPLOY_UV": uv} if uv is not None else {})}
    result = build(BuildSettings(project=project, out=tmp_path / "out", environ=environ, keep_installers=True))
    site = "/opt/venvs/tools-api/lib/python3.11/site-packages"
    paths = deb_paths(result.deb)
    for tool in ("pip", "setuptools", "wheel"):
        assert [path for path in paths if path.startswith(f"{site}/{tool}-") and path.endswith(".dist-info/RECORD")]
    assert "/opt/venvs/tools-api/bin/pip" in paths
    assert lintian_tags(result.deb) == []


def test_a_public_app_s_web_fonts_and_plugin_pages_are_overridden_where_they_are(tmp_path: Path) -> None:
    """calibre-web 0.6.27 from PyPI, unmodified: its static/ ships fonts that Debian's font packages install
    (Glyphicons, LiberationSans) and soundmanager2.js writes an <object codebase="http://..."> that lintian counts
    as a privacy breach; each gets its override at its path, and lintian reports no error or warning."""
    project = unpacked_sdist("calibreweb", "0.6.27", tmp_path)
    result = build_service(project, tmp_path / "dist", name="calibreweb", app="calibreweb.cps:create_app()")
    overrides = deb_member(result.deb, "/usr/share/lintian/overrides/calibreweb")
    static = "opt/venvs/calibreweb/lib/python3.11/site-packages/calibreweb/cps/static"
    assert f"calibreweb: privacy-breach-generic * [{static}/js/libs/soundmanager2.js]" in overrides
    assert f"calibreweb: duplicate-font-file * [{static}/standard_fonts/LiberationSans-Regular.ttf]" in overrides
    assert lintian_tags(result.deb) == []


def test_a_public_app_s_extra_installs_its_dependencies(public_service: BuiltService, tmp_path: Path) -> None:
    """ihatemoney's docs install `ihatemoney[database]` for PostgreSQL or MySQL: `--extra database` puts its
    extra's drivers (psycopg2-binary with its bundled libpq, PyMySQL) into the venv beside the app, and the
    package stays lintian-clean; without it (public_service) neither is there."""
    result = build_service(public_service.project, tmp_path / "dist", extras=("database",), **PUBLIC_OVERRIDES)
    site = "/opt/venvs/ihatemoney/lib/python3.11/site-packages"

    def drivers(deb: Path) -> list[str]:
        return sorted(path.removeprefix(f"{site}/").split("-")[0] for path in deb_paths(deb)
                      if path.startswith((f"{site}/psycopg2_binary-", f"{site}/pymysql-", f"{site}/PyMySQL-"))
                      and path.endswith(".dist-info/METADATA"))

    assert drivers(result.deb) == ["psycopg2_binary", "pymysql"]
    assert f"{site}/psycopg2/__init__.py" in deb_paths(result.deb)
    assert drivers(public_service.result.deb) == []
    assert lintian_tags(result.deb) == []


def test_a_wiki_whose_name_starts_its_own_name_keeps_its_summary(tmp_path: Path) -> None:
    """moin 2.0.0b5 from PyPI, unmodified, built as `moin`: its summary ("MoinMoin is ...") starts with the package
    name but not as a word, so it stays whole (cut, "Moin is ..." is what lintian refuses); its contrib/deployment
    moin.fcgi, package data with "#!/usr/bin/python" and not executable, names the venv's python; lintian-clean."""
    project = unpacked_sdist("moin", "2.0.0b5", tmp_path)
    result = build_service(project, tmp_path / "dist", name="moin", app="moin.app:create_app()")
    summary = subprocess.run(["dpkg-deb", "-f", str(result.deb), "Description"], capture_output=True, text=True,
                             check=True).stdout.splitlines()[0]
    assert summary.startswith("MoinMoin is an easy to use")
    fcgi = deb_member(result.deb, "/opt/venvs/moin/lib/python3.11/site-packages/moin/contrib/deployment/moin.fcgi")
    assert fcgi.startswith("#!/opt/venvs/moin/bin/python\n")
    assert lintian_tags(result.deb) == []


def test_wheels_with_foreign_programs_old_gzip_times_and_bare_extensions_build_lintian_clean(tmp_path: Path) -> None:
    """A scraping service's wheels as PyPI ships them: selenium's selenium-manager for linux-arm64 (strip failed on
    it, lintian refuses it) is left out, RECORD agreeing, and the one for this machine stays; botocore's gzip data,
    compressed after the service's last commit, numpy's extension modules, which link no libc, and pypandoc-binary's
    pandoc, linked statically with zlib, gmp and libyaml in it (a wiki's, wikmd's), and shapely's extension module,
    whose RUNPATH is its wheel's build machine's /usr/local/lib64 (FitTrackee's), and joblib's test pickles, zlib
    data named .gz that gzip does not read (MLflow's), are overridden for the venv; lintian reports no error or
    warning."""
    project = new_service(tmp_path, "scrape-api")
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace(
        '    "gunicorn>=21.2",\n',
        '    "gunicorn>=21.2",\n    "selenium==4.39.0",\n    "numpy==2.3.5",\n    "botocore==1.42.3",\n'
        '    "pypandoc-binary==1.13",\n    "shapely==2.2.0",\n    "joblib==1.6.0",\n'))  # numpy 2.3.5: shapely's
    environ = {**os.environ, "SOURCE_DATE_EPOCH": "1700000000"}  # 2023: older than the wheels' gzip data
    result = build(BuildSettings(project=project, out=tmp_path / "dist", environ=environ))
    common = "/opt/venvs/scrape-api/lib/python3.11/site-packages/selenium/webdriver/common"
    paths = deb_paths(result.deb)
    assert f"{common}/linux/selenium-manager" in paths
    assert not [path for path in paths if "/linux-arm64/" in path]
    record = deb_member(result.deb, "/opt/venvs/scrape-api/lib/python3.11/site-packages/"
                                    "selenium-4.39.0.dist-info/RECORD")
    assert "webdriver/common/linux/selenium-manager," in record and "linux-arm64" not in record
    assert "/opt/venvs/scrape-api/lib/python3.11/site-packages/pypandoc/files/pandoc" in paths
    assert lintian_tags(result.deb) == []
    # numpy's bundled OpenBLAS and libgfortran (patchelf'd by auditwheel) still load once dh_strip has run:
    # bookworm's strip leaves them "ELF load command address/offset not page-aligned".
    tree = tmp_path / "unpacked"
    subprocess.run(["dpkg-deb", "-x", str(result.deb), str(tree)], check=True)
    site = tree / "opt/venvs/scrape-api/lib/python3.11/site-packages"
    imported = subprocess.run(["/usr/bin/python3.11", "-I", "-c", "import sys; sys.path.insert(0, sys.argv[1]); "
                               "import numpy, shapely; print(numpy.linalg.det(numpy.eye(3)))", str(site)],
                              capture_output=True, text=True, cwd=tmp_path)
    assert imported.returncode == 0 and imported.stdout.strip() == "1.0", imported.stderr[-2000:]


def test_bundled_libraries_that_need_each_other_without_an_rpath_get_their_depends(tmp_path: Path) -> None:
    """numpy 1.26.4's wheel, as PyPI ships it: its OpenBLAS in numpy.libs needs the libgfortran beside it, with no
    RPATH (the extension module that loads both has one). dh_shlibdeps failed on it ("cannot find library
    libgfortran-...", and so on every scipy and opencv-python-headless); the bundled libraries are found in their
    directory, the system's mapped to Debian packages, and lintian is clean."""
    project = new_service(tmp_path, "matrix-api")
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('    "gunicorn>=21.2",\n',
                                                       '    "gunicorn>=21.2",\n    "numpy==1.26.4",\n'))
    # A cache of its own: dpkg-shlibdeps' answer for these ELF files is not taken from an earlier build.
    environ = {**os.environ, "MICRODEPLOY_CACHE_DIR": str(tmp_path / "cache")}
    result = build(BuildSettings(project=project, out=tmp_path / "dist", environ=environ))
    site = "/opt/venvs/matrix-api/lib/python3.11/site-packages"
    bundled = [path for path in deb_paths(result.deb) if path.startswith(f"{site}/numpy.libs/")]
    assert any("libgfortran" in path for path in bundled) and any("openblas" in path for path in bundled)
    depends = control_fields(result.deb)["Depends"]
    assert "libc6 (>= " in depends and "libgfortran" not in depends  # bundled, not Debian's
    assert lintian_tags(result.deb) == []
