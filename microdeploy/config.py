"""The service model: load `[tool.microdeploy]`, apply defaults and CLI overrides, validate once.

Sources, later ones winning: built-in defaults, the project's `[project]`
metadata, `[tool.microdeploy]` of pyproject.toml (or the top level of
microdeploy.toml), then command-line flags. Every error names the key, the bad
value, where it came from and what is allowed.
"""

from __future__ import annotations

import configparser
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from microdeploy import dists
from microdeploy import validate as rules
from microdeploy.apptarget import AppTargetError, parse_app
from microdeploy.errors import bad_input
from microdeploy.pyproject import FILE as PYPROJECT
from microdeploy.pyproject import Pyproject, load_toml, read_pkg_info, read_pyproject
from microdeploy.summary import DESCRIPTION_MAX, project_summary, without_name

Scalar = str | int | float | bool
Settings = Mapping[str, Mapping[str, Scalar]]

MICRODEPLOY_TOML = "microdeploy.toml"

NAME_MAX = rules.SERVICE_NAME.max_length
# The WSGI target, literal factory arguments included.
APP_MAX = 500
# A setting's value lands on one line of config.ini and in Hiera data.
SETTING_VALUE_MAX = 4096

DEFAULT_PORT = 8000
DEFAULT_BIND = "127.0.0.1"
DEFAULT_WORKERS = 2
# The .deb's compressor (dpkg-deb -Z for xz; gzip is microdeploy's own, see
# build/fastpath/datapack.py) and, per compressor, its levels: lowest,
# highest, default. For a venv of Python sources gzip -5 makes a package about
# as small as xz -0, and faster; xz -6 (dpkg's default) is smaller still and
# much slower (bench/README.md has the figures). lintian accepts no other
# compressor.
COMPRESSION_LEVELS = {"gzip": (1, 9, 5), "xz": (0, 9, 0)}
DEFAULT_COMPRESSION = "gzip"
DEFAULT_MAINTAINER = "Service Maintainer <maintainer@example.org>"
# The health route `microdeploy new` writes (and sets as health_path).
SCAFFOLD_HEALTH_PATH = "/health"


@dataclass(frozen=True)
class ServiceConfig:
    """Everything microdeploy needs to know about one service."""

    name: str
    app: str
    version: str | None = None
    port: int = DEFAULT_PORT
    bind: str = DEFAULT_BIND
    workers: int = DEFAULT_WORKERS
    # Unset: health probes take any HTTP answer below 500 on / (an existing app has no health route).
    health_path: str | None = None
    maintainer: str = DEFAULT_MAINTAINER
    description: str = ""
    depends: tuple[str, ...] = ()
    build_depends: tuple[str, ...] = ()
    extras: tuple[str, ...] = ()  # the project's extras the venv installs (its [project.optional-dependencies])
    python: str = "python3"
    dist: tuple[str, ...] = ()  # Debian releases to build for (codenames); none: the build machine's own
    compression: str = DEFAULT_COMPRESSION
    compression_level: int = COMPRESSION_LEVELS[DEFAULT_COMPRESSION][2]
    # The venv's code makes memory that is writable and executable (cffi's ffi.callback() in ABI mode, as
    # cairocffi's file writers; a JIT): the unit then leaves out MemoryDenyWriteExecute=yes.
    write_execute_memory: bool = False
    settings: Settings = field(default_factory=dict)

    @property
    def module(self) -> str:
        """The Python import name that goes with the service name."""
        return self.name.replace("-", "_")

    @property
    def summary(self) -> str:
        """A one-line description, never empty, that does not start with the name (lintian)."""
        text = without_name(self.description, self.name)
        return (text[:1].upper() + text[1:]) if text else "Python web service"  # a bottle or plain WSGI app too


KEYS = tuple(f.name for f in fields(ServiceConfig))
# The command-line flags whose names are not their keys' (a flag gives one item of the list).
FLAGS = {"settings": "--setting", "extras": "--extra"}


def default_app(name: str) -> str:
    """The WSGI target assumed when none is configured: the scaffold's app factory."""
    return f"{name.replace('-', '_')}.application:create_app()"


def read_project_file(project: Path, pyproject: Pyproject | None = None) -> tuple[dict[str, Any], dict[str, Any], str]:
    """The `[project]` table, the microdeploy table and the file it came from.

    `pyproject`: the project's pyproject.toml when the caller has read it (a build does, once).
    """
    if pyproject is None:
        pyproject = read_pyproject(project)
    standalone = project / MICRODEPLOY_TOML
    project_table = dict(pyproject.project)
    tool_table = dict(pyproject.tool("microdeploy"))
    source = PYPROJECT if pyproject.found else "defaults"
    if standalone.is_file():
        if tool_table:
            raise bad_input(
                f"{project} has both {MICRODEPLOY_TOML} and [tool.microdeploy] in {PYPROJECT}",
                hint="Keep the service configuration in one of the two files",
            )
        data = load_toml(standalone)
        tool_table = dict(data.get("tool", {}).get("microdeploy", data))
        source = MICRODEPLOY_TOML
    return project_table, tool_table, source


def declared_summary(project: Path) -> tuple[str, str] | None:
    """The summary a project without [project].description states elsewhere, and where (declared_elsewhere)."""
    return declared_elsewhere(project, "Summary", "description")


def declared_name(project: Path) -> tuple[str, str] | None:
    """The name a project without [project].name states elsewhere, and where (declared_elsewhere)."""
    return declared_elsewhere(project, "Name", "name")


def declared_elsewhere(project: Path, header: str, key: str) -> tuple[str, str] | None:
    """A core metadata field of a project without [project], and where it is stated: an unpacked sdist's PKG-INFO,
    else setup.cfg's [metadata] (a setup.py project's metadata is known to setuptools alone)."""
    headers = read_pkg_info(project)
    value = str(headers.get(header) or "").strip() if headers is not None else ""
    if value and value != "UNKNOWN":
        return value, f"PKG-INFO {header}"
    setup_cfg = configparser.ConfigParser(interpolation=None)
    try:
        setup_cfg.read(project / "setup.cfg", encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError):
        return None
    value = setup_cfg.get("metadata", key, fallback="").strip()
    if value and not value.startswith(("file:", "attr:")):  # the text is elsewhere, for setuptools to read
        return value, f"setup.cfg [metadata] {key}"
    return None


def load_config(project: Path, overrides: Mapping[str, Any] | None = None,
                pyproject: Pyproject | None = None) -> ServiceConfig:
    """Load, default, override and validate the configuration of the service in `project`.

    `pyproject`: the project's pyproject.toml when the caller has read it.
    """
    if not project.is_dir():
        found = f"{project} is not a directory" if project.exists() else f"project directory not found: {project}"
        raise bad_input(found, hint="Pass the path of a Python project")
    project_table, tool_table, source = read_project_file(project, pyproject)
    unknown = sorted(set(tool_table) - set(KEYS))
    if unknown:
        raise bad_input(
            f"unknown key(s) in {source}: {', '.join(unknown)}",
            hint=f"Use only: {', '.join(KEYS)}",
        )
    values: dict[str, tuple[Any, str]] = {}
    if "name" in project_table:
        values["name"] = (_normalise_project_name(str(project_table["name"])), "[project].name")
    elif (named := declared_name(project)) is not None:
        values["name"] = (_normalise_project_name(named[0]), named[1])
    if "version" in project_table:
        # A number (`version = 3`) is no PEP 621 version: refused here, or the project would seem to have none.
        values["version"] = (project_table["version"], "[project].version")
    # The project's own name, which its description may start with (the package's may differ: --name).
    own_name = str(values["name"][0]) if "name" in values else ""
    # A project that describes itself with nothing is left to the package's generic summary (summary); a blank
    # description given for the service is refused (check_description).
    if isinstance(project_table.get("description"), str):
        described = (project_summary(project_table["description"], own_name), "[project].description")
    elif (declared := declared_summary(project)) is not None:
        described = (project_summary(declared[0], own_name), declared[1])
    else:
        described = ("", "")
    if described[0]:
        values["description"] = described
    for key, value in tool_table.items():
        values[key] = (value, f"{source} key '{key}'")
    in_file = values.get("settings")
    for key, value in (overrides or {}).items():
        if key not in KEYS:
            raise ValueError(f"not a configuration key: {key}")
        if value is not None and value != ():
            values[key] = (value, FLAGS.get(key, f"--{key.replace('_', '-')}"))
    if in_file is not None and values["settings"] is not in_file:
        # A --setting overrides its key of the file's settings, not the whole table: each part is checked with its
        # own origin, then the flags' keys go over the file's.
        from_file = check_settings(*in_file)
        from_flags = check_settings(*values["settings"])
        merged = {section: {**from_file.get(section, {}), **from_flags.get(section, {})}
                  for section in {**from_file, **from_flags}}
        values["settings"] = (merged, values["settings"][1])
    return validate(values)


def validate(values: Mapping[str, tuple[Any, str]]) -> ServiceConfig:
    """Check each (value, origin) pair and build the ServiceConfig."""
    if "name" not in values:
        raise bad_input(
            "the service has no name",
            hint="Set name in the project's [tool.microdeploy] (or [project].name) of pyproject.toml, or in "
                 "microdeploy.toml (build, config, jenkinsfile and puppet-data also take --name)",
        )
    name = _check_name(*values["name"])
    checked: dict[str, Any] = {"name": name}
    app_value, app_origin = values.get("app", (default_app(name), "default"))
    checked["app"] = check_app_target(app_value, app_origin)
    if "version" in values:
        checked["version"] = check_upstream_version(*values["version"])
    if "port" in values:
        checked["port"] = rules.port("port", *values["port"])
    if "workers" in values:
        checked["workers"] = rules.integer("workers", *values["workers"], 1, 256)
    if "bind" in values:
        checked["bind"] = rules.bind_address("bind", *values["bind"])
    for key, spec in (("health_path", rules.HEALTH_PATH), ("maintainer", rules.MAINTAINER),
                      ("python", rules.PYTHON)):
        if key in values:
            checked[key] = rules.check(spec, key, *values[key])
    if "description" in values:
        checked["description"] = check_description(*values["description"])
    for key in ("depends", "build_depends"):
        if key in values:
            checked[key] = rules.relations(key, *values[key])
    if "extras" in values:
        checked["extras"] = rules.extras("extras", *values["extras"])
    if "compression" in values:
        compressors = rules.rule("|".join(COMPRESSION_LEVELS), " or ".join(f"'{c}'" for c in COMPRESSION_LEVELS))
        checked["compression"] = rules.check(compressors, "compression", *values["compression"])
    low, high, default = COMPRESSION_LEVELS[checked.get("compression", DEFAULT_COMPRESSION)]
    if "compression_level" in values:
        checked["compression_level"] = rules.integer("compression_level", *values["compression_level"], low, high)
    else:
        checked["compression_level"] = default
    if "settings" in values:
        checked["settings"] = check_settings(*values["settings"])
    if "dist" in values:
        checked["dist"] = check_dists(*values["dist"])
    if "write_execute_memory" in values:
        checked["write_execute_memory"] = check_boolean("write_execute_memory", *values["write_execute_memory"])
    return ServiceConfig(**checked)


def check_boolean(key: str, value: Any, origin: str) -> bool:
    """true or false, as TOML writes them (not a string that reads like one)."""
    if not isinstance(value, bool):
        raise rules.invalid(key, value, origin, "true or false")
    return value


def check_dists(value: Any, origin: str) -> tuple[str, ...]:
    """A release codename, or a list of them, each known to microdeploy (bookworm, trixie); each once."""
    items = [value] if isinstance(value, str) else value
    allowed = f"a Debian release or a list of them: {', '.join(dists.DISTS)}"
    if not isinstance(items, list | tuple) or not items:
        raise rules.invalid("dist", value, origin, allowed)
    for item in items:
        if item not in dists.DISTS:
            raise rules.invalid("dist", item, origin, allowed)
    return tuple(dict.fromkeys(items))


def check_description(value: Any, origin: str) -> str:
    """One line of text that says something: a blank one given for the service would become a generic summary."""
    text = rules.text("description", value, origin, DESCRIPTION_MAX).strip()
    if not text:
        raise rules.invalid("description", value, origin, "one line that says what the service does, e.g. "
                            "'Orders API of the shop', or leave description out", "blank")
    return text


def check_app_target(value: Any, origin: str) -> str:
    """The WSGI target as gunicorn takes it, in its canonical spelling (apptarget)."""
    allowed = ("'module:name', 'module:factory()' or a factory called with literal arguments, "
               "e.g. 'orders_api.wsgi:app' or 'orders_api:create_app(\"production\")'")
    text = rules.string("app", value, origin, allowed, APP_MAX)
    try:
        return str(parse_app(text))
    except AppTargetError as exc:
        raise rules.invalid("app", value, origin, allowed, str(exc)) from None


def check_upstream_version(value: Any, origin: str) -> str:
    """An upstream version must be a PEP 440 version that Debian can sort."""
    return rules.upstream_version("version", value, origin)


# The [server] keys of config.ini that the service's own port, bind and workers keys own.
SERVER_KEYS = ("port", "bind", "workers")


def check_settings(value: Any, origin: str) -> dict[str, dict[str, Scalar]]:
    """Settings are a table of sections, each a table of scalar values."""
    if not isinstance(value, dict):
        raise rules.invalid("settings", value, origin, "a table of sections")
    result: dict[str, dict[str, Scalar]] = {}
    for section, entries in value.items():
        rules.check(rules.SETTING_KEY, "settings section", section, origin)
        if not isinstance(entries, dict):
            raise rules.invalid(f"settings.{section}", entries, origin, "a table of key = value pairs")
        for key, item in entries.items():
            rules.check(rules.SETTING_KEY, f"settings.{section} key", key, origin)
            if section == "server" and key in SERVER_KEYS:
                # One owner: the config's own key, which Hiera's entry and the Puppet module write over it.
                raise rules.invalid(f"settings.server.{key}", item, origin, f"the `{key}` key (--{key})",
                                    f"[server] {key} is the service's `{key}`, which would override it")
            if isinstance(item, str):
                rules.string(f"settings.{section}.{key}", item, origin,
                             "a single-line string, number or boolean", SETTING_VALUE_MAX)
            elif not isinstance(item, int | float | bool):
                raise rules.invalid(f"settings.{section}.{key}", item, origin,
                                    "a single-line string, number or boolean")
            elif isinstance(item, float) and not math.isfinite(item):
                # TOML's nan and inf: JSON has no such number, and an INI file's reader no such value.
                raise rules.invalid(f"settings.{section}.{key}", item, origin, "a finite number")
        result[str(section)] = dict(entries)
    return result


def parse_setting_assignments(assignments: tuple[str, ...]) -> dict[str, dict[str, Scalar]]:
    """Turn `--setting section.key=value` flags into a settings table: each value the text as typed, typed only
    where the text says its type without doubt (setting_value)."""
    table: dict[str, dict[str, Scalar]] = {}
    for assignment in assignments:
        target, sep, raw = assignment.partition("=")
        section, dot, key = target.strip(" ").partition(".")
        if not sep or not dot or not section or not key:
            raise bad_input(
                f"invalid --setting {assignment!r}",
                hint="Write it as SECTION.KEY=VALUE, e.g. --setting app.debug=false",
            )
        # Only spaces are trimmed; a line break or another control character stays, for check_settings to refuse.
        table.setdefault(section, {})[key] = setting_value(raw.strip(" "))
    return table


# A decimal integer as Puppet's Integer (64 bits) holds it, in the one spelling that reads back the same.
_PLAIN_INTEGER = re.compile(r"-?(?:0|[1-9][0-9]{0,17})")


def setting_value(text: str) -> Scalar:
    """A --setting value: `true`, `false` and plain decimal integers typed as pyproject's would be (the Hiera data
    is typed, SPEC §7: `debug: false`), anything else the string typed. A command line has no types, and config.ini
    must get the text typed: TOML made 1.10 1.1, 0o755 493, 1979-05-27 a date, and dropped the quotes of '"x"';
    each value typed here is written back as the same text."""
    if text in ("true", "false"):
        return text == "true"
    if _PLAIN_INTEGER.fullmatch(text):
        return int(text)
    return text


def _check_name(value: Any, origin: str) -> str:
    name = rules.check(rules.SERVICE_NAME, "name", value, origin)
    reserved = rules.reserved_name(name)
    if reserved is not None:
        raise rules.invalid("name", value, origin, "a name of the service's own (--name, or name in "
                            "[tool.microdeploy])", reserved)
    return name


def _normalise_project_name(name: str) -> str:
    # PyPI names allow '_' and capitals; Debian package names do not.
    return re.sub(r"[-_.]+", "-", name).lower()

