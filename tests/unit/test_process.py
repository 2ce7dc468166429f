"""The one wrapper around external programs."""

from __future__ import annotations

import logging
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from microdeploy import process, proctree
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


# A tool whose program starts one of its own, each waiting for its child, as dpkg-buildpackage runs make and make
# runs dh: the last one's pid goes to the file $1.
TOOL_WITH_A_CHILD = 'sh -c \'sleep 300 & echo $! > "$0"; wait\' "$1" & wait'


def started_pid(path: Path) -> int:
    """The pid a test's program wrote to `path`, once it has (bounded wait)."""
    deadline = time.monotonic() + 10
    while not (path.is_file() and path.read_text().strip()):
        assert time.monotonic() < deadline, f"nothing started: no {path}"
        time.sleep(0.01)
    return int(path.read_text())


def test_a_timed_out_tool_ends_with_the_programs_it_started(tmp_path: Path) -> None:
    """A timeout ends the tool and what runs below it (subprocess.run's kill ended the tool alone)."""
    with pytest.raises(MicrodeployError, match=r"did not finish within 0\.5 s"):
        process.run(["sh", "-c", TOOL_WITH_A_CHILD, "sh", str(tmp_path / "pid")], timeout=0.5)
    assert not proctree.alive(started_pid(tmp_path / "pid"))


@pytest.fixture
def interrupt_after() -> Iterator[None]:
    """KeyboardInterrupt in the test's thread half a second on, as Ctrl-C or microdeploy's SIGTERM handler raise."""
    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, 0.5)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.usefixtures("interrupt_after")
def test_an_interrupted_tool_ends_with_the_programs_it_started(tmp_path: Path) -> None:
    """Interrupted while a tool runs, run returns only once nothing of the tool runs: a build's clean-up that
    follows does not race dh programs that go on writing into the tree."""
    with pytest.raises(KeyboardInterrupt):
        process.run(["sh", "-c", TOOL_WITH_A_CHILD, "sh", str(tmp_path / "pid")])
    assert not proctree.alive(started_pid(tmp_path / "pid"))


def test_a_program_that_ignores_sigterm_is_killed_after_the_grace(tmp_path: Path) -> None:
    """SIGTERM first, SIGKILL for what still runs after the grace."""
    deaf = subprocess.Popen(["sh", "-c", f"trap '' TERM; {TOOL_WITH_A_CHILD}", "sh", str(tmp_path / "pid")])
    grandchild = started_pid(tmp_path / "pid")
    proctree.end_tree(deaf.pid, grace=0.2)
    assert deaf.wait(timeout=5) == -signal.SIGKILL
    assert not proctree.alive(grandchild)


def test_descendants_lists_parents_before_their_children(tmp_path: Path) -> None:
    """The whole tree below a pid, the tool's own child first."""
    tool = subprocess.Popen(["sh", "-c", TOOL_WITH_A_CHILD, "sh", str(tmp_path / "pid")])
    try:
        grandchild = started_pid(tmp_path / "pid")
        below = proctree.descendants(tool.pid)
        assert len(below) == 2 and below[1] == grandchild
        assert proctree.parents()[grandchild] == below[0]
        assert proctree.parents()[below[0]] == tool.pid
    finally:
        proctree.end_tree(tool.pid)
        tool.wait()


def test_a_process_is_signalled_only_while_it_is_the_one_that_was_found() -> None:
    """A pid is signalled with the start time it was found with: a later process given the same pid is not."""
    sleeper = subprocess.Popen(["sleep", "300"])
    try:
        found = proctree._identity(sleeper.pid)
        assert found is not None
        proctree._signal(sleeper.pid, str(int(found) + 1), signal.SIGTERM)  # another process's start time
        assert sleeper.poll() is None and proctree.alive(sleeper.pid)
        proctree._signal(sleeper.pid, found, signal.SIGTERM)
        assert sleeper.wait(timeout=10) == -signal.SIGTERM
        assert not proctree.alive(sleeper.pid) and proctree.wait_ended([sleeper.pid], 0)
    finally:
        sleeper.kill()
        sleeper.wait()
