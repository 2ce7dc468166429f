"""The build's reading of the project's imports (build/imports.py): what must import wherever the service runs, the
venv's names, and the standard modules of each release's Python."""

from __future__ import annotations

import logging
import warnings
import zipfile
from pathlib import Path

import pytest

from microdeploy.build import imports

# As older Flask apps validate an upload, and choose a driver.
UPLOADS = '''\
"""Uploads."""
from __future__ import annotations

import imghdr
import os.path
from . import store
from .store import items

def kind(stream):
    import cgi
    return imghdr.what(None, stream.read(512))
'''
GUARDED = '''\
import sys
from typing import TYPE_CHECKING

try:
    import ujson as json
except ImportError:
    import json

try:
    from redis import Redis
except (ModuleNotFoundError, OSError):
    Redis = None

if TYPE_CHECKING:
    from werkzeug.wrappers import Response

if sys.version_info < (3, 13):
    import pipes

with __import__("contextlib").suppress(ImportError):
    import uwsgi

def use_psycopg():
    import psycopg2
    return psycopg2

class Store:
    import sqlalchemy
'''


def wheel(tmp_path: Path, files: dict[str, str]) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "orders_api-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
        archive.writestr("orders_api-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: orders-api\n")
    return path


def site_packages(tmp_path: Path, *names: str) -> Path:
    site = tmp_path / "site-packages"
    site.mkdir(parents=True)
    for name in names:
        if name.endswith((".py", ".so")):
            (site / name).write_text("")
        else:
            (site / name).mkdir()
    return site


def test_unconditional_imports_are_those_that_run_whenever_their_code_does() -> None:
    """try/except ImportError, if (TYPE_CHECKING, version checks), suppress(): conditional; a function's imports
    run with it, a class body's with the module; a relative import has no top-level name; __future__ is none."""
    found = [(i.module, i.line, i.in_function) for i in imports.unconditional_imports(GUARDED, "store.py")]
    assert found == [("sys", 1, False), ("typing", 2, False), ("psycopg2", 24, True), ("sqlalchemy", 28, False)]
    found = [(i.module, i.dotted, i.level, i.names, i.in_function)
             for i in imports.unconditional_imports(UPLOADS, "uploads.py")]
    assert found == [("imghdr", "imghdr", 0, (), False), ("os", "os.path", 0, (), False),
                     ("", "", 1, ("store",), False), ("", "store", 1, ("items",), False),
                     ("cgi", "cgi", 0, (), True)]


def test_a_standard_module_later_pythons_dropped_is_named_for_those_pythons_only(tmp_path: Path) -> None:
    """imghdr (3.13) at module level and cgi (3.13) in a function: named for trixie's 3.13, with the PyPI backport
    under a marker; nothing for bookworm's 3.11."""
    built = wheel(tmp_path, {"orders_api/__init__.py": "", "orders_api/uploads.py": UPLOADS})
    site = site_packages(tmp_path, "flask", "six.py")
    assert imports.unsatisfied(built, site, "3.11") == []
    said = imports.unsatisfied(built, site, "3.13")
    assert said == [
        "cgi is not in Python 3.13 (removed from the standard library in 3.13), and orders_api/uploads.py:10 "
        "imports it: the service fails when that runs; add 'legacy-cgi; python_version >= \"3.13\"' to the "
        "project's dependencies, or stop using it",
        "imghdr is not in Python 3.13 (removed from the standard library in 3.13), and orders_api/uploads.py:4 "
        "imports it: the service fails when that runs; add 'standard-imghdr; python_version >= \"3.13\"' to the "
        "project's dependencies, or stop using it",
    ]
    # The backports in the venv satisfy them.
    assert imports.unsatisfied(built, site_packages(tmp_path / "b", "imghdr", "cgi.py"), "3.13") == []
    assert "add 'zombie-imp; python_version >= \"3.12\"'" in imports.unsatisfied(
        wheel(tmp_path / "c", {"a/__init__.py": "import imp\n"}), site, "3.12")[0]
    assert "it has no replacement on PyPI" in imports.unsatisfied(
        wheel(tmp_path / "d", {"a/__init__.py": "import spwd\n"}), site, "3.13")[0]


def test_a_standard_module_debian_ships_apart_is_named_with_its_package_until_the_package_depends_on_it(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """snappass 1.6.2's `from distutils.util import strtobool` on bookworm: Debian 12's python3.11 keeps distutils'
    __init__ and version, python3-distutils has the rest. tkinter is python3-tk's on every release; on trixie's 3.13
    distutils is gone from Python itself. Named until the package depends on that package, or setuptools' distutils
    stands in."""
    built = wheel(tmp_path, {
        "snappass/__init__.py": "",
        "snappass/main.py": "import distutils\nfrom distutils.util import strtobool\n"
                            "from distutils.version import LooseVersion\nfrom distutils import __version__\n",
        "snappass/plot.py": "def show():\n    from tkinter import ttk\n    import dbm\n",
        "snappass/cli.py": "from distutils import core, version\n",
    })
    site = site_packages(tmp_path, "flask")
    assert imports.unsatisfied(built, site, "3.11", "snappass.main") == [
        "distutils.core, distutils.util are not in Debian's python3.11 but in python3-distutils, and "
        "snappass/cli.py:1, snappass/main.py:2 imports them: the service fails when that runs on a host without "
        "python3-distutils; add 'python3-distutils' to the package's depends (depends in [tool.microdeploy], or "
        "--depends) or 'setuptools' to the project's dependencies (its distutils)",
        "tkinter is not in Debian's python3.11 but in python3-tk, and snappass/plot.py:2 imports it: the service "
        "fails when that runs on a host without python3-tk; add 'python3-tk' to the package's depends (depends in "
        "[tool.microdeploy], or --depends)",
    ]
    depends = ["python3-distutils (>= 3.11)", "python3-tk"]
    assert imports.unsatisfied(built, site, "3.11", "snappass.main", depends) == []
    # No depends at all (most services): nothing to parse, and nothing said about it.
    with caplog.at_level(logging.DEBUG):
        assert imports.unsatisfied(wheel(tmp_path / "quiet", {"a/__init__.py": "import json\n"}), site, "3.11") == []
    assert caplog.records == []
    with_setuptools = site_packages(tmp_path / "b", "_distutils_hack", "setuptools")
    first_words = [line.partition(" ")[0] for line in imports.unsatisfied(built, with_setuptools, "3.11")]
    assert first_words == ["tkinter"]
    trixie = imports.unsatisfied(built, site, "3.13", "snappass.main")
    assert [line.partition(" ")[0] for line in trixie] == ["tkinter", "distutils"]
    assert "python3-distutils" not in " ".join(trixie)


def test_an_undeclared_distribution_is_named_when_a_module_imports_it_as_it_loads(tmp_path: Path) -> None:
    """redis at module level, not in the venv: named. In a function, or found in the venv (a package, a module, an
    extension), or the project's own: not."""
    built = wheel(tmp_path / "a", {
        "orders_api/__init__.py": "import redis\nimport yaml\nimport six\nimport _cffi_backend\nimport orders_api\n",
        "orders_api/cache.py": "import redis.client\n\ndef later():\n    import boto3\n",
        "orders_helpers.py": "from orders_api import cache\n",
    })
    site = site_packages(tmp_path, "yaml", "six.py", "_cffi_backend.cpython-311-x86_64-linux-gnu.so")
    assert imports.unsatisfied(built, site, "3.11") == [
        "redis is imported by orders_api/__init__.py:1, orders_api/cache.py:1, but no distribution in the "
        "service's venv provides it: the service fails when it imports that module; add the distribution that "
        "provides redis to the project's dependencies (or, where an extra of the project requires it, build with "
        "that extra: extras)"]


def test_a_module_with_an_invalid_escape_is_read_under_warnings_as_errors(tmp_path: Path) -> None:
    """archivy's routes.py has a regex with an invalid escape: a warning to Python, which pytest makes an error."""
    built = wheel(tmp_path, {"orders_api/routes.py": 'import pkg_resources\nPATTERN = "\\d+"\n'})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert "orders_api/routes.py:1" in imports.unsatisfied(built, site_packages(tmp_path, "flask"), "3.11")[0]


def test_tests_docs_and_unreadable_modules_are_not_read(tmp_path: Path) -> None:
    """A wheel that ships its tests (pytest) and a Sphinx conf, or Python 2 code: nothing to say."""
    built = wheel(tmp_path, {
        "orders_api/__init__.py": "",
        "orders_api/tests/test_api.py": "import pytest\n",
        "orders_api/_tests/__init__.py": "import pytest\n",  # moin's layout
        "orders_api/conftest.py": "import pytest\n",
        "orders_api/api_test.py": "import pytest\n",
        "docs/conf.py": "import sphinx\n",
        "orders_api/legacy.py": "print 'hello'\nimport redis\n",
        "orders_api/deep.py": "import redis\nx = 1" + "+1" * 200_000 + "\n",  # RecursionError
        "orders_api/minus.py": "import redis\nx = " + "-" * 100_000 + "1\n",  # MemoryError
        "orders_api/nul.py": "import redis\n\0\n",
    })
    assert imports.unsatisfied(built, site_packages(tmp_path, "flask"), "3.11") == []


def test_the_standard_library_of_each_release(tmp_path: Path) -> None:
    """Whatever Python runs microdeploy: 3.11 has distutils and imghdr, 3.12 imghdr alone, 3.13 neither."""
    assert {"distutils", "imghdr", "json"} <= imports.standard_modules("3.11")
    assert "imghdr" in imports.standard_modules("3.12") and "distutils" not in imports.standard_modules("3.12")
    assert not {"distutils", "imghdr"} & imports.standard_modules("3.13")
    assert "json" in imports.standard_modules("3.13")


def test_setuptools_gives_distutils_and_pkg_resources_is_asked_of_setuptools_before_82(tmp_path: Path) -> None:
    """Where Python 3.12+ has no distutils, setuptools' _distutils_hack gives it; pkg_resources, gone from the venv
    (archivy imports it and requires no setuptools), is asked for as 'setuptools<82'."""
    built = wheel(tmp_path, {"orders_api/__init__.py": "from distutils.version import LooseVersion\n"})
    assert imports.unsatisfied(built, site_packages(tmp_path / "a", "setuptools", "_distutils_hack"), "3.13") == []
    assert "add 'setuptools; python_version >= \"3.12\"'" in imports.unsatisfied(
        built, site_packages(tmp_path / "b", "flask"), "3.13")[0]
    old = wheel(tmp_path / "c", {"orders_api/__init__.py": "import pkg_resources\n"})
    assert imports.unsatisfied(old, site_packages(tmp_path / "d", "flask"), "3.11") == [
        "pkg_resources is imported by orders_api/__init__.py:1, but no distribution in the service's venv provides "
        "it: the service fails when it imports that module; add 'setuptools<82' to the project's dependencies"]


def test_main_is_no_distribution_and_the_standard_modules_come_first_when_lines_are_cut(tmp_path: Path) -> None:
    """`import __main__` (click's, a CLI's) is the running program; with more modules than SHOWN, those a release's
    Python dropped are named first and the rest are counted."""
    many = "".join(f"import dep{i:02d}\n" for i in range(12)) + "import __main__\nimport telnetlib\n"
    said = imports.unsatisfied(wheel(tmp_path, {"orders_api/__init__.py": many}), site_packages(tmp_path, "flask"),
                               "3.13")
    assert said[0].startswith("telnetlib is not in Python 3.13")
    assert len(said) == imports.SHOWN + 1
    assert said[-1] == ("... and 3 more imports of modules the venv does not have: dep09, dep10, dep11")
    assert not [line for line in said if "__main__" in line]


# A plugin architecture, as pygeoapi's providers: the app's module loads its views and a registry of names; each
# provider module imports its backend's client, which only a site that configures it installs.
PLUGINS = {
    "geo/__init__.py": "",
    "geo/app.py": ("from flask import Flask\nfrom . import views\nfrom .plugins import REGISTRY\n"
                   "app = Flask(__name__)\n"),
    "geo/views.py": "import redis\nfrom geo.util import helper\n",
    "geo/util.py": "import yaml\n",
    "geo/plugins/__init__.py": "REGISTRY = {'es': 'geo.plugins.es_:Provider'}\n",
    "geo/plugins/es_.py": "import elasticsearch\nimport telnetlib\n",
    "geo/cli.py": "import click\n",
}


def test_a_distribution_nobody_declared_counts_where_loading_the_app_imports_it(tmp_path: Path) -> None:
    """From geo.app: views (redis) and util (yaml) load; the plugin's elasticsearch and the CLI's click do not,
    while the plugin's telnetlib, gone from 3.13, is named all the same. Without the app's module: all of them."""
    built = wheel(tmp_path, PLUGINS)
    site = site_packages(tmp_path, "flask")
    said = imports.unsatisfied(built, site, "3.13", "geo.app")
    assert [line.split(" ", 1)[0] for line in said] == ["telnetlib", "redis", "yaml"]
    assert ("the service fails as it starts (loading geo.app imports it); add the distribution that provides redis "
            "to the project's dependencies") in said[1]
    everything = imports.unsatisfied(built, site, "3.13", "somewhere.else")
    assert [line.split(" ", 1)[0] for line in everything] == ["telnetlib", "click", "elasticsearch", "redis", "yaml"]
    assert "fails when it imports that module" in everything[1]


def test_an_app_factory_s_blueprints_are_loaded_with_it(tmp_path: Path) -> None:
    """create_app() imports its blueprints in its body, as Flask's tutorial writes it: their module-level imports
    count; a function of another module (a CLI command's) does not lead anywhere."""
    built = wheel(tmp_path, {
        "shop/__init__.py": ("from flask import Flask\n\ndef create_app():\n    app = Flask(__name__)\n"
                             "    from . import auth\n    from .blog import bp\n    return app\n"),
        "shop/auth.py": "import flask_login\n\ndef command():\n    from . import tools\n",
        "shop/blog.py": "import markdown\nbp = None\n",
        "shop/tools.py": "import click\n",
    })
    said = imports.unsatisfied(built, site_packages(tmp_path, "flask"), "3.11", "shop")
    assert [line.split(" ", 1)[0] for line in said] == ["flask_login", "markdown"]
