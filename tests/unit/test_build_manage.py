"""NAME-manage, the management commands every package has: the project's own, else Flask's command line over the app.

A stand-in flask package records how it is called; the real Flask runs in
tests/integration/test_build_package.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from microdeploy.build.debiandir.context import BuildFacts
from microdeploy.build.release.license import StatedLicense
from tests.debiandir import rendered_debian

MINOR = f"{sys.version_info[0]}.{sys.version_info[1]}"
FACTS = BuildFacts(upstream="1.0", version="1.0-1", python_minor=MINOR, distribution="bookworm", epoch=1767225600,
                   license=StatedLicense("MIT"))
APP = "shop.run:create_app(instance_path='/etc/shop')"
# flask.cli as far as NAME-manage uses it: `cli.main(args=..., prog_name=...)`, which prints what it was given.
FAKE_FLASK_CLI = """import json, os, sys
class Group:
    def main(self, args, prog_name):
        print(json.dumps({"args": args, "prog_name": prog_name, "FLASK_APP": os.environ.get("FLASK_APP"),
                          "prefix": sys.prefix}))
cli = Group()
"""


@pytest.fixture
def debian(tmp_path: Path) -> Path:
    """debian/ rendered for shop, whose app is a factory called with a quoted argument."""
    return rendered_debian(tmp_path, "shop", FACTS, app=APP)


def venv(root: Path, *, flask: bool) -> Path:
    """A venv as the package ships it (bin/python linked to the system's interpreter), with the stand-in flask."""
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "python").symlink_to(os.path.realpath(sys.executable))
    (root / "pyvenv.cfg").write_text(f"home = {Path(os.path.realpath(sys.executable)).parent}\n"
                                     "include-system-site-packages = false\n")
    site = root / "lib" / f"python{MINOR}" / "site-packages"
    site.mkdir(parents=True)
    if flask:
        (site / "flask").mkdir()
        (site / "flask" / "__init__.py").write_text("")
        (site / "flask" / "cli.py").write_text(FAKE_FLASK_CLI)
    return root


def installed(debian: Path, venv_root: Path) -> Path:
    """debian/rules' manage step run over `venv_root` (its venv step taken as done); the venv's NAME-manage."""
    subprocess.run(["make", "-s", "-f", "debian/rules", "-o", "venv", "manage", f"VENV={venv_root}"],
                   cwd=debian.parent, check=True, capture_output=True)
    return venv_root / "bin" / "shop-manage"


def test_the_package_ships_flasks_command_line_over_the_app_as_name_manage(debian: Path, tmp_path: Path) -> None:
    """A project without a shop-manage of its own gets debian/shop-manage (0755, sh-valid) in the venv's bin/: it
    runs the venv's python, not the caller's cwd's modules, with Flask's command line named shop-manage, the
    service's app as FLASK_APP and the arguments as given."""
    subprocess.run(["sh", "-n", str(debian / "shop-manage")], check=True)
    script = installed(debian, venv(tmp_path / "opt" / "venvs" / "shop", flask=True))
    assert script.read_bytes() == (debian / "shop-manage").read_bytes()
    assert script.stat().st_mode & 0o777 == 0o755
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    (cwd / "flask.py").write_text("raise SystemExit('the working directory was on sys.path')\n")
    result = subprocess.run([str(script), "db", "upgrade", "--sql", "it's"], cwd=cwd, capture_output=True,
                            text=True, env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"args": ["db", "upgrade", "--sql", "it's"], "prog_name": "shop-manage",
                                         "FLASK_APP": APP, "prefix": str(tmp_path / "opt" / "venvs" / "shop")}


def test_a_projects_own_name_manage_is_kept(debian: Path, tmp_path: Path) -> None:
    """The scaffold declares shop-manage as a console script: the venv's is left as the project made it."""
    root = venv(tmp_path / "venv", flask=True)
    own = root / "bin" / "shop-manage"
    own.write_text("#!/opt/venvs/shop/bin/python\nfrom shop.manage import main\nmain()\n")
    own.chmod(0o755)
    assert installed(debian, root).read_text() == "#!/opt/venvs/shop/bin/python\nfrom shop.manage import main\nmain()\n"


def test_an_app_without_flask_is_told_it_has_no_flask_command_line(debian: Path, tmp_path: Path) -> None:
    """In a venv without Flask (a bottle or plain WSGI app) shop-manage exits 2 saying so, and where to go instead."""
    script = installed(debian, venv(tmp_path / "venv", flask=False))
    result = subprocess.run([str(script), "routes"], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stdout == ""
    assert f"shop-manage: {APP} is not a Flask app ({tmp_path / 'venv'} has no Flask), so it has no Flask " \
           "command line; run the project's own commands with shop-run" in result.stderr
