"""Find the template folders shipped with microdeploy.

In a wheel they are package data under microdeploy/_data/ (setup.py copies
them there); in an editable install they are the checkout's top-level folders.
"""

from __future__ import annotations

from importlib.resources import as_file, files
from pathlib import Path

TEMPLATE_FOLDERS = ("debian_templates", "puppet", "r10k", "jenkins")


def template_folder(name: str) -> Path:
    """The directory of one shipped template folder (`debian_templates`, `puppet`, ...)."""
    if name not in TEMPLATE_FOLDERS:
        raise ValueError(f"unknown template folder {name!r}")
    packaged = files("microdeploy") / "_data" / name
    if packaged.is_dir():
        # Wheels install unzipped, so this is a real directory; as_file makes it a Path.
        with as_file(packaged) as path:
            return Path(path)
    checkout = Path(str(files("microdeploy"))).parent / name
    if checkout.is_dir():
        return checkout
    raise FileNotFoundError(f"template folder {name!r} is missing from this installation")


def service_template() -> Path:
    """The directory of the `microdeploy new` service template."""
    with as_file(files("microdeploy") / "service_template") as path:
        return Path(path)
