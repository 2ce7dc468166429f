"""Imports in the service's own modules that its venv cannot satisfy on the release it is built for.

Two ways a package builds and the service then fails on its host, at its
start or at the request that imports the module:

- the project imports a distribution it does not declare, which a
  developer's venv happened to have (a module-level import, unguarded);
- it imports a standard module that the release's Python no longer has:
  Python 3.12 dropped distutils, imp, asyncore, asynchat and smtpd, and 3.13
  (trixie's) PEP 594's cgi, imghdr, pipes, crypt, telnetlib and others (any
  unguarded import: a function's too, as the module was always there);
- it imports a standard module that Debian ships apart from its python3.X
  package (tkinter in python3-tk, most of Debian 12's distutils in
  python3-distutils), which a host has only when something depends on it.

The project's modules are read from its wheel (ast, never run); what the
venv provides from its site-packages' names. An import under an `if`, in a
`try` that catches ImportError, or in tests and docs is left alone: only
what must import wherever the service runs counts.
"""

from __future__ import annotations

import ast
import sys
import warnings
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from debian.deb822 import PkgRelation
from packaging.version import Version

# Standard modules later Pythons no longer have: the first Python without them, and the distribution on PyPI that
# gives them back (None: none does, the code must change).
REMOVED: dict[str, tuple[str, str | None]] = {
    "asynchat": ("3.12", "standard-asynchat"),
    "asyncore": ("3.12", "standard-asyncore"),
    "distutils": ("3.12", "setuptools"),
    "imp": ("3.12", "zombie-imp"),
    "smtpd": ("3.12", "standard-smtpd"),
    "aifc": ("3.13", "standard-aifc"),
    "audioop": ("3.13", "audioop-lts"),
    "cgi": ("3.13", "legacy-cgi"),
    "cgitb": ("3.13", "legacy-cgi"),
    "chunk": ("3.13", "standard-chunk"),
    "crypt": ("3.13", "standard-crypt"),
    "imghdr": ("3.13", "standard-imghdr"),
    "lib2to3": ("3.13", None),
    "mailcap": ("3.13", "standard-mailcap"),
    "msilib": ("3.13", None),
    "nis": ("3.13", None),
    "nntplib": ("3.13", "standard-nntplib"),
    "ossaudiodev": ("3.13", None),
    "pipes": ("3.13", "standard-pipes"),
    "sndhdr": ("3.13", "standard-sndhdr"),
    "spwd": ("3.13", None),
    "sunau": ("3.13", "standard-sunau"),
    "telnetlib": ("3.13", "standard-telnetlib"),
    "uu": ("3.13", "standard-uu"),
    "xdrlib": ("3.13", "standard-xdrlib"),
}
# Standard modules (and their submodules) that Debian leaves out of its python3.X packages, by the package that
# has them ({python}: X.Y). Debian 12 keeps distutils' __init__ and version in libpython3.11-stdlib.
SPLIT_OFF: dict[str, str] = {
    "distutils": "python3-distutils",
    "lib2to3": "python3-lib2to3",
    "tkinter": "python3-tk",
    "_tkinter": "python3-tk",
    "turtle": "python3-tk",
    "idlelib": "idle-python{python}",
    "ensurepip": "python{python}-venv",
    "dbm.gnu": "python3-gdbm",
    "_gdbm": "python3-gdbm",
}
_KEPT_IN_STDLIB = ("distutils", "distutils.version")
# Exceptions whose handler makes the imports of its `try` optional.
_IMPORT_ERRORS = {"ImportError", "ModuleNotFoundError", "Exception", "BaseException"}
# Directories of a wheel whose files the service does not use as it runs (packagedata.py's too).
NOT_RUN = frozenset({"tests", "test", "_tests", "testing", "docs", "doc", "examples", "example"})
SHOWN = 10  # imports named at most, per build


@dataclass(frozen=True)
class Import:
    """An import at `path`:`line`: the top-level module name (empty for a relative import), the module named
    (`a.b` of `from ..a.b import c`), its level of dots and the names taken from it; `in_function`: only when a
    function runs."""

    module: str
    path: str
    line: int
    in_function: bool
    dotted: str = ""
    level: int = 0
    names: tuple[str, ...] = ()


def standard_modules(python: str) -> frozenset[str]:
    """The standard library's top-level modules in Python `python` (X.Y)."""
    target = Version(python)
    # __main__ is the running program's module, named nowhere in the standard library's list.
    names = set(sys.stdlib_module_names) | set(REMOVED) | {"__main__"}
    return frozenset(name for name in names if name not in REMOVED or target < Version(REMOVED[name][0]))


def debian_package(dotted: str, python: str) -> str | None:
    """The Debian package that has the standard module `dotted` where Debian's python`python` (X.Y) does not;
    None for a module python`python` has, or one Python itself dropped (REMOVED)."""
    if dotted in _KEPT_IN_STDLIB or dotted.startswith("distutils.version."):  # a module's names, not submodules
        return None
    for name, package in SPLIT_OFF.items():
        if dotted == name or dotted.startswith(f"{name}."):
            top = name.partition(".")[0]
            if top in REMOVED and Version(python) >= Version(REMOVED[top][0]):
                return None
            return package.format(python=python)
    return None


def _split_off(item: Import, python: str) -> tuple[str, str] | None:
    """The standard module an import takes that Debian's python`python` lacks, and the Debian package that has it;
    `from distutils import util` takes the submodule distutils.util."""
    if item.level:
        return None
    package = debian_package(item.dotted, python)
    if package is not None:
        return item.dotted, package
    submodules = (f"{item.dotted}.{taken}" for taken in item.names if not taken.startswith("__"))
    return next(((dotted, package) for dotted in submodules if (package := debian_package(dotted, python))), None)


def provided(site_packages: Path) -> set[str]:
    """The top-level module names a venv's site-packages provides (packages, namespace directories, modules)."""
    names = set()
    for entry in site_packages.iterdir():
        if entry.is_dir() and entry.name.isidentifier():
            names.add(entry.name)
        elif entry.suffix in (".py", ".so"):
            names.add(entry.name.partition(".")[0])
    if "_distutils_hack" in names:  # setuptools' distutils, through its .pth file, where Python has none
        names.add("distutils")
    return names


def unconditional_imports(source: str, path: str) -> Iterator[Import]:
    """The absolute imports of a module that run whenever it (or its function) does: none under an `if`, in a
    `try` whose handlers catch ImportError, or in `with suppress(...)`."""
    with warnings.catch_warnings():
        # An invalid escape sequence is a warning only, an error under -W error (pytest's, PYTHONWARNINGS).
        warnings.simplefilter("ignore")
        tree = ast.parse(source, filename=path)
    yield from _imports(tree.body, path, in_function=False)


def _imports(body: Iterable[ast.stmt], path: str, in_function: bool) -> Iterator[Import]:
    for node in body:
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(alias.name.partition(".")[0], path, node.lineno, in_function, alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.module != "__future__":
                top = (node.module or "").partition(".")[0] if node.level == 0 else ""
                yield Import(top, path, node.lineno, in_function, node.module or "", node.level,
                             tuple(alias.name for alias in node.names))
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield from _imports(node.body, path, in_function=True)
        elif isinstance(node, ast.ClassDef):
            yield from _imports(node.body, path, in_function)
        elif isinstance(node, (ast.Try, ast.TryStar)):
            if not any(_catches_import_error(handler) for handler in node.handlers):
                for part in (node.body, node.orelse, node.finalbody):
                    yield from _imports(part, path, in_function)
        elif isinstance(node, (ast.With, ast.AsyncWith)):
            if not any("suppress" in ast.unparse(item.context_expr) for item in node.items):
                yield from _imports(node.body, path, in_function)
        elif isinstance(node, (ast.For, ast.AsyncFor, ast.While)):
            yield from _imports(node.body, path, in_function)
        # Under `if` (TYPE_CHECKING, sys.version_info, __main__, a setting) or `match`: conditional.


def _catches_import_error(handler: ast.ExceptHandler) -> bool:
    if handler.type is None:
        return True
    caught = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return any(isinstance(name, (ast.Name, ast.Attribute)) and ast.unparse(name).split(".")[-1] in _IMPORT_ERRORS
               for name in caught)


def wheel_modules(wheel: Path) -> tuple[set[str], list[tuple[str, str]]]:
    """The top-level names a wheel installs, and its modules' (path, source) that the service may run."""
    with zipfile.ZipFile(wheel) as archive:
        names = [name for name in archive.namelist() if ".dist-info/" not in name and ".data/" not in name]
        top = {PurePosixPath(name).parts[0].partition(".")[0] for name in names}
        sources = [(name, archive.read(name).decode("utf-8", errors="replace")) for name in names
                   if name.endswith(".py") and not _not_run(PurePosixPath(name))]
    return top, sources


def _not_run(path: PurePosixPath) -> bool:
    return (bool(NOT_RUN.intersection(path.parts[:-1])) or path.name == "conftest.py"
            or path.name.startswith("test_") or path.name.endswith("_test.py"))


def module_name(path: str) -> str:
    """The dotted name of a wheel's module file: `pkg/sub/__init__.py` is `pkg.sub`."""
    parts = PurePosixPath(path).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def loaded_with(app_module: str, parsed: dict[str, tuple[str, list[Import]]]) -> set[str]:
    """The project's modules that loading `app_module` loads: its packages, and what their module-level code
    imports, unconditionally, from the project, over and over; in the app's module its functions' imports too,
    as an app factory (`create_app()`) imports its blueprints in its body."""
    loaded: set[str] = set()
    todo = [app_module]
    while todo:
        parts = todo.pop().split(".")
        for end in range(1, len(parts) + 1):  # a module's packages load before it
            name = ".".join(parts[:end])
            if name not in parsed or name in loaded:
                continue
            loaded.add(name)
            path, items = parsed[name]
            package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
            for item in items:
                if item.in_function and name != app_module:
                    continue
                base = item.dotted if item.level == 0 else _relative(package, item.level, item.dotted)
                if base:
                    todo.append(base)
                    todo.extend(f"{base}.{taken}" for taken in item.names if taken != "*")
    return loaded


def _relative(package: str, level: int, dotted: str) -> str:
    parts = package.split(".")
    if level - 1 >= len(parts):
        return ""
    return ".".join([*parts[:len(parts) - (level - 1)], *([dotted] if dotted else [])])


def unsatisfied(wheel: Path, site_packages: Path, python: str, app_module: str | None = None,
                depends: Iterable[str] = ()) -> list[str]:
    """What the build says about the project's imports its venv cannot satisfy under Python `python`: one line
    per module, at most SHOWN. A standard module Debian ships apart from python`python` counts wherever it is
    imported, unless the package `depends` (Debian relations) on its package; a standard module Python dropped
    likewise; a distribution nobody declared where loading `app_module` (the service's WSGI module) imports it, if
    it is the project's."""
    own, sources = wheel_modules(wheel)
    have = provided(site_packages) | own
    standard = standard_modules(python)
    depended = {alternative["name"] for declared in depends for relation in PkgRelation.parse_relations(declared)
                for alternative in relation}
    parsed: dict[str, tuple[str, list[Import]]] = {}
    for path, source in sources:
        try:
            parsed[module_name(path)] = (path, list(unconditional_imports(source, path)))
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue  # not Python this interpreter reads (the host's compileall will say so), or too deep to read
    loaded = loaded_with(app_module, parsed) if app_module in parsed else None
    needed: dict[str, dict[str, list[Import]]] = {}  # Debian package: its modules and their imports
    found: dict[str, list[Import]] = {}
    for name, (_, imports) in parsed.items():
        for item in imports:
            split = _split_off(item, python)
            if split is not None:
                dotted, package = split
                # setuptools' distutils (its .pth file) stands in for Debian's.
                if package not in depended and not (dotted.startswith("distutils") and "distutils" in have):
                    needed.setdefault(package, {}).setdefault(dotted, []).append(item)
                continue
            if not item.module or item.module in have or item.module in standard:
                continue
            if item.module not in REMOVED and (item.in_function or (loaded is not None and name not in loaded)):
                continue  # a third-party import in a function or a module the app does not load: a plugin's
            found.setdefault(item.module, []).append(item)
    # The standard modules first: they fail wherever the release's Python runs the code.
    said = [_said_package(package, modules, python) for package, modules in sorted(needed.items())]
    ordered = sorted(found.items(), key=lambda item: (item[0] not in REMOVED, item[0]))
    starting = app_module if loaded is not None else None
    said += [_said(module, places, python, starting) for module, places in ordered]
    if len(said) > SHOWN:
        left = [*sorted(needed), *(module for module, _ in ordered)][SHOWN:]
        said = [*said[:SHOWN], f"... and {len(left)} more imports of modules the venv does not have: "
                + ", ".join(left)]
    return said


def backport_requirement(module: str) -> str | None:
    """The requirement that gives back a standard module Python dropped, quoted, under its marker; None without one
    (or for a module Python did not drop)."""
    gone, backport = REMOVED.get(module, ("", None))
    return f"'{backport}; python_version >= \"{gone}\"'" if backport else None


def _said_package(package: str, modules: dict[str, list[Import]], python: str) -> str:
    names = sorted(modules)
    where = _where([place for name in names for place in modules[name]])
    instead = " or 'setuptools' to the project's dependencies (its distutils)" if package == "python3-distutils" else ""
    return (f"{', '.join(names)} {'is' if len(names) == 1 else 'are'} not in Debian's python{python} but in "
            f"{package}, and {where} imports {'it' if len(names) == 1 else 'them'}: the service fails when that runs "
            f"on a host without {package}; add '{package}' to the package's depends (depends in [tool.microdeploy], "
            f"or --depends){instead}")


def _where(places: list[Import]) -> str:
    return ", ".join(f"{place.path}:{place.line}" for place in places[:3]) + (", ..." if len(places) > 3 else "")


def _said(module: str, places: list[Import], python: str, starting: str | None = None) -> str:
    where = _where(places)
    if module in REMOVED:
        backport = backport_requirement(module)
        fix = (f"add {backport} to the project's dependencies, or stop using it" if backport
               else "it has no replacement on PyPI: the code must stop using it")
        return (f"{module} is not in Python {python} (removed from the standard library in {REMOVED[module][0]}), "
                f"and {where} imports it: the service fails when that runs; {fix}")
    # pkg_resources came with setuptools, which venvs of Python 3.11 and older got by default; setuptools 82 has none.
    wanted = "'setuptools<82'" if module == "pkg_resources" else f"the distribution that provides {module}"
    when = f"as it starts (loading {starting} imports it)" if starting else "when it imports that module"
    extra = "" if module == "pkg_resources" else " (or, where an extra of the project requires it, build with that " \
        "extra: extras)"
    return (f"{module} is imported by {where}, but no distribution in the service's venv provides it: the service "
            f"fails {when}; add {wanted} to the project's dependencies{extra}")
