"""Ship the top-level template folders inside the wheel.

debian_templates/, puppet/, r10k/ and jenkins/ live at the top of the
repository (SPEC §2) but must be importable resources of the installed
package, so build_py copies them into microdeploy/_data/ of the build output.
An editable install does not run this copy; microdeploy.resources then falls
back to the checkout's folders.
"""

import runpy
import shutil
from pathlib import Path

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
    system setuptools; pip and `python -m build` use setuptools >= 77 and are
    not touched. The shim is the one the stdeb backend writes into libraries,
    loaded by path: the package being built cannot be imported here.
    """
    shim = runpy.run_path(str(Path(__file__).resolve().parent / "microdeploy" / "build" / "setuptools_shim.py"))
    shim["accept_spdx_license_on_old_setuptools"]()


accept_spdx_license_on_old_setuptools()
setup(cmdclass={"build_py": BuildPyWithTemplates})
