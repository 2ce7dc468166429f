"""The names the Python side of a build and the scripts in debian/ share, each defined once.

microdeploy starts work beside dpkg-buildpackage (the project's wheel, a copy
of the saved dependency layer), and the scripts that dpkg-buildpackage runs
from debian/ (make-venv, uv-pip or plain-pip, finalize-venv, cached-shlibdeps)
take its results. Both sides meet on the names below. The scripts get them
rendered in (`script_names()` is the `contract` of the debian/ template
context), and a test checks that no template spells one out by hand.

How the two sides work together:

- microdeploy puts the `*_VAR` variables into dpkg-buildpackage's
  environment, together with UV_INSTALL_SETTINGS (installer.Installer), only
  when uv fills the venv. Without them the scripts do plain work: a fresh
  venv, an install from source, plain dh_shlibdeps.
- A background job (jobs.py) works in its own directory and, when it ends,
  writes STATUS_FILE there: its return code as text. A script that wants the
  job's output waits for that file and uses the output only when it says 0;
  otherwise it does the work itself, so a failed job never fails a build.
- PROJECT_WHEEL_VAR names the directory of the project's wheel (one *.whl).
- LAYER_VAR names the dependency layer in the cache: VENV_DIR there is the
  saved layer, written once (by microdeploy beside the build when the
  dependencies are static, else by uv-pip) and never changed afterwards;
  MD5SUMS_FILE beside it holds the MD5 sums of its files once a build has
  read them (cached-md5sums).
- LAYER_COPY_VAR names a directory beside the build tree: VENV_DIR there is a
  copy of the layer, or on a first build the venv the layer was saved from,
  for make-venv to move into place, and INSTALLED_FILE, when
  present, names the project's wheel already installed into that copy.
- ELF_CACHE_VAR names a directory of what the scripts learnt about the
  venv's files, each entry keyed by a file's bytes: cached-strip keeps what
  dh_strip made of an ELF file, venv-overrides the libraries lintian would
  find embedded in it and the privacy breaches in a web page. The venv's
  files come mostly from the restored layer, the same bytes at every build.
- PIP_TOOL is dh_virtualenv's --pip-tool with uv, PLAIN_PIP_TOOL without
  (the venv's own pip): debian/PIP_TOOL or debian/PLAIN_PIP_TOOL, which
  make-venv puts into the venv's bin/ and finalize-venv removes before
  shipping.
- A `.pth` file in site-packages runs code at every start of the venv's
  interpreter (urllib3-future's rewrites urllib3's files), and the build
  starts it: uv queries the interpreter it installs into, dh_virtualenv runs
  the pip tool with it once per install (requirements.txt, the project).
  Each install into a venv during the build (microdeploy's layer fill and
  project install, uv-pip's, plain-pip's, and make-venv's venv made with
  pip, whose setuptools brings distutils-precedence.pth) renames the `*.pth`
  files of its site-packages to NAME.pth + INERT_SUFFIX at once, and layers
  are saved so; finalize-venv gives them their names back in the package. No
  build step runs their code, so what ships is what the wheels installed,
  whichever installer and caches the build had.
- STAND_IN_DIR, beside the build tree, is where debian/rules runs dpkg's
  generators on a stand-in for the package, and where microdeploy takes
  their .buildinfo and .changes from once the package is compressed
  (build/records.py).
- PACKAGE_BUILT_FILE, in debian/, is made by debian/rules once dh_builddeb
  has written the package: microdeploy compresses it from then on, while
  dpkg's generators work on their stand-in (build/dpkg.py).
"""

from __future__ import annotations

import inspect
from pathlib import Path

UV_VAR = "MICRODEPLOY_UV"
UV_CACHE_VAR = "UV_CACHE_DIR"
LAYER_VAR = "MICRODEPLOY_LAYER"
LAYER_COPY_VAR = "MICRODEPLOY_LAYER_COPY"
PROJECT_WHEEL_VAR = "MICRODEPLOY_PROJECT_WHEEL"
SHLIBDEPS_CACHE_VAR = "MICRODEPLOY_SHLIBDEPS_CACHE"
ELF_CACHE_VAR = "MICRODEPLOY_ELF_CACHE"

STATUS_FILE = "returncode"
INSTALLED_FILE = "installed"
MD5SUMS_FILE = "md5sums"  # beside a layer's VENV_DIR: the MD5 sums of its files (debian/cached-md5sums)
VENV_DIR = "venv"
PIP_TOOL = "uv-pip"
PLAIN_PIP_TOOL = "plain-pip"
STAND_IN_DIR = "records"
PACKAGE_BUILT_FILE = ".package-built"
INERT_SUFFIX = ".microdeploy-inert"

# Every uv run of a build: no progress bars, never a downloaded Python, and the
# system's certificate store (a TLS-inspecting proxy's CA is there, not in uv's own).
UV_SETTINGS = {"UV_NO_PROGRESS": "1", "UV_PYTHON_DOWNLOADS": "never", "UV_SYSTEM_CERTS": "1"}
# uv installing into a venv that is packaged: files copied, never hard links
# into the cache; no bytecode (postinst compiles it on the host).
UV_INSTALL_SETTINGS = {**UV_SETTINGS, "UV_LINK_MODE": "copy", "UV_COMPILE_BYTECODE": "0"}
# The project's own wheel is installed alone and outside uv's shared cache, which would otherwise keep an
# unpacked copy of every commit built; its files are hard links to uv's temporary copy, removed after.
PROJECT_ALONE = ("--no-deps", "--no-cache", "--link-mode", "hardlink")


def make_pth_inert(venv: str | Path) -> None:
    """Rename the .pth files of `venv`'s site-packages to NAME.pth + INERT_SUFFIX, so that no start of its
    interpreter during the build runs their code; finalize-venv renames them back. (uv-pip, plain-pip and make-venv
    get this function's source: see script_names.)"""
    for pth in Path(venv).glob("lib/python3*/site-packages/*.pth"):
        pth.rename(pth.with_name(pth.name + INERT_SUFFIX))


def script_names() -> dict[str, str | tuple[str, ...]]:
    """The names above that the debian/ scripts use, by constant name (a tuple renders with `tojson`), and the
    source of make_pth_inert (MAKE_PTH_INERT), which the scripts that install into the venv run as microdeploy
    does."""
    names: dict[str, str | tuple[str, ...]] = {
        name: value for name, value in globals().items()
        if name.isupper() and (isinstance(value, str) or (
            isinstance(value, tuple) and all(isinstance(item, str) for item in value)))
    }
    names["MAKE_PTH_INERT"] = inspect.getsource(make_pth_inert)
    return names
