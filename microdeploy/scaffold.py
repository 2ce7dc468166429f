"""`microdeploy new`: render a Flask service in the conventional layout."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

from microdeploy.config import DEFAULT_MAINTAINER, SCAFFOLD_HEALTH_PATH, ServiceConfig
from microdeploy.deploy_commands import madison_rows
from microdeploy.errors import MicrodeployError, bad_input
from microdeploy.fsutil import check_writable, staged_directory
from microdeploy.process import Runner, run
from microdeploy.render import render_tree
from microdeploy.resources import service_template
from microdeploy.validate import check_not_a_system_package


def default_maintainer(environ: Mapping[str, str]) -> str:
    """The maintainer from Debian's DEBFULLNAME/DEBEMAIL, as dch reads them."""
    name = environ.get("DEBFULLNAME") or environ.get("NAME")
    email = environ.get("DEBEMAIL") or environ.get("EMAIL")
    if name and email and "<" not in email:
        return f"{name} <{email}>"
    return DEFAULT_MAINTAINER


def scaffold_context(config: ServiceConfig, *, with_db: bool) -> dict[str, object]:
    """The template variables for one service (a pure function of its config)."""
    return {
        "name": config.name,
        "module": config.module,
        "app": config.app,
        "port": config.port,
        "workers": config.workers,
        "health_path": config.health_path or SCAFFOLD_HEALTH_PATH,
        "maintainer": config.maintainer,
        "description": config.summary,
        "with_db": with_db,
    }


# The top-level modules of the scaffold's dependencies and theirs (Flask's, gunicorn's, marshmallow's, the database
# option's, the test extra's): a service whose module had one of these names would be imported in its place, or
# import itself instead of it (src/flask/ for `new flask`).
DEPENDENCY_MODULES = frozenset({
    "flask", "werkzeug", "jinja2", "markupsafe", "itsdangerous", "click", "blinker", "gunicorn", "packaging",
    "marshmallow", "flask_marshmallow", "flask_sqlalchemy", "flask_migrate", "marshmallow_sqlalchemy", "sqlalchemy",
    "alembic", "mako", "greenlet", "typing_extensions", "pytest", "_pytest", "pluggy", "iniconfig",
})


def check_name(config: ServiceConfig, runner: Runner = run) -> None:
    """Refuse (exit 2) a name the service cannot have: one whose module is a standard module or one of its
    dependencies', a package installed on this machine (its build refuses that), or one apt's lists here know
    (Debian's keystone, another service of that name)."""
    module = config.module
    what = ("a standard library module" if module in sys.stdlib_module_names
            else "a module of the service's own dependencies" if module in DEPENDENCY_MODULES else None)
    if what is not None:
        raise bad_input(f"invalid name {config.name!r}: its Python package, {module}, would have the name of {what}, "
                        "and one of the two could not be imported",
                        hint=f"Give the service a name of its own, e.g. {config.name}-api")
    check_not_a_system_package(config.name)
    try:
        known = runner(["apt-cache", "madison", config.name], check=False).stdout
    except MicrodeployError:  # no apt here: nothing to ask
        return
    rows = list(madison_rows(known, config.name))
    if rows:
        version, source = rows[0][0], rows[0][1].removesuffix(" Packages")
        raise bad_input(f"invalid name {config.name!r}: apt already knows a package {config.name} ({version} from "
                        f"{source}); apt would take the service and it for one package, and install either",
                        hint=f"Give the service a name of its own, e.g. {config.name}-api")


def check_destination(dest: Path) -> None:
    """Refuse a destination that is a symbolic link, a file, a non-empty directory or not writable."""
    check_writable(dest, "--dir")
    if dest.is_symlink():
        raise bad_input(f"{dest} is a symbolic link", hint="Pass the directory itself with --dir, or a new path")
    if dest.exists() and not dest.is_dir():
        raise bad_input(f"{dest} exists and is not a directory", hint="Choose another --dir")
    if dest.is_dir() and any(dest.iterdir()):
        raise bad_input(
            f"{dest} already exists and is not empty",
            hint="Choose another --dir, or remove the directory first",
        )


def scaffold(config: ServiceConfig, dest: Path, *, with_db: bool = False, runner: Runner = run) -> list[Path]:
    """Render the service into `dest` atomically; return the files written."""
    check_name(config, runner)
    check_destination(dest)
    context = scaffold_context(config, with_db=with_db)
    with staged_directory(dest) as staging:
        written = render_tree(service_template(), staging, context)
        relative = [path.relative_to(staging) for path in written]
    return [dest / path for path in relative]
