"""setup.py for a pyproject-only project built with Debian 12's setuptools (66).

That setuptools predates PEP 639 and rejects a license string in [project]
(`license = "MIT"`) and the `license-files` key that comes with it; it is
handed the older `{text = ...}` table and [tool.setuptools] license-files
instead. setuptools >= 77 is left alone. And its automatic discovery of a
flat layout takes stdeb's debian/ directory for a second top-level package
(newer setuptools leaves debian/ out, as it does docs/ and tests/). Debian's
python3 has no setuptools-scm: a version it would compute is taken from
SETUPTOOLS_SCM_PRETEND_VERSION, which the build sets. One copy, two users:

- the stdeb backend writes this file as setup.py into the build copy of a
  library (stdeb runs setup.py); run as a script, it calls setup();
- microdeploy's own setup.py loads it by path (it cannot import the package
  it is building) and calls accept_spdx_license_on_old_setuptools().
"""

from collections.abc import Callable
from typing import Any

import setuptools


def edit_pyproject(edit: Callable[[dict[str, Any]], None]) -> None:
    """Have setuptools read pyproject.toml as `edit` changes it (in memory; the file stays as it is)."""
    from setuptools.config import pyprojecttoml

    load_file = pyprojecttoml.load_file

    def load_edited(filepath: Any) -> Any:
        data = load_file(filepath)
        edit(data)
        return data

    pyprojecttoml.load_file = load_edited


def accept_spdx_license_on_old_setuptools() -> None:
    """Make setuptools < 77 read a PEP 639 license string as the older {text = ...} table, and license-files as
    [tool.setuptools]'s."""
    if int(setuptools.__version__.split(".")[0]) >= 77:
        return

    def older_license_keys(data: dict[str, Any]) -> None:
        project = data.get("project", {})
        if isinstance(project.get("license"), str):
            project["license"] = {"text": project["license"]}
        if "license-files" in project:
            data.setdefault("tool", {}).setdefault("setuptools", {})["license-files"] = project.pop("license-files")

    edit_pyproject(older_license_keys)


def version_without_setuptools_scm() -> None:
    """A version setuptools-scm computes, where setuptools-scm is not installed (Debian's python3 builds without
    it): the one SETUPTOOLS_SCM_PRETEND_VERSION, its own override, names. setuptools would write 0.0.0."""
    import importlib.util
    import os

    pinned = os.environ.get("SETUPTOOLS_SCM_PRETEND_VERSION")
    if not pinned or importlib.util.find_spec("setuptools_scm") is not None:
        return

    def static_version(data: dict[str, Any]) -> None:
        project = data.get("project", {})
        if "version" in project.get("dynamic", []):
            project["dynamic"] = [key for key in project["dynamic"] if key != "version"]
            project["version"] = pinned
            data.get("tool", {}).get("setuptools", {}).get("dynamic", {}).pop("version", None)

    edit_pyproject(static_version)


def leave_debian_out_of_discovery() -> None:
    """Keep a debian/ directory out of setuptools' automatic discovery of a flat layout's packages."""
    from setuptools import discovery

    finder = discovery.FlatLayoutPackageFinder
    if "debian" not in finder.DEFAULT_EXCLUDE:
        finder.DEFAULT_EXCLUDE = (*finder.DEFAULT_EXCLUDE, "debian", "debian.*")


if __name__ == "__main__":
    accept_spdx_license_on_old_setuptools()
    version_without_setuptools_scm()
    leave_debian_out_of_discovery()
    setuptools.setup()
