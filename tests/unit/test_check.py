"""Unit tests of `microdeploy check`'s own logic: reading the .deb, the release, reasons, reports, bad input."""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any, cast

import pytest
from click.testing import CliRunner

from microdeploy import dists
from microdeploy.check import CheckSettings, check, onhost
from microdeploy.check.onhost import HostPlan, host_checks
from microdeploy.check.package import DebInfo, Override, parse_overrides, read_deb, release_of
from microdeploy.check.qa import _piuparts_reason
from microdeploy.check.report import FAILED, PASSED, SKIPPED, Outcome, Report
from microdeploy.check.service import ServiceProbe
from microdeploy.cli import main
from microdeploy.debfile import PackageRef, inspect_deb
from microdeploy.dists import Dist
from microdeploy.errors import EXIT_BAD_INPUT, MicrodeployError
from microdeploy.mirrors import Mirror
from microdeploy.process import Result
from microdeploy.testbed.host import Host
from microdeploy.testbed.network import Netns
from tests.support import make_deb

OVERRIDES = """\
# dh-virtualenv installs the venv under /opt/venvs.
orders-api: dir-or-file-in-opt
# The venv's scripts run with the venv's interpreter;
# third-party modules keep their upstream lines.
orders-api: unusual-interpreter *
orders-api: script-not-executable [opt/venvs/orders-api/lib/*]

# A site-local package.
initial-upload-closes-no-bugs
orders-api binary: long-form-override [usr/share/doc/*]

orders-api: unexplained
"""


def test_overrides_carry_the_comment_above_them_as_reason() -> None:
    """Each override gets the comment block above it; overrides in a row share it; none gives a placeholder."""
    assert parse_overrides(OVERRIDES) == [
        Override("dir-or-file-in-opt", "dh-virtualenv installs the venv under /opt/venvs."),
        Override("unusual-interpreter",
                 "The venv's scripts run with the venv's interpreter; third-party modules keep their upstream lines."),
        Override("script-not-executable",
                 "The venv's scripts run with the venv's interpreter; third-party modules keep their upstream lines."),
        Override("initial-upload-closes-no-bugs", "A site-local package."),
        Override("long-form-override", "A site-local package."),
        Override("unexplained", "(no reason given)"),
    ]


def test_read_deb_finds_overrides_and_unit(tmp_path: Path) -> None:
    """The package's name, version, overrides and unit come from the .deb itself."""
    deb = make_deb(tmp_path, files={
        "usr/share/lintian/overrides/orders-api": OVERRIDES,
        "lib/systemd/system/orders-api.service": "[Service]\nExecStart=/bin/true\n",
    })
    info = read_deb(deb)
    assert (info.name, info.version, info.unit, info.has_unit) == ("orders-api", "1.0-1", "orders-api.service", True)
    assert [o.tag for o in info.overrides][:2] == ["dir-or-file-in-opt", "unusual-interpreter"]


def test_check_and_publish_read_a_deb_through_one_reader(tmp_path: Path) -> None:
    """check's facts of a .deb are the package publish and deploy read from it (microdeploy.debfile)."""
    deb = make_deb(tmp_path, version="2:1.4.0-3+deb12")
    info = read_deb(deb)
    assert PackageRef(info.name, info.version, info.architecture) == inspect_deb(deb).package


def test_read_deb_of_a_package_without_unit_or_overrides(tmp_path: Path) -> None:
    """A package without a unit or overrides reads as such (its service checks are then not run)."""
    info = read_deb(make_deb(tmp_path))
    assert (info.has_unit, info.overrides) == (False, ())


@pytest.mark.parametrize(("version", "depends", "release"), [
    ("1.0-1", "python3.11, adduser", "bookworm"),
    ("1.0-1", "libc6, python3.13", "trixie"),
    ("1.0-1+deb13u1", "python3.11", "trixie"),
    ("1.0-1+deb12", "python3.13", "bookworm"),
    ("1.0-1", "adduser", "bookworm"),
])
def test_release_comes_from_the_revision_then_the_python_dependency(
    tmp_path: Path, version: str, depends: str, release: str
) -> None:
    """+debNN in the revision wins, then a python3.X dependency; without either, bookworm."""
    assert release_of(read_deb(make_deb(tmp_path, version=version, depends=depends))) == release


def test_release_follows_the_one_table_of_releases(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A release added to dists.DISTS is known to check by its number, its python3 and its name, with no other edit."""
    forky = Dist("forky", 14, "3.14")
    monkeypatch.setattr(dists, "DISTS", {**dists.DISTS, "forky": forky})
    assert release_of(read_deb(make_deb(tmp_path, version="1.0-1+deb14u2"))) == "forky"
    assert release_of(read_deb(make_deb(tmp_path, version="2.0-1", depends="python3.14"))) == "forky"
    assert release_of(read_deb(make_deb(tmp_path)), "forky") == "forky"


def test_unknown_dist_is_bad_input(tmp_path: Path) -> None:
    """--dist must name a release hosts can be made of."""
    with pytest.raises(MicrodeployError, match="unknown release 'sid'") as caught:
        release_of(read_deb(make_deb(tmp_path)), "sid")
    assert caught.value.exit_code == EXIT_BAD_INPUT


def test_junit_report_has_one_testcase_per_check_with_the_failure_inside() -> None:
    """The JUnit XML parses, counts right, and carries a failure's reason and output (XML-safe)."""
    report = Report("orders-api", "1.0-1", "bookworm", [
        Outcome("lintian", PASSED, "0 errors", 1.5, "override x: y"),
        Outcome("health", FAILED, "GET /health answered 500", 2.0, "journal line\x1b[0m"),
        Outcome("purge", SKIPPED, "not run: health failed"),
    ], seconds=3.5)
    root = ET.fromstring(report.junit_xml())
    suite = root.find("testsuite")
    assert suite is not None
    assert {k: suite.get(k) for k in ("tests", "failures", "errors", "skipped")} == {
        "tests": "3", "failures": "1", "errors": "0", "skipped": "1"}
    cases = {case.get("name"): case for case in suite.iter("testcase")}
    failure = cases["health"].find("failure")
    assert failure is not None and failure.get("message") == "GET /health answered 500"
    assert failure.text == "GET /health answered 500\n\njournal line?[0m\n"
    assert cases["purge"].find("skipped") is not None
    assert report.exit_code == 1


def test_piuparts_reason_is_its_first_problem_with_the_first_items() -> None:
    """The one-line reason of a piuparts failure names the problem and what it lists."""
    output = (
        "0m1.0s INFO: starting\n"
        "0m9.8s ERROR: FAIL: Package purging left files on system:\n"
        "  /srv/orders-api/\t not owned\n"
        "  /srv/orders-api/cache\t not owned\n"
        "0m9.9s ERROR: piuparts run ends.\n"
    )
    assert _piuparts_reason(output) == (
        "piuparts: Package purging left files on system: "
        "/srv/orders-api/\t not owned, /srv/orders-api/cache\t not owned"
    )
    assert _piuparts_reason("nothing useful") == "piuparts failed (see its log)"


def test_last_error_prefers_the_services_own_exception() -> None:
    """The reason of a unit that does not start is the service's exception, not systemd's summary."""
    journal = (
        "Dec 04 19:51:21 h gunicorn[145]: [ERROR] Exception in worker process\n"
        "Dec 04 19:51:21 h gunicorn[145]: ModuleNotFoundError: No module named 'orders_api.missing'\n"
        "Dec 04 19:51:21 h gunicorn[138]: [ERROR] Reason: Worker failed to boot.\n"
        "Dec 04 19:51:21 h systemd[1]: orders-api.service: Failed with result 'exit-code'.\n"
    )
    assert ServiceProbe.last_error(journal) == "ModuleNotFoundError: No module named 'orders_api.missing'"
    assert ServiceProbe.last_error("Dec 04 h app[1]: [ERROR] disk full\n") == "[ERROR] disk full"


IMPORT_ERROR = "h gunicorn[43]: ModuleNotFoundError: No module named 'orders_api.missing'\n"


class ScriptedHost:
    """A host whose unit reports the states of `states` ("ActiveState NRestarts") poll by poll, the last
    one repeating, and whose listener answers HTTP with the codes of `answers` in turn ('000': no answer)."""

    def __init__(self, states: Sequence[str], answers: Sequence[str], journals: Sequence[str] = (IMPORT_ERROR,)
                 ) -> None:
        self.states: Iterator[str] = iter(states)
        self.journals = list(journals)
        self.journal_reads = 0
        self.state = ""
        self.answers: Iterator[str] = iter(answers)
        self.answer = "000"
        self.curls: list[str] = []

    def run(self, argv: Sequence[str], **_: Any) -> Result:
        """What systemctl, ps, ss and curl would print for the scripted unit."""
        if argv[:2] == ["systemctl", "show"]:
            if "--property=ActiveState" in argv:  # one poll of wait_started
                self.state = next(self.states, self.state)
            active, restarts = self.state.split()
            # Started long enough ago to be past any settle time.
            started = int((time.monotonic() - 10) * 1e6)
            text = (f"ActiveState={active}\nSubState=running\nResult=success\nNRestarts={restarts}\n"
                    f"ExecMainStartTimestampMonotonic={started}\nMainPID=42\n")
        elif argv[0] == "ps":
            text = "42 1\n43 42\n"
        elif argv[0] == "ss":
            text = 'LISTEN 0 2048 0.0.0.0:8001 0.0.0.0:* users:(("gunicorn",pid=42,fd=5),("gunicorn",pid=43,fd=5))\n'
        elif argv[0] == "curl":
            self.curls.append(argv[-1])
            self.answer = next(self.answers, self.answer)
            text = self.answer
        else:
            text = ""
        return Result(tuple(argv), 0, text, "")

    def journal(self, unit: str | None = None, lines: int = 100) -> str:
        """The unit's journal as far as journald has filed it: the texts of `journals` in turn."""
        self.journal_reads += 1
        return self.journals[min(self.journal_reads, len(self.journals)) - 1]


def scripted_probe(monkeypatch: pytest.MonkeyPatch, host: ScriptedHost) -> ServiceProbe:
    """A ServiceProbe of orders-api on `host`, without real sleeps."""
    monkeypatch.setattr("microdeploy.check.service.time.sleep", lambda seconds: None)
    info = DebInfo(Path("orders-api.deb"), "orders-api", "1.0-1", "all", "", (), True)
    return ServiceProbe(cast(Host, host), info)


def test_unit_is_started_once_it_answers_where_it_listens(monkeypatch: pytest.MonkeyPatch) -> None:
    """Active and settled is not enough: the unit passes once its listener answers HTTP, whatever the status."""
    host = ScriptedHost(["active 0"], ["000", "000", "404"])
    summary = scripted_probe(monkeypatch, host).wait_started()
    assert summary == "orders-api.service active (pid 42), answering on 0.0.0.0:8001"
    assert host.curls == ["http://127.0.0.1:8001/"] * 3


def test_unit_whose_app_fails_slowly_fails_the_unit_step(monkeypatch: pytest.MonkeyPatch) -> None:
    """gunicorn bound but its workers still importing a broken app: the unit step waits and sees it fail."""
    host = ScriptedHost(["active 0"] * 5 + ["activating 1"], ["000"])
    with pytest.raises(MicrodeployError, match=r"^orders-api\.service does not stay up \(activating/running, "
                                              r"result success, 1 automatic restart\(s\)\)"):
        scripted_probe(monkeypatch, host).wait_started()
    assert len(host.curls) == 5


def test_a_failed_units_reason_is_waited_for_in_its_journal(monkeypatch: pytest.MonkeyPatch) -> None:
    """journald files the dead worker's traceback after systemd saw the unit fail: the reason is polled for."""
    systemd_only = "h systemd[1]: orders-api.service: Main process exited, code=exited, status=3/NOTIMPLEMENTED\n"
    host = ScriptedHost(["failed 0"], ["000"], [systemd_only, systemd_only, systemd_only + IMPORT_ERROR])
    with pytest.raises(MicrodeployError, match=r": ModuleNotFoundError: No module named 'orders_api\.missing'$"):
        scripted_probe(monkeypatch, host).wait_started()
    assert host.journal_reads == 3


def test_a_failed_unit_without_an_error_in_its_journal_has_no_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    """A unit whose journal never names an error fails with its state alone, after a bounded wait."""
    host = ScriptedHost(["failed 0"], ["000"], ["h systemd[1]: orders-api.service: Deactivated successfully.\n"])
    probe = scripted_probe(monkeypatch, host)
    monkeypatch.setattr("microdeploy.check.service.JOURNAL_TIMEOUT", 0.2)
    with pytest.raises(MicrodeployError, match=r"^orders-api\.service does not stay up \(failed/running, "
                                              r"result success\)$"):
        probe.wait_started()
    assert host.journal_reads >= 2


class LoggingHost:
    """A host whose service's log directory gets its first line after the `late`-th look."""

    def __init__(self, late: int) -> None:
        self.late = late
        self.looks = 0

    def run(self, argv: Sequence[str], **_: Any) -> Result:
        """`find` lists access.log once it has a line; there is no logrotate file."""
        if argv[0] == "find":
            self.looks += 1
            return Result(tuple(argv), 0, "access.log\n" if self.looks > self.late else "", "")
        return Result(tuple(argv), 1, "", "")


@pytest.mark.parametrize(("late", "found"), [(2, True), (10**9, False)])
def test_logs_step_waits_for_the_access_log_line(monkeypatch: pytest.MonkeyPatch, late: int, found: bool) -> None:
    """gunicorn logs a request after answering it: the logs step waits (bounded) for a written file."""
    host = LoggingHost(late)
    probe = scripted_probe(monkeypatch, cast(ScriptedHost, host))
    monkeypatch.setattr("microdeploy.check.service.LOG_TIMEOUT", 0.2)
    if found:
        assert probe.logs() == "1 file(s) written under /var/log/orders-api: access.log"
        assert host.looks == 3
    else:
        with pytest.raises(MicrodeployError, match=r"^nothing written under /var/log/orders-api$"):
            probe.logs()


def test_unit_that_stays_up_without_answering_passes_at_the_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """A unit that stays up but never answers passes the unit step once the timeout is over (health judges it)."""
    host = ScriptedHost(["active 0"], ["000"])
    summary = scripted_probe(monkeypatch, host).wait_started(timeout=0.5)
    assert summary == "orders-api.service active (pid 42) for 0.5 s, not answering"
    assert host.curls


def test_the_check_host_boots_with_every_timer_masked(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The check's host starts no timer: midnight's dpkg-db-backup and logrotate would write files that the
    purge step counts as left behind by the package."""
    booted: dict[str, Any] = {}

    def boot(image: Path, **kwargs: Any) -> Host:
        booted.update(kwargs)
        raise MicrodeployError("no boot in a unit test")

    monkeypatch.setattr(onhost, "create_netns", lambda: Netns("mdtb-unit", 254, "mdtb254h"))
    monkeypatch.setattr(onhost, "delete_netns", lambda ns: None)
    monkeypatch.setattr(onhost, "boot", boot)
    info = DebInfo(tmp_path / "orders-api.deb", "orders-api", "1.0-1", "all", "", (), True)
    outcomes: list[Outcome] = []
    with ExitStack() as stack:
        host_checks(HostPlan(info, "bookworm", tmp_path / "image.tar"), outcomes.append, stack)
    assert booted["masked"] == ("timers.target",)
    assert (outcomes[0].name, outcomes[0].status, outcomes[0].summary) == ("install", FAILED, "no boot in a unit test")


def test_not_root_is_bad_input_with_the_command_to_run(tmp_path: Path) -> None:
    """Without root, check refuses before reading anything and says to run it with sudo."""
    with pytest.raises(MicrodeployError) as caught:
        check(CheckSettings(deb=tmp_path / "x.deb", previous="1.0-1"), is_root=lambda: False)
    assert caught.value.exit_code == EXIT_BAD_INPUT
    assert caught.value.hint == f"Run it as root: sudo microdeploy check {tmp_path / 'x.deb'} --previous 1.0-1"


def test_cli_not_root_exits_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The command line maps the refusal to exit status 2 with the hint, and writes no report."""
    monkeypatch.setattr("microdeploy.check.os.geteuid", lambda: 1000)
    result = CliRunner().invoke(main, ["check", str(make_deb(tmp_path)), "--junit", str(tmp_path / "r.xml")])
    assert result.exit_code == 2
    assert "needs root" in result.output and "hint: Run it as root: sudo microdeploy check" in result.output
    assert not (tmp_path / "r.xml").exists()


@pytest.mark.parametrize(("extra", "message"), [
    (["--previous", "0.9-1"], "is a version, and no --repo to install it from"),
    (["--previous", "2.0-1"], "--previous 2.0-1 is not older than 1.0-1"),
    (["--previous", "not a version!"], "is neither a .deb nor a version"),
    (["--dist", "sid"], "unknown release 'sid'"),
    (["--repo", "{tmp}/no-repo"], "no published repository in"),
    (["--junit", "{tmp}/missing/report.xml"], "no directory for the JUnit report"),
])
def test_cli_bad_input_exits_2_and_writes_nothing(tmp_path: Path, extra: list[str], message: str) -> None:
    """Each bad option exits 2 with a message before any host boots; no report is written."""
    deb = make_deb(tmp_path)
    args = [arg.replace("{tmp}", str(tmp_path)) for arg in extra]
    before = sorted(tmp_path.rglob("*"))
    result = CliRunner().invoke(main, ["check", str(deb), *args])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert sorted(tmp_path.rglob("*")) == before


def test_cli_missing_or_foreign_files_exit_2(tmp_path: Path) -> None:
    """A missing DEB, a file that is not a .deb, and a --previous of another package are bad input."""
    (tmp_path / "junk.deb").write_text("not a package")
    other = make_deb(tmp_path, name="other-api", version="0.5-1")
    deb = make_deb(tmp_path)
    for args, message in (
        ([str(tmp_path / "missing.deb")], "no such package file"),
        ([str(tmp_path / "junk.deb")], "is not a readable Debian package"),
        ([str(deb), "--previous", str(other)], "is package other-api, not orders-api"),
    ):
        result = CliRunner().invoke(main, ["check", *args])
        assert result.exit_code == 2, result.output
        assert message in result.output


def test_feed_serves_the_repository_and_caches_the_mirrors_immutable_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """/repo/ serves --repo's tree; /mirror/0/ passes through, pool/ and by-hash/ files from the cache next time."""
    import functools
    import threading
    import urllib.error
    import urllib.request
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    from microdeploy.check import feed as feed_module

    upstream_dir, public = tmp_path / "upstream", tmp_path / "public"
    (upstream_dir / "pool/main/o").mkdir(parents=True)
    (upstream_dir / "dists/bookworm").mkdir(parents=True)
    (upstream_dir / "pool/main/o/o.deb").write_bytes(b"package v1")
    (upstream_dir / "dists/bookworm/InRelease").write_text("release 1")
    public.mkdir()
    (public / "key.gpg").write_text("key")
    monkeypatch.setattr(feed_module, "MIRROR_CACHE", tmp_path / "cache")

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    upstream = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(upstream_dir)))
    thread = threading.Thread(target=upstream.serve_forever, daemon=True)
    thread.start()
    mirror = Mirror(f"http://127.0.0.1:{upstream.server_address[1]}/", ("bookworm",))

    def get(url: str) -> bytes:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return bytes(answer.read())

    try:
        with feed_module.serving_feed("127.0.0.1", [mirror], public) as feed:
            assert get(f"{feed.url}repo/key.gpg") == b"key"
            assert get(f"{feed.url}mirror/0/pool/main/o/o.deb") == b"package v1"
            assert get(f"{feed.url}mirror/0/dists/bookworm/InRelease") == b"release 1"
            (upstream_dir / "pool/main/o/o.deb").write_bytes(b"changed upstream")
            (upstream_dir / "dists/bookworm/InRelease").write_text("release 2")
            assert get(f"{feed.url}mirror/0/pool/main/o/o.deb") == b"package v1"  # from the cache
            assert get(f"{feed.url}mirror/0/dists/bookworm/InRelease") == b"release 2"  # never cached
            for path in ("mirror/1/pool/x", "mirror/0/../etc/passwd", "etc/passwd", "repo/../upstream/x"):
                with pytest.raises(urllib.error.HTTPError) as refused:
                    get(f"{feed.url}{path}")
                assert refused.value.code == 404, path
                refused.value.close()
            assert "URIs: " + feed.url + "mirror/0/\nSuites: bookworm\n" in feed.mirror_sources()
    finally:
        upstream.shutdown()
        upstream.server_close()
        thread.join(10)


def test_refresh_discards_the_cached_image_and_its_tree(tmp_path: Path) -> None:
    """--refresh-images removes a cached image and its unpacked tree, so the next use builds them again."""
    from microdeploy.testbed import image

    tar = tmp_path / "bookworm-host-0123.tar"
    tar.write_bytes(b"tar")
    (tmp_path / "bookworm-host-0123.tree" / "etc").mkdir(parents=True)
    image._discard(tar)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bookworm-host-0123.tar.lock", "bookworm-host-0123.tree.lock"]
