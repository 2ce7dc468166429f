"""Hostile values for the acceptance tests of every command: what a careless or malicious caller passes."""

from __future__ import annotations

import atexit
import functools
import json
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

from click.testing import CliRunner, Result

from microdeploy.cli import main

# Appended to a good value: each must be refused (exit 2) unless the option takes free text.
SUFFIXES = {
    "newline": "\n",
    "nul": "\x00",
    "escape": "\x1b[2J",
    "carriage-return": "\rX-Injected: yes",
    "bidi-override": "\u202e",
    "line-separator": "\u2028",
    "hiera": "%{::trusted.certname}",
    "dpkg": "${Newline}Pre-Depends: evil",
    "quotes": "'\"`",
    "very-long": "x" * 5000,
}
# Free text (a description, a setting's value, a shell hook) may hold these.
TEXT_OK = ("hiera", "quotes")
# A setting's value goes to config.ini and Hiera, never to debian/control: `${...}` is text there.
SETTING_OK = (*TEXT_OK, "dpkg")

# The service flags (config, build, jenkinsfile, puppet-data): flag -> (a good value, hostile kinds it may hold).
SERVICE_FLAGS = {
    "--name": ("orders-api", ()),
    "--app": ("orders_api.application:create_app()", ()),
    "--bind": ("127.0.0.1", ()),
    "--health-path": ("/health", ()),
    "--maintainer": ("Jane Doe <jane@example.org>", ()),
    "--description": ("An orders service", TEXT_OK),
    "--depends": ("libpq5", ()),
    "--build-depends": ("libpq-dev", ()),
    "--python": ("python3", ()),
    "--port": ("8000", ()),
    "--workers": ("2", ()),
    "--setting": ("app.greeting=hello", SETTING_OK),
}


def cases(flags: dict[str, tuple[str, tuple[str, ...]]]) -> list[tuple[str, str, str]]:
    """(flag, kind, value) for every flag and every hostile kind it must refuse."""
    return [(flag, kind, value) for flag, (good, ok) in flags.items() for kind, value in values(good, ok)]


def ids(found: list[tuple[str, str, str]]) -> list[str]:
    """Readable test ids: flag-kind."""
    return [f"{flag}-{kind}" for flag, kind, _ in found]


def values(good: str, allowed: Iterable[str] = ()) -> list[tuple[str, str]]:
    """(id, hostile value) pairs made from a good value, leaving out the kinds `allowed` for this option."""
    return [(kind, good + suffix) for kind, suffix in SUFFIXES.items() if kind not in set(allowed)]


def toml_string(value: str) -> str:
    """`value` as a TOML basic string (JSON's escapes are TOML's, control characters as \\uXXXX)."""
    return json.dumps(value)


def tree(root: Path) -> dict[str, bytes | None]:
    """Every path under `root` with its bytes (None for directories): to prove nothing was written."""
    return {str(path.relative_to(root)): f"-> {path.readlink()}".encode() if path.is_symlink()
            else None if path.is_dir() else path.read_bytes() for path in sorted(root.rglob("*"))}


def invoke(args: list[str], env: dict[str, str] | None = None) -> Result:
    """Run the CLI in-process as a user would (exceptions become output, as they would for a user)."""
    return CliRunner().invoke(main, args, env=env)


def assert_refused(result: Result, before: dict[str, bytes | None], after: dict[str, bytes | None],
                   key: str = "") -> None:
    """Exit 2, exactly one error message (naming `key`), no traceback, and nothing written."""
    output = result.output + result.stderr
    assert result.exit_code == 2, output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in output
    assert result.stderr.lower().count("error: ") == 1, result.stderr
    assert key in result.stderr, result.stderr
    assert after == before


def service(root: Path) -> Path:
    """A scaffolded service (as `microdeploy new` makes it) under `root`: a copy of the one `new` made first, since
    `new` asks the machine's apt whether Debian has a package of the name, hundreds of times otherwise."""
    project = root / "svc"
    shutil.copytree(_scaffolded(), project, symlinks=True)
    return project


@functools.cache
def _scaffolded() -> Path:
    made = Path(tempfile.mkdtemp(prefix="microdeploy-hostile-")) / "svc"
    atexit.register(shutil.rmtree, made.parent, True)
    result = invoke(["new", "orders-api", "--dir", str(made), "--no-input"])
    assert result.exit_code == 0, result.output
    return made


def with_key(project: Path, key: str, toml_value: str) -> None:
    """Set `key` in the project's [tool.microdeploy] table (the value already in TOML syntax)."""
    pyproject = project / "pyproject.toml"
    text = pyproject.read_text()
    head, marker, tail = text.partition("[tool.microdeploy]\n")
    assert marker, "the scaffold has a [tool.microdeploy] table"
    kept = "".join(line + "\n" for line in tail.splitlines() if not line.startswith(f"{key} ="))
    pyproject.write_text(f"{head}{marker}{key} = {toml_value}\n{kept}")
