"""What every command of the CLI shares: number types, progress output, error mapping, service flags, JSON."""

from __future__ import annotations

import errno
import functools
import json
import logging
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from microdeploy.config import (
    COMPRESSION_LEVELS,
    ServiceConfig,
    load_config,
    parse_setting_assignments,
)
from microdeploy.errors import EXIT_BAD_INPUT, EXIT_FAILURE, EXIT_INTERRUPTED, MicrodeployError
from microdeploy.validate import shown

F = TypeVar("F", bound=Callable[..., Any])
LEVELS_HELP = ", ".join(f"{name} {low}-{high} (default {default})"
                        for name, (low, high, default) in COMPRESSION_LEVELS.items())
log = logging.getLogger("microdeploy")


# Not subscripted: Debian 12's click (8.1, what python3-microdeploy runs on)
# has no generic ParamType, and the subscript would fail at import there.
class StrictNumber(click.ParamType):  # type: ignore[type-arg]
    """An int (or float) written as one, whole: click's own types take " 8000\\n" as 8000."""

    def __init__(self, kind: type[int] | type[float]) -> None:
        self.kind = kind
        self.name = "integer" if kind is int else "number"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        """The number, or a usage error (exit 2) showing the value escaped."""
        if isinstance(value, self.kind) and not isinstance(value, bool):
            return value
        pattern = r"-?[0-9]+" if self.kind is int else r"-?[0-9]+(?:\.[0-9]+)?"
        if isinstance(value, str) and re.fullmatch(pattern, value):
            return self.kind(value)
        self.fail(f"{shown(value)} is not {'an integer' if self.kind is int else 'a number'}", param, ctx)


INT = StrictNumber(int)
FLOAT = StrictNumber(float)


class PathParam(click.Path):
    """click.Path giving a pathlib.Path, that refuses an empty value: pathlib takes "" for the current directory,
    and `--out "$OUT"` with OUT unset would write the build (or a repository, a key...) there."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(path_type=Path, **kwargs)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        """The path, or a usage error (exit 2) for an empty value."""
        if isinstance(value, str) and not value.strip():
            self.fail(f"{shown(value)} is empty: give a path (an unset variable?)", param, ctx)
        return super().convert(value, param, ctx)


class OutputParam(click.ParamType):  # type: ignore[type-arg]
    """A file to write, or `-` for standard output; an empty value is refused as PathParam refuses it: `-o "$OUT"`
    with OUT unset would name the current directory."""

    name = "output"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        """The value as given, or a usage error (exit 2) for an empty one."""
        if isinstance(value, str) and not value.strip():
            self.fail(f"{shown(value)} is empty: give a file, or - for standard output (an unset variable?)",
                      param, ctx)
        return value


class ProgressHandler(logging.Handler):
    """Progress lines on stderr: styled on a terminal, plain in CI logs."""

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if record.levelno >= logging.WARNING:
            message = f"{record.levelname.lower()}: {message}"
        color = sys.stderr.isatty() and not os.environ.get("NO_COLOR")
        if color:
            message = click.style(message, fg="yellow" if record.levelno >= logging.WARNING else "cyan")
        click.echo(message, err=True, color=color)


class MicrodeployGroup(click.Group):
    """A group that turns MicrodeployError into a message and an exit code."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """Refuse a NUL anywhere in the arguments before any option is looked at."""
        # No operating system call takes one (a real argv cannot even hold it; a caller
        # in-process can), and a path with one makes Python raise ValueError.
        for arg in args:
            if "\x00" in arg:
                raise click.UsageError(f"invalid argument {shown(arg)}: control character U+0000", ctx)
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MicrodeployError as exc:
            if ctx.meta.get("microdeploy.debug"):
                raise
            click.echo(f"error: {exc.message}", err=True)
            if exc.hint:
                click.echo(f"hint: {exc.hint}", err=True)
            ctx.exit(exc.exit_code)
        except BrokenPipeError:
            # Whoever read the output stopped (`microdeploy cache info | head -1`): stop as quietly as a
            # program that SIGPIPE ends, with the status a shell gives one (128 + 13), and nothing more to
            # flush at exit into the closed pipe.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            ctx.exit(141)
        except OSError as exc:
            # What the operating system refused where no check foresaw it (a disk that
            # fills up mid-write, a file removed under us): a message, not a traceback.
            if ctx.meta.get("microdeploy.debug"):
                raise
            where = f": {shown(str(exc.filename))}" if exc.filename else ""
            click.echo(f"error: {exc.strerror or exc}{where}", err=True)
            if exc.errno == errno.ENAMETOOLONG:  # a path given that no file system takes
                click.echo("hint: Pass a shorter path", err=True)
                ctx.exit(EXIT_BAD_INPUT)
            click.echo("hint: Fix the cause (free space, permissions) and run the command again; "
                       "`microdeploy --debug COMMAND ...` shows where it failed", err=True)
            ctx.exit(EXIT_FAILURE)
        except KeyboardInterrupt:
            if ctx.meta.get("microdeploy.debug"):
                raise
            click.echo("error: interrupted", err=True)
            ctx.exit(EXIT_INTERRUPTED)



def service_options(func: F) -> F:
    """Flags that override each key of the service configuration."""
    options = [
        click.option("--name", help="Package, unit and user name."),
        click.option("--app", help="WSGI target, 'module:attr' or 'module:factory()'."),
        click.option("--port", type=INT, help="Port the service listens on."),
        click.option("--bind", help="Address the service binds to."),
        click.option("--workers", type=INT, help="Number of gunicorn workers."),
        click.option("--health-path", help="Path of the health check."),
        click.option("--maintainer", help="'Full Name <email>' of the package maintainer."),
        click.option("--description", help="One-line description of the service."),
        click.option("--depends", multiple=True, help="Extra Debian dependency (repeatable)."),
        click.option("--build-depends", multiple=True, help="Extra Debian build dependency (repeatable)."),
        click.option("--extra", "extras", multiple=True, metavar="NAME",
                     help="An extra of the project to install with it, as in pip's .[NAME] (repeatable)."),
        click.option("--python", help="Python interpreter on build and target host, e.g. python3."),
        click.option("--setting", "settings", multiple=True, metavar="SECTION.KEY=VALUE",
                     help="A default config value (repeatable), written to config.ini as typed."),
    ]
    return functools.reduce(lambda f, option: option(f), reversed(options), func)


def config_overrides(flags: dict[str, Any]) -> dict[str, Any]:
    """Take the service_options flags out of a command's keyword arguments."""
    keys = ("name", "app", "port", "bind", "workers", "health_path", "maintainer",
            "description", "depends", "build_depends", "extras", "python", "compression", "compression_level",
            "write_execute_memory")
    overrides = {key: flags.pop(key) for key in keys if key in flags}
    assignments = flags.pop("settings", ())
    if assignments:
        overrides["settings"] = parse_setting_assignments(assignments)
    return overrides


def load_service(project: Path, flags: dict[str, Any]) -> ServiceConfig:
    """The validated configuration of the project, with flag overrides."""
    return load_config(project, config_overrides(flags))


def print_json(data: object) -> None:
    """Print one JSON object for CI to read."""
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))
