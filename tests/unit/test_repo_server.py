"""`repo serve` on IPv6 addresses (microdeploy.repo_server)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from microdeploy import repo_server
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
