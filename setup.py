"""Ship the top-level template folders inside the wheel.

debian_templates/, puppet/, r10k/ and jenkins/ live at the top of the
repository (SPEC §2) but must be importable resources of the installed
package, so build_py copies them into microdeploy/_data/ of the build output.
An editable install does not run this copy; microdeploy.resources then falls
back to the checkout's folders.
"""

import shutil
from pathlib import Path

import setuptools
from setuptools import setup
from setuptools.command.build_py import build_py

TEMPLATE_FOLDERS = ("debian_templates", "puppet", "r10k", "jenkins")


class BuildPyWithTemplates(build_py):
    """build_py that also copies the template folders into the package."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        here = Path(__file__).resolve().parent
        target = Path(self.build_lib) / "microdeploy" / "_data"
        for folder in TEMPLATE_FOLDERS:
            dest = target / folder
            if dest.exists():
                shutil.rmtree(dest)
            shutil.copytree(
                here / folder,
                dest,
                ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".git"),
            )


def accept_spdx_license_on_old_setuptools() -> None:
    """Let Debian 12's setuptools (66) read pyproject.toml's PEP 639 `license = "MIT"`.

    `make deb` (stdeb) and the Debian build (pybuild) run this file with the
    system setuptools, which predates PEP 639 and rejects a license string; it
    is handed the older `{text = ...}` table instead. pip and `python -m build`
    use setuptools >= 77 (pyproject's build-system) and are not touched.
    """
    if int(setuptools.__version__.split(".")[0]) >= 77:
        return
    from setuptools.config import pyprojecttoml

    load_file = pyprojecttoml.load_file

    def load_with_license_table(filepath):  # type: ignore[no-untyped-def]
        data = load_file(filepath)
        project = data.get("project", {})
        if isinstance(project.get("license"), str):
            project["license"] = {"text": project["license"]}
        return data

    pyprojecttoml.load_file = load_with_license_table


accept_spdx_license_on_old_setuptools()
setup(cmdclass={"build_py": BuildPyWithTemplates})
