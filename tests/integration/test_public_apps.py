"""Public WSGI applications from PyPI (Flask's, and pypiserver's Bottle), unmodified, built with only --name, --app
and --port.

Each passes `lintian --fail-on error,warning` and piuparts, and on one booted
Debian 12 host (all installed side by side) answers below 500 on its main
page after the setup steps its own documentation asks for, run through
NAME-run (httpbin's asks for none). otterwiki (Pillow, lxml and PyYAML
wheels) keeps its pages in a git repository: its installation guide asks
the host for git (`apt install git`, here the host image's extra package;
the .deb, built with only --name, --app and --port, does not depend on it),
then `git init` of the repository, run as `otterwiki-run git init ...`
(NAME-run falls back to the host's programs). anitya's page loads its web
UI's files from the dist/ directories of the npm packages its wheel ships.
One is built, linted and piuparts-tested but not served: sqlite-web has no
WSGI entry point that serves without its command line (`sqlite_web DB`
fills the app's datasets before it runs), so its module-level app answers 500.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from debian.deb822 import Deb822

from microdeploy.testbed.host import Host
from microdeploy.testbed.image import ensure_image
from tests.hostcheck import install_deb, main_pid, wait_for
from tests.packages import PUBLIC_APPS, BuiltService
from tests.qa import deb_member, deb_paths, piuparts
from tests.testbed.fixtures import BootHost

pytestmark = [pytest.mark.integration]

SERVED = ("flaskr", "photo-burst-detection", "otterwiki", "httpbin", "anitya", "pypiserver", "pytaku")
# What a page loads from below a directory named dist/ or build/ of the app's package.
DIST_ASSET = re.compile(r"""["'](/static/[^"'?#]*/(?:dist|build)/[^"'?#]+)""")

# What otterwiki's installation guide installs on the host before otterwiki.
HOST_PREREQUISITES = ("git",)


@pytest.fixture(scope="module")
def public_apps_host_image(testbed_reaped: None) -> Path:
    """The base host image with the public apps' host prerequisites (cached per package set, like the others)."""
    return ensure_image(HOST_PREREQUISITES)


@pytest.mark.parametrize("key", sorted(PUBLIC_APPS))
def test_lintian_fails_on_nothing(key: str, public_apps: dict[str, BuiltService]) -> None:
    """`lintian --fail-on error,warning` passes, as the Jenkins Lint stage runs it."""
    deb = public_apps[key].result.deb
    result = subprocess.run(["lintian", "--fail-on", "error,warning", "--tag-display-limit", "0", str(deb)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr


def test_copyright_quotes_each_apps_license(public_apps: dict[str, BuiltService]) -> None:
    """debian/copyright carries the license each sdist states: otterwiki's and sqlite-web's MIT texts line by
    line, with the notice in them as the Copyright field, and a paragraph for each distribution of the venv but the
    app's own (Flask's BSD-3-Clause, its notice); httpbin's three files (its "MIT or ISC"); for anitya's
    GPL-2.0-or-later, the pointer to Debian's copy of the GPL instead of its text (lintian's
    copyright-file-contains-full-gpl-license)."""
    def copyright_of(key: str) -> str:
        return deb_member(public_apps[key].result.deb, f"/usr/share/doc/{public_apps[key].name}/copyright")

    for key, notice in (("otterwiki", "2022 Ralph Thesen"), ("sqlite-web", "2010 Charles Leifer")):
        text = copyright_of(key)
        assert f"\nCopyright: {notice}\n" in text
        license_file = (public_apps[key].project / "LICENSE").read_text().strip("\n").splitlines()
        assert "\n".join(f" {line.rstrip()}" if line.strip() else " ." for line in license_file) in text
    assert "\nLicense: MIT\n" in copyright_of("otterwiki")
    httpbin = copyright_of("httpbin")
    assert "\nLicense: MIT OR ISC\n" in httpbin
    assert all(f"\n {name}:\n" in httpbin for name in ("LICENSE", "LICENSE.ISC", "LICENSE.MIT"))
    # The venv's own distributions: a paragraph each, after the app's Files: *.
    paragraphs = list(Deb822.iter_paragraphs(copyright_of("otterwiki")))
    files = [each for each in paragraphs if "Files" in each]
    assert files[0]["Files"] == "*" and len(files) > 10
    assert all("Copyright" in each and "License" in each for each in files)
    site = "opt/venvs/otterwiki/lib/python3.11/site-packages"
    [flask] = [each for each in paragraphs if f"{site}/flask/*" in each.get("Files", "").split()]
    assert (flask["Copyright"], flask["License"].splitlines()[0]) == ("2010 Pallets", "BSD-3-Clause")
    assert not [each for each in paragraphs if f"{site}/otterwiki/*" in each.get("Files", "").split()]
    anitya = copyright_of("anitya")
    assert "\nLicense: GPL-2.0-or-later\n" in anitya
    assert " /usr/share/common-licenses/GPL-2. " in anitya
    assert "TERMS AND CONDITIONS" not in anitya and "TERMS AND CONDITIONS" in (
        public_apps["anitya"].project / "LICENSE").read_text()


def test_bundled_libraries_are_overridden_per_path(public_apps: dict[str, BuiltService]) -> None:
    """otterwiki's wheels bring libxml2 (lxml) and Pillow's libraries: each override names one path in the venv."""
    deb = public_apps["otterwiki"].result.deb
    overrides = deb_member(deb, "/usr/share/lintian/overrides/otterwiki").splitlines()
    embedded = [line for line in overrides if line.startswith("otterwiki: embedded-library ")]
    assert any("/lxml/" in line for line in embedded), overrides
    assert all(line.endswith(".so]") or ".so." in line for line in embedded), embedded
    assert all("[opt/venvs/otterwiki/lib/python3.11/site-packages/" in line for line in embedded)


def test_programs_linked_without_pie_are_overridden_per_path(public_apps: dict[str, BuiltService]) -> None:
    """apsw's wheel ships sqlite's own tools, linked as position-dependent executables: each gets its
    hardening-no-pie override (lintian's warning), and no other ELF file of the venv does."""
    overrides = deb_member(public_apps["pytaku"].result.deb, "/usr/share/lintian/overrides/pytaku").splitlines()
    pointers = [line.split("[", 1)[1].rstrip("]") for line in overrides if " hardening-no-pie " in line]
    tools = "opt/venvs/pytaku/lib/python3.11/site-packages/apsw/sqlite_extra_binaries/"
    assert len(pointers) > 10 and all(pointer.startswith(tools + "sqlite3_") for pointer in pointers), pointers
    assert f"{tools}sqlite3_shell" in pointers


def test_package_data_under_dist_and_build_is_in_the_venv(public_apps: dict[str, BuiltService]) -> None:
    """Every file of anitya's sdist below a directory named dist/ or build/ inside its package (its wheel takes
    all of anitya/static/node_modules/) is in the .deb, at its place in the venv's site-packages."""
    built = public_apps["anitya"]
    package = built.project / "anitya"
    wanted = [path.relative_to(built.project).as_posix() for path in sorted(package.rglob("*"))
              if path.is_file() and {"dist", "build"} & set(path.relative_to(package).parts[:-1])]
    assert any("/bootstrap/dist/" in path for path in wanted), wanted
    assert any("/jquery-ui/build/" in path for path in wanted), wanted
    shipped = set(deb_paths(built.result.deb))
    site = "/opt/venvs/anitya/lib/python3.11/site-packages/"
    missing = [path for path in wanted if site + path not in shipped]
    assert not missing, f"{len(missing)} of {len(wanted)} missing: {missing[:10]}"


def test_piuparts_installs_and_purges_them(
    public_apps: dict[str, BuiltService], piuparts_base: Path, debian_mirror_uri: str
) -> None:
    """piuparts installs all of them together, removes and purges them, leaving nothing behind."""
    debs = [public_apps[key].result.deb for key in sorted(PUBLIC_APPS)]
    result = piuparts(debs, piuparts_base, debian_mirror_uri)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_versions_come_from_the_projects_own_metadata(public_apps: dict[str, BuiltService]) -> None:
    """Dynamic versions (setuptools attr:, setuptools-scm, setup.py, hatchling's from a file) are read, not
    refused."""
    versions = {key: public_apps[key].result.version for key in PUBLIC_APPS}
    assert versions == {key: f"{spec.version}-1+deb12" for key, spec in PUBLIC_APPS.items()}


def status(host: Host, name: str, port: int) -> int:
    """The HTTP status of the main page, retried until the service answers at all (its journal if never)."""
    try:
        output = wait_for(host, ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10",
                                 f"http://127.0.0.1:{port}/"], timeout=120)
    except AssertionError as exc:
        journal = host.run(["journalctl", "-u", name, "--no-pager", "-n", "30"], check=False).stdout
        raise AssertionError(f"{exc}\n{journal}") from None
    return int(output.strip())


def test_they_answer_side_by_side_on_one_host(
    boot_host: BootHost, public_apps_host_image: Path, public_apps: dict[str, BuiltService],
    public_service: BuiltService,
) -> None:
    """On one booted host with git: every package installs, its documented setup runs through NAME-run, and its
    main page answers below 500; ihatemoney, from its factory with arguments, runs as its own user."""
    host = boot_host(public_apps_host_image)
    services = {key: public_apps[key] for key in SERVED} | {"ihatemoney": public_service}
    for key, built in services.items():
        host.copy_in(built.result.deb, f"/root/{key}.deb")
        install_deb(host, f"/root/{key}.deb")
    for key in SERVED:
        spec = PUBLIC_APPS[key]
        if spec.environment:
            host.run(["tee", f"/etc/{spec.name}/environment"], input=spec.environment)
        for path, text in spec.files:
            host.run(["tee", path], input=text)
        for step in spec.setup:
            host.run([f"/usr/bin/{spec.name}-run", *step], timeout=300)
        if spec.environment or spec.files:
            # Unconfigured, the service ran on its defaults, or failed and restarted
            # until now, perhaps past systemd's start limit: start it afresh with its
            # configuration, as an operator would.
            host.run(["systemctl", "reset-failed", spec.name])
            host.run(["systemctl", "restart", spec.name])
    answers = {key: status(host, built.name, built.port) for key, built in services.items()}
    print("main page status:", answers)
    assert all(0 < code < 500 for code in answers.values()), answers
    # anitya's main page loads bootstrap, jQuery and jQuery UI from their packages' dist/ directories.
    port = PUBLIC_APPS["anitya"].port
    page = host.run(["curl", "-fsS", "--max-time", "10", f"http://127.0.0.1:{port}/"]).stdout
    assets = sorted(set(DIST_ASSET.findall(page)))
    assert assets, page[:2000]
    served = {asset: host.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10",
                               f"http://127.0.0.1:{port}{asset}"]).stdout for asset in assets}
    print("anitya's dist/ assets:", served)
    assert set(served.values()) == {"200"}, served
    # flaskr's SQLite database is in Flask's instance folder, /var/lib/flaskr, made by the service user.
    assert host.run(["stat", "-c", "%U", "/var/lib/flaskr/flaskr.sqlite"]).stdout.strip() == "flaskr"
    # otterwiki's first start commits its home page into the repository that
    # `otterwiki-run git init` made; all of it, and its database, belong to otterwiki.
    log = host.run(["runuser", "-u", "otterwiki", "--", "git", "-C", "/var/lib/otterwiki/repository", "log",
                    "--format=%s", "--", "home.md"]).stdout
    assert set(log.splitlines()) == {"Initial commit"}, log
    owners = host.run(["find", "/var/lib/otterwiki/repository", "/var/lib/otterwiki/db.sqlite", "-printf",
                       "%u\\n"]).stdout.split()
    assert len(owners) > 10 and set(owners) == {"otterwiki"}, owners
    # pytaku-migrate made its database in the service's working directory, as the service user.
    assert host.run(["stat", "-c", "%U", "/var/lib/pytaku/db.sqlite3"]).stdout.strip() == "pytaku"
    assert host.run(["ps", "-o", "user=", "-p", str(main_pid(host, "ihatemoney"))]).stdout.strip() == "ihatemoney"
    # ihatemoney runs Alembic's fileConfig() at start, which disables gunicorn's
    # access logger; the log file is still created there by the service user.
    assert host.run(["stat", "-c", "%U", "/var/log/ihatemoney/access.log"]).stdout.strip() == "ihatemoney"
