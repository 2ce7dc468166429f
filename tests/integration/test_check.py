"""`microdeploy check` on real packages: a good one passes; each kind of broken one is caught with a clear reason."""

from __future__ import annotations

import json
import logging
import os
import re
import selectors
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from debian.deb822 import Deb822

from microdeploy import dists
from microdeploy.build import buildroot
from microdeploy.testbed.procs import ROOTS_DIR
from tests.debtweak import add_to_postinst, repack, replace_in
from tests.packages import EPOCH, BuiltService, build_service, new_service, unpacked_sdist
from tests.qa import deb_member

pytestmark = pytest.mark.integration

CHECK_TIMEOUT = 900
UNIT = "lib/systemd/system/orders-api.service"
GUNICORN_CONFIG = "--config /usr/share/orders-api/gunicorn.conf.py"
HEALTH = "opt/venvs/orders-api/lib/python3.11/site-packages/orders_api/health.py"
APPLICATION = "opt/venvs/orders-api/lib/python3.11/site-packages/orders_api/application.py"
HOST_STEPS = ["install", "upgrade", "unit", "user", "exposure", "health", "logs", "restart", "purge"]


def run_check(*args: str | Path) -> tuple[int, dict[str, Any], str]:
    """`microdeploy check ARGS --json` as a user runs it: exit status, the JSON report, stderr."""
    result = subprocess.run([sys.executable, "-m", "microdeploy", "check", *map(str, args), "--json"],
                            capture_output=True, text=True, timeout=CHECK_TIMEOUT)
    report = json.loads(result.stdout) if result.stdout.strip() else {}
    return result.returncode, report, result.stderr


def checks(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The report's checks by name."""
    return {item["name"]: item for item in report["checks"]}


# An app that starts a thread of its own, not a daemon: its worker cannot exit when gunicorn asks it to.
LINGERING_THREAD = """
import threading as _threading, time as _time
_create_app = create_app


def create_app(*args, **kwargs):
    _threading.Thread(target=_time.sleep, args=(3600,)).start()
    return _create_app(*args, **kwargs)
"""

# name -> (how to break the package, whether it is a newer version, the step that must fail, its reason)
BROKEN: dict[str, tuple[Callable[[Path], None], bool, str, str]] = {
    "purge-leaves-a-file": (
        lambda tree: add_to_postinst(tree, "mkdir -p /srv/orders-api && touch /srv/orders-api/cache"),
        False, "purge", r"^purge left 2 path\(s\) behind: /srv/orders-api, /srv/orders-api/cache$",
    ),
    "unit-fails-to-start": (
        lambda tree: replace_in(tree / UNIT, "orders_api.application:create_app()", "orders_api.missing:create_app()"),
        False, "unit", r"^orders-api\.service does not stay up \(.*\): .*No module named 'orders_api\.missing'",
    ),
    "health-answers-500": (
        lambda tree: replace_in(tree / HEALTH, 'return {"status": "ok", "version": __version__}',
                                'return {"status": "broken"}, 500'),
        False, "health", r"^GET /health answered 500; the package's health path must answer 2xx$",
    ),
    "listens-on-another-port": (
        lambda tree: replace_in(tree / UNIT, GUNICORN_CONFIG, f"{GUNICORN_CONFIG} --bind 127.0.0.1:8001"),
        False, "health",
        r"^nothing answers on 127\.0\.0\.1:8000, the configured port; the service listens on 127\.0\.0\.1:8001$",
    ),
    # gunicorn's own accesslog, which it chowns to the service's group at every start.
    "access-log-hidden-from-adm": (
        lambda tree: replace_in(tree / "usr/share/orders-api/gunicorn.conf.py", "logconfig_dict = {",
                                'accesslog = "/var/log/orders-api/access.log"\n_unused = {'),
        False, "logs",
        r"^1 file\(s\) under /var/log/orders-api not readable by group adm: access\.log \(orders-api:orders-api 640\)$",
    ),
    # Calibre-Web's app parses gunicorn's own arguments and exits 2 in each worker: gunicorn starts another.
    "workers-exit-at-start": (
        lambda tree: replace_in(tree / APPLICATION, "from __future__ import annotations\n",
                                "from __future__ import annotations\nimport argparse\n"
                                "argparse.ArgumentParser().parse_args()\n"),
        False, "unit",
        r"^orders-api\.service is up, but its gunicorn workers exit as they start \(\d+ exits, the last with code 2\): "
        r".*error: unrecognized arguments: --config",
    ),
    # Whoogle makes its config folder inside its installed package as it loads: the sandbox refuses the write.
    "writes-into-its-package": (
        lambda tree: replace_in(tree / APPLICATION, "from __future__ import annotations\n",
                                "from __future__ import annotations\nimport pathlib\n"
                                "(pathlib.Path(__file__).parent / 'config').mkdir(exist_ok=True)\n"),
        False, "unit",
        r"^orders-api\.service does not stay up \(.*\): OSError: \[Errno 30\] Read-only file system: "
        r"'/opt/venvs/orders-api/lib/python3\.11/site-packages/orders_api/config'$",
    ),
    # An app's thread that is not a daemon: gunicorn kills the worker at the end of its graceful_timeout.
    "worker-outlives-its-stop": (
        lambda tree: (tree / APPLICATION).write_text((tree / APPLICATION).read_text() + LINGERING_THREAD),
        False, "restart",
        r"^the service took 2\d\.\d s to stop as it restarted \(at most 10 s\): its gunicorn workers did not exit when "
        r"asked to$",
    ),
    "unit-hardening-removed": (
        lambda tree: without_lines(tree / UNIT, ("SystemCallFilter=", "ProtectKernel", "RestrictNamespaces=")),
        False, "exposure", r"^exposure \d\.\d is above 1\.5 \(systemd-analyze security\)$",
    ),
    # Radicale runs as a WSGI app under gunicorn; Debian has packaged it for years.
    "named-as-a-debian-package": (
        lambda tree: renamed(tree, "radicale"),
        False, "install",
        r"^radicale is also a package of Debian's archive \(\S+ in bookworm/main(, \S+ in \S+)*\): apt would take "
        r"the service and it for one package and install the higher version; build the service under another --name$",
    ),
    "upgrade-loses-config-ini": (
        lambda tree: add_to_postinst(tree, 'rm -f "/etc/$NAME/config.ini"'),
        True, "upgrade", r"^the upgrade removed the administrator's /etc/orders-api/config\.ini$",
    ),
}


def renamed(tree: Path, name: str) -> None:
    """The package and its unit under another name (what apt and check see; the rest keeps orders-api)."""
    control = tree / "DEBIAN" / "control"
    replace_in(control, "Package: orders-api\n", f"Package: {name}\n")
    (tree / UNIT).rename(tree / UNIT.replace("orders-api", name))


def without_lines(path: Path, starts: tuple[str, ...]) -> None:
    """A text file without its lines that start with any of `starts` (there must be some)."""
    lines = path.read_text().splitlines(keepends=True)
    kept = [line for line in lines if not line.startswith(starts)]
    assert len(kept) < len(lines), f"no line of {path} starts with {starts}"
    path.write_text("".join(kept))


def newer(service: BuiltService) -> str:
    """A version just above the service's build (0.1.0-1+deb12 -> 0.1.0-1+deb12+1)."""
    return f"{service.result.version}+1"


@pytest.fixture(scope="module")
def good_v2(plain_service: BuiltService, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The scaffold's package as a newer version, unchanged otherwise: something to upgrade to."""
    return repack(plain_service.result.deb, tmp_path_factory.mktemp("good-v2"), lambda tree: None,
                  version=newer(plain_service))


@pytest.fixture(scope="module")
def host_failures(
    plain_service: BuiltService, host_image: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[int, dict[str, Any], str]]:
    """Every broken variant checked on its own host, all at once (lintian and piuparts left out)."""
    out = tmp_path_factory.mktemp("broken")
    runs: dict[str, list[str | Path]] = {}
    for name, (edit, is_newer, _, _) in BROKEN.items():
        (out / name).mkdir()
        deb = repack(plain_service.result.deb, out / name, edit,
                     version=newer(plain_service) if is_newer else None)
        runs[name] = [deb, "--skip", "lintian", "--skip", "piuparts"]
        if is_newer:
            runs[name] += ["--previous", plain_service.result.deb]
    with ThreadPoolExecutor(max_workers=len(runs)) as pool:
        futures = {name: pool.submit(run_check, *args) for name, args in runs.items()}
        return {name: future.result() for name, future in futures.items()}


def test_a_good_package_passes_every_check_with_a_junit_report(
    plain_service: BuiltService, good_v2: Path, tmp_path: Path
) -> None:
    """The scaffold's package passes lintian, piuparts (with the upgrade) and every host check; JUnit says so."""
    junit = tmp_path / "reports" / "check.xml"
    junit.parent.mkdir()
    status, report, stderr = run_check(good_v2, "--previous", plain_service.result.deb, "--junit", junit)
    assert status == 0, stderr
    assert report["passed"] is True and report["release"] == "bookworm"
    found = checks(report)
    assert list(found) == ["lintian", "piuparts", *HOST_STEPS]
    assert all(item["status"] == "passed" for item in found.values()), found
    assert f"upgrade from {plain_service.result.version}" in found["piuparts"]["summary"]
    assert "override dir-or-file-in-opt: dh-virtualenv installs" in found["lintian"]["details"]
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("11", "0", "0")
    assert [case.get("name") for case in suite.iter("testcase")] == list(found)


# Flask's documented logging set-up, done as the application loads (Alerta's create_app does the same).
CONFIGURES_LOGGING = ("from __future__ import annotations\nfrom logging.config import dictConfig\n"
                      "dictConfig({'version': 1, 'root': {'level': 'INFO'}})\n")


def test_an_app_that_configures_logging_as_it_loads_keeps_its_access_log(plain_service: BuiltService,
                                                                         tmp_path: Path) -> None:
    """logging.config.dictConfig with its default disable_existing_loggers, called as the app loads (Flask's
    documented recipe), disables gunicorn's loggers too: the access log under /var/log/orders-api is written all
    the same, and the package passes every host step."""
    deb = repack(plain_service.result.deb, tmp_path, lambda tree: replace_in(
        tree / APPLICATION, "from __future__ import annotations\n", CONFIGURES_LOGGING))
    status, report, stderr = run_check(deb, "--skip", "lintian", "--skip", "piuparts")
    found = checks(report)
    assert status == 0, (found.get("logs"), stderr)
    assert found["logs"]["status"] == "passed"
    assert "access.log" in found["logs"]["summary"]


def test_a_lintian_error_is_caught(plain_service: BuiltService, tmp_path: Path) -> None:
    """A package without its copyright file fails lintian with the tag in the reason, exit 1."""
    deb = repack(plain_service.result.deb, tmp_path,
                 lambda tree: (tree / "usr/share/doc/orders-api/copyright").unlink())
    status, report, stderr = run_check(deb, "--skip", "piuparts", "--skip", "host")
    assert status == 1, stderr
    lintian = checks(report)["lintian"]
    assert lintian["status"] == "failed"
    assert re.fullmatch(r"1 error, 0 warnings, first: E: orders-api: no-copyright-file \(lintian \S+ of bookworm\)",
                        lintian["summary"])


@pytest.mark.parametrize("broken", BROKEN)
def test_a_broken_package_fails_its_step_with_one_line_and_the_journal(
    broken: str, host_failures: dict[str, tuple[int, dict[str, Any], str]]
) -> None:
    """Each broken variant exits 1; the right step fails with a one-line reason and the journal's tail."""
    status, report, stderr = host_failures[broken]
    _, _, step, reason = BROKEN[broken]
    assert status == 1, stderr
    found = checks(report)
    failed = [name for name, item in found.items() if item["status"] == "failed"]
    assert failed == [step], {name: (found[name]["summary"], found[name]["details"][-2000:]) for name in failed}
    assert re.search(reason, found[step]["summary"]), found[step]
    assert re.search(r"^--- journal of \S+\.service \(last 30 lines\) ---$", found[step]["details"], re.M)
    later = HOST_STEPS[HOST_STEPS.index(step) + 1:]
    assert all(found[name]["status"] == "skipped" for name in later if name in found)


def test_a_write_into_the_package_is_told_where_the_service_may_write(
    host_failures: dict[str, tuple[int, dict[str, Any], str]]
) -> None:
    """The unit step's details of the package that writes into its own files: the hint, then the journal."""
    details = checks(host_failures["writes-into-its-package"][1])["unit"]["details"]
    assert details.startswith("hint: /opt/venvs/orders-api/lib/python3.11/site-packages/orders_api/config is "
                              "read-only to the service: its unit (ProtectSystem=strict) lets it write only under "
                              "/var/lib/orders-api, /var/log/orders-api and its private /tmp."), details[:500]


def library_deb(out: Path, name: str, version: str) -> Path:
    """A pure-Python library's package as `build --backend stdeb` makes one, of `name` at `version`."""
    tree = out / "tree"
    module = tree / "usr/lib/python3/dist-packages/docopt.py"
    module.parent.mkdir(parents=True)
    module.write_text('"""A stand-in for docopt."""\n\n__version__ = "0.6.2"\n')
    (tree / "DEBIAN").mkdir()
    (tree / "DEBIAN" / "control").write_text(
        f"Package: {name}\nVersion: {version}\nArchitecture: all\nMaintainer: Library Team <libs@example.org>\n"
        "Depends: python3:any\nSection: python\nPriority: optional\nDescription: Pythonic argument parser\n"
        " A stand-in for a library built with --backend stdeb.\n")
    deb = out / f"{name}_{version}_all.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "--build", str(tree), str(deb)], check=True,
                   capture_output=True)
    return deb


@pytest.mark.parametrize(("name", "version", "installed", "debians", "hint"), [
    ("python3-docopt", "0.6.2-1+deb12", False, "0.6.2-4.1", "--version, or --revision above Debian's"),
    ("python3-docopt", "0.6.2-5+deb12", True, "", ""),
    # PySocks 1.7.1's package: Debian's upstream version is 1.7.1+dfsg, above 1.7.1 whatever the revisions.
    ("python3-socks", "1.7.1-9+deb12", False, "1.7.1+dfsg-1",
     "--version: no revision puts upstream version 1.7.1 above Debian's 1.7.1+dfsg"),
])
def test_a_library_below_debians_own_of_its_name_fails_install(tmp_path: Path, name: str, version: str,
                                                               installed: bool, debians: str, hint: str) -> None:
    """docopt 0.6.2 built with --backend stdeb is python3-docopt 0.6.2-1+deb12, below Debian's 0.6.2-4.1: apt
    would install Debian's, and upgrade a host that has it to Debian's. Above Debian's, it installs and purges.
    The hint says what puts it above: a revision only where the upstream versions are the same."""
    status, report, stderr = run_check(library_deb(tmp_path, name, version), "--skip", "lintian", "--skip", "piuparts")
    found = checks(report)
    if installed:
        assert status == 0, {name: item["summary"] for name, item in found.items()} or stderr
        assert found["install"]["status"] == found["purge"]["status"] == "passed"
        return
    assert status == 1, stderr
    assert found["install"]["status"] == "failed"
    assert found["install"]["summary"] == (
        f"{name} {version} is not above Debian's own ({debians} in bookworm/main): apt installs Debian's, and "
        "upgrades a host that has this one to it; use Debian's package, or build this one with a higher version "
        f"({hint})")


@pytest.mark.parametrize("dependency", ["jq", "postgresql"])
def test_what_the_package_s_dependencies_install_and_make_is_not_left_behind_by_it(
    plain_service: BuiltService, tmp_path: Path, dependency: str
) -> None:
    """A package that depends on what the image lacks passes purge: jq (with libjq1 and libonig5), and PostgreSQL,
    whose maintainer scripts make a cluster, alternatives and certificates, and which apt's autoremove leaves
    installed (postgresql-common says so). Their files are theirs, not the package's."""
    def depends_on_it(tree: Path) -> None:
        control = tree / "DEBIAN" / "control"
        control.write_text(re.sub(r"(?m)^(Depends: .*)$", rf"\1, {dependency}", control.read_text()))

    deb = repack(plain_service.result.deb, tmp_path, depends_on_it)
    status, report, stderr = run_check(deb, "--skip", "lintian", "--skip", "piuparts")
    assert status == 0, {name: item["summary"] for name, item in checks(report).items()} or stderr
    assert checks(report)["purge"]["summary"] == "purged; nothing of orders-api left behind"


def test_sigterm_tears_the_host_and_its_namespace_down(plain_service: BuiltService, host_image: Path) -> None:
    """A check ended by SIGTERM while its host runs removes the host's root and its network namespace."""
    child = subprocess.Popen(
        [sys.executable, "-m", "microdeploy", "check", str(plain_service.result.deb), "--skip", "lintian",
         "--skip", "piuparts"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    assert child.stderr is not None
    # Unbuffered reads: what a buffered reader holds back would be lost to the rest below.
    stderr = child.stderr.fileno()
    seen = b""
    deadline = time.monotonic() + 300
    with selectors.DefaultSelector() as selector:
        selector.register(stderr, selectors.EVENT_READ)
        while b"booted in" not in seen and time.monotonic() < deadline and child.poll() is None:
            if selector.select(timeout=1):
                seen += os.read(stderr, 65536)
    assert b"booted in" in seen, seen
    # At once: the host is still booting, the hardest moment to tear it down.
    child.send_signal(signal.SIGTERM)
    rest = b""
    while chunk := os.read(stderr, 65536):
        rest += chunk
    child.wait(timeout=120)
    child.stderr.close()
    seen_text, rest_text = seen.decode(), (seen + rest).decode()
    host = re.search(r"host (mdtb-[0-9a-f]+) booted", seen_text)
    netns = re.search(r"created network namespace (mdtb-\d+)", seen_text)
    assert host and netns, seen_text
    assert child.returncode != 0
    assert f"host {host.group(1)} powered off and removed" in rest_text
    assert f"deleted network namespace {netns.group(1)}" in rest_text
    assert not list(ROOTS_DIR.glob(f"{host.group(1)}.*"))


def test_a_trixie_host_refuses_a_package_built_for_bookworm(plain_service: BuiltService) -> None:
    """--dist trixie boots a trixie host whose apt, fed from the mirror through check's feed, refuses python3.11."""
    status, report, stderr = run_check(plain_service.result.deb, "--dist", "trixie", "--skip", "lintian",
                                       "--skip", "piuparts")
    assert status == 1, stderr
    assert report["release"] == "trixie"
    install = checks(report)["install"]
    assert install["status"] == "failed"
    assert install["summary"] == (f"apt-get install {plain_service.result.deb.name} failed: "
                                  "orders-api : Depends: python3.11 but it is not installable")


def test_previous_version_from_a_published_repository(
    plain_service: BuiltService, good_v2: Path, tmp_path: Path
) -> None:
    """--previous VERSION --repo DIR: the host installs that version from the signed repository, through the feed."""
    repo = tmp_path / "repo"
    subprocess.run([sys.executable, "-m", "microdeploy", "publish", str(plain_service.result.deb), "--repo", str(repo)],
                   check=True, capture_output=True, timeout=300)
    previous = plain_service.result.version
    status, report, stderr = run_check(good_v2, "--previous", previous, "--repo", repo, "--skip", "lintian",
                                       "--skip", "piuparts")
    assert status == 0, stderr
    found = checks(report)
    assert found["install"]["summary"].endswith(
        f"{previous} (previous) installed with apt (dependencies from Debian and --repo)")
    assert found["upgrade"]["summary"] == (
        f"upgraded to {newer(plain_service)}; the administrator's /etc/orders-api/config.ini kept as it was")
    assert all(item["status"] in ("passed", "skipped") for item in found.values()), found


def test_a_trixie_package_passes_on_a_trixie_host(trixie_service: BuiltService,
                                                 trixie_service_v2: BuiltService) -> None:
    """A package built for trixie (+deb13) is checked on trixie without --dist: piuparts (install, upgrade from
    the previous trixie build, purge in a trixie chroot) and every host check pass."""
    status, report, stderr = run_check(trixie_service_v2.result.deb, "--previous", trixie_service.result.deb)
    assert status == 0, stderr
    assert report["release"] == "trixie"
    found = checks(report)
    assert list(found) == ["lintian", "piuparts", *HOST_STEPS]
    assert "minbase trixie chroot" in found["piuparts"]["summary"]
    assert f"upgrade from {trixie_service.result.version}" in found["piuparts"]["summary"]
    assert found["install"]["summary"].startswith("trixie host booted")


def test_a_trixie_package_is_checked_by_trixies_lintian(tmp_path: Path) -> None:
    """Pillow's trixie wheel bundles libzstd, which trixie's lintian reports as an embedded library and bookworm's
    does not know: the build overrides it from trixie's lintian, and `check` runs that lintian (the trixie build
    root's), so the package is clean. The machine's bookworm lintian called the override mismatched, a warning."""
    project = new_service(tmp_path, "pictures-api")
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('    "gunicorn>=21.2",\n',
                                                       '    "gunicorn>=21.2",\n    "Pillow==13.0.0",\n'))
    result = build_service(project, tmp_path / "dist", dist="trixie")
    status, report, stderr = run_check(result.deb, "--skip", "piuparts", "--skip", "host")
    assert status == 0, stderr
    lintian = checks(report)["lintian"]
    # The override that only trixie's lintian knows a use for.
    assert "embedded-library libzstd" in deb_member(result.deb, "/usr/share/lintian/overrides/pictures-api")
    root = buildroot.root_path(buildroot.roots_dir(os.environ), dists.get("trixie"))
    status_text = (root / "var/lib/dpkg/status").read_text()
    [version] = [entry["Version"] for entry in Deb822.iter_paragraphs(status_text) if entry.get("Package") == "lintian"]
    assert re.fullmatch(rf"0 errors, 0 warnings, \d+ overrides with reasons \(lintian {re.escape(version)} of trixie\)",
                        lintian["summary"])
    assert version.startswith("2.12")  # trixie's lintian, not this bookworm machine's 2.116


def test_a_public_library_built_for_trixie_passes_check_on_a_trixie_host(tmp_path: Path) -> None:
    """python-slugify 9.2.0 from PyPI, unmodified, built with --backend stdeb --dist trixie (in trixie's build root,
    with trixie's stdeb and dh-python): python3-slugify +deb13 keeps its floor on text-unidecode, and `check` passes
    it on trixie: trixie's lintian, piuparts in a trixie chroot, installed above trixie's own python3-slugify with
    its dependencies from trixie, and purged."""
    source = unpacked_sdist("python-slugify", "9.2.0", tmp_path)
    out = tmp_path / "out"
    subprocess.run([sys.executable, "-m", "microdeploy", "-q", "build", str(source), "--backend", "stdeb", "--dist",
                    "trixie", "--out", str(out)], check=True, capture_output=True, timeout=CHECK_TIMEOUT,
                   env={**os.environ, "SOURCE_DATE_EPOCH": EPOCH})
    [deb] = out.glob("python3-slugify_9.2.0-1+deb13_all.deb")
    depends = subprocess.run(["dpkg-deb", "--field", str(deb), "Depends"], capture_output=True, text=True,
                             check=True).stdout.strip().split(", ")
    assert "python3-text-unidecode (>= 1.3)" in depends and "python3:any" in depends, depends
    status, report, stderr = run_check(deb)
    found = checks(report)
    assert status == 0, {name: item["summary"] for name, item in found.items()} or stderr
    assert report["release"] == "trixie"
    assert "minbase trixie chroot" in found["piuparts"]["summary"]
    assert found["install"]["status"] == found["purge"]["status"] == "passed"
    assert found["install"]["summary"].startswith("trixie host booted")


def declare_setuptools(project: Path) -> dict[str, Any]:
    """archivy's fix: setuptools<82 added to its requirements.txt."""
    with (project / "requirements.txt").open("a") as requirements:
        requirements.write("setuptools<82\n")
    return {}


def depend_on_python3_distutils(project: Path) -> dict[str, Any]:
    """snappass's fix on Debian 12: the package depends on python3-distutils."""
    return {"depends": ("python3-distutils",)}


# Public apps from PyPI, unmodified, whose service fails on its host as it starts: what the build warns of, the
# module the unit's journal names, the check's hint, and the fix the warning gives.
UNSATISFIED_IMPORTS = [
    # archivy 1.7.7 imports pkg_resources and requires no setuptools (setuptools 82 has no pkg_resources).
    pytest.param(
        ("archivy", "1.7.7"), {"name": "archivy", "app": "archivy:app", "port": 8130},
        "pkg_resources is imported by archivy/models.py:2, archivy/routes.py:3, but no distribution in the service's "
        "venv provides it: the service fails as it starts (loading archivy imports it); add 'setuptools<82' to the "
        "project's dependencies", "pkg_resources", "add 'setuptools<82' to the project's dependencies",
        declare_setuptools, id="archivy-pkg_resources"),
    # snappass 1.6.2 imports distutils.util, which Debian 12 ships in python3-distutils (its python3.11 keeps only
    # distutils' __init__ and version).
    pytest.param(
        ("snappass", "1.6.2"), {"name": "snappass", "app": "snappass.main:app", "port": 8131, "health_path": "/"},
        "distutils.util is not in Debian's python3.11 but in python3-distutils, and snappass/main.py:12 imports it: "
        "the service fails when that runs on a host without python3-distutils; add 'python3-distutils' to the "
        "package's depends (depends in [tool.microdeploy], or --depends) or 'setuptools' to the project's "
        "dependencies (its distutils)", "distutils.util", "add 'python3-distutils' to the service's depends",
        depend_on_python3_distutils, id="snappass-distutils"),
]


@pytest.mark.parametrize(("sdist", "settings", "warning", "missing", "hint", "fix"), UNSATISFIED_IMPORTS)
def test_a_public_app_that_imports_what_its_package_lacks_is_told_what_to_declare(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, sdist: tuple[str, str], settings: dict[str, Any], warning: str,
    missing: str, hint: str, fix: Callable[[Path], dict[str, Any]],
) -> None:
    """The build warns of the import, the unit fails on the host with the module's name, and the check's hint says
    what to declare; with that declared, as they say, the build is quiet and every check on the host passes."""
    project = unpacked_sdist(*sdist, tmp_path)
    with caplog.at_level(logging.WARNING):
        built = build_service(project, tmp_path / "dist", **settings)
    assert warning in caplog.messages
    status, report, _ = run_check(built.deb, "--skip", "lintian", "--skip", "piuparts")
    unit = checks(report)["unit"]
    assert status == 1 and unit["status"] == "failed", unit
    assert f"ModuleNotFoundError: No module named '{missing}'" in unit["summary"]
    assert hint in json.dumps(unit)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        declared = build_service(project, tmp_path / "declared", **settings, **fix(project))
    assert not [message for message in caplog.messages if missing in message]
    status, report, stderr = run_check(declared.deb, "--skip", "lintian", "--skip", "piuparts")
    assert status == 0, {name: item["summary"] for name, item in checks(report).items()} or stderr
