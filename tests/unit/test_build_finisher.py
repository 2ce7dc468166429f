"""The package is finished (compressed) as soon as debian/rules has written it, beside dpkg's generators."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from microdeploy.build import dpkg
from microdeploy.build.dpkg import Finisher, dpkg_buildpackage
from microdeploy.build.fastpath.contract import PACKAGE_BUILT_FILE
from microdeploy.errors import MicrodeployError
from microdeploy.process import Result

WAIT = 10.0


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A build tree with its debian/, the package beside it; the records' own step is not this test's."""
    monkeypatch.setattr("microdeploy.build.dpkg.require_tools", lambda *tools: None)
    monkeypatch.setattr(dpkg.records, "finish", lambda tree, deb: None)
    (tmp_path / "tree" / "debian").mkdir(parents=True)
    (tmp_path / "orders-api_0.1.0-1_amd64.deb").write_bytes(b"!<arch>\n")
    return tmp_path / "tree"


def test_the_package_is_finished_while_dpkg_s_generators_still_run(tree: Path) -> None:
    """debian/rules marks the package written; the finish runs then, once, before dpkg-buildpackage returns."""
    finished = threading.Event()
    calls: list[str] = []

    def finish() -> None:
        calls.append("finish")
        finished.set()

    def runner(argv: Sequence[str], **_: Any) -> Result:
        (tree / "debian" / PACKAGE_BUILT_FILE).touch()
        # dpkg-genbuildinfo and dpkg-genchanges at work: the package is finished meanwhile.
        assert finished.wait(WAIT), "the package was not finished while the build ran"
        return Result(tuple(argv), 0, "", "")

    dpkg_buildpackage(tree, {}, 1234, runner, finish=finish)
    assert calls == ["finish"]


def test_without_the_mark_the_package_is_finished_after_the_build(tree: Path) -> None:
    """A debian/rules that makes no mark (an older rendering): the finish runs once the build has returned."""
    order: list[str] = []

    def runner(argv: Sequence[str], **_: Any) -> Result:
        order.append("build")
        return Result(tuple(argv), 0, "", "")

    dpkg_buildpackage(tree, {}, 1234, runner, finish=lambda: order.append("finish"))
    assert order == ["build", "finish"]


def test_a_build_that_fails_before_the_package_is_written_finishes_nothing(tree: Path) -> None:
    """dpkg-buildpackage fails before the mark: its error, and no finish."""
    calls: list[str] = []

    def runner(argv: Sequence[str], **_: Any) -> Result:
        return Result(tuple(argv), 2, "dh_strip: error: strip returned exit code 1", "")

    with pytest.raises(MicrodeployError, match="dpkg-buildpackage failed"):
        dpkg_buildpackage(tree, {}, 1234, runner, finish=lambda: calls.append("finish"))
    assert calls == []


def test_a_build_that_fails_after_the_package_is_written_says_so_after_the_finish_ended(tree: Path) -> None:
    """dpkg-genchanges fails while the package is finished: the finish is waited for, then the build's error."""
    started, ended = threading.Event(), threading.Event()

    def finish() -> None:
        started.set()
        ended.wait(0.2)  # still at work when the build fails
        ended.set()

    def runner(argv: Sequence[str], **_: Any) -> Result:
        (tree / "debian" / PACKAGE_BUILT_FILE).touch()
        assert started.wait(WAIT)
        return Result(tuple(argv), 2, "dpkg-genchanges: error: badly formed line", "")

    with pytest.raises(MicrodeployError, match="dpkg-genchanges: error"):
        dpkg_buildpackage(tree, {}, 1234, runner, finish=finish)
    assert ended.is_set()


def test_an_error_of_the_finish_is_the_builds(tree: Path) -> None:
    """A finish that fails on its thread (a full disk while compressing) fails the build with its own error."""

    def finish() -> None:
        raise MicrodeployError("cannot write the package: No space left on device")

    def runner(argv: Sequence[str], **_: Any) -> Result:
        (tree / "debian" / PACKAGE_BUILT_FILE).touch()
        return Result(tuple(argv), 0, "", "")

    with pytest.raises(MicrodeployError, match="No space left on device"):
        dpkg_buildpackage(tree, {}, 1234, runner, finish=finish)


def test_closing_an_idle_finisher_ends_its_thread(tmp_path: Path) -> None:
    """Closed without the mark and without finishing (a build interrupted early), the finisher's thread is gone."""
    finisher = Finisher(tmp_path / PACKAGE_BUILT_FILE, lambda: None)
    finisher.close(finish_now=False)
    assert not finisher.thread.is_alive() and not finisher.finished
