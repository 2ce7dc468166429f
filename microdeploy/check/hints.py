"""What to do about a service that fails on its host: hints from its last word, the line check reports."""

from __future__ import annotations

import re

from microdeploy.build.imports import REMOVED, backport_requirement, debian_package
from microdeploy.dists import DISTS

__all__ = ["LINGERING_WORKERS", "for_last_word"]

# A write the unit's sandbox refused (ProtectSystem=strict): the app writes into its installed files.
_READ_ONLY = re.compile(r"\[Errno 30\] Read-only file system: '([^']*)'")
# A top-level module the venv lacks (a dotted name is a module of a package the venv has).
_MISSING_MODULE = re.compile(r"ModuleNotFoundError: No module named '(\w+(?:\.\w+)*)'")
# cffi's words when the unit's MemoryDenyWriteExecute=yes refuses the memory of an ffi.callback().
_WRITE_EXECUTE = "Cannot allocate write+execute memory"
# A table that a worker creates as it starts, made a moment before by another worker (SQLite, PostgreSQL, MySQL).
_ALREADY_EXISTS = re.compile(r"\b(?:table|relation|Table) [\"'`]?[\w.]+[\"'`]? already exists")
# What to do about a stop that waited for gunicorn's graceful_timeout.
LINGERING_WORKERS = ("hint: a worker that does not exit when gunicorn asks it to keeps every stop, restart and "
                     "upgrade of the service waiting for gunicorn's graceful_timeout, and then dies unclean: the app "
                     "starts a thread that is not a daemon (threading.Thread(..., daemon=True) lets the worker exit), "
                     "or handles SIGTERM without exiting.")


def for_last_word(why: str, name: str) -> str:
    """The hint for the service NAME's last word `why`, or "" when no known cause fits it."""
    return (sandbox_hint(why, name) or missing_module_hint(why) or schema_race_hint(why, name)
            or write_execute_hint(why))


def sandbox_hint(why: str, name: str) -> str:
    """What to do when the service's last word is a write the unit's sandbox refused, else ""."""
    refused = _READ_ONLY.search(why)
    if refused is None:
        return ""
    return (f"hint: {refused.group(1)} is read-only to the service: its unit (ProtectSystem=strict) lets it write "
            f"only under /var/lib/{name}, /var/log/{name} and its private /tmp. Point the app's writable paths "
            f"there (its settings in /etc/{name}/config.ini or /etc/{name}/environment; for this check, written by "
            f"a --setup script).")


def missing_module_hint(why: str) -> str:
    """What to do when the service's last word is a module its venv or its Python lacks, else "": the project, or one
    of its dependencies, imports a distribution it does not declare, which a developer's venv happened to have."""
    missing = _MISSING_MODULE.search(why)
    if missing is None:
        return ""
    dotted = missing.group(1)
    module = dotted.partition(".")[0]
    if module == "pkg_resources":
        return ("hint: pkg_resources came with setuptools up to version 81, which venvs of Python 3.11 and older got "
                "by default; the service's venv has setuptools only when a distribution in it requires it: add "
                "'setuptools<82' to the project's dependencies (or move it to importlib.metadata).")
    if module == "setuptools":
        return ("hint: setuptools, which venvs of Python 3.11 and older got by default, is in the service's venv only "
                "when a distribution in it requires it: add setuptools to the project's dependencies, or build with "
                "--keep-installers.")
    # The Debian package that has the module on every release that has it (a missing submodule of distutils is
    # Debian 12's python3-distutils: Debian 13's Python has no distutils at all).
    packages = {debian_package(dotted, dist.python_minor) for dist in DISTS.values()} - {None}
    if len(packages) == 1 and (dotted != module or module not in REMOVED):
        package = packages.pop()
        instead = " (or 'setuptools' to the project's dependencies: its distutils)" if module == "distutils" else ""
        return (f"hint: Debian ships the standard module {dotted} apart from its python3 package, in {package}, "
                f"which a host has only when a package depends on it: add '{package}' to the service's depends "
                f"(depends in [tool.microdeploy], or --depends){instead}.")
    if dotted != module:
        return ""  # a submodule its package lacks: not a distribution to declare
    if module in REMOVED:
        backport = backport_requirement(module)
        fix = (f"add {backport} to the project's dependencies" if backport
               else "the code must stop using it (PyPI has no replacement)")
        return (f"hint: {module} was removed from Python's standard library in {REMOVED[module][0]} (trixie has "
                f"Python 3.13); it imports on bookworm's 3.11 only: {fix}.")
    return (f"hint: no distribution in the service's venv provides the module {module}: the project, or one "
            "of its dependencies, imports it without requiring it; add the distribution that provides it to the "
            "project's dependencies.")


def schema_race_hint(why: str, name: str) -> str:
    """What to do when the service's last word is a table that already exists, else "": the app creates its
    database as it loads, in every gunicorn worker at once, and one worker lost the race to another."""
    if _ALREADY_EXISTS.search(why) is None:
        return ""
    return (f"hint: the app creates its database tables as it starts, in each gunicorn worker at once, and one "
            f"worker failed on a table another had just made. Create the database once, before the service "
            f"starts: keep it under /var/lib/{name} (the unit's private /tmp is emptied at every restart) and run "
            f"the app's own command for it with {name}-run (for this check, in a --setup script); or run the "
            f"service with workers = 1 in [server] of /etc/{name}/config.ini.")


def write_execute_hint(why: str) -> str:
    """What to do when the service's last word is memory the unit refused to make writable and executable."""
    if _WRITE_EXECUTE not in why:
        return ""
    return ("hint: the unit refuses memory that is both writable and executable (MemoryDenyWriteExecute=yes), which "
            "cffi's ffi.callback() needs (as cairocffi's file writers); if the service's code needs it, build it "
            "with write_execute_memory = true in [tool.microdeploy] (or --write-execute-memory).")
