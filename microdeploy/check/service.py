"""Checks of the running service on a booted host: unit up, its user, exposure, health, logs, restart."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from typing import TypeVar

from microdeploy.errors import MicrodeployError
from microdeploy.testbed.host import Host

from .hints import LINGERING_WORKERS, for_last_word
from .package import DebInfo

T = TypeVar("T")

__all__ = ["ServiceProbe"]

# A unit counts as started once its main process has stayed up this long
# without an automatic restart, and answers where it listens (see wait_started).
SETTLE_SECONDS = 3.0
START_TIMEOUT = 60.0
HEALTH_TIMEOUT = 45.0
# How long a failed unit's own error may take to reach its journal, and a
# served request its access log.
JOURNAL_TIMEOUT = 10.0
LOG_TIMEOUT = 10.0
# A service whose workers exit when gunicorn asks them to stops within a second or two; one that does not is
# killed at the end of gunicorn's graceful_timeout, every stop, restart and upgrade long.
STOP_SECONDS = 10.0

# gunicorn's arbiter on a worker that exited by itself (not a boot or app-load failure, which end gunicorn):
# it starts another, and the unit stays active while nothing serves.
_WORKER_EXIT = re.compile(r"Worker \(pid:\d+\) exited with code (\d+)")
WORKER_EXITS = 3
_EXPOSURE = re.compile(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)")
# ss -ltnpH: "LISTEN 0 2048 127.0.0.1:8001 0.0.0.0:* users:(("gunicorn",pid=42,fd=5),...)"
_LISTENER = re.compile(r"^\S+\s+\d+\s+\d+\s+(\S+)\s+\S+\s+users:\((.*)\)\s*$")
# The longest last word of a service a step shows: cut in the middle, so that what failed (its start) and why
# (its end: the cause of a chained exception) both stay.
LAST_WORD_MAX = 200
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(?:Error|Exception): ")
# gunicorn's worker on an app it cannot load (its AppImportError, written without the exception's name).
_APP_LOAD_FAILURE = re.compile(r"^(?:Failed to (?:find|parse) |Function reference must be |Application object must be "
                               r"callable)")
# An exception named inside a line: SQLAlchemy's "(sqlite3.OperationalError) table x already exists", which its
# next lines follow with "(Background on this error at: ...)".
_EXCEPTION_NAME = re.compile(r"\b[A-Z][A-Za-z]*(?:Error|Exception)\b")
_ERROR_WORD = re.compile(r"\b(?:error|ERROR|Error)\b")
# gunicorn's arbiter on a worker that failed to boot: that it failed, not why (as systemd's own lines).
_ARBITER_SUMMARY = re.compile(rf"{_WORKER_EXIT.pattern}|Shutting down: Master|Reason: \w+ failed to")
# Probe from the host itself: a wildcard address (as configured, or as ss shows it) answers on loopback.
_LOOPBACK = {"0.0.0.0": "127.0.0.1", "*": "127.0.0.1", "": "127.0.0.1", "localhost": "127.0.0.1",
             "[::]": "[::1]"}

# Python prints the configured bind of gunicorn's config file, as gunicorn itself reads
# it, and the health URL microdeploy's packages put there (what `deploy` probes).
_PRINT_BIND = (
    "import runpy, sys\n"
    "conf = runpy.run_path(sys.argv[1])\n"
    "print(conf['bind'][0])\n"
    "print(conf.get('_health_url', ''))\n"
)


def failure(summary: str, details: str = "") -> MicrodeployError:
    """A failed check: the one-line reason, then what backs it up."""
    return MicrodeployError(f"{summary}\n{details}".rstrip())


class ServiceProbe:
    """Looks at the package's unit and service on one host."""

    def __init__(self, host: Host, info: DebInfo) -> None:
        self.host = host
        self.info = info

    def properties(self, *names: str) -> dict[str, str]:
        """Properties of the unit, as `systemctl show` reports them."""
        argv = ["systemctl", "show", self.info.unit, *(f"--property={name}" for name in names)]
        text = self.host.run(argv, timeout=30).stdout
        return dict(line.partition("=")[::2] for line in text.splitlines() if "=" in line)

    def wait_started(self, settle: float = SETTLE_SECONDS, timeout: float = START_TIMEOUT) -> str:
        """Wait (bounded) until the unit is active, its process has stayed up `settle` seconds and it answers
        HTTP where it listens; a unit that stays up without answering passes once `timeout` is over.

        gunicorn binds before its workers import the app, and a worker that
        cannot import it ends the service only after trying, however long that
        takes on a loaded machine: an answer (any status) shows the app loaded.
        """
        deadline = time.monotonic() + timeout
        props: Mapping[str, str] = {}
        next_journal = 0.0
        while True:
            props = self.properties("ActiveState", "SubState", "Result", "NRestarts",
                                    "ExecMainStartTimestampMonotonic", "MainPID", "InvocationID")
            restarts = int(props.get("NRestarts") or 0)
            if props.get("ActiveState") == "failed" or restarts or props.get("SubState") == "auto-restart":
                break
            # systemd's monotonic timestamps and ours are the same clock (no time namespace).
            started = int(props.get("ExecMainStartTimestampMonotonic") or 0) / 1e6
            if props.get("ActiveState") == "active" and started and time.monotonic() - started >= settle:
                answering = self.answering(props.get("MainPID"))
                if answering:
                    return f"{self.info.unit} active (pid {props.get('MainPID')}), answering on {answering}"
                if time.monotonic() >= next_journal:
                    next_journal = time.monotonic() + 2.0
                    self.check_workers(props.get("InvocationID") or None)
                if time.monotonic() >= deadline:
                    return f"{self.info.unit} active (pid {props.get('MainPID')}) for {timeout:g} s, not answering"
            elif time.monotonic() >= deadline:
                break
            time.sleep(0.3)
        state = f"{props.get('ActiveState')}/{props.get('SubState')}, result {props.get('Result')}"
        restarts = int(props.get("NRestarts") or 0)
        restarts_text = f", {restarts} automatic restart(s)" if restarts else ""
        why = self.last_words()
        raise self.failed(f"{self.info.unit} does not stay up ({state}{restarts_text})", why)

    def check_workers(self, invocation: str | None) -> None:
        """Fail when gunicorn's workers keep exiting as they start: the unit is active, and nothing serves.

        Only the unit's current run counts (its `invocation`): workers that
        exited before it (an app not yet configured, before --setup) are gone.
        """
        journal = self.host.journal(self.info.unit, lines=300, invocation=invocation)
        exits = _WORKER_EXIT.findall(journal)
        if len(exits) >= WORKER_EXITS:
            why = self.last_error(journal)
            raise self.failed(f"{self.info.unit} is up, but its gunicorn workers exit as they start "
                              f"({len(exits)} exits, the last with code {exits[-1]})", why)

    def failed(self, summary: str, why: str) -> MicrodeployError:
        """The service's failure: `summary`, then its last word `why` if it has one, and what to do about it."""
        return failure(summary + (f": {why}" if why else ""),
                       for_last_word(why, self.info.name))

    def last_words(self) -> str:
        """The service's last error from its journal, waited for (bounded): journald files what a
        process wrote before it died in the background, maybe after systemd has seen it die."""
        # Enough lines to reach back past the tracebacks of several workers.
        return _poll(lambda: self.last_error(self.host.journal(self.info.unit, lines=300)), bool, JOURNAL_TIMEOUT)

    @staticmethod
    def last_error(journal: str) -> str:
        """The service's own last word on why it failed: a Python exception, else a line naming an error."""
        messages = []
        for line in journal.splitlines():
            sender, _, message = line.partition(": ")
            # systemd's own lines say that the unit failed, not why.
            if message and not sender.endswith("systemd[1]"):
                messages.append(message.strip())
        own = [message for message in messages if not _ARBITER_SUMMARY.search(message)]
        for lines in (own, messages):
            for pattern in (_EXCEPTION_LINE, _APP_LOAD_FAILURE, _EXCEPTION_NAME, _ERROR_WORD):
                found = [message for message in lines if pattern.search(message)]
                if found:
                    return middle_cut(found[-1], LAST_WORD_MAX)
        return ""

    def user(self) -> str:
        """The unit's main process runs as the unit's own user, not root."""
        props = self.properties("User", "MainPID")
        expected = props.get("User", "")
        pid = props.get("MainPID", "0")
        actual = self.host.run(["ps", "-o", "user=", "-p", pid], check=False, timeout=30).stdout.strip()
        if not expected or expected == "root":
            raise failure(f"{self.info.unit} runs as {actual or 'root'}: the unit sets no User= of its own")
        if actual != expected:
            raise failure(f"{self.info.unit} runs as {actual or 'nobody (not running)'}, not as its User={expected}")
        uid = self.host.run(["id", "-u", expected], check=False, timeout=30).stdout.strip()
        return f"runs as {expected} (uid {uid})"

    def exposure(self, limit: float) -> str:
        """systemd-analyze security's exposure score of the running unit, at most `limit`."""
        result = self.host.run(["systemd-analyze", "security", "--no-pager", self.info.unit],
                               check=False, timeout=60)
        match = _EXPOSURE.search(result.stdout)
        if not match:
            raise failure("systemd-analyze security gave no exposure score", result.stdout + result.stderr)
        score = float(match.group(1))
        if score > limit:
            worst = [line for line in result.stdout.splitlines() if line.startswith("✗")][:15]
            raise failure(f"exposure {score:.1f} is above {limit:.1f} (systemd-analyze security)", "\n".join(worst))
        return f"exposure {score:.1f} (at most {limit:.1f})"

    def configured(self) -> tuple[str, str, str | None]:
        """Where the package's gunicorn configuration puts the service on this host: address, port, health URL.

        As `deploy` reads it: the package's gunicorn.conf.py runs in the unit's
        environment (its EnvironmentFile) and so follows the host's config.ini.
        """
        config = f"/usr/share/{self.info.name}/gunicorn.conf.py"
        result = self.host.run([
            "systemd-run", "--quiet", "--pipe", "--wait", "--collect",
            f"--property=EnvironmentFile=-/etc/{self.info.name}/environment",
            "/usr/bin/python3", "-I", "-c", _PRINT_BIND, config,
        ], check=False, timeout=60)
        lines = result.stdout.splitlines()
        if result.returncode != 0 or not lines or ":" not in lines[0]:
            raise failure(f"cannot read the configured bind address from {config}", result.stdout + result.stderr)
        address, _, port = lines[0].rpartition(":")
        address = _LOOPBACK.get(address, address)
        health_url = lines[1] if len(lines) > 1 and lines[1].startswith("http") else None
        return address, port, health_url

    def health(self, timeout: float = HEALTH_TIMEOUT) -> str:
        """The health probe: the package's health URL answers 2xx, or without one `/` answers below 500."""
        address, port, health_url = self.configured()
        url = health_url or f"http://{address}:{port}/"
        path = "/" + url.split("/", 3)[3] if url.count("/") >= 3 else "/"
        started = time.monotonic()
        code = self._first_answer(url, port, timeout)
        if code is None:
            listening = self.listening()
            if any(each.endswith(f":{port}") for each in listening):
                raise failure(f"nothing answers on {address}:{port}, the configured port, where the service "
                              f"listens, within {timeout:g} s")
            raise failure(
                f"nothing answers on {address}:{port}, the configured port; the service listens on "
                + (", ".join(listening) or "no TCP port")
            )
        if health_url is not None and not 200 <= code < 300:
            raise failure(f"GET {path} answered {code}; the package's health path must answer 2xx")
        if code >= 500:
            raise failure(f"GET {path} answered {code}; without a health path `/` must answer below 500")
        return f"GET {url} answered {code} after {time.monotonic() - started:.1f} s"

    def _first_answer(self, url: str, port: str, timeout: float) -> int | None:
        """Poll `url` on the host until something answers; its HTTP status, or None if nothing did."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            # -L: redirects followed, as deploy's urllib follows them.
            code = self._status(url, "-L")
            if code is not None:
                return code
            if self.properties("ActiveState").get("ActiveState") not in ("active", "activating", "reloading"):
                return None
            # Listening already, elsewhere: it is not going to move to the configured port.
            listening = self.listening()
            if listening and not any(address.endswith(f":{port}") for address in listening):
                return None
            time.sleep(0.3)
        return None

    def _status(self, url: str, *options: str) -> int | None:
        """The HTTP status a GET of `url` on the host gets, or None if nothing answers (within 5 s)."""
        result = self.host.run(["curl", "-sS", *options, "-o", "/dev/null", "-w", "%{http_code}",
                                "--max-time", "5", url], check=False, timeout=30)
        code = result.stdout.strip()
        return int(code) if code.isdigit() and code != "000" else None

    def answering(self, main_pid: str | None = None) -> str:
        """The first address the unit listens on that answers an HTTP GET (any status), or ''; `main_pid`:
        the unit's MainPID when the caller has just read it."""
        for address in self.listening(main_pid):
            host, _, port = address.rpartition(":")
            if self._status(f"http://{_LOOPBACK.get(host, host)}:{port}/") is not None:
                return address
        return ""

    def listening(self, main_pid: str | None = None) -> list[str]:
        """The TCP addresses the unit's main process and its children listen on (`main_pid`: as answering)."""
        if main_pid is None:
            main_pid = self.properties("MainPID").get("MainPID", "0")
        pids = {main_pid} - {"0"}
        table = self.host.run(["ps", "-e", "-o", "pid=,ppid="], check=False, timeout=30).stdout
        parents = [line.split() for line in table.splitlines() if len(line.split()) == 2]
        grown = True
        while grown:  # the main process's descendants (gunicorn's workers)
            children = {pid for pid, ppid in parents if ppid in pids}
            grown = not children <= pids
            pids |= children
        found = []
        for line in self.host.run(["ss", "-ltnpH"], check=False, timeout=30).stdout.splitlines():
            match = _LISTENER.match(line)
            if match and any(f"pid={pid}," in match.group(2) for pid in pids):
                found.append(match.group(1))
        return sorted(set(found))

    def logs(self) -> str:
        """Something was written under /var/log/NAME, readable by group adm (operators), and logrotate accepts the
        package's file for it."""
        directory = f"/var/log/{self.info.name}"
        # gunicorn writes a request's access log line after sending the answer:
        # the health step's requests may not be in the log yet.
        result = _poll(lambda: self.host.run(["find", directory, "-type", "f", "-size", "+0c", "-printf",
                                              "%P\\t%u:%g %m\\n"], check=False, timeout=30),
                       lambda found: found.returncode == 0 and bool(found.stdout.split()), LOG_TIMEOUT)
        written = dict(sorted(line.rsplit("\t", 1) for line in result.stdout.splitlines() if "\t" in line))
        if result.returncode != 0 or not written:
            raise failure(f"nothing written under {directory}", result.stderr)
        files = list(written)
        # The directory is NAME:adm 2750: a file of another group, or without g+r, is hidden from operators.
        hidden = [f"{path} ({owner_mode})" for path, owner_mode in written.items()
                  if owner_mode.split()[0].split(":")[1] != "adm" or not int(owner_mode.split()[1], 8) & 0o040]
        if hidden:
            raise failure(f"{len(hidden)} file(s) under {directory} not readable by group adm: {', '.join(hidden[:3])}",
                          "\n".join(hidden))
        rotate = f"/etc/logrotate.d/{self.info.name}"
        rotated = ""
        if self.host.run(["test", "-f", rotate], check=False, timeout=30).returncode == 0:
            # --debug reads and checks the file, rotating nothing.
            check = self.host.run(["logrotate", "--debug", rotate], check=False, timeout=60)
            if check.returncode != 0:
                raise failure(f"logrotate refuses {rotate}", check.stdout + check.stderr)
            rotated = f"; {rotate} accepted by logrotate"
        return f"{len(files)} file(s) written under {directory}: {', '.join(files[:5])}{rotated}"

    def restart(self) -> str:
        """`systemctl restart` brings the service back: active and answering again, having stopped promptly (its
        workers exited when gunicorn asked them to)."""
        started = time.monotonic()
        self.host.run(["systemctl", "restart", self.info.unit], timeout=120)
        # The restart's stop, as systemd timed it: from leaving active to inactive.
        props = self.properties("ActiveExitTimestampMonotonic", "InactiveEnterTimestampMonotonic")
        stopping = (int(props.get("InactiveEnterTimestampMonotonic") or 0)
                    - int(props.get("ActiveExitTimestampMonotonic") or 0)) / 1e6
        if stopping > STOP_SECONDS:
            raise failure(f"the service took {stopping:.1f} s to stop as it restarted (at most {STOP_SECONDS:g} s): "
                          "its gunicorn workers did not exit when asked to", LINGERING_WORKERS)
        self.wait_started(settle=0.0)
        self.health()
        return f"back and answering {time.monotonic() - started:.1f} s after a restart"


def _poll(fetch: Callable[[], T], done: Callable[[T], bool], timeout: float, interval: float = 0.5) -> T:
    """`fetch()` until `done` says its value will do or `timeout` seconds have passed (at least once); the
    last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if done(value) or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def middle_cut(text: str, most: int) -> str:
    """`text`, or its start and end around an ellipsis when it is longer than `most` characters."""
    if len(text) <= most:
        return text
    half = (most - 3) // 2
    return f"{text[:half]} … {text[-half:]}"
