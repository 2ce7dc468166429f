"""The one wrapper around external programs."""

from __future__ import annotations

import logging

import pytest

from microdeploy import process
from microdeploy.errors import EXIT_FAILURE, MicrodeployError


def test_run_captures_output_and_logs_the_command(caplog: pytest.LogCaptureFixture) -> None:
    """A successful command returns its output; the argv is logged quoted."""
    caplog.set_level(logging.DEBUG, logger="microdeploy.process")
    result = process.run(["printf", "%s", "two words"])
    assert (result.returncode, result.stdout) == (0, "two words")
    assert "printf %s 'two words'" in caplog.text


def test_failure_raises_with_the_tail_of_the_output() -> None:
    """A failing command is one error with the tool's last lines, exit 1."""
    with pytest.raises(MicrodeployError) as info:
        process.run(["sh", "-c", "echo first; echo 'the real reason' >&2; exit 3"])
    assert info.value.exit_code == EXIT_FAILURE
    assert "exit status 3" in info.value.message
    assert "the real reason" in info.value.message


def test_unchecked_failure_returns_the_result() -> None:
    """With check=False the caller decides."""
    assert process.run(["false"], check=False).returncode == 1


def test_missing_tool_names_the_apt_package(monkeypatch: pytest.MonkeyPatch) -> None:
    """A missing tool is reported with the Debian package that provides it."""
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(MicrodeployError) as info:
        process.require_tools("dpkg-buildpackage", "lintian")
    assert "dpkg-buildpackage, lintian" in info.value.message
    assert info.value.hint == "Install it: sudo apt-get install dpkg-dev lintian (or run `make setup`)"


def test_output_tail_keeps_last_non_empty_lines() -> None:
    """Blank lines are dropped and only the end is kept."""
    assert process.output_tail("a\n\nb\nc\n", lines=2) == "b\nc"
