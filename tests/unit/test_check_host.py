"""Unit tests of `microdeploy check`'s host steps: how long they wait, and for what (fake hosts, no boot)."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any, cast

import pytest
from debian.debian_support import Version

from microdeploy.check import onhost
from microdeploy.check.onhost import HostPlan, host_checks
from microdeploy.check.package import DebInfo, higher_version_hint
from microdeploy.check.report import FAILED, Outcome
from microdeploy.check.service import ServiceProbe
from microdeploy.errors import MicrodeployError
from microdeploy.process import Result
from microdeploy.testbed.host import Host
from microdeploy.testbed.network import Netns

IMPORT_ERROR = "h gunicorn[43]: ModuleNotFoundError: No module named 'orders_api.missing'\n"


class ScriptedHost:
    """A host whose unit reports the states of `states` ("ActiveState NRestarts") poll by poll, the last
    one repeating, and whose listener answers HTTP with the codes of `answers` in turn ('000': no answer)."""

    def __init__(self, states: Sequence[str], answers: Sequence[str], journals: Sequence[str] = (IMPORT_ERROR,),
                 runs: Mapping[str, str] | None = None) -> None:
        self.states: Iterator[str] = iter(states)
        self.journals = list(journals)
        # The journals of the unit's runs by invocation ID; the last one is the current run's.
        self.runs = dict(runs or {})
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
                    f"ExecMainStartTimestampMonotonic={started}\nMainPID=42\n"
                    f"InvocationID={list(self.runs)[-1] if self.runs else ''}\n")
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

    def journal(self, unit: str | None = None, lines: int = 100, invocation: str | None = None) -> str:
        """The unit's journal as far as journald has filed it: the texts of `journals` in turn; of one run, that
        run's, or the whole unit's (every run's) without one."""
        self.journal_reads += 1
        if self.runs:
            return self.runs[invocation] if invocation else "".join(self.runs.values())
        return self.journals[min(self.journal_reads, len(self.journals)) - 1]


def scripted_probe(monkeypatch: pytest.MonkeyPatch, host: ScriptedHost) -> ServiceProbe:
    """A ServiceProbe of orders-api on `host`, without real sleeps."""
    monkeypatch.setattr("microdeploy.check.service.time.sleep", lambda seconds: None)
    info = DebInfo(Path("orders-api.deb"), "orders-api", "1.0-1", "all", "", (), True)
    return ServiceProbe(cast(Host, host), info)


def failed_start(monkeypatch: pytest.MonkeyPatch, journal: str) -> tuple[str, str]:
    """The unit step's failure on a unit that failed with `journal`: its one-line summary and its details."""
    host = ScriptedHost(["failed 0"], ["000"], [journal])
    with pytest.raises(MicrodeployError) as caught:
        scripted_probe(monkeypatch, host).wait_started()
    summary, _, details = caught.value.message.partition("\n")
    return summary, details


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


def test_workers_that_exited_in_an_earlier_run_of_the_unit_do_not_count(monkeypatch: pytest.MonkeyPatch) -> None:
    """The app's workers exited as they started until the setup script configured it; after the restart the
    unit's new run boots its workers slowly: only the current run's worker exits count, and it passes."""
    exits = "".join(f"h gunicorn[42]: [ERROR] Worker (pid:{pid}) exited with code 2\n" for pid in (43, 44, 45))
    host = ScriptedHost(["active 0"], ["000"] * 4 + ["200"],
                        runs={"before-setup": exits, "current": "h gunicorn[50]: [INFO] Booting worker with pid: 51\n"})
    summary = scripted_probe(monkeypatch, host).wait_started(settle=0.0)
    assert summary == "orders-api.service active (pid 42), answering on 0.0.0.0:8001"
    assert host.journal_reads >= 1


def test_a_failed_units_reason_is_waited_for_in_its_journal(monkeypatch: pytest.MonkeyPatch) -> None:
    """journald files the dead worker's traceback after systemd saw the unit fail: the reason is polled for."""
    systemd_only = "h systemd[1]: orders-api.service: Main process exited, code=exited, status=3/NOTIMPLEMENTED\n"
    host = ScriptedHost(["failed 0"], ["000"], [systemd_only, systemd_only, systemd_only + IMPORT_ERROR])
    with pytest.raises(MicrodeployError, match=r": ModuleNotFoundError: No module named 'orders_api\.missing'$"):
        scripted_probe(monkeypatch, host).wait_started()
    assert host.journal_reads == 3


def test_a_write_the_sandbox_refused_gets_where_the_service_may_write(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whoogle writes into its installed package at import: the reason is the app's OSError, and the details say
    where the unit lets the service write and where its paths are set."""
    refused = ("h gunicorn[43]: OSError: [Errno 30] Read-only file system: "
               "'/opt/venvs/orders-api/lib/python3.11/site-packages/app/static/config'\n")
    summary, details = failed_start(monkeypatch, refused)
    assert summary.endswith(": OSError: [Errno 30] Read-only file system: "
                            "'/opt/venvs/orders-api/lib/python3.11/site-packages/app/static/config'")
    assert details == (
        "hint: /opt/venvs/orders-api/lib/python3.11/site-packages/app/static/config is read-only to the service: "
        "its unit (ProtectSystem=strict) lets it write only under /var/lib/orders-api, /var/log/orders-api and its "
        "private /tmp. Point the app's writable paths there (its settings in /etc/orders-api/config.ini or "
        "/etc/orders-api/environment; for this check, written by a --setup script).")
    # Any other reason has no such hint: a missing module of a package the venv has is the app's own.
    assert failed_start(monkeypatch, IMPORT_ERROR)[1] == ""


@pytest.mark.parametrize(("module", "hint"), [
    # archivy 1.7.7 imports pkg_resources and requires no setuptools; with 'setuptools<82' it passes check.
    ("pkg_resources", "hint: pkg_resources came with setuptools up to version 81, which venvs of Python 3.11 and "
                      "older got by default; the service's venv has setuptools only when a distribution in it "
                      "requires it: add 'setuptools<82' to the project's dependencies (or move it to "
                      "importlib.metadata)."),
    ("setuptools", "hint: setuptools, which venvs of Python 3.11 and older got by default, is in the service's venv "
                   "only when a distribution in it requires it: add setuptools to the project's dependencies, or "
                   "build with --keep-installers."),
    # rq-dashboard 0.9.0 imports six and requires it not.
    ("six", "hint: no distribution in the service's venv provides the module six: the project, or one of its "
            "dependencies, imports it without requiring it; add the distribution that provides it to the project's "
            "dependencies."),
    # isso 0.9.9 on a trixie host: `import cgi` in its views.
    ("cgi", "hint: cgi was removed from Python's standard library in 3.13 (trixie has Python 3.13); it imports on "
            "bookworm's 3.11 only: add 'legacy-cgi; python_version >= \"3.13\"' to the project's dependencies."),
    ("spwd", "hint: spwd was removed from Python's standard library in 3.13 (trixie has Python 3.13); it imports on "
             "bookworm's 3.11 only: the code must stop using it (PyPI has no replacement)."),
    # snappass 1.6.2 on a bookworm host: `from distutils.util import strtobool` (Debian 12 keeps distutils/__init__
    # in libpython3.11-stdlib, util.py in python3-distutils).
    ("distutils.util", "hint: Debian ships the standard module distutils.util apart from its python3 package, in "
                       "python3-distutils, which a host has only when a package depends on it: add 'python3-distutils' "
                       "to the service's depends (depends in [tool.microdeploy], or --depends) (or 'setuptools' to the "
                       "project's dependencies: its distutils)."),
    ("tkinter", "hint: Debian ships the standard module tkinter apart from its python3 package, in python3-tk, which a "
                "host has only when a package depends on it: add 'python3-tk' to the service's depends (depends in "
                "[tool.microdeploy], or --depends)."),
    # No distutils at all on trixie's 3.13.
    ("distutils", "hint: distutils was removed from Python's standard library in 3.12 (trixie has Python 3.13); it "
                  "imports on bookworm's 3.11 only: add 'setuptools; python_version >= \"3.12\"' to the project's "
                  "dependencies."),
])
def test_a_module_the_venv_lacks_gets_what_to_declare(monkeypatch: pytest.MonkeyPatch, module: str,
                                                      hint: str) -> None:
    """A public app that imports a distribution it does not require, which its developers' venvs had: the details
    say what to add to the project's dependencies."""
    summary, details = failed_start(monkeypatch, f"h gunicorn[43]: ModuleNotFoundError: No module named '{module}'\n")
    assert summary.endswith(f": ModuleNotFoundError: No module named '{module}'")
    assert details == hint


# ihatemoney 7.2.1 from PyPI with its default settings, two workers: each runs the database's migrations as it
# loads; the journal's end, as check's host shows it (the SQL statement shortened).
SCHEMA_RACE = """\
h gunicorn[380]: INFO  [alembic.runtime.migration] Running upgrade 06884b17c50f -> c941aaca38c2, remove ip recording
h gunicorn[382]: /opt/venvs/orders-api/lib/python3.11/site-packages/ihatemoney/run.py:46: UserWarning: The database \
is currently stored in /tmp and might be lost at next reboot.
h gunicorn[382]: (sqlite3.OperationalError) table bill_version already exists
h gunicorn[382]: [SQL:
h gunicorn[382]: CREATE TABLE bill_version (
h gunicorn[382]: )
h gunicorn[382]: ]
h gunicorn[382]: (Background on this error at: https://sqlalche.me/e/20/e3q8)
h gunicorn[376]: [2026-12-07 05:23:30 +0000] [376] [ERROR] Worker (pid:382) exited with code 3.
h gunicorn[380]: [2026-12-07 05:23:30 +0000] [380] [INFO] Worker exiting (pid: 380)
h gunicorn[376]: [2026-12-07 05:23:31 +0000] [376] [ERROR] Shutting down: Master
h gunicorn[376]: [2026-12-07 05:23:31 +0000] [376] [ERROR] Reason: Worker failed to boot.
h systemd[1]: orders-api.service: Main process exited, code=exited, status=3/NOTIMPLEMENTED
"""


def test_workers_that_race_to_create_the_database_get_why_and_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    """The reason is the worker's own error, not gunicorn's arbiter saying that a worker failed to boot (nor
    SQLAlchemy's pointer to its error's page); the details say to create the database once, or run one worker."""
    summary, details = failed_start(monkeypatch, SCHEMA_RACE)
    assert summary.endswith("(failed/running, result success): (sqlite3.OperationalError) table bill_version "
                            "already exists")
    assert details == (
        "hint: the app creates its database tables as it starts, in each gunicorn worker at once, and one worker "
        "failed on a table another had just made. Create the database once, before the service starts: keep it "
        "under /var/lib/orders-api (the unit's private /tmp is emptied at every restart) and run the app's own "
        "command for it with orders-api-run (for this check, in a --setup script); or run the service with "
        "workers = 1 in [server] of /etc/orders-api/config.ini.")
    # PostgreSQL's and MySQL's words for it, as SQLAlchemy and PyMySQL raise them.
    for line in ('sqlalchemy.exc.ProgrammingError: (psycopg2.errors.DuplicateTable) relation "bill" already exists',
                 "pymysql.err.OperationalError: (1050, \"Table 'bill' already exists\")"):
        assert failed_start(monkeypatch, f"h gunicorn[43]: {line}\n")[1].startswith(
            "hint: the app creates its database tables")


def test_memory_the_unit_refused_to_make_executable_gets_the_key_that_allows_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """cffi's old-style callback under MemoryDenyWriteExecute=yes: the hint names write_execute_memory."""
    summary, details = failed_start(monkeypatch, (
        "h gunicorn[43]: MemoryError: Cannot allocate write+execute memory for ffi.callback(). You might be running "
        "on a system that prevents this. For more information, see https://cffi.readthedocs.io/en/latest/using.html"
        "#callbacks\n"))
    assert ": MemoryError: Cannot allocate write+execute memory for ffi.callback()" in summary
    assert details.startswith("hint: the unit refuses memory that is both writable and executable")
    assert "write_execute_memory = true" in details


def test_gunicorns_own_summary_is_the_reason_only_when_nothing_else_is() -> None:
    """A worker that failed to boot without a word of its own: the arbiter's line is better than none. An app
    gunicorn cannot load (changedetection.io 0.60.9's module-level `app = None`): the worker's line says why."""
    journal = (
        "h gunicorn[380]: 2026-12-07 06:00:51.326 | DEBUG    | changedetectionio:<module>:104 - Set "
        "multiprocessing default to 'spawn' for thread safety (explicit contexts used everywhere)\n"
        "h gunicorn[380]: Failed to find application object: 'app'\n"
        "h gunicorn[376]: [2026-12-07 06:00:51 +0000] [376] [ERROR] Worker (pid:380) exited with code 4.\n"
        "h gunicorn[376]: [2026-12-07 06:00:51 +0000] [376] [ERROR] Shutting down: Master\n"
        "h gunicorn[376]: [2026-12-07 06:00:51 +0000] [376] [ERROR] Reason: App failed to load.\n"
    )
    assert ServiceProbe.last_error(journal) == "Failed to find application object: 'app'"
    line = "[2026-12-07 05:23:31 +0000] [376] [ERROR] Reason: Worker failed to boot."
    assert ServiceProbe.last_error(f"h gunicorn[376]: {line}\n") == line


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

    def __init__(self, late: int, listing: str = "access.log\torders-api:adm 640\n") -> None:
        self.late = late
        self.looks = 0
        self.listing = listing  # find's -printf lines: path, owner:group and mode

    def run(self, argv: Sequence[str], **_: Any) -> Result:
        """`find` lists access.log once it has a line; there is no logrotate file."""
        if argv[0] == "find":
            self.looks += 1
            return Result(tuple(argv), 0, self.listing if self.looks > self.late else "", "")
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


def test_workers_that_keep_exiting_fail_the_unit_step_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """gunicorn starts a new worker for each that exits with a code of its own (Calibre-Web's argparse exits 2
    on gunicorn's arguments): the unit stays active and nothing serves. The unit step fails on the third exit,
    with the worker's own error, without waiting for its timeout; a unit that merely answers late still
    passes (the test above)."""
    exits = "".join(f"h gunicorn[42]: [ERROR] Worker (pid:{pid}) exited with code 2\n" for pid in (43, 44, 45))
    journal = "h gunicorn[44]: cps.py: error: unrecognized arguments: --config\n" + exits
    host = ScriptedHost(["active 0"], ["000"], [journal])
    with pytest.raises(MicrodeployError, match=r"^orders-api\.service is up, but its gunicorn workers exit as they "
                                              r"start \(3 exits, the last with code 2\): cps\.py: error: "
                                              r"unrecognized arguments: --config$"):
        scripted_probe(monkeypatch, host).wait_started(timeout=30)
    assert len(host.curls) == 1 and host.journal_reads == 1
    two = ScriptedHost(["active 0"], ["000"], ["".join(exits.splitlines(keepends=True)[:2])])
    assert scripted_probe(monkeypatch, two).wait_started(timeout=0.5).endswith("not answering")


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


def test_logs_step_fails_on_a_log_hidden_from_group_adm(monkeypatch: pytest.MonkeyPatch) -> None:
    """/var/log/NAME is NAME:adm 2750 for operators in adm: a log of another group, or not group-readable, fails
    the step with the files named (gunicorn's own accesslog was chowned to the service's group at every start)."""
    host = LoggingHost(0, "access.log\torders-api:orders-api 640\napp.log\torders-api:adm 600\n"
                          "old.log\torders-api:adm 640\n")
    probe = scripted_probe(monkeypatch, cast(ScriptedHost, host))
    with pytest.raises(MicrodeployError) as raised:
        probe.logs()
    assert raised.value.message.splitlines()[0] == (
        "2 file(s) under /var/log/orders-api not readable by group adm: access.log (orders-api:orders-api 640), "
        "app.log (orders-api:adm 600)")


def test_purge_leaves_the_administrators_part_and_what_grows_in_it_but_counts_the_packages() -> None:
    """Alerta 9.1.0 on PostgreSQL: the setup script made the database (base/16385) and the service made its
    tables in it at its first start: the database server's files, in what the administrator made, are not the
    package's. The directories holding the administrator's files are not counted; anything else new is."""
    base = "var/lib/postgresql/15/main/base"
    before = {"var/lib/postgresql", "var/lib/postgresql/15/main", base}
    made_by_setup = {f"{base}/16385", f"{base}/16385/PG_VERSION", "etc/alerta/environment"}
    after_purge = before | made_by_setup | {
        f"{base}/16385/16389", f"{base}/16385/16392",  # the tables the service made, after the script
        "etc/alerta",  # holds the administrator's environment file
        "srv/alerta", "srv/alerta/cache",  # the package's own, made by its postinst: left behind
        "var/lib/postgresql/15/main/base-old",  # beside the administrator's part, not in it
    }
    assert onhost.leftovers(after_purge, before, made_by_setup) == [
        "srv/alerta", "srv/alerta/cache", "var/lib/postgresql/15/main/base-old"]


@pytest.mark.parametrize(("ours", "debians", "hint"), [
    ("0.6.2-1+deb12", "0.6.2-4.1", "--version, or --revision above Debian's"),
    ("1.7.1-1+deb12", "1.7.1+dfsg-1",
     "--version: no revision puts upstream version 1.7.1 above Debian's 1.7.1+dfsg"),
    ("2.0-1+deb12", "1:1.0-1", "--version with Debian's epoch or a higher one: Debian's is 1 (PEP 440's 1!)"),
])
def test_the_hint_for_a_library_below_debians_own_names_what_can_put_it_above(ours: str, debians: str,
                                                                              hint: str) -> None:
    """A revision puts a library above Debian's package only where the upstream versions are the same."""
    assert higher_version_hint(Version(ours), Version(debians)) == hint
    # What the hint says of a revision is dpkg's order: a high one is above Debian's only in the first case.
    revision_helps = hint.endswith("--revision above Debian's")
    assert (Version(ours.replace("-1+", "-99+")) > Version(debians)) == revision_helps
