"""`microdeploy check --setup SCRIPT`: the administrator's part of an app that needs one before it serves.

flaskr (Flask's tutorial app, from PyPI, unmodified) answers 500 until its
documented `flask init-db` has made its database: without the script the
check fails at health, with it every host check passes, and what the script
made outside the package is not counted against the package's purge.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.debtweak import repack, replace_in
from tests.integration.test_check import APPLICATION, checks, run_check
from tests.packages import BuiltService

pytestmark = pytest.mark.integration

HOST_ONLY = ("--skip", "lintian", "--skip", "piuparts")

# What flaskr's documentation asks for, as an administrator would write it: its database made through
# flaskr-run (as user flaskr, in /var/lib/flaskr), a site file of the administrator's own outside the package.
FLASKR_SETUP = """\
flaskr-run flask init-db
mkdir -p /srv/flaskr-backups
echo 'daily' > /srv/flaskr-backups/policy
"""


def test_an_app_that_needs_its_database_made_fails_health_without_setup(
        public_apps: dict[str, BuiltService]) -> None:
    """flaskr installed and started as it comes answers 500: health fails, and says so."""
    status, report, stderr = run_check(public_apps["flaskr"].result.deb, *HOST_ONLY)
    assert status == 1, stderr
    found = checks(report)
    assert "setup" not in found
    assert found["health"]["status"] == "failed" and "500" in found["health"]["summary"], found["health"]


def test_setup_makes_the_app_serve_and_its_files_are_the_administrators(
        public_apps: dict[str, BuiltService], tmp_path: Path) -> None:
    """With --setup, the script runs after the install (the service stopped meanwhile), every host check passes,
    and purge does not count the script's own files as left behind by the package."""
    script = tmp_path / "flaskr-setup.sh"
    script.write_text(FLASKR_SETUP)
    status, report, stderr = run_check(public_apps["flaskr"].result.deb, *HOST_ONLY, "--setup", script)
    assert status == 0, stderr
    found = checks(report)
    assert list(found) == ["lintian", "piuparts", "install", "setup", "unit", "user", "exposure", "health", "logs",
                           "restart", "purge"], found
    assert all(item["status"] == "passed" for name, item in found.items() if name not in ("lintian", "piuparts"))
    assert found["setup"]["summary"].startswith("flaskr-setup.sh ran as root (")
    assert found["setup"]["summary"].endswith("flaskr.service stopped meanwhile and started again")


def test_a_failing_setup_script_fails_its_step_with_its_output(plain_service: BuiltService, tmp_path: Path) -> None:
    """A script that exits non-zero fails the setup step with its status and its last lines; later steps are not
    run. A script with #! runs with its own interpreter."""
    script = tmp_path / "setup.py"
    script.write_text("#!/usr/bin/python3\nimport sys\nprint('no database server on this host')\nsys.exit(3)\n")
    status, report, stderr = run_check(plain_service.result.deb, *HOST_ONLY, "--setup", script)
    assert status == 1, stderr
    found = checks(report)
    assert found["setup"]["status"] == "failed"
    assert found["setup"]["summary"] == "the setup script setup.py exited with status 3"
    assert "no database server on this host" in found["setup"]["details"]
    assert found["unit"]["status"] == "skipped" and found["purge"]["status"] == "skipped"


@pytest.mark.parametrize("case", ["missing", "empty", "directory", "host-skipped"])
def test_a_setup_script_that_cannot_run_is_refused_before_any_work(case: str, plain_service: BuiltService,
                                                                    tmp_path: Path) -> None:
    """A missing, empty or directory --setup, or one with --skip host: exit 2 with a message, no report written."""
    script = tmp_path / "setup.sh"
    if case == "empty":
        script.write_text("")
    elif case == "directory":
        script.mkdir()
    else:
        script.write_text("true\n")
    if case == "missing":
        script.unlink()
    junit = tmp_path / "check.xml"
    extra = ("--skip", "host") if case == "host-skipped" else ()
    status, report, stderr = run_check(plain_service.result.deb, *HOST_ONLY, *extra, "--setup", script,
                                       "--junit", junit)
    assert status == 2, stderr
    assert report == {} and not junit.exists()
    expected = {"missing": "no such setup script", "empty": "is empty", "directory": "is a directory",
                "host-skipped": "--skip host leaves out"}[case]
    assert expected in stderr, stderr
    assert "Traceback" not in stderr and os.listdir(tmp_path) == (["setup.sh"] if case != "missing" else [])


def test_a_service_that_fails_until_configured_passes_once_the_setup_configures_it(
        plain_service: BuiltService, tmp_path: Path) -> None:
    """An app whose workers exit without its site file (gunicorn starts one after another, as Calibre-Web's do)
    is configured by the script, then started afresh: it passes."""
    deb = repack(plain_service.result.deb, tmp_path, lambda tree: replace_in(
        tree / APPLICATION, "from __future__ import annotations\n",
        "from __future__ import annotations\nimport os\nimport sys\n"
        "if not os.path.exists('/etc/orders-api/site.conf'):\n    sys.exit(2)\n"))
    script = tmp_path / "setup.sh"
    script.write_text("mkdir -p /etc/orders-api\necho 'site = example' > /etc/orders-api/site.conf\n")
    status, report, stderr = run_check(deb, *HOST_ONLY, "--setup", script)
    assert status == 0, stderr
    found = checks(report)
    assert found["unit"]["status"] == "passed" and found["purge"]["status"] == "passed", found
