"""`repo serve` (microdeploy.repo_server): IPv6 addresses, and only the suites and components it serves."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from microdeploy import repo_server
from microdeploy.cli import main
from tests.support import stop, wait_until


def published(root: Path) -> Path:
    """A directory whose `public` link serves one file, f."""
    (root / "g" / "published").mkdir(parents=True)
    (root / "g" / "published" / "f").write_text("x")
    os.symlink("g/published", root / "public")
    return root


def test_the_machine_has_an_ipv6_loopback() -> None:
    """The IPv6 tests below need ::1 on lo; a machine without it fails here rather than skipping them."""
    shown = subprocess.run(["ip", "-6", "addr", "show", "lo"], check=True, capture_output=True, text=True,
                           timeout=30).stdout
    assert "inet6 ::1/128" in shown, shown


@pytest.mark.parametrize("bind", ["::1", "[::1]"])
def test_serving_on_the_ipv6_loopback_answers_there(tmp_path: Path, bind: str) -> None:
    """--bind ::1 (bare or bracketed) listens on IPv6; the URL has the address in brackets and answers."""
    with repo_server.serving(published(tmp_path), bind) as url:
        assert re.fullmatch(r"http://\[::1\]:[0-9]+/", url), url
        with urllib.request.urlopen(url + "f", timeout=5) as response:
            assert response.read() == b"x"


def test_repo_serve_bind_ipv6_prints_a_bracketed_url_that_answers(tmp_path: Path) -> None:
    """The real CLI with `--bind ::1 --port 0` prints http://[::1]:PORT/ and serves the repository there."""
    log = tmp_path / "serve.log"
    with log.open("wb") as output:
        process = subprocess.Popen([sys.executable, "-m", "microdeploy", "repo", "serve", str(published(tmp_path)),
                                    "--bind", "::1", "--port", "0"], stdout=output, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL)
    try:
        found: list[str] = []

        def printed() -> bool:
            found[:] = re.findall(r"on (http://\[::1\]:[0-9]+/)", log.read_text())
            return bool(found) or process.poll() is not None

        wait_until(printed, "repo serve printing its URL")
        assert found, log.read_text()
        with urllib.request.urlopen(found[0] + "f", timeout=5) as response:
            assert response.read() == b"x"
    finally:
        stop(process)


@pytest.mark.parametrize(("args", "message"), [
    (["--dist", "nosuite"], "serves no suite 'nosuite'; it serves bookworm, trixie"),
    (["--dist", "trixie", "--component", "contrib"], "has no component 'contrib' in trixie"),
    (["--component", "contrib"], "has no component 'contrib' in bookworm, trixie"),
])
def test_repo_serve_refuses_a_suite_or_component_the_repository_does_not_serve(
        tmp_path: Path, args: list[str], message: str) -> None:
    """The sources snippet for a suite or component the repository lacks would fail every host's apt-get update:
    exit 2 naming what it serves, before anything listens."""
    for suite in ("bookworm", "trixie"):
        (tmp_path / "g" / "published" / "dists" / suite / "main").mkdir(parents=True)
        (tmp_path / "g" / "published" / "dists" / suite / "InRelease").write_text("")
    os.symlink("g/published", tmp_path / "public")
    result = CliRunner().invoke(main, ["repo", "serve", str(tmp_path), "--port", "0", *args])
    assert result.exit_code == 2, result.output
    assert message in result.stderr
