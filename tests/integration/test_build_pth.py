"""A wheel's .pth file runs code at every start of the venv's interpreter: the build never runs it."""

from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path

import pytest

from tests.integration.test_build_caches import build_with, check_records, checkout, commit, payload
from tests.integration.test_build_pip_index import depending_checkout, simple_index

pytestmark = pytest.mark.integration

HOOK = "mdtest-pth-hook"  # not on PyPI
UNTOUCHED = 'TARGET = "as the wheel installed it"\n'
# urllib3-future's way: at every interpreter start, rewrite another distribution's files.
MUTATE = ("import os, sys; open(os.path.join(sys.prefix, 'lib', 'python%d.%d' % sys.version_info[:2], "
          "'site-packages', 'mdtest_pth_hook', '__init__.py'), 'a').write('TARGET = \"changed by a .pth\"\\n')\n")


def wheel_index(root: Path) -> Path:
    """A PEP 503 simple index at root/simple holding one wheel of HOOK, written by hand: its package and a
    top-level mdtest_pth_hook.pth that changes the package's __init__.py whenever the interpreter starts."""
    files = {"mdtest_pth_hook/__init__.py": UNTOUCHED, "mdtest_pth_hook.pth": MUTATE,
             "mdtest_pth_hook-1.0.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {HOOK}\nVersion: 1.0\n",
             "mdtest_pth_hook-1.0.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: microdeploy-tests\n"
                                                   "Root-Is-Purelib: true\nTag: py3-none-any\n"}
    rows = []
    for name, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        rows.append(f"{name},sha256={digest},{len(text.encode())}\n")
    files["mdtest_pth_hook-1.0.dist-info/RECORD"] = "".join(rows) + "mdtest_pth_hook-1.0.dist-info/RECORD,,\n"
    wheel = root / "files" / "mdtest_pth_hook-1.0-py3-none-any.whl"
    wheel.parent.mkdir(parents=True)
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return simple_index(root, HOOK, wheel)


def test_a_pth_file_ships_as_installed_and_never_runs_in_the_build(tmp_path: Path) -> None:
    """The first build fills the dependency layer, the second restores it and starts the venv's interpreter
    with the .pth in place (dh_virtualenv runs the pip tool with it, uv queries it): the hook's code ran there
    and changed the package's files, so the two builds of one commit differed. Both ship the files as the
    wheel installed them, the .pth under its own name, and are byte-identical."""
    pip_conf = tmp_path / "pip.conf"
    pip_conf.write_text(f"[global]\nextra-index-url = file://{wheel_index(tmp_path / 'index')}\n")
    project = depending_checkout(tmp_path / "hello-api", f"{HOOK}==1.0")
    environ = {"PIP_CONFIG_FILE": str(pip_conf)}
    first = build_with(project, tmp_path / "first", tmp_path / "cache", environ)
    second = build_with(project, tmp_path / "second", tmp_path / "cache", environ)
    site = "/opt/venvs/hello-api/lib/python3.11/site-packages"
    for built in (first, second):
        files = payload(built.deb)
        assert files[f"{site}/mdtest_pth_hook/__init__.py"] == UNTOUCHED.encode()
        assert files[f"{site}/mdtest_pth_hook.pth"] == MUTATE.encode()
        assert not [path for path in files if "inert" in path]
    assert first.deb.read_bytes() == second.deb.read_bytes()


def test_without_uv_a_pth_file_never_runs_between_pip_s_installs(tmp_path: Path) -> None:
    """Without uv (MICRODEPLOY_UV empty) dh_virtualenv runs pip with the venv's interpreter once per step: the hook,
    installed from requirements.txt, ran when the project's install started it and changed the package's files. It
    ships as the wheel installed it, the .pth under its own name; with --keep-installers the setuptools that Python's
    venv brings ships its distutils-precedence.pth under its own name too, and every RECORD matches."""
    pip_conf = tmp_path / "pip.conf"
    pip_conf.write_text(f"[global]\nextra-index-url = file://{wheel_index(tmp_path / 'index')}\n")
    project = checkout(tmp_path / "hello-api")
    (project / "requirements.txt").write_text(f"{HOOK}==1.0\n")
    commit(project, f"requirements.txt: {HOOK}")
    built = build_with(project, tmp_path / "dist", tmp_path / "cache",
                       {"PIP_CONFIG_FILE": str(pip_conf), "MICRODEPLOY_UV": ""}, keep_installers=True)
    site = "/opt/venvs/hello-api/lib/python3.11/site-packages"
    files = payload(built.deb)
    assert files[f"{site}/mdtest_pth_hook/__init__.py"] == UNTOUCHED.encode()
    assert files[f"{site}/mdtest_pth_hook.pth"] == MUTATE.encode()
    assert f"{site}/distutils-precedence.pth" in files
    assert not [path for path in files if "inert" in path or path.endswith("-pip")]
    check_records(files)
