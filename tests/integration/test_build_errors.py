"""`microdeploy build` refuses bad input (exit 2) and reports tool failures (exit 1), leaving dist/ empty."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from microdeploy.cli import main
from tests.packages import new_service

pytestmark = pytest.mark.integration


def build(project: Path, out: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["build", str(project), "--out", str(out), *args])


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scaffolded service the tests break in different ways (each on its own copy)."""
    return new_service(tmp_path_factory.mktemp("errors"), "orders-api")


def broken_copy(service: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "orders-api"
    copy.mkdir()
    for path in service.rglob("*"):
        target = copy / path.relative_to(service)
        if path.is_dir():
            target.mkdir(exist_ok=True)
        else:
            target.write_bytes(path.read_bytes())
    return copy


@pytest.mark.parametrize(
    ("setup", "args", "message"),
    [
        ("missing", [], "project directory not found"),
        ("empty", [], "is not a Python project"),
        ("bare", [], "hint: Add a pyproject.toml"),
        ("debian", [], "has its own debian/ directory"),
        ("service", ["--app", "orders_api.nowhere:app"], "app module 'orders_api.nowhere'"),
        ("service", ["--app", "orders_api.application:make_app()"], "defines no 'make_app'"),
        ("service", ["--name", "Orders_API"], "invalid name 'Orders_API' (from --name)"),
        # Names a host already has: a Debian system account (the service would run as root), systemd's own, and
        # a package installed here (dpkg would be replaced).
        ("service", ["--name", "root"], "invalid name 'root' (from --name): root is a system account of every "),
        ("service", ["--name", "systemd"], "invalid name 'systemd' (from --name): systemd's own name"),
        ("service", ["--name", "dpkg"], "invalid name 'dpkg': dpkg is a package installed on this machine, not a "
                                        "microdeploy service"),
        ("service", ["--version", "1.0 beta"], "invalid version '1.0 beta' (from --version)"),
        # A Debian version, as puppet-data and deploy take one: it built 1.0.post1-1+deb12 without a word.
        ("service", ["--version", "1.0-1"], "invalid version '1.0-1' (from --version): a Debian version, which "
                                            "PEP 440 would read as 1.0.post1\nhint: Pass the upstream version and "
                                            "the revision: --version 1.0 --revision 1"),
        ("service", ["--revision", "x/y"], "invalid Debian revision 'x/y' (from --revision)"),
        # `--revision "$REV"` with REV unset: not the default revision 1 without a word.
        ("service", ["--revision", ""], "invalid Debian revision '' (from --revision)"),
        ("service", ["--python", "python2"], "invalid python 'python2' (from --python)"),
        # Debian 12 has no python3.13 for apt to install: the hint names its own Python and the release with it.
        ("service", ["--python", "python3.13"], "bookworm ships Python 3.11, not python3.13\nhint: "
                                                "Set python to python3 (bookworm's python3.11), or build for "
                                                "trixie (--dist trixie)"),
        ("service", ["--compression-level", "10"], "invalid compression_level 10 (from --compression-level)"),
        ("service", ["--extra", "no such"], "invalid extras 'no such' (from --extra)"),
        ("service", ["--extra", "postgres"], "the project has no extra postgres ([project.optional-dependencies] of "),
        ("python", [], "requires-python '>=3.99' excludes Python 3.11"),
        ("foreign", [], "the repository belongs to another user than the one building"),
        # A PEP 751 lock the build would install from: not TOML, or of a lock-version it does not know.
        ("pylock-broken", [], "pylock.toml is not a TOML file: "),
        ("pylock-future", [], "pylock.toml has lock-version 2.0: the build reads lock-version 1.x"),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(
    service: Path, tmp_path: Path, setup: str, args: list[str], message: str
) -> None:
    """Each bad input is named on stderr with exit status 2, and no output directory appears."""
    project = {
        "missing": tmp_path / "nope",
        "empty": tmp_path / "empty",
        "bare": tmp_path / "bare",
        "debian": tmp_path / "orders-api",
        "service": service,
        "python": service,
        "foreign": service,
        "pylock-broken": service,
        "pylock-future": service,
    }[setup]
    if setup in ("empty", "bare"):
        project.mkdir()
    if setup == "bare":  # a Flask app as many start: loose modules and a requirements.txt
        (project / "app.py").write_text("from flask import Flask\n\napp = Flask(__name__)\n")
        (project / "requirements.txt").write_text("flask\n")
    if setup == "debian":
        project = broken_copy(service, tmp_path)
        (project / "debian").mkdir()
    if setup == "foreign":  # a checkout another user owns, as in a CI container over a mounted workspace
        project = broken_copy(service, tmp_path)
        subprocess.run(["git", "init", "-q"], cwd=project, check=True)
        subprocess.run(["chown", "-R", "1001:1001", str(project)], check=True)
    if setup == "python":
        project = broken_copy(service, tmp_path)
        pyproject = project / "pyproject.toml"
        pyproject.write_text(pyproject.read_text().replace('requires-python = ">=3.11"', 'requires-python = ">=3.99"'))
    if setup.startswith("pylock"):
        project = broken_copy(service, tmp_path)
        (project / "pylock.toml").write_text('lock-version = "1.0"\n[[packages]\n' if setup == "pylock-broken"
                                             else 'lock-version = "2.0"\ncreated-by = "a later tool"\n')
    out = tmp_path / "dist"
    result = build(project, out, *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()


def test_unresolvable_dependency_is_a_failure_with_the_installers_words(service: Path, tmp_path: Path) -> None:
    """A requirement that no index has: the installer's resolution error in one message, a hint that names it and
    the indexes to check, exit 1, nothing in dist/."""
    project = broken_copy(service, tmp_path)
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace(
        '"flask>=3.0,<4",', '"flask>=3.0,<4",\n    "microdeploy-test-no-such-distribution==9.9",'))
    out = tmp_path / "dist"
    result = build(project, out)
    assert result.exit_code == 1, result.output
    assert "dpkg-buildpackage failed" in result.stderr
    assert "microdeploy-test-no-such-distribution" in result.stderr
    assert ("hint: No release of microdeploy-test-no-such-distribution is on the package indexes the installer "
            "uses") in result.stderr
    assert not out.exists()


def test_an_index_that_does_not_answer_gets_the_index_hint(service: Path, tmp_path: Path) -> None:
    """uv's fetch failure (an index that refuses the connection) says to check the index, not the dependencies."""
    project = broken_copy(service, tmp_path)
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace(
        '"flask>=3.0,<4",', '"flask>=3.0,<4",\n    "microdeploy-test-index-probe==1.0",'))
    with socket.socket() as closed:  # a port of loopback that nothing listens on once the socket is closed
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    out = tmp_path / "dist"
    result = CliRunner().invoke(main, ["build", str(project), "--out", str(out)],
                                env={"UV_INDEX_URL": f"http://127.0.0.1:{port}/simple", "UV_HTTP_RETRIES": "0"})
    assert result.exit_code == 1, result.output
    assert "Failed to fetch: http://127.0.0.1:" in result.stderr
    assert "hint: The package index did not answer" in result.stderr
    assert "Fix the project's dependencies" not in result.stderr
    assert not out.exists()


def test_missing_build_dependency_is_a_failure_with_a_hint(service: Path, tmp_path: Path) -> None:
    """An unmet Build-Depends stops the build with dpkg's line and an apt hint, exit 1."""
    out = tmp_path / "dist"
    result = build(service, out, "--build-depends", "microdeploy-test-no-such-package")
    assert result.exit_code == 1, result.output
    assert "Unmet build dependencies: microdeploy-test-no-such-package" in result.stderr
    assert "hint: Install the missing build dependencies" in result.stderr
    assert not out.exists()


def test_a_dependency_too_old_to_build_from_source_is_told_to_take_a_newer_version(service: Path,
                                                                                   tmp_path: Path) -> None:
    """PyYAML 5.4.1 from PyPI has no wheel for Python 3.11, and its setup.py no longer builds (Cython 3's build_ext
    has no cython_sources): the hint names the pin and a version with a wheel, not -dev packages, exit 1."""
    project = broken_copy(service, tmp_path)
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"flask>=3.0,<4",', '"flask>=3.0,<4",\n    "pyyaml==5.4.1",'))
    out = tmp_path / "dist"
    result = build(project, out)
    assert result.exit_code == 1, result.output
    assert "Failed to build `pyyaml==5.4.1`" in result.stderr
    assert ("hint: pyyaml 5.4.1 has no wheel for the release's Python, and its code no longer builds from source"
            ) in result.stderr
    assert "-dev packages" not in result.stderr
    assert not out.exists()


def test_a_requirements_file_line_that_is_no_requirement_is_bad_input(service: Path, tmp_path: Path) -> None:
    """A line of the project's requirements.txt that is not a requirement is the project's to fix: exit 2 with
    the installer's words and the file named, not exit 1 and "read the full dpkg-buildpackage output"."""
    project = broken_copy(service, tmp_path)
    (project / "requirements.txt").write_text("flask\nthis is not a requirement !!!\n")
    out = tmp_path / "dist"
    result = build(project, out)
    assert result.exit_code == 2, result.output
    assert "the project's requirements.txt holds a line that is not a requirement" in result.stderr
    assert "Couldn't parse requirement in `requirements.txt`" in result.stderr
    assert "hint: Fix that line of requirements.txt" in result.stderr
    assert not out.exists()
