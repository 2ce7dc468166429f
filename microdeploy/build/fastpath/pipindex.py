"""pip's index settings and constraints, handed to uv when uv has none of its own.

A team's private index is often configured for pip alone (pip.conf,
PIP_INDEX_URL), and dh-virtualenv's pip reads it. uv reads no pip
configuration: without this, a build with uv looks every name up on PyPI,
which fails for a private package or, worse, installs a public one of the
same name. So where uv has no index settings of its own (no UV_ index
variable, no index in a uv.toml or the project's [tool.uv]), pip's are
given to uv as its variables, with pip's way of choosing among them: the
best version on any index (UV_INDEX_STRATEGY=unsafe-best-match), unless
UV_INDEX_STRATEGY says otherwise. pip's constraint files, likewise, become
UV_CONSTRAINT where uv has no constraints of its own (no UV_CONSTRAINT, no
constraint-dependencies). The build then installs what pip would.

pip's files are read in pip's order, a later one overriding an earlier one
key by key, [install] over [global] within a file, and PIP_ variables over
every file: the system's, the user's, and $PIP_CONFIG_FILE's over both (the
user's are not read when it names a file; /dev/null: no file is read).
"""

from __future__ import annotations

import configparser
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

# pip's option, the uv variable that takes it, and how uv separates several values.
MAPPED = {
    "index-url": ("UV_DEFAULT_INDEX", " "),
    "extra-index-url": ("UV_INDEX", " "),
    "find-links": ("UV_FIND_LINKS", ","),
    "trusted-host": ("UV_INSECURE_HOST", " "),
    "constraint": ("UV_CONSTRAINT", " "),
}
CONSTRAINT_OPTION = "constraint"
# uv's own constraints: when set, pip's are not given.
UV_CONSTRAINT_VARIABLE = MAPPED[CONSTRAINT_OPTION][0]
UV_CONSTRAINT_SETTINGS = ("constraint-dependencies",)
# uv's variables that name files (separated by spaces): their texts decide what is installed
# (layer.callers_uv_settings), and a build in another release's root must see them at their paths.
UV_FILE_VARIABLES = ("UV_CONSTRAINT", "UV_OVERRIDE", "UV_BUILD_CONSTRAINT")
# uv's variables and settings that choose where packages come from: when any is set, uv's configuration stands.
INDEX_URL_VARIABLES = ("UV_DEFAULT_INDEX", "UV_INDEX", "UV_INDEX_URL", "UV_EXTRA_INDEX_URL")
UV_INDEX_VARIABLES = (*INDEX_URL_VARIABLES, "UV_FIND_LINKS", "UV_NO_INDEX")
UV_INDEX_SETTINGS = ("index", "index-url", "extra-index-url", "find-links", "no-index", "default-index")
STRATEGY_VAR = "UV_INDEX_STRATEGY"
PIP_STRATEGY = "unsafe-best-match"  # pip takes the best version among all its indexes
SECTIONS = ("global", "install")  # `pip install` reads [global], then its own section


def pip_config_files(environ: Mapping[str, str]) -> list[Path]:
    """pip's configuration files, the later overriding the earlier: the system's, the user's (not when
    $PIP_CONFIG_FILE names a file), then $PIP_CONFIG_FILE's."""
    chosen = environ.get("PIP_CONFIG_FILE")
    if chosen == os.devnull:
        return []
    xdg_dirs = [entry for entry in environ.get("XDG_CONFIG_DIRS", "/etc/xdg").split(":") if entry]
    files = [*(Path(entry) / "pip" / "pip.conf" for entry in xdg_dirs), Path("/etc/pip.conf")]
    if chosen and Path(chosen).exists():
        return [*files, Path(chosen)]
    home = Path(environ.get("HOME", "/"))
    user_dir = Path(environ.get("XDG_CONFIG_HOME") or home / ".config")
    return [*files, home / ".pip" / "pip.conf", user_dir / "pip" / "pip.conf"]


def pip_settings(environ: Mapping[str, str]) -> dict[str, str]:
    """The index options and constraints (MAPPED) pip's configuration gives `pip install`: files, then PIP_
    variables."""
    found: dict[str, str] = {}
    for path in pip_config_files(environ):
        parser = configparser.RawConfigParser()
        try:
            parser.read(path, encoding="utf-8")
        except (configparser.Error, UnicodeDecodeError):
            continue  # pip refuses such a file itself; the pip-based build says so
        for section in SECTIONS:
            if parser.has_section(section):
                found.update({key.replace("_", "-"): value for key, value in parser.items(section)
                              if key.replace("_", "-") in MAPPED})
    for option in MAPPED:
        variable = "PIP_" + option.upper().replace("-", "_")
        if environ.get(variable):
            found[option] = environ[variable]
    return found


def uv_tables(uv_configs: Mapping[str, str], project_uv: Mapping[str, object]) -> list[Mapping[str, object]] | None:
    """The settings uv reads: the project's [tool.uv] (`project_uv`) and each uv.toml (`uv_configs`: their texts);
    None when a uv.toml does not parse (uv reads it, and says what is wrong with it)."""
    tables: list[Mapping[str, object]] = [project_uv]
    for text in uv_configs.values():
        try:
            tables.append(tomllib.loads(text))
        except tomllib.TOMLDecodeError:
            return None
    return tables


def uv_has_own(environ: Mapping[str, str], tables: list[Mapping[str, object]] | None, variables: tuple[str, ...],
               settings: tuple[str, ...]) -> bool:
    """Whether uv is told itself what one of pip's settings would tell it: one of its `variables`, or one of its
    `settings` in its tables (uv_tables; None, an unreadable uv.toml, counts as told)."""
    if any(environ.get(variable) for variable in variables):
        return True
    return tables is None or any(_names(table, settings) for table in tables)


def _names(table: Mapping[str, object], keys: tuple[str, ...]) -> bool:
    pip_table = table.get("pip")
    return any(key in table for key in keys) or (
        isinstance(pip_table, Mapping) and any(key in pip_table for key in keys))


def uv_variables(settings: Mapping[str, str], environ: Mapping[str, str]) -> dict[str, str]:
    """uv's variables for pip's `settings`; a find-links directory that is not there is left out, as pip leaves
    it out (uv would stop at it)."""
    variables: dict[str, str] = {}
    for option, value in settings.items():
        variable, separator = MAPPED[option]
        values = value.split()
        if option == "find-links":
            # A relative directory is the caller's, as for pip; uv runs in the build's directories.
            values = [item if urlsplit(item).scheme else os.path.abspath(item) for item in values
                      if (local := _local_path(item)) is None or local.exists()]
        elif option == CONSTRAINT_OPTION:
            values = [os.path.abspath(item) for item in values]  # the caller's, as for pip
        if values:
            variables[variable] = separator.join(values)
    if "UV_INDEX" in variables and not environ.get(STRATEGY_VAR):
        variables[STRATEGY_VAR] = PIP_STRATEGY
    return variables


def _local_path(location: str) -> Path | None:
    """The path a find-links location names on this machine (a path, or a file: URL); None for another URL."""
    parts = urlsplit(location)
    return Path(parts.path) if parts.scheme in ("", "file") else None


def pip_variables(environ: Mapping[str, str], uv_configs: Mapping[str, str],
                  project_uv: Mapping[str, object]) -> dict[str, str]:
    """The uv variables that carry pip's index settings and constraints into the build: the index settings unless
    uv has its own, the constraints unless uv has its own."""
    settings = pip_settings(environ)
    tables = uv_tables(uv_configs, project_uv)
    if uv_has_own(environ, tables, UV_INDEX_VARIABLES, UV_INDEX_SETTINGS):
        settings = {option: value for option, value in settings.items() if option == CONSTRAINT_OPTION}
    if uv_has_own(environ, tables, (UV_CONSTRAINT_VARIABLE,), UV_CONSTRAINT_SETTINGS):
        settings.pop(CONSTRAINT_OPTION, None)
    return uv_variables(settings, environ)


def local_sources(environ: Mapping[str, str]) -> list[Path]:
    """The directories on this machine that uv's settings in `environ` name: find-links directories, for an
    index at file://.../simple the directory above it, where such an index keeps its files, and those of
    constraint and override files. A build in another release's root sees them at the same paths."""
    found = [path for item in environ.get("UV_FIND_LINKS", "").split(",")
             if item.strip() and (path := _local_path(item.strip())) is not None]
    found += [Path(item).parent for variable in UV_FILE_VARIABLES for item in environ.get(variable, "").split()]
    for variable in INDEX_URL_VARIABLES:
        for item in environ.get(variable, "").split():
            parts = urlsplit(_index_url(item))
            if parts.scheme == "file":
                found.append(Path(parts.path).parent)
    return [path for path in dict.fromkeys(found) if path.is_absolute() and path.is_dir()]


def _index_url(item: str) -> str:
    """The URL of one of UV_INDEX's items, which may be NAME=URL."""
    name, _, url = item.partition("=")
    return url if url and "://" not in name else item


def shown(variables: Mapping[str, str]) -> str:
    """`variables` for a log line, a URL's user information (a password, or a token as the user) as ***."""
    return " ".join(f"{name}={' '.join(_redacted(item) for item in value.split())}"
                    for name, value in variables.items())


def _redacted(item: str) -> str:
    parts = urlsplit(item)
    if "@" not in parts.netloc:
        return item
    return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]))
