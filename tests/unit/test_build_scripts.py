"""The scripts debian/ carries into the build (make-venv, uv-pip, plain-pip, cached-shlibdeps), run as
dpkg-buildpackage runs them.

uv, pip and dh_shlibdeps are stand-ins here (small scripts that record their
argv); the real tools run in tests/integration/test_build_caches.py.
"""

from __future__ import annotations

import base64
import ctypes
import hashlib
import json
import os
import shlex
import shutil
import struct
import subprocess
import sys
import tempfile
import venv
from dataclasses import replace
from pathlib import Path

import pytest
from debian.deb822 import Deb822

from tests.debiandir import FACTS, rendered_debian

RECORDER = """#!{python}
import json, os, sys
with open(os.environ["RECORD_TO"], "a") as out:
    out.write(json.dumps(sys.argv[1:]) + "\\n")
{extra}
"""


@pytest.fixture
def debian(tmp_path: Path) -> Path:
    """debian/ rendered for orders-api, in tmp_path/tree."""
    return rendered_debian(tmp_path)


def recorder(path: Path, extra: str = "") -> Path:
    """An executable that appends its argv (as JSON) to $RECORD_TO, then runs `extra`."""
    path.write_text(RECORDER.format(python=sys.executable, extra=extra))
    path.chmod(0o755)
    return path


def built_wheel(wheel_dir: Path) -> Path:
    """A wheel directory as microdeploy leaves it after a successful background build."""
    wheel_dir.mkdir()
    (wheel_dir / "orders_api-1.0-py3-none-any.whl").write_bytes(b"")
    (wheel_dir / "returncode").write_text("0\n")
    return wheel_dir


def calls(record: Path) -> list[list[str]]:
    return [json.loads(line) for line in record.read_text().splitlines()] if record.exists() else []


# A stand-in for dh_shlibdeps: records its argv and the ELF files under its -P tree (path: text), writes a
# shlibs: line and another to its dpkg-shlibdeps -T file, as dpkg-shlibdeps keeps the other lines of that file.
FAKE_SHLIBDEPS = """
tree = next(arg[2:] for arg in sys.argv if arg.startswith("-P"))
found = {os.path.relpath(os.path.join(d, f), tree): open(os.path.join(d, f), "rb").read().decode()
         for d, _, fs in os.walk(tree) for f in fs}
open(os.environ["RECORD_TO"] + ".found", "a").write(json.dumps(found) + "\\n")
target = [arg[2:] for arg in sys.argv if arg.startswith("-T")][-1]
open(target, "a").write("shlibs:Depends=libc6 (>= 2.14)\\nmisc:Depends=\\n")
"""


def shlibdeps_steps(debian: Path, command: list[str]) -> list[list[str]]:
    """cached-shlibdeps' three steps as debian/rules runs them (WORK is debian/.shlibdeps)."""
    script = [sys.executable, str(debian / "cached-shlibdeps")]
    work = str(debian / ".shlibdeps")
    return [[*script, "copy", str(debian / "orders-api"), "opt/venvs/orders-api", work, "--", *command],
            [*script, "find", work, "--", *command],
            [*script, "merge", work, str(debian / "orders-api.substvars")]]


def test_cached_shlibdeps_reads_copies_once_per_elf_set_and_keeps_other_substvars(debian: Path,
                                                                                   tmp_path: Path) -> None:
    """First build: dh_shlibdeps runs on copies of the venv's ELF files, which a change to the package's files
    after `copy` (dh_strip's) leaves alone, and its shlibs: lines go into the substvars; same ELF files and
    installed packages: no run, same lines back; a changed ELF file: it runs again."""
    venv = debian / "orders-api" / "opt" / "venvs" / "orders-api"
    (venv / "lib").mkdir(parents=True)
    library = venv / "lib" / "speedups.so"
    library.write_bytes(b"\x7fELF fake library")
    (venv / "lib" / "module.py").write_text("x = 1\n")
    substvars = debian / "orders-api.substvars"
    record = tmp_path / "calls"
    fake = recorder(tmp_path / "dh_shlibdeps", extra=FAKE_SHLIBDEPS)
    env = {**os.environ, "RECORD_TO": str(record), "MICRODEPLOY_SHLIBDEPS_CACHE": str(tmp_path / "cache")}
    command = [str(fake), "-Pdebian/.shlibdeps/tree", "--", "-Tdebian/.shlibdeps/substvars"]
    copy, find, merge = shlibdeps_steps(debian, command)
    cwd = debian.parent

    substvars.write_text("misc:Depends=adduser\nshlibs:Depends=stale\n")
    subprocess.run(copy, cwd=cwd, env=env, check=True)
    library.write_bytes(b"\x7fELF stripped")  # in place, as strip writes a file with other links
    subprocess.run(find, cwd=cwd, env=env, check=True)
    assert calls(record) == [command[1:]]
    assert json.loads(Path(f"{record}.found").read_text()) == {
        "opt/venvs/orders-api/lib/speedups.so": "\x7fELF fake library"}, "only the ELF files, as they were"
    subprocess.run(merge, cwd=cwd, env=env, check=True)
    assert substvars.read_text() == "misc:Depends=adduser\nshlibs:Depends=libc6 (>= 2.14)\n"
    assert not (debian / ".shlibdeps").exists()

    library.write_bytes(b"\x7fELF fake library")
    substvars.write_text("misc:Depends=adduser\n")
    for step in (copy, find, merge):
        subprocess.run(step, cwd=cwd, env=env, check=True)
    assert len(calls(record)) == 1, "the same ELF files must not be read again"
    assert substvars.read_text() == "misc:Depends=adduser\nshlibs:Depends=libc6 (>= 2.14)\n"

    library.write_bytes(b"\x7fELF another library")
    for step in (copy, find, merge):
        subprocess.run(step, cwd=cwd, env=env, check=True)
    assert len(calls(record)) == 2, "a changed ELF file is read again"


def test_cached_shlibdeps_without_a_cache_reads_copies_every_time(debian: Path, tmp_path: Path) -> None:
    """No MICRODEPLOY_SHLIBDEPS_CACHE (the pip installer): the command runs on copies every time, and its failure
    is the step's."""
    (debian / "orders-api" / "opt" / "venvs" / "orders-api").mkdir(parents=True)
    record = tmp_path / "calls"
    fake = recorder(tmp_path / "dh_shlibdeps", extra=FAKE_SHLIBDEPS)
    env = {key: value for key, value in os.environ.items() if key != "MICRODEPLOY_SHLIBDEPS_CACHE"}
    env["RECORD_TO"] = str(record)
    command = [str(fake), "-Pdebian/.shlibdeps/tree", "--", "-Tdebian/.shlibdeps/substvars"]
    copy, find, merge = shlibdeps_steps(debian, command)
    for _ in range(2):
        for step in (copy, find, merge):
            subprocess.run(step, cwd=debian.parent, env=env, check=True)
    assert calls(record) == [command[1:]] * 2
    failing = recorder(tmp_path / "failing", extra="sys.exit(3)")
    copy, find, _ = shlibdeps_steps(debian, [str(failing)])
    subprocess.run(copy, cwd=debian.parent, env=env, check=True)
    assert subprocess.run(find, cwd=debian.parent, env=env).returncode == 3


@pytest.fixture
def venv_python(tmp_path: Path) -> str:
    """The interpreter of a venv of the test's own, as dh_virtualenv runs the pip tool with the package's venv's
    (uv-pip renames the .pth files of the venv it installs into: never the one running the tests)."""
    venv.EnvBuilder(with_pip=False).create(tmp_path / "pip-tool-venv")
    return str(tmp_path / "pip-tool-venv" / "bin" / "python")


def test_uv_pip_installs_the_prebuilt_wheel_with_the_wsgi_server(debian: Path, tmp_path: Path,
                                                                 venv_python: str) -> None:
    """`install --log=F .` becomes the wheel alone outside uv's shared cache, then `uv pip install --python PY
    WHEEL gunicorn>=21.2`; requirements run from their directory (the project's), as `pip install -r
    requirements.txt` would, so relative paths in them hold."""
    record = tmp_path / "calls"
    uv = recorder(tmp_path / "uv", extra='open(os.environ["RECORD_TO"] + ".cwd", "a").write(os.getcwd() + "\\n")')
    (tmp_path / "src-project").mkdir()
    wheel_dir = built_wheel(tmp_path / "wheel")
    env = {**os.environ, "RECORD_TO": str(record), "MICRODEPLOY_UV": str(uv),
           "MICRODEPLOY_PROJECT_WHEEL": str(wheel_dir)}
    env.pop("MICRODEPLOY_LAYER", None)
    [site] = (tmp_path / "pip-tool-venv" / "lib").glob("python3*/site-packages")
    (site / "hook.pth").write_text("import os\n")
    subprocess.run([venv_python, str(debian / "uv-pip"), "install", "--log=/tmp/x.log", "."],
                   cwd=tmp_path, env=env, check=True)
    subprocess.run([venv_python, str(debian / "uv-pip"), "install", "--log=/tmp/x.log",
                    "-r", "src-project/requirements.txt"], cwd=tmp_path, env=env, check=True)
    wheel = str(wheel_dir / "orders_api-1.0-py3-none-any.whl")
    # The .pth files of the venv installed into are inert after each install (build/fastpath/contract.py).
    assert sorted(path.name for path in site.glob("hook.pth*")) == ["hook.pth.microdeploy-inert"]
    assert calls(record) == [
        ["pip", "install", "--python", venv_python, "--no-deps", "--no-cache", "--link-mode", "hardlink", wheel],
        ["pip", "install", "--python", venv_python, wheel, "gunicorn>=21.2"],
        ["pip", "install", "--python", venv_python, "-r", str(tmp_path / "src-project" / "requirements.txt")],
    ]
    assert Path(f"{record}.cwd").read_text().splitlines() == [str(tmp_path)] * 2 + [str(tmp_path / "src-project")]


def test_uv_pip_installs_the_source_when_the_wheel_build_failed(debian: Path, tmp_path: Path,
                                                                venv_python: str) -> None:
    """A failed background build: the source directory is installed (and uv reports what is wrong)."""
    record = tmp_path / "calls"
    uv = recorder(tmp_path / "uv", extra="sys.exit(1)")
    wheel_dir = tmp_path / "wheel"
    wheel_dir.mkdir()
    (wheel_dir / "returncode").write_text("1\n")
    env = {**os.environ, "RECORD_TO": str(record), "MICRODEPLOY_UV": str(uv),
           "MICRODEPLOY_PROJECT_WHEEL": str(wheel_dir)}
    result = subprocess.run([venv_python, str(debian / "uv-pip"), "install", "--log=/tmp/x.log", ".[postgres]"],
                            cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode == 1
    assert calls(record) == [["pip", "install", "--python", venv_python, ".[postgres]", "gunicorn>=21.2"]]
    assert "uv-pip: uv pip install failed with exit status 1" in result.stderr


def test_make_venv_moves_the_copied_layer_into_place(debian: Path, tmp_path: Path) -> None:
    """With a finished layer copy beside the tree, make-venv moves it into place (no copy is left behind) and adds
    the pip tool."""
    copy = tmp_path / "layer-copy"
    (copy / "venv" / "bin").mkdir(parents=True)
    (copy / "venv" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (copy / "returncode").write_text("0\n")
    venv = debian / "orders-api" / "opt" / "venvs" / "orders-api"
    env = {**os.environ, "MICRODEPLOY_LAYER": str(tmp_path / "layer"), "MICRODEPLOY_LAYER_COPY": str(copy)}
    subprocess.run([sys.executable, "-IS", str(debian / "make-venv"), "-m", "venv", str(venv)], check=True, env=env,
                   cwd=debian.parent, capture_output=True, text=True)
    assert (venv / "pyvenv.cfg").read_text() == "home = /usr/bin\n"
    assert not (copy / "venv").exists()
    assert (venv / "bin" / "uv-pip").read_text() == (debian / "uv-pip").read_text()


def test_uv_pip_has_nothing_to_do_when_the_wheel_was_installed_beside_the_build(debian: Path, tmp_path: Path,
                                                                               venv_python: str) -> None:
    """microdeploy installed the same wheel into the restored layer: uv is not run again."""
    record = tmp_path / "calls"
    uv = recorder(tmp_path / "uv")
    wheel_dir = built_wheel(tmp_path / "wheel")
    copy = tmp_path / "layer-copy"
    copy.mkdir()
    (copy / "installed").write_text("orders_api-1.0-py3-none-any.whl")
    env = {**os.environ, "RECORD_TO": str(record), "MICRODEPLOY_UV": str(uv),
           "MICRODEPLOY_PROJECT_WHEEL": str(wheel_dir), "MICRODEPLOY_LAYER_COPY": str(copy)}
    result = subprocess.run([venv_python, "-IS", str(debian / "uv-pip"), "install", "--log=/tmp/x.log", "."],
                            cwd=tmp_path, env=env, check=True, capture_output=True, text=True)
    assert calls(record) == []
    assert "installed already" in result.stdout


# What a stand-in for the venv's pip "installs": a .pth file that, whenever an interpreter of the venv starts with
# it in place, notes so in $RAN_TO.
INSTALL_HOOK = """
site = os.path.join(sys.prefix, "lib", "python%d.%d" % sys.version_info[:2], "site-packages")
with open(os.path.join(site, "hook.pth"), "w") as pth:
    pth.write("import os; open(os.environ['RAN_TO'], 'a').write('ran\\\\n')\\n")
sys.exit(int(os.environ.get("PIP_EXIT", "0")))
"""


def test_plain_pip_runs_the_venvs_pip_and_leaves_no_pth_file_to_run(debian: Path, tmp_path: Path,
                                                                      venv_python: str) -> None:
    """Without uv, each `install` dh_virtualenv runs is the venv's own pip with the same arguments (the project's with
    the WSGI server), and then the venv's .pth files are inert: the hook the requirements' install put in runs
    neither in the project's install (its interpreter's start, pip's) nor after; a failed install says so."""
    record, ran = tmp_path / "calls", tmp_path / "ran"
    bin_dir = Path(venv_python).parent
    recorder(bin_dir / "pip", extra=INSTALL_HOOK)
    env = {**os.environ, "RECORD_TO": str(record), "RAN_TO": str(ran)}
    tool = [venv_python, str(debian / "plain-pip"), "install", "--log=/tmp/x.log", "--no-compile"]
    subprocess.run([*tool, "-r", "src-project/requirements.txt"], cwd=tmp_path, env=env, check=True)
    subprocess.run([*tool, ".[postgres]"], cwd=tmp_path, env=env, check=True)
    failed = subprocess.run([*tool, "."], cwd=tmp_path, env={**env, "PIP_EXIT": "3"}, capture_output=True, text=True)
    assert calls(record) == [
        ["install", "--log=/tmp/x.log", "--no-compile", "-r", "src-project/requirements.txt"],
        ["install", "--log=/tmp/x.log", "--no-compile", ".[postgres]", "gunicorn>=21.2"],
        ["install", "--log=/tmp/x.log", "--no-compile", ".", "gunicorn>=21.2"],
    ]
    assert not ran.exists(), "the hook's code ran during the build"
    [site] = (tmp_path / "pip-tool-venv" / "lib").glob("python3*/site-packages")
    assert sorted(path.name for path in site.glob("hook.pth*")) == ["hook.pth.microdeploy-inert"]
    (site / "hook.pth.microdeploy-inert").rename(site / "hook.pth")
    subprocess.run([venv_python, "-c", "pass"], env=env, check=True)
    assert ran.exists(), "under its own name, the hook runs at the interpreter's start"
    assert failed.returncode == 1
    assert "plain-pip: pip install failed with exit status 3" in failed.stderr


def test_make_venv_without_uv_makes_the_venv_with_pip_and_its_pth_files_inert(tmp_path: Path) -> None:
    """Without uv, make-venv runs Python's venv as dh_virtualenv asked (pip and, before Python 3.12, setuptools with
    its distutils-precedence.pth), renames the venv's .pth files so that the pip tool's start runs none, and puts
    plain-pip into bin/."""
    debian = rendered_debian(tmp_path, facts=replace(FACTS, installer="pip"))
    venv = debian / "orders-api" / "opt" / "venvs" / "orders-api"
    subprocess.run([sys.executable, "-IS", str(debian / "make-venv"), "-m", "venv", str(venv)], check=True,
                   cwd=debian.parent, capture_output=True, text=True)
    [site] = (venv / "lib").glob("python3*/site-packages")
    assert (venv / "bin" / "pip").is_file()
    assert (venv / "bin" / "plain-pip").read_text() == (debian / "plain-pip").read_text()
    assert list(site.glob("*.pth")) == []
    setuptools = list(site.glob("setuptools-*.dist-info"))
    inert = sorted(path.name for path in site.glob("*.pth.microdeploy-inert"))
    assert inert == (["distutils-precedence.pth.microdeploy-inert"] if setuptools else [])


def fake_venv(root: Path, *dists: tuple[str, str, list[str]]) -> tuple[Path, Path]:
    """A venv as dh_virtualenv leaves it: pyvenv.cfg with the build's command, lib64 -> lib, and `dists`
    (name, Requires-Dist lines, files) installed with METADATA and RECORD."""
    venv = root / "venv"
    site = venv / "lib" / "python3.11" / "site-packages"
    site.mkdir(parents=True)
    (venv / "lib64").symlink_to("lib")
    (venv / "include").mkdir()
    (venv / "bin").mkdir()
    (venv / "bin" / "uv-pip").write_text("tool\n")
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\ncommand = /usr/bin/python3.11 -m venv /tmp/build/x\n")
    for name, requires, files in dists:
        info = site / f"{name}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\n{requires}")
        (info / "direct_url.json").write_text('{"url": "file:///tmp/build/x"}')
        (info / "uv_build.json").write_text('{"extra_build_requires": {}}')  # uv's, when it built from source
        for relative in files:
            (site / relative).parent.mkdir(parents=True, exist_ok=True)
            (site / relative).write_text(f"# {relative}\n")
        listed = [*files, f"{info.name}/METADATA", f"{info.name}/direct_url.json", f"{info.name}/uv_build.json",
                  f"{info.name}/RECORD"]
        (info / "RECORD").write_text("".join(f"{item},sha256=stale,1\n" for item in listed))
    return venv, site


def finalize(debian: Path, step: str, venv: Path, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-IS", str(debian / "finalize-venv"), step, str(venv), *options],
                          check=True, capture_output=True, text=True)


def test_prune_removes_installers_bytecode_build_traces_and_stray_executable_bits(debian: Path, tmp_path: Path) -> None:
    """pip and wheel go (nothing needs them), setuptools stays (the app requires it); no __pycache__, uv-pip,
    direct_url.json, build command, VCS or editor leftover or empty directory is left; only ELF files and
    scripts keep the x bit, and a Python script's shebang names the venv's python."""
    venv, site = fake_venv(tmp_path, ("app", "Requires-Dist: setuptools>=60\n", ["app/__init__.py", "app/run.py"]),
                           ("pip", "", ["pip/__init__.py"]), ("wheel", "", ["wheel/__init__.py"]),
                           ("setuptools", "", ["setuptools/__init__.py", "pkg_resources/__init__.py"]))
    (site / "app" / "__pycache__").mkdir()
    (site / "app" / "__pycache__" / "run.cpython-311.pyc").write_bytes(b"")
    (site / "app" / "run.py").chmod(0o755)
    (site / "app" / "script").write_text("#!/bin/sh\n")
    (site / "app" / "script").chmod(0o755)
    (site / "app" / "speedups.so").write_bytes(b"\x7fELF")
    (site / "app" / "speedups.so").chmod(0o755)
    (site / "app" / "tool.py").write_text("#!/usr/bin/env python\nprint('hi')\n")
    (site / "app" / "tool.py").chmod(0o755)
    (venv / ".lock").write_text("")  # uv's
    for leftover in (".DS_Store", ".gitignore", "notes.txt~", ".run.py.swp", "#draft#", ".git/HEAD"):
        (site / "app" / leftover).parent.mkdir(exist_ok=True)
        (site / "app" / leftover).write_text("x")
    finalize(debian, "prune", venv, "--strip-installers")
    assert sorted(p.name for p in (site / "app").iterdir()) == [
        "__init__.py", "run.py", "script", "speedups.so", "tool.py"]
    assert (site / "app" / "tool.py").read_text() == "#!/opt/venvs/orders-api/bin/python\nprint('hi')\n"
    assert (site / "app" / "script").read_text() == "#!/bin/sh\n"
    assert sorted(p.name for p in site.iterdir()) == [
        "_microdeploy_instance.pth", "_microdeploy_instance.py",
        "app", "app-1.0.dist-info", "pkg_resources", "setuptools", "setuptools-1.0.dist-info"]
    assert not (site / "app" / "__pycache__").exists()
    assert not (venv / ".lock").exists()
    assert not list(site.rglob("direct_url.json")) and not list(site.rglob("uv_build.json"))
    assert not (venv / "bin").exists() and not (venv / "include").exists(), "emptied or empty directories go"
    assert os.readlink(venv / "lib64") == "lib"
    assert (venv / "pyvenv.cfg").read_text() == "home = /usr/bin\n"
    modes = {name: (site / "app" / name).stat().st_mode & 0o777 for name in ("run.py", "script", "speedups.so",
                                                                            "tool.py")}
    assert modes == {"run.py": 0o644, "script": 0o755, "speedups.so": 0o755, "tool.py": 0o755}


def tree(root: Path) -> list[tuple[str, str]]:
    """Every path under `root`, sorted, with what it is: a symlink's target, "dir", or a file's x bit."""
    return sorted((str(path.relative_to(root)), os.readlink(path) if path.is_symlink() else "dir" if path.is_dir()
                   else "executable" if path.stat().st_mode & 0o111 else "file") for path in root.rglob("*"))


def test_prune_removes_exactly_what_it_must_across_the_venv(debian: Path, tmp_path: Path) -> None:
    """__pycache__ goes anywhere in the venv, VCS and editor leftovers only in site-packages, then every directory
    left empty (nested ones too), but no symlink; files outside site-packages keep their names and modes."""
    venv, site = fake_venv(tmp_path, ("app", "", ["app/__init__.py", "app/sub/deep/mod.py"]))
    files = {
        "bin/__pycache__/x.pyc": 0o644, "lib/python3.11/__pycache__/y.pyc": 0o644,
        "share/doc/.git/HEAD": 0o644, "share/doc/notes~": 0o644, "share/doc/run.py": 0o755,
        "share/doc/tool": 0o755,
        "lib/python3.11/site-packages/app/sub/deep/__pycache__/mod.cpython-311.pyc": 0o644,
        "lib/python3.11/site-packages/app/sub/.hg/store": 0o644,
        "lib/python3.11/site-packages/app/sub/.#lock~": 0o644,
        "lib/python3.11/site-packages/gone/only/.svn/entries": 0o644,
        "lib/python3.11/site-packages/gone/.cvsignore": 0o644,
        "lib/python3.11/site-packages/gone/__pycache__/g.pyc": 0o644,
        "lib/python3.11/site-packages/app/data.txt": 0o755,
    }
    for relative, mode in files.items():
        (venv / relative).parent.mkdir(parents=True, exist_ok=True)
        (venv / relative).write_text("#!/bin/sh\n" if relative.endswith("tool") else "x\n")
        (venv / relative).chmod(mode)
    (site / "app" / "empty" / "emptier").mkdir(parents=True)
    (site / "app" / "linked").symlink_to("sub")
    (site / "app" / "dangling~").symlink_to("nowhere")
    (venv / "share" / "empty-link-target").mkdir()
    (venv / "share" / "to-empty").symlink_to("empty-link-target")
    finalize(debian, "prune", venv)
    info = "lib/python3.11/site-packages/app-1.0.dist-info"
    assert tree(venv) == sorted([
        ("lib", "dir"), ("lib/python3.11", "dir"), ("lib/python3.11/site-packages", "dir"),
        ("lib/python3.11/site-packages/_microdeploy_instance.pth", "file"),
        ("lib/python3.11/site-packages/_microdeploy_instance.py", "file"),
        ("lib/python3.11/site-packages/app", "dir"),
        ("lib/python3.11/site-packages/app/__init__.py", "file"),
        ("lib/python3.11/site-packages/app/data.txt", "file"),
        ("lib/python3.11/site-packages/app/linked", "sub"),
        ("lib/python3.11/site-packages/app/sub", "dir"),
        ("lib/python3.11/site-packages/app/sub/deep", "dir"),
        ("lib/python3.11/site-packages/app/sub/deep/mod.py", "file"),
        (info, "dir"), (f"{info}/METADATA", "file"), (f"{info}/RECORD", "file"),
        ("lib64", "lib"), ("pyvenv.cfg", "file"),
        ("share", "dir"), ("share/doc", "dir"), ("share/doc/.git", "dir"),
        ("share/doc/.git/HEAD", "file"), ("share/doc/notes~", "file"), ("share/doc/run.py", "executable"),
        ("share/doc/tool", "executable"), ("share/to-empty", "empty-link-target"),
    ])


def test_records_match_the_files_as_shipped(debian: Path, tmp_path: Path) -> None:
    """The usual uv venv (no installers): records rewrites every RECORD with the hash and size of each file as
    shipped, sorted, without the files removed and with RECORD's own line empty."""
    venv, site = fake_venv(tmp_path, ("app", "", ["app/__init__.py"]))
    finalize(debian, "prune", venv, "--strip-installers")
    (site / "app" / "__init__.py").write_text("changed after install\n")
    finalize(debian, "records", venv)
    digest = base64.urlsafe_b64encode(hashlib.sha256(b"changed after install\n").digest()).rstrip(b"=").decode()
    metadata = (site / "app-1.0.dist-info" / "METADATA").read_bytes()
    metadata_digest = base64.urlsafe_b64encode(hashlib.sha256(metadata).digest()).rstrip(b"=").decode()
    assert (site / "app-1.0.dist-info" / "RECORD").read_text() == (
        f"app-1.0.dist-info/METADATA,sha256={metadata_digest},{len(metadata)}\n"
        "app-1.0.dist-info/RECORD,,\n"
        f"app/__init__.py,sha256={digest},22\n"
    )


def test_prune_moves_flasks_instance_folder_of_the_installed_app_to_var_lib(debian: Path, tmp_path: Path) -> None:
    """After prune, the venv's Python gives an app installed in it /var/lib/NAME as instance_path; an explicit
    instance_path and an app outside the venv keep theirs (a stand-in flask.app with Flask's own rule)."""
    venv, site = fake_venv(tmp_path, ("app", "", ["app/__init__.py"]))
    (site / "flask").mkdir()
    (site / "flask" / "__init__.py").write_text("from flask.app import Flask\n")
    (site / "flask" / "app.py").write_text(
        "import os, sys\n"
        "class Flask:\n"
        "    def __init__(self, import_name, instance_path=None, root=None):\n"
        "        self.import_name, self.root = import_name, root or sys.prefix\n"
        "        self.instance_path = instance_path or self.auto_find_instance_path()\n"
        "    def auto_find_instance_path(self):\n"
        "        return os.path.join(self.root, 'var', self.import_name + '-instance')\n"
    )
    finalize(debian, "prune", venv, "--strip-installers")
    assert (site / "_microdeploy_instance.pth").read_text() == "import _microdeploy_instance\n"
    probe = ("import site, sys; sys.prefix = sys.argv[1]; site.addsitedir(sys.argv[2]); from flask import Flask; "
             "print(Flask('app').instance_path, Flask('app', '/srv/x').instance_path, "
             "Flask('app', root='/src').instance_path)")
    result = subprocess.run([sys.executable, "-S", "-c", probe, str(venv), str(site)], capture_output=True, text=True,
                            check=True)
    assert result.stdout.split() == ["/var/lib/orders-api", "/srv/x", "/src/var/app-instance"]


def test_run_command_passes_the_units_sandbox_to_systemd_run(debian: Path) -> None:
    """NAME-run is a valid sh script that gives systemd-run every sandbox line of the unit, and is installed
    with its man page."""
    unit = (debian / "orders-api.service").read_text().splitlines()
    script = (debian / "orders-api-run").read_text()
    subprocess.run(["sh", "-n", str(debian / "orders-api-run")], check=True)
    sandbox = unit[unit.index("# The sandbox: orders-api-run runs operators' commands in the same one.") + 1:
                   unit.index("[Install]") - 1]
    passed = [shlex.split(line.removesuffix("\\"))[0].removeprefix("--property=") for line in script.splitlines()
              if line.strip().startswith(("--property=", "'--property="))]
    assert passed[1:] == sandbox and len(sandbox) > 20
    assert passed[0] == "EnvironmentFile=-/etc/$NAME/environment"
    assert "FLASK_APP='orders_api.application:create_app()'" in script
    rules = (debian / "rules").read_text()
    assert "\tinstall -D -m 0755 debian/orders-api-run $(PACKAGE)/usr/bin/orders-api-run\n" in rules
    assert "\tinstall -D -m 0644 debian/orders-api-run.1 $(PACKAGE)/usr/share/man/man1/orders-api-run.1\n" in rules


def test_run_command_refuses_other_users_and_missing_programs(debian: Path) -> None:
    """Run by someone other than root or NAME, or without a program, NAME-run exits non-zero with a message."""
    result = subprocess.run(["sh", str(debian / "orders-api-run")], capture_output=True, text=True)
    assert result.returncode == 2 and "usage: orders-api-run COMMAND" in result.stderr
    result = subprocess.run(["sh", str(debian / "orders-api-run"), "../../bin/sh"], capture_output=True, text=True)
    assert result.returncode == 2 and "not a path" in result.stderr
    for missing in ("missing-program", ".."):
        result = subprocess.run(["sh", str(debian / "orders-api-run"), missing], capture_output=True, text=True)
        assert result.returncode == 2, result.stderr
        assert "neither /opt/venvs/orders-api/bin nor /usr/local/sbin:" in result.stderr
        assert f"has a program {missing} (try: ls /opt/venvs/orders-api/bin)" in result.stderr
    as_nobody = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "sh", "-s", "flask"]
    result = subprocess.run(as_nobody, input=(debian / "orders-api-run").read_text(), capture_output=True, text=True)
    assert result.returncode == 1
    assert ("orders-api-run: run it as root (sudo orders-api-run ...) or as the user orders-api, not as nobody"
            in result.stderr)


def test_run_command_falls_back_to_the_units_path_not_the_callers(debian: Path, tmp_path: Path) -> None:
    """A COMMAND the venv lacks is the host's program from systemd's PATH for units, given to systemd-run by its
    full path; a program only on the caller's PATH is refused."""
    (tmp_path / "systemd-run").write_text('#!/bin/sh\nprintf "%s\\n" "$@"\n')
    (tmp_path / "only-on-callers-path").write_text("#!/bin/sh\n")
    for stub in ("systemd-run", "only-on-callers-path"):
        (tmp_path / stub).chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"}
    ran = subprocess.run(["sh", str(debian / "orders-api-run"), "id", "-un"], capture_output=True, text=True,
                         env=env, check=True)
    assert ran.stdout.splitlines()[-3:] == ["--", "/usr/bin/id", "-un"]
    assert "--description=orders-api-run id" in ran.stdout.splitlines()
    refused = subprocess.run(["sh", str(debian / "orders-api-run"), "only-on-callers-path"], capture_output=True,
                             text=True, env=env)
    assert refused.returncode == 2 and "has a program only-on-callers-path" in refused.stderr


def test_venv_overrides_name_each_path_that_carries_a_tag(debian: Path, tmp_path: Path) -> None:
    """A bundled libxml2, IEEE data, a latin-1 license text, a page loading a CDN font and one loading
    jQuery each get one override (the tag lintian gives it) with its reason;
    a library without a known signature and a page with only local links get none."""
    package = tmp_path / "pkg"
    site = package / "opt/venvs/orders-api/lib/python3.11/site-packages"
    (site / "lxml").mkdir(parents=True)
    (site / "lxml" / "etree.cpython-311-x86_64-linux-gnu.so").write_bytes(
        b"\x7fELF\x02\x01\x01" + b"\0" * 64 + b"root and DTD name do not match\0" + b"\0" * 16)
    (site / "lxml" / "plain.so").write_bytes(b"\x7fELF\x02\x01\x01" + b"\0" * 64 + b"nothing known here\0")
    (site / "netaddr" / "eui").mkdir(parents=True)
    (site / "netaddr" / "eui" / "oui.txt").write_text("00-00-00   (hex)\t\tXEROX CORPORATION\n")
    (site / "soup-4.0.dist-info" / "licenses").mkdir(parents=True)
    (site / "soup-4.0.dist-info" / "licenses" / "AUTHORS").write_bytes("Fran\u00e7ois\n".encode("latin-1"))
    (site / "soup-4.0.dist-info" / "METADATA").write_text("Name: soup\n")
    (site / "admin" / "templates").mkdir(parents=True)
    (site / "admin" / "templates" / "base.html").write_text(
        '<link href="https://fonts.googleapis.com/css?family=Roboto" rel="stylesheet">\n')
    (site / "admin" / "templates" / "local.html").write_text('<script src="/static/app.js"></script>\n')
    (site / "admin" / "templates" / "layout.html").write_text(
        '<script src="https://cdn.jsdelivr.net/npm/jquery@3.6.1/dist/jquery.min.js"></script>\n')
    overrides = package / "usr/share/lintian/overrides/orders-api"
    overrides.parent.mkdir(parents=True)
    overrides.write_text("orders-api: dir-or-file-in-opt\n")
    subprocess.run([sys.executable, "-IS", str(debian / "venv-overrides"), str(package), "orders-api"], check=True)
    lines = overrides.read_text().splitlines()
    venv_site = "opt/venvs/orders-api/lib/python3.11/site-packages"
    assert lines[0] == "orders-api: dir-or-file-in-opt"
    assert [line for line in lines[1:] if not line.startswith("#")] == [
        f"orders-api: embedded-library libxml2 [{venv_site}/lxml/etree.cpython-311-x86_64-linux-gnu.so]",
        f"orders-api: national-encoding [{venv_site}/soup-4.0.dist-info/licenses/AUTHORS]",
        f"orders-api: package-installs-ieee-data [{venv_site}/netaddr/eui/oui.txt]",
        f"orders-api: privacy-breach-generic * [{venv_site}/admin/templates/base.html]",
        f"orders-api: privacy-breach-uses-embedded-file * [{venv_site}/admin/templates/layout.html]",
    ]
    assert len([line for line in lines if line.startswith("# ")]) == 5


def test_venv_overrides_read_lintian_s_own_tables_of_loads_snippets_and_font_packages(
    debian: Path, tmp_path: Path
) -> None:
    """This machine's lintian tables: an <object codebase=> (calibre-web's soundmanager2.js), a <video poster=>, an
    @import url() and an AdSense snippet are privacy breaches; a <link rel="canonical">, a load from
    localhost and one inside a comment are not. A font of a name Debian's font packages install
    (LiberationSans-Regular.ttf, fonts-liberation) is a duplicate-font-file; one of another name is not."""
    package = tmp_path / "pkg"
    static = package / "opt/venvs/orders-api/lib/python3.11/site-packages/cps/static"
    (static / "js").mkdir(parents=True)
    (static / "js" / "soundmanager2.js").write_text(
        "html = '<object id=\"sm2\" classid=\"clsid:d27cdb6e\" "
        "CODEBASE=\"http://download.macromedia.com/pub/shockwave/cabs/flash/swflash.cab\">';\n")
    (static / "player.html").write_text('<video poster="https://media.example.org/poster.png"></video>\n')
    (static / "theme.css").write_text('@import url("https://cdn.example.org/theme.css");\nbody { margin: 0 }\n')
    (static / "ads.js").write_text("google_ad_client = 'ca-pub-1234';\n")
    (static / "quiet.html").write_text(
        '<link rel="canonical" href="https://example.org/docs/">\n<script src="http://localhost:8000/dev.js">'
        '</script>\n<!-- <script src="https://cdn.example.org/old.js"></script> -->\n')
    (static / "fonts").mkdir()
    (static / "fonts" / "LiberationSans-Regular.ttf").write_bytes(font(b"\0\1\0\0", 0x0000))
    (static / "fonts" / "CalibreIcons.ttf").write_bytes(font(b"\0\1\0\0", 0x0000))
    subprocess.run([sys.executable, "-IS", str(debian / "venv-overrides"), str(package), "orders-api"], check=True)
    lines = [line for line in (package / "usr/share/lintian/overrides/orders-api").read_text().splitlines()
             if not line.startswith("#")]
    where = "opt/venvs/orders-api/lib/python3.11/site-packages/cps/static"
    # What lintian itself reports for these files, each overridden, in the order of the walk.
    assert lines == [
        f"orders-api: duplicate-font-file * [{where}/fonts/LiberationSans-Regular.ttf]",
        f"orders-api: privacy-breach-generic * [{where}/player.html]",
        f"orders-api: privacy-breach-generic * [{where}/theme.css]",
        f"orders-api: privacy-breach-generic * [{where}/js/soundmanager2.js]",
        f"orders-api: privacy-breach-google-adsense * [{where}/ads.js]",
    ]


def font(signature: bytes, fs_type: int, version: int = 0) -> bytes:
    """A font file as file(1) and lintian read it: the signature, one table record, and the OS/2 table of
    `version`."""
    record = struct.pack(">4sIII", b"OS/2", 0, 28, 10)
    return signature + struct.pack(">HHHH", 1, 16, 0, 0) + record + struct.pack(
        ">HhHHH", version, 500, 400, 5, fs_type)


def test_venv_overrides_name_each_web_font_that_restricts_embedding(debian: Path, tmp_path: Path) -> None:
    """A TrueType font that is edit only and an OpenType font that is never to be embedded get the tag lintian
    gives each; an installable font, a WOFF file, a truncated font, and one whose OS/2 table is of a version that
    lintian's Font::TTF does not read (5 and later: flasgger's droid-sans) get none."""
    package = tmp_path / "pkg"
    fonts = package / "opt/venvs/orders-api/lib/python3.11/site-packages/orders_api/static/css/fonts"
    fonts.mkdir(parents=True)
    (fonts / "Comfortaa-webfont.ttf").write_bytes(font(b"\0\1\0\0", 0x0008))
    (fonts / "Display.otf").write_bytes(font(b"OTTO", 0x0002))
    (fonts / "Cantarell.ttf").write_bytes(font(b"\0\1\0\0", 0x0000))
    (fonts / "Cantarell.woff").write_bytes(b"wOFF" + font(b"\0\1\0\0", 0x0008)[4:])
    (fonts / "Broken.ttf").write_bytes(font(b"\0\1\0\0", 0x0008)[:30])
    (fonts / "droid-sans-v6-latin-700.ttf").write_bytes(font(b"\0\1\0\0", 0x0008, version=5))
    subprocess.run([sys.executable, "-IS", str(debian / "venv-overrides"), str(package), "orders-api"], check=True)
    lines = (package / "usr/share/lintian/overrides/orders-api").read_text().splitlines()
    static = "opt/venvs/orders-api/lib/python3.11/site-packages/orders_api/static/css/fonts"
    assert lines == [
        "# a web font served to browsers, never installed as a system font",
        f"orders-api: opentype-font-prohibits-installable-embedding * [{static}/Display.otf]",
        "# a web font served to browsers, never installed as a system font",
        f"orders-api: truetype-font-prohibits-installable-embedding * [{static}/Comfortaa-webfont.ttf]",
    ]


def test_prune_gives_modules_and_trampolined_scripts_the_venvs_python(debian: Path, tmp_path: Path) -> None:
    """A module's "#!" line (even a misspelt one) and an installer's /bin/sh trampoline in bin/ become a plain
    "#!/opt/venvs/NAME/bin/python" line; other modules are not touched."""
    venv, site = fake_venv(tmp_path, ("app", "", ["app/__init__.py", "app/cli.py"]))
    (site / "app" / "cli.py").write_text("#!/usr/bin/env pyton\nimport sys\n")
    (venv / "bin" / "flask").write_text(
        "#!/bin/sh\n'''exec' /opt/venvs/orders-api/bin/python' \"$0\" \"$@\"\n' '''\n"
        "import sys\nfrom flask.cli import main\n")
    (venv / "bin" / "flask").chmod(0o755)
    finalize(debian, "prune", venv, "--strip-installers")
    assert (site / "app" / "cli.py").read_text() == "#!/opt/venvs/orders-api/bin/python\nimport sys\n"
    assert (site / "app" / "__init__.py").read_text() == "# app/__init__.py\n"
    assert (venv / "bin" / "flask").read_text() == (
        "#!/opt/venvs/orders-api/bin/python\nimport sys\nfrom flask.cli import main\n")


def test_prune_gives_python_lines_of_package_data_the_venvs_python(debian: Path, tmp_path: Path) -> None:
    """Package data that is not executable and not a module keeps its "#!" line unless it names Python (moin's
    contrib/deployment/moin.fcgi: lintian reads every absolute "#!" line, and /usr/bin/python is unusual); a
    shell script and a "#!" line that names no interpreter are left alone."""
    venv, site = fake_venv(tmp_path, ("app", "", ["app/__init__.py"]))
    contrib = site / "app" / "contrib"
    contrib.mkdir()
    (contrib / "app.fcgi").write_text("#!/usr/bin/python\nfrom app import app\n")
    (contrib / "app.wsgi").write_text("#!/usr/bin/env python3\nfrom app import app\n")
    (contrib / "deploy.sh").write_text("#!/bin/sh\nexit 0\n")
    (contrib / "notes.txt").write_text("#!-less notes\n")
    finalize(debian, "prune", venv, "--strip-installers")
    assert (contrib / "app.fcgi").read_text() == "#!/opt/venvs/orders-api/bin/python\nfrom app import app\n"
    assert (contrib / "app.wsgi").read_text() == "#!/opt/venvs/orders-api/bin/python\nfrom app import app\n"
    assert (contrib / "deploy.sh").read_text() == "#!/bin/sh\nexit 0\n"
    assert (contrib / "notes.txt").read_text() == "#!-less notes\n"


def test_prune_removes_programs_of_another_architecture(debian: Path, tmp_path: Path) -> None:
    """A wheel's prebuilt program for another machine (selenium's linux-arm64/selenium-manager: strip cannot read
    it, lintian refuses it) goes; one for this machine stays, as does a file that only
    starts like ELF."""
    venv, site = fake_venv(tmp_path, ("tool", "", ["tool/__init__.py"]))
    native = Path("/usr/bin/true").read_bytes()[:64]
    foreign = native[:4] + bytes([2, 1, 1, 0]) + bytes(10) + (183).to_bytes(2, "little") + bytes(44)  # aarch64
    assert native[18:20] != foreign[18:20]
    for name, content in (("linux/manager", native), ("linux-arm64/manager", foreign), ("short", b"\x7fELF")):
        (site / "tool" / name).parent.mkdir(exist_ok=True)
        (site / "tool" / name).write_bytes(content)
        (site / "tool" / name).chmod(0o755)
    finalize(debian, "prune", venv, "--strip-installers")
    assert (site / "tool" / "linux" / "manager").read_bytes() == native
    assert (site / "tool" / "short").exists()
    assert not (site / "tool" / "linux-arm64").exists()


def test_prune_gives_the_scripts_in_bin_the_venvs_unversioned_python(debian: Path, tmp_path: Path) -> None:
    """A kept pip's scripts, written by Python's venv module, name bin/python3.11: they name bin/python like the
    others (the package's override covers that one); a shell script in bin/ is left as it is."""
    venv, _ = fake_venv(tmp_path, ("app", "", ["app/__init__.py"]))
    (venv / "bin" / "pip3.11").write_text("#!/opt/venvs/orders-api/bin/python3.11\nfrom pip._internal import main\n")
    (venv / "bin" / "activate").write_text("#!/bin/sh\nVIRTUAL_ENV=/opt/venvs/orders-api\n")
    finalize(debian, "prune", venv)
    assert (venv / "bin" / "pip3.11").read_text() == (
        "#!/opt/venvs/orders-api/bin/python\nfrom pip._internal import main\n")
    assert (venv / "bin" / "activate").read_text() == "#!/bin/sh\nVIRTUAL_ENV=/opt/venvs/orders-api\n"


FAKE_STRIP = """
for directory, _, files in os.walk(os.environ["PACKAGE"]):
    for name in sorted(files):
        path = os.path.join(directory, name)
        if open(path, "rb").read(4) == b"\\x7fELF":
            with open(os.environ["RECORD_TO"], "a") as out:
                out.write(json.dumps(["saw", name]) + "\\n")
            data = open(path, "rb").read()
            open(path, "wb").write(data + b" stripped")
"""


def elf_package(root: Path, speedups: bytes = b"\x7fELF speedups") -> Path:
    """A package tree whose venv holds two ELF files (one executable) and a module."""
    site = root / "opt/venvs/orders-api/lib/python3.11/site-packages"
    site.mkdir(parents=True)
    (site / "_speedups.so").write_bytes(speedups)
    (site / "_speedups.so").chmod(0o644)
    (site / "helper").write_bytes(b"\x7fELF helper")
    (site / "helper").chmod(0o755)
    (site / "module.py").write_text("x = 1\n")
    return root


def test_cached_strip_strips_each_elf_file_once_and_gives_the_same_bytes_back(debian: Path, tmp_path: Path) -> None:
    """First build: dh_strip strips both ELF files and what it made is kept; the same files again: they get the kept
    bytes and their modes, and dh_strip is not started; with a static library it runs without them; a changed file:
    dh_strip strips that one alone."""
    record = tmp_path / "calls"
    fake = recorder(tmp_path / "dh_strip", extra=FAKE_STRIP)
    options = "nocheck noautodbgsym parallel=2"
    env = {**os.environ, "RECORD_TO": str(record), "MICRODEPLOY_ELF_CACHE": str(tmp_path / "cache"),
           "DEB_BUILD_OPTIONS": options}

    def strip(package: Path) -> list[list[str]]:
        record.unlink(missing_ok=True)
        subprocess.run([sys.executable, "-IS", str(debian / "cached-strip"), str(package), "--", str(fake)],
                       cwd=debian.parent, env={**env, "PACKAGE": str(package)}, check=True, capture_output=True)
        return calls(record)

    site = "opt/venvs/orders-api/lib/python3.11/site-packages"
    first = elf_package(tmp_path / "first")
    assert strip(first) == [[], ["saw", "_speedups.so"], ["saw", "helper"]]
    assert (first / site / "_speedups.so").read_bytes() == b"\x7fELF speedups stripped"
    assert len(list((tmp_path / "cache").glob("strip2-*"))) == 2

    second = elf_package(tmp_path / "second")
    assert strip(second) == [], "nothing is left for dh_strip"
    for name in ("_speedups.so", "helper", "module.py"):
        assert (second / site / name).read_bytes() == (first / site / name).read_bytes(), name
    assert (second / site / "helper").stat().st_mode & 0o777 == 0o755
    assert (second / site / "_speedups.so").stat().st_mode & 0o777 == 0o644
    assert not (second.parent / ".cached-strip").exists()
    # Hard links to the kept files, not copies of them: a venv's libraries are tens of megabytes.
    kept = {entry.stat().st_ino for entry in (tmp_path / "cache").glob("strip2-*")}
    assert {(second / site / name).stat().st_ino for name in ("_speedups.so", "helper")} == kept

    static = elf_package(tmp_path / "static")
    (static / "usr/lib").mkdir(parents=True)
    (static / "usr/lib/libextra.a").write_bytes(b"!<arch>\n")
    assert strip(static) == [[]], "dh_strip strips static libraries and must not see an ELF file stripped before"

    third = elf_package(tmp_path / "third", speedups=b"\x7fELF speedups, new version")
    assert strip(third) == [[], ["saw", "_speedups.so"]]
    assert (third / site / "_speedups.so").read_bytes() == b"\x7fELF speedups, new version stripped"


def test_cached_strip_copies_the_kept_bytes_from_a_cache_on_another_filesystem(debian: Path, tmp_path: Path) -> None:
    """The ELF cache on tmpfs, the package elsewhere: no hard link can be made, the kept bytes are copied."""
    fake = recorder(tmp_path / "dh_strip", extra=FAKE_STRIP)
    with tempfile.TemporaryDirectory(dir="/dev/shm") as shm:
        cache = Path(shm) / "elf"
        assert cache.parent.stat().st_dev != tmp_path.stat().st_dev
        env = {**os.environ, "RECORD_TO": str(tmp_path / "calls"), "MICRODEPLOY_ELF_CACHE": str(cache),
               "DEB_BUILD_OPTIONS": "noautodbgsym"}
        for run in ("first", "second"):
            package = elf_package(tmp_path / run)
            subprocess.run([sys.executable, "-IS", str(debian / "cached-strip"), str(package), "--", str(fake)],
                           cwd=debian.parent, env={**env, "PACKAGE": str(package)}, check=True, capture_output=True)
        helper = tmp_path / "second/opt/venvs/orders-api/lib/python3.11/site-packages/helper"
        assert helper.read_bytes() == b"\x7fELF helper stripped"
        assert helper.stat().st_mode & 0o777 == 0o755 and helper.stat().st_nlink == 1


@pytest.mark.parametrize("change", ["no cache", "nostrip", "dbgsym packages"])
def test_cached_strip_is_plain_dh_strip_without_a_cache_or_when_asked_for_debug_symbols(
    debian: Path, tmp_path: Path, change: str
) -> None:
    """No ELF cache (pip), nostrip, or debug symbol packages wanted: dh_strip sees every file, every time."""
    record = tmp_path / "calls"
    fake = recorder(tmp_path / "dh_strip", extra=FAKE_STRIP)
    env = {**os.environ, "RECORD_TO": str(record), "MICRODEPLOY_ELF_CACHE": str(tmp_path / "cache"),
           "DEB_BUILD_OPTIONS": {"nostrip": "noautodbgsym nostrip", "dbgsym packages": "nocheck"}.get(change,
                                                                                                "noautodbgsym")}
    if change == "no cache":
        del env["MICRODEPLOY_ELF_CACHE"]
    for run in ("first", "second"):
        package = elf_package(tmp_path / run)
        subprocess.run([sys.executable, "-IS", str(debian / "cached-strip"), str(package), "--", str(fake)],
                       cwd=debian.parent, env={**env, "PACKAGE": str(package)}, check=True, capture_output=True)
    assert [call for call in calls(record) if call] == [["saw", "_speedups.so"], ["saw", "helper"]] * 2
    assert not (tmp_path / "cache").exists()


def test_venv_overrides_remember_the_libraries_found_in_each_elf_file(debian: Path, tmp_path: Path) -> None:
    """With the ELF cache, `strings` reads a file once: the same bytes again give the same override without it;
    changed bytes are read again."""
    package = tmp_path / "pkg"
    lxml = package / "opt/venvs/orders-api/lib/python3.11/site-packages/lxml"
    lxml.mkdir(parents=True)
    etree = lxml / "etree.cpython-311-x86_64-linux-gnu.so"
    etree.write_bytes(b"\x7fELF\x02\x01\x01" + b"\0" * 64 + b"root and DTD name do not match\0" + b"\0" * 16)
    overrides = package / "usr/share/lintian/overrides/orders-api"
    no_strings = tmp_path / "bin"
    no_strings.mkdir()
    (no_strings / "strings").write_text("#!/bin/sh\nexit 7\n")
    (no_strings / "strings").chmod(0o755)
    env = {**os.environ, "MICRODEPLOY_ELF_CACHE": str(tmp_path / "cache")}
    script = [sys.executable, "-IS", str(debian / "venv-overrides"), str(package), "orders-api"]

    subprocess.run(script, env=env, check=True)
    first = overrides.read_text()
    assert "embedded-library libxml2" in first
    overrides.unlink()
    without_strings = {**env, "PATH": f"{no_strings}:{os.environ['PATH']}"}
    subprocess.run(script, env=without_strings, check=True)
    assert overrides.read_text() == first
    etree.write_bytes(etree.read_bytes() + b"more\0")
    assert subprocess.run(script, env=without_strings, capture_output=True).returncode != 0, \
        "changed bytes must be read again"


def test_venv_overrides_name_each_text_file_that_is_not_utf8_wherever_it_is(debian: Path, tmp_path: Path) -> None:
    """lintian's national-encoding: what file(1) calls text and is not UTF-8, anywhere in the venv: passlib's
    UTF-16 test fixture (its byte-order mark, NULs between the letters) and a module in Latin-1. Not a UTF-8 or
    ASCII file, a binary file, nor bytes that are not UTF-8 and that file(1) calls data."""
    package = tmp_path / "pkg"
    site = package / "opt/venvs/orders-api/lib/python3.11/site-packages"
    (site / "passlib" / "tests").mkdir(parents=True)
    (site / "passlib" / "tests" / "sample1c.cfg").write_bytes("[mypolicy]\nschemes = sha256_crypt\n".encode("utf-16"))
    (site / "passlib" / "tests" / "sample1.cfg").write_text("[mypolicy]\nschemes = sha256_crypt\n")
    (site / "legacy").mkdir()
    (site / "legacy" / "names.py").write_bytes("# -*- coding: latin-1 -*-\nNAME = 'Fran\u00e7ois'\n".encode("latin-1"))
    (site / "legacy" / "utf8.py").write_text("NAME = 'Fran\u00e7ois'\n")
    (site / "legacy" / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" + bytes(range(256)))
    (site / "legacy" / "fuzz.testcase").write_bytes(bytes(range(0x80, 0x100)) * 4)
    subprocess.run([sys.executable, "-IS", str(debian / "venv-overrides"), str(package), "orders-api"], check=True)
    lines = [line for line in (package / "usr/share/lintian/overrides/orders-api").read_text().splitlines()
             if not line.startswith("#")]
    where = "opt/venvs/orders-api/lib/python3.11/site-packages"
    assert lines == [f"orders-api: national-encoding [{where}/legacy/names.py]",
                     f"orders-api: national-encoding [{where}/passlib/tests/sample1c.cfg]"]


def test_venv_overrides_remember_the_privacy_breaches_of_each_web_page_by_its_bytes(
    debian: Path, tmp_path: Path
) -> None:
    """With the cache, a page's breaches are kept by its bytes and read back at the next build instead of
    lintian's patterns running over it again (an entry changed by hand shows which was used); changed bytes are
    looked at again."""
    package = tmp_path / "pkg"
    static = package / "opt/venvs/orders-api/lib/python3.11/site-packages/app/static"
    static.mkdir(parents=True)
    page = static / "player.html"
    page.write_text('<video poster="https://media.example.org/poster.png"></video>\n')
    overrides = package / "usr/share/lintian/overrides/orders-api"
    env = {**os.environ, "MICRODEPLOY_ELF_CACHE": str(tmp_path / "cache")}
    script = [sys.executable, "-IS", str(debian / "venv-overrides"), str(package), "orders-api"]

    subprocess.run(script, env=env, check=True)
    assert "privacy-breach-generic * [" in overrides.read_text()
    [entry] = (tmp_path / "cache").glob("web-*")
    assert entry.read_text() == "privacy-breach-generic\n"
    entry.write_text("privacy-breach-uses-embedded-file\n")
    overrides.unlink()
    subprocess.run(script, env=env, check=True)
    assert "privacy-breach-uses-embedded-file * [" in overrides.read_text()
    page.write_text('<video poster="https://media.example.org/other.png"></video>\n')
    overrides.unlink()
    subprocess.run(script, env=env, check=True)
    assert "privacy-breach-generic * [" in overrides.read_text()
    assert len(list((tmp_path / "cache").glob("web-*"))) == 2


def test_venv_overrides_with_the_elf_cache_but_without_lintian_write_no_library_override(
    debian: Path, tmp_path: Path
) -> None:
    """A build root without lintian (no table of embedded libraries): ELF files get no override and no cache entry."""
    script, tables = debian / "venv-overrides", debian / "lintian_data.py"
    tables.write_text(tables.read_text().replace('"/usr/share/lintian/data/binaries/embedded-libs"',
                                                 f'"{tmp_path}/no-lintian"'))
    package = tmp_path / "pkg"
    lxml = package / "opt/venvs/orders-api/lib/python3.11/site-packages/lxml"
    lxml.mkdir(parents=True)
    (lxml / "etree.cpython-311-x86_64-linux-gnu.so").write_bytes(
        b"\x7fELF\x02\x01\x01" + b"\0" * 64 + b"root and DTD name do not match\0")
    env = {**os.environ, "MICRODEPLOY_ELF_CACHE": str(tmp_path / "cache")}
    subprocess.run([sys.executable, "-IS", str(script), str(package), "orders-api"], env=env, check=True)
    assert not (package / "usr/share/lintian/overrides/orders-api").exists()
    assert not (tmp_path / "cache").exists()


def test_cached_md5sums_writes_what_dh_md5sums_writes_and_keeps_the_layers_sums(debian: Path, tmp_path: Path) -> None:
    """DEBIAN/md5sums as dh_md5sums writes it (conffiles, symlinks and DEBIAN/ left out, byte order, a name that is
    not UTF-8), the first build reading every file and keeping the layer's sums, the next taking them; a file the
    build replaced (stripped, say) is read again."""
    tree = debian.parent
    package, venv_path = debian / "orders-api", "opt/venvs/orders-api"
    layer = tmp_path / "layer"
    site = "lib/python3.11/site-packages"
    for relative, data in ((f"{site}/flask/app.py", b"flask"), (f"{site}/flask/_speedups.so", b"\x7fELF lib"),
                           ("bin/gunicorn", b"#!python")):
        (layer / "venv" / relative).parent.mkdir(parents=True, exist_ok=True)
        (layer / "venv" / relative).write_bytes(data)
        (package / venv_path / relative).parent.mkdir(parents=True, exist_ok=True)
        os.link(layer / "venv" / relative, package / venv_path / relative)
    (package / venv_path / site / "orders_api.py").write_bytes(b"the service")
    (package / venv_path / site / os.fsdecode(b"caf\xe9.txt")).write_bytes(b"latin-1 name")
    (package / venv_path / "bin" / "python").symlink_to("/usr/bin/python3.11")
    (package / "etc" / "orders-api").mkdir(parents=True)
    (package / "etc" / "orders-api" / "config.ini").write_text("[app]\n")
    (package / "usr" / "share" / "doc" / "orders-api").mkdir(parents=True)
    (package / "usr" / "share" / "doc" / "orders-api" / "copyright").write_text("text")
    (package / "DEBIAN").mkdir()
    (package / "DEBIAN" / "conffiles").write_text("/etc/orders-api/config.ini\n")
    md5sums = package / "DEBIAN" / "md5sums"

    def cached() -> bytes:
        subprocess.run([sys.executable, "-IS", str(debian / "cached-md5sums"), str(package.relative_to(tree)),
                        venv_path, "--", "false"], cwd=tree, check=True,
                       env={**os.environ, "MICRODEPLOY_LAYER": str(layer)})
        return md5sums.read_bytes()

    def by_debhelper() -> bytes:
        subprocess.run(["dh_md5sums", "-porders-api"], cwd=tree, check=True, capture_output=True)
        return md5sums.read_bytes()

    first = cached()
    assert first == by_debhelper()
    assert b"etc/orders-api" not in first and b"bin/python" not in first and b"DEBIAN" not in first
    kept = (layer / "md5sums").read_text()
    assert f"{site}/flask/app.py" in kept and "orders_api" not in kept  # only the layer's own files

    (layer / "md5sums").write_text(kept.replace(hashlib.md5(b"flask").hexdigest(), "0" * 32))
    assert "0" * 32 in cached().decode(errors="replace"), "the kept sum is taken, the file not read"
    stripped = package / venv_path / site / "flask" / "_speedups.so"
    stripped.unlink()
    stripped.write_bytes(b"\x7fELF stripped")
    assert hashlib.md5(b"\x7fELF stripped").hexdigest() in cached().decode(errors="replace")


def test_cached_md5sums_is_dh_md5sums_without_a_layer(debian: Path) -> None:
    tree = debian.parent
    environ = {key: value for key, value in os.environ.items() if key != "MICRODEPLOY_LAYER"}
    result = subprocess.run([sys.executable, "-IS", str(debian / "cached-md5sums"), "debian/orders-api",
                             "opt/venvs/orders-api", "--", "sh", "-c", "echo plain dh_md5sums"], cwd=tree, env=environ,
                            capture_output=True, text=True, check=True)
    assert result.stdout == "plain dh_md5sums\n"


def test_venv_copyright_gives_each_bundled_distribution_its_paragraph(debian: Path, tmp_path: Path) -> None:
    """After the service's own Files: *, each third-party distribution of the venv gets a DEP-5 Files paragraph:
    its files as its RECORD lists them (a namespace package's own subdirectory; its programs in the venv's bin/,
    but nothing outside the venv or no longer there), the notices of its license files (else its authors, named as
    setuptools splits them: "Author <Author-email>"), its license expression, and where the text is:
    /usr/share/common-licenses for MPL-2.0 (certifi's full text is not quoted), the license files the wheel
    installed; the service's own distribution is left to Files: *."""
    package = tmp_path / "package"
    site = package / "opt/venvs/orders-api/lib/python3.11/site-packages"

    def install(dist: str, version: str, headers: str, files: list[str], licenses: dict[str, str]) -> None:
        info = site / f"{dist}-{version}.dist-info"
        (info / "licenses").mkdir(parents=True) if licenses else info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.4\nName: {dist}\nVersion: {version}\n{headers}")
        for relative in files:
            (site / relative).parent.mkdir(parents=True, exist_ok=True)
            (site / relative).write_text("")
        for name, text in licenses.items():
            (info / "licenses" / name).write_text(text)
        listed = [*files, "../../../bin/gone", "../../../../../../../etc/passwd", f"{info.name}/METADATA",
                  f"{info.name}/RECORD"]
        (info / "RECORD").write_text("".join(f"{item},,\n" for item in listed))

    (package / "opt/venvs/orders-api/bin").mkdir(parents=True)
    (package / "opt/venvs/orders-api/bin/flask").write_text("#!/opt/venvs/orders-api/bin/python\n")
    (package / "etc").mkdir()
    (package / "etc/passwd").write_text("")
    install("flask", "3.1.3", "License-Expression: BSD-3-Clause\n",
            ["flask/__init__.py", "flask/app.py", "../../../bin/flask"],
            {"LICENSE.txt": "Copyright 2010 Pallets\n\nRedistribution and use in source and binary forms...\n"})
    install("certifi", "2025.1.31", "License: MPL-2.0\n", ["certifi/__init__.py"],
            {"LICENSE": "Mozilla Public License Version 2.0\n==================\n\n1. Definitions\n"})
    install("blinker", "1.9.0", "License: MIT License\nClassifier: License :: OSI Approved :: MIT License\n",
            ["blinker/__init__.py"], {})
    install("protobuf", "6.0", "License: 3-Clause BSD License\nAuthor: Google\nAuthor-email: protobuf@google.com\n",
            ["google/protobuf/__init__.py"], {})
    install("helpers", "2.0.1", "License: LGPL-3.0-or-later\n", ["helpers.py"], {})
    reuse = site / "helpers-2.0.1.dist-info" / "LICENSES"  # REUSE's directory, beside METADATA
    reuse.mkdir()
    (reuse / "LGPL-3.0-or-later.txt").write_text("GNU LESSER GENERAL PUBLIC LICENSE\n Version 3, 29 June 2007\n")
    install("orders_api", "1.4.0", "License-Expression: MIT\n", ["orders_api/__init__.py"], {})
    doc = package / "usr/share/doc/orders-api"
    doc.mkdir(parents=True)
    own = "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\nFiles: *\nCopyright: x\n"
    (doc / "copyright").write_text(own)
    subprocess.run([sys.executable, "-IS", str(debian / "venv-copyright"), str(package), "orders-api", "Orders-API"],
                   check=True)
    text = (doc / "copyright").read_text()
    assert text.startswith(own)
    paragraphs = {next(pattern for pattern in paragraph["Files"].split() if pattern.endswith(".dist-info/*"))
                  .rsplit("/", 2)[-2].split("-")[0]: paragraph for paragraph in Deb822.iter_paragraphs(text[len(own):])}
    shown = "opt/venvs/orders-api/lib/python3.11/site-packages"
    assert sorted(paragraphs) == ["blinker", "certifi", "flask", "helpers", "protobuf"]
    assert (paragraphs["blinker"]["Copyright"], paragraphs["blinker"]["License"]) == ("the authors of blinker", "MIT")
    assert paragraphs["helpers"]["Files"].split() == [f"{shown}/helpers-2.0.1.dist-info/*", f"{shown}/helpers.py"]
    assert paragraphs["helpers"]["License"] == (
        "LGPL-3.0-or-later\n On Debian systems, the complete text of the GNU Lesser General Public License, version 3 "
        "can be found in /usr/share/common-licenses/LGPL-3. It may be used under that version or, at your option, any "
        "later version.\n .\n helpers 2.0.1 installs the text of its license:\n"
        f"  {shown}/helpers-2.0.1.dist-info/LICENSES/LGPL-3.0-or-later.txt")
    assert paragraphs["flask"]["Files"].split() == ["opt/venvs/orders-api/bin/flask",
                                                    f"{shown}/flask-3.1.3.dist-info/*", f"{shown}/flask/*"]
    assert paragraphs["certifi"]["Files"].split() == [f"{shown}/certifi-2025.1.31.dist-info/*", f"{shown}/certifi/*"]
    assert paragraphs["flask"]["Copyright"] == "2010 Pallets"
    assert paragraphs["flask"]["License"] == (
        f"BSD-3-Clause\n flask 3.1.3 installs the text of its license:\n"
        f"  {shown}/flask-3.1.3.dist-info/licenses/LICENSE.txt")
    assert paragraphs["certifi"]["License"].startswith(
        "MPL-2.0\n On Debian systems, the complete text of the Mozilla Public License, version 2.0 can be found in "
        "/usr/share/common-licenses/MPL-2.0.\n .\n certifi 2025.1.31 installs the text of its license:")
    assert paragraphs["protobuf"]["Files"].split() == [f"{shown}/google/protobuf/*",
                                                       f"{shown}/protobuf-6.0.dist-info/*"]
    assert (paragraphs["protobuf"]["Copyright"], paragraphs["protobuf"]["License"]) == (
        "Google <protobuf@google.com>", "other")


MISALIGNING_STRIP = """#!/usr/bin/python3
# As binutils' strip does to a library auditwheel's patchelf gave a segment: a LOAD whose offset and address
# disagree modulo the page size (the first LOAD's address moved by 8 bytes).
import os, struct, sys
for directory, _, files in os.walk(os.environ["PACKAGE"]):
    for name in files:
        path = os.path.join(directory, name)
        data = bytearray(open(path, "rb").read())
        if not data.startswith(b"\\x7fELF"):
            continue
        phoff, = struct.unpack_from("<Q", data, 32)
        entsize, count = struct.unpack_from("<HH", data, 54)
        for index in range(count):
            at = phoff + index * entsize
            if struct.unpack_from("<I", data, at)[0] == 1:
                vaddr, = struct.unpack_from("<Q", data, at + 16)
                struct.pack_into("<Q", data, at + 16, vaddr + 8)
                break
        open(path, "wb").write(bytes(data))
"""


@pytest.mark.parametrize("remembered", [True, False])
def test_a_library_strip_would_leave_unloadable_ships_as_the_wheel_has_it(
    debian: Path, tmp_path: Path, remembered: bool
) -> None:
    """numpy's bundled OpenBLAS, which bookworm's strip leaves "ELF load command address/offset not page-aligned":
    a shared object that dh_strip leaves with a LOAD segment off the page grid gets its bytes from before dh_strip
    back (and, with the ELF cache, keeps them for the next build), loadable; with the cache or without it."""
    work = tmp_path / "elf"
    work.mkdir()
    subprocess.run(["as", "-o", str(work / "empty.o"), "/dev/null"], check=True)
    subprocess.run(["ld", "-shared", "-o", str(work / "libopenblas.so"), str(work / "empty.o")], check=True)
    original = (work / "libopenblas.so").read_bytes()
    package = tmp_path / "pkg"
    library = package / "opt/venvs/orders-api/lib/python3.11/site-packages/numpy.libs/libscipy_openblas64_.so"
    library.parent.mkdir(parents=True)
    library.write_bytes(original)
    strip = tmp_path / "misaligning-strip"
    strip.write_text(MISALIGNING_STRIP)
    strip.chmod(0o755)
    env = {**os.environ, "PACKAGE": str(package), "DEB_BUILD_OPTIONS": "nocheck noautodbgsym"}
    if remembered:
        env["MICRODEPLOY_ELF_CACHE"] = str(tmp_path / "cache")
    ran = subprocess.run([sys.executable, "-IS", str(debian / "cached-strip"), str(package), "--", str(strip)],
                         cwd=debian.parent, env=env, check=True, capture_output=True, text=True)
    assert library.read_bytes() == original
    assert "numpy.libs/libscipy_openblas64_.so kept unstripped: strip made it unloadable" in ran.stdout
    assert ctypes.CDLL(str(library)) is not None
    assert not (package.parent / ".cached-strip-originals").exists()
    if remembered:
        again = package.parent / "again"
        shutil.copytree(package, again)
        subprocess.run([sys.executable, "-IS", str(debian / "cached-strip"), str(again), "--", str(strip)],
                       cwd=debian.parent, env={**env, "PACKAGE": str(again)}, check=True, capture_output=True)
        assert (again / library.relative_to(package)).read_bytes() == original
