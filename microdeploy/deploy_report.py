"""What a rollout did (or, with --dry-run, would do), per host and as a whole."""

from __future__ import annotations

from dataclasses import dataclass

from microdeploy.errors import EXIT_FAILURE, EXIT_INTERRUPTED


@dataclass(frozen=True)
class HostReport:
    """What happened on one host."""

    host: str
    batch: int
    before: str | None
    after: str | None
    state: str
    """untouched, unchanged, upgraded, downgraded, installed, failed, rolled-back, removed, rollback-failed,
    interrupted"""
    healthy: bool | None = None
    seconds: float = 0.0
    health_seconds: float | None = None
    error: str | None = None

    def as_dict(self) -> dict[str, object]:
        """The JSON form of the report."""
        return {
            "host": self.host,
            "batch": self.batch,
            "before": self.before,
            "after": self.after,
            "state": self.state,
            "healthy": self.healthy,
            "seconds": round(self.seconds, 3),
            "health_seconds": None if self.health_seconds is None else round(self.health_seconds, 3),
            "error": self.error,
        }


@dataclass(frozen=True)
class PlannedHost:
    """The commands one host would run (dry run)."""

    host: str
    batch: int
    commands: tuple[str, ...]
    rollback: tuple[str, ...]


@dataclass(frozen=True)
class DeployReport:
    """The outcome of a rollout (or, for a dry run, its plan)."""

    package: str
    version: str
    result: str
    """success; rolled-back (stopped, the failing batch restored); completed-with-failures (every batch ran,
    the failed hosts within --max-failures restored); rollback-failed (a host could not be restored: its report
    says what it is at); interrupted (Ctrl-C or SIGTERM: nothing rolled back); dry-run"""
    batches: tuple[tuple[str, ...], ...]
    hosts: tuple[HostReport, ...] = ()
    plan: tuple[PlannedHost, ...] = ()
    preflight: tuple[str, ...] = ()
    failures: int = 0
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        """0 when every host is healthy on the new version (or a dry run), 130 when interrupted, 1 otherwise."""
        if self.result == "interrupted":
            return EXIT_INTERRUPTED
        return 0 if self.result in ("success", "dry-run") else EXIT_FAILURE

    def summary_lines(self) -> list[str]:
        """The report for people: the plan of a dry run, else one line per host."""
        count = sum(len(batch) for batch in self.batches)
        if self.result == "dry-run":
            lines = [f"Plan: {self.package} {self.version} to {count} host(s) in {len(self.batches)} batch(es); "
                     "dry run, nothing is changed", "preflight, before any change:"]
            lines += [f"  {command}" for command in self.preflight]
            for planned in self.plan:
                lines.append(f"batch {planned.batch}, {planned.host}:")
                lines += [f"  $ {command}" for command in planned.commands]
                lines += [f"  on failure: {command}" for command in planned.rollback]
            return lines
        lines = [f"{self.package} {self.version}: {self.result}, {count} host(s) in {len(self.batches)} "
                 f"batch(es), {self.failures} failure(s), {self.seconds:.1f} s"]
        width = max(len(host.host) for host in self.hosts) if self.hosts else 0
        for host in self.hosts:
            health = {True: "healthy", False: "UNHEALTHY", None: "-"}[host.healthy]
            lines.append(f"  {host.host:<{width}}  batch {host.batch}  {host.before or 'none'} -> "
                         f"{host.after or 'none'}  {host.state}  {health}  {host.seconds:.1f} s")
            if host.error:
                lines += [f"      {line}" for line in host.error.splitlines()]
        return lines

    def as_dict(self) -> dict[str, object]:
        """The one JSON object `--json` prints."""
        data: dict[str, object] = {
            "package": self.package,
            "version": self.version,
            "result": self.result,
            "exit_code": self.exit_code,
            "batches": [list(batch) for batch in self.batches],
            "failures": self.failures,
            "seconds": round(self.seconds, 3),
            "hosts": [host.as_dict() for host in self.hosts],
        }
        if self.result == "dry-run":
            data["preflight"] = list(self.preflight)
            data["plan"] = [
                {"host": p.host, "batch": p.batch, "commands": list(p.commands), "rollback": list(p.rollback)}
                for p in self.plan
            ]
        return data
