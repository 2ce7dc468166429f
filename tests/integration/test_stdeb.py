"""stdeb: `make deb` (python3-microdeploy) and `build --backend stdeb`, checked with lintian and installed with apt.

Each package is built once per session. Installs happen in fresh Debian 12
roots on the machine's network (tests/testbed/online.py), so apt resolves the
dependencies from Debian and the installed microdeploy can pip-install a
service's requirements from the index.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.packages import unpacked_sdist
from tests.qa import deb_members
from tests.testbed.online import OnlineRoot

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data" / "stdeb"
CLI = REPO / ".venv" / "bin" / "microdeploy"
EPOCH = "1767225600"
TEMPLATE_FILES = (
    "usr/lib/python3/dist-packages/microdeploy/_data/debian_templates/control.j2",
    "usr/lib/python3/dist-packages/microdeploy/_data/debian_templates/rules.j2",
    "usr/lib/python3/dist-packages/microdeploy/_data/puppet/manifests/init.pp",
    "usr/lib/python3/dist-packages/microdeploy/_data/r10k/hiera.yaml",
    "usr/lib/python3/dist-packages/microdeploy/_data/jenkins/Jenkinsfile.j2",
    "usr/lib/python3/dist-packages/microdeploy/service_template/pyproject.toml.j2",
    "usr/lib/python3/dist-packages/microdeploy/service_template/src/{{ module }}/application.py.j2",
)


@dataclass(frozen=True)
class Lintian:
    """lintian's verdict on one package."""

    errors: list[str]
    warnings: list[str]
    output: str


def lintian(deb: Path) -> Lintian:
    """Run lintian on `deb` and sort its tags."""
    result = subprocess.run(["lintian", str(deb)], capture_output=True, text=True, timeout=300)
    lines = result.stdout.splitlines()
    return Lintian([line for line in lines if line.startswith("E:")],
                   [line for line in lines if line.startswith("W:")], result.stdout)


def contents(deb: Path) -> set[str]:
    """The paths inside a .deb, without the leading './'."""
    listing = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], capture_output=True, check=True)
    names = subprocess.run(["tar", "-t"], input=listing.stdout, capture_output=True, check=True)
    return {line.removeprefix("./").rstrip("/") for line in names.stdout.decode().splitlines()}


def control_field(deb: Path, field: str) -> str:
    """One field of the package's control file."""
    return subprocess.run(["dpkg-deb", "-f", str(deb), field], capture_output=True, text=True,
                          check=True).stdout.strip()


@pytest.fixture(scope="session")
def microdeploy_deb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`make deb` in a copy of this checkout (tracked and new files), once."""
    copy = tmp_path_factory.mktemp("make-deb") / "microdeploy"
    files = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        if (REPO / name).is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, copy / name)
    env = {**os.environ, "SOURCE_DATE_EPOCH": EPOCH}  # the copy has no git history to date it
    result = subprocess.run(["make", "-C", str(copy), "deb"], capture_output=True, text=True, env=env, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    [deb] = (copy / "dist").glob("python3-microdeploy_*_all.deb")
    assert sorted(path.name for path in (copy / "dist").iterdir()) == sorted(
        [deb.name, deb.name.replace("python3-", "").replace("_all.deb", "_amd64.buildinfo"),
         deb.name.replace("python3-", "").replace("_all.deb", "_amd64.changes")]
    )
    return deb


@pytest.fixture(scope="session")
def tinyfmt_deb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The pure library tests/data/stdeb/tinyfmt built with `microdeploy build --backend stdeb`, once."""
    project = tmp_path_factory.mktemp("tinyfmt") / "tinyfmt"
    shutil.copytree(DATA / "tinyfmt", project)
    env = {**os.environ, "SOURCE_DATE_EPOCH": EPOCH}
    env.pop("BUILD_NUMBER", None)
    result = subprocess.run([str(CLI), "build", str(project), "--backend", "stdeb", "--revision", "2"],
                            capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr
    dist = project / "dist"
    assert sorted(path.name for path in dist.iterdir()) == [
        "python3-tinyfmt_1.2.0-2+deb12_all.deb", "tinyfmt_1.2.0-2+deb12_amd64.buildinfo",
        "tinyfmt_1.2.0-2+deb12_amd64.changes",
    ]
    return dist / "python3-tinyfmt_1.2.0-2+deb12_all.deb"


def test_make_deb_is_lintian_clean(microdeploy_deb: Path) -> None:
    """lintian finds no error and no warning in python3-microdeploy (overrides carry their reasons)."""
    verdict = lintian(microdeploy_deb)
    assert verdict.errors == [], verdict.output
    assert verdict.warnings == [], verdict.output


def test_make_deb_ships_templates_entry_point_and_man_page(microdeploy_deb: Path) -> None:
    """The template folders, the service template, /usr/bin/microdeploy and its man page are in the package."""
    names = contents(microdeploy_deb)
    missing = [name for name in (*TEMPLATE_FILES, "usr/bin/microdeploy", "usr/share/man/man1/microdeploy.1.gz",
                                 "usr/share/doc/python3-microdeploy/copyright") if name not in names]
    assert missing == []


def test_make_deb_depends_on_debian_names(microdeploy_deb: Path) -> None:
    """Depends names Debian's packages (fabric 2.6, not PyPI's 3.2) and the build tools microdeploy runs."""
    depends = [item.strip() for item in control_field(microdeploy_deb, "Depends").split(",")]
    for wanted in ("python3-click (>= 8.1)", "python3-jinja2 (>= 3.1)", "python3-packaging (>= 23)",
                   "python3-debian (>= 0.1.49)", "python3-ruamel.yaml (>= 0.17)", "python3-fabric (>= 2.6)",
                   "build-essential", "dh-virtualenv", "debhelper",
                   "dpkg-dev", "fakeroot", "git", "lintian", "python3-venv"):
        assert wanted in depends, depends
    assert not [item for item in depends if re.match(r"python3-fabric \(>= 3", item)]
    assert control_field(microdeploy_deb, "Package") == "python3-microdeploy"
    assert control_field(microdeploy_deb, "Architecture") == "all"


@pytest.mark.parametrize(("release", "suffix"), [("bookworm", "+deb12"), ("trixie", "+deb13")])
def test_make_deb_installs_and_builds_a_service_in_a_fresh_root(
    microdeploy_deb: Path, release: str, suffix: str, request: pytest.FixtureRequest
) -> None:
    """apt-get install ./python3-microdeploy_*.deb in fresh Debian 12, and 13 (a build agent that moved on: its
    Python 3.13 and libraries, python3-pyproject-hooks where 12 has python3-pep517); then --version, new and build
    work there, a build for the agent's own release."""
    online_root: OnlineRoot = request.getfixturevalue("online_root" if release == "bookworm" else "trixie_online_root")
    deb = online_root.copy_in(microdeploy_deb, f"/root/{microdeploy_deb.name}")
    online_root.run(["apt-get", "update", "-qq"], timeout=300)
    online_root.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", deb], timeout=900)
    assert online_root.run(["dpkg-query", "-S", "/usr/bin/microdeploy"]).stdout.startswith("python3-microdeploy:")
    version = online_root.run(["microdeploy", "--version"]).stdout
    assert version == "microdeploy, version 0.1.0\n"
    online_root.run(["microdeploy", "new", "svc", "--no-input"])
    built = online_root.run(["microdeploy", "build", "--json", "svc"], check=False, timeout=900)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    assert sorted(path.name for path in (online_root.root / "root/svc/dist").iterdir()) == [
        f"svc_0.1.0-1{suffix}_amd64.buildinfo", f"svc_0.1.0-1{suffix}_amd64.changes", f"svc_0.1.0-1{suffix}_amd64.deb",
    ]
    assert '"name": "svc"' in built.stdout


def test_pure_library_package(tinyfmt_deb: Path) -> None:
    """python3-tinyfmt: arch all, Depends by Debian name, maintainer from the config, no lintian error."""
    assert control_field(tinyfmt_deb, "Architecture") == "all"
    assert control_field(tinyfmt_deb, "Maintainer") == "Library Team <libs@example.org>"
    assert control_field(tinyfmt_deb, "Depends") == "python3-packaging (>= 21), python3:any", "its floor kept"
    assert "usr/lib/python3/dist-packages/tinyfmt/__init__.py" in contents(tinyfmt_deb)
    verdict = lintian(tinyfmt_deb)
    assert verdict.errors == [], verdict.output
    assert deb_members(tinyfmt_deb)[-1] == "data.tar.gz", "compression (default gzip) reaches stdeb's dpkg-deb"


def test_pure_library_installs_and_imports_with_system_python(tinyfmt_deb: Path, online_root: OnlineRoot) -> None:
    """apt-get install ./python3-tinyfmt_*.deb pulls python3-packaging from Debian; /usr/bin/python3 imports it."""
    deb = online_root.copy_in(tinyfmt_deb, f"/root/{tinyfmt_deb.name}")
    online_root.run(["apt-get", "update", "-qq"], timeout=300)
    online_root.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", deb], timeout=600)
    code = "import tinyfmt, packaging; print(tinyfmt.__file__, tinyfmt.size(1536))"
    output = online_root.run(["/usr/bin/python3", "-c", code]).stdout
    assert output == "/usr/lib/python3/dist-packages/tinyfmt/__init__.py 1.5 KiB\n"


def test_pure_library_rebuild_is_byte_identical(tinyfmt_deb: Path, tmp_path: Path) -> None:
    """The same project, revision and SOURCE_DATE_EPOCH give the same .deb, byte for byte, however old its files."""
    project = shutil.copytree(tinyfmt_deb.parent.parent, tmp_path / "tinyfmt", ignore=shutil.ignore_patterns("dist"))
    older = int(EPOCH) - 30 * 86400
    for path in [project, *project.rglob("*")]:
        os.utime(path, (older, older))
    env = {**os.environ, "SOURCE_DATE_EPOCH": EPOCH}
    env.pop("BUILD_NUMBER", None)
    subprocess.run([str(CLI), "-q", "build", str(project), "--backend", "stdeb", "--revision", "2",
                    "--out", str(tmp_path / "out")], check=True, capture_output=True, env=env, timeout=600)
    assert (tmp_path / "out" / tinyfmt_deb.name).read_bytes() == tinyfmt_deb.read_bytes()


def test_c_extension_is_refused_with_exit_2_and_nothing_in_dist(tmp_path: Path) -> None:
    """`microdeploy build --backend stdeb` on a project with a C extension exits 2 and writes nothing."""
    project = tmp_path / "fastsum"
    shutil.copytree(DATA / "withext", project)
    result = subprocess.run([str(CLI), "build", str(project), "--backend", "stdeb", "--out", str(tmp_path / "out")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "builds compiled extensions" in result.stderr
    assert ("hint: The system python3 gets pure-Python libraries only; list it in the dependencies of the service "
            "that uses it") in result.stderr
    assert not (tmp_path / "out").exists()
    assert not (project / "dist").exists()


FLAT_PYPROJECT = """\
[build-system]
requires = ["setuptools>=77"]
build-backend = "setuptools.build_meta"

[project]
name = "flatfmt"
version = "2.0.1"
description = "Formats tables for service reports"
license = "MIT"
license-files = ["LICENSE"]
requires-python = ">=3.9"

[project.scripts]
flatfmt = "flatfmt:main"

[tool.microdeploy]
maintainer = "Library Team <libs@example.org>"
"""


@pytest.mark.parametrize("own_setup_py", [None, '"""Compatibility shim."""\nfrom setuptools import setup\n\nsetup()\n'])
def test_a_flat_layout_with_pep_639_license_files_builds_on_debian_12(tmp_path: Path, own_setup_py: str | None) -> None:
    """As tabulate and Markdown are laid out: setuptools finds the package itself (a flat layout, no packages
    list), and PEP 639's license string comes with license-files; and as python-slugify, with a setup.py of its
    own that calls setup() alone. Debian 12's setuptools 66 knows neither license-files nor debian/ as a directory
    to leave out of the discovery; the package is built all the same, holds the module and its program, and is
    lintian-clean (the program has no manual page: overridden, with the reason)."""
    project = tmp_path / "flatfmt"
    (project / "flatfmt").mkdir(parents=True)
    if own_setup_py is not None:
        (project / "setup.py").write_text(own_setup_py)
    (project / "pyproject.toml").write_text(FLAT_PYPROJECT)
    (project / "LICENSE").write_text("MIT License\n\nCopyright (c) 2026 Library Team\n\nPermission is hereby granted, "
                                     "free of charge, to any person obtaining a copy of this software.\n")
    (project / "flatfmt" / "__init__.py").write_text('"""Formats tables."""\n\nWIDTH = 80\n\n\n'
                                                     'def main() -> None:\n    print(WIDTH)\n')
    result = subprocess.run([str(CLI), "build", str(project), "--backend", "stdeb", "--out", str(tmp_path / "out")],
                            capture_output=True, text=True, env={**os.environ, "SOURCE_DATE_EPOCH": EPOCH},
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    [deb] = (tmp_path / "out").glob("python3-flatfmt_2.0.1-*_all.deb")
    assert {"usr/lib/python3/dist-packages/flatfmt/__init__.py", "usr/bin/flatfmt"} <= contents(deb)
    assert not any("debian" in path.split("/") for path in contents(deb) if "dist-packages" in path)
    verdict = lintian(deb)
    assert (verdict.errors, verdict.warnings) == ([], []), verdict.output


# Public libraries from PyPI, unmodified sdists: (project, version, a module file the package must hold, the
# name of its installed metadata, the package's name: Debian 12's own package of the module has it). python-slugify:
# its own bare setup.py, PEP 639 license and license-files, a program, a dependency, a module named otherwise than
# the project; Markdown: pyproject.toml alone with license-files and a program; six: setup.py alone and a README of
# reStructuredText; tabulate: a flat layout found by setuptools and a setuptools-scm version; PySocks: two modules,
# and Debian's package of it is named after one of them (dh-python's data says so).
PUBLIC_LIBRARIES = [
    ("python-slugify", "9.2.0", "slugify/__init__.py", "python_slugify-9.2.0.egg-info", "python3-slugify"),
    ("Markdown", "3.11.4", "markdown/__init__.py", "Markdown-3.11.4.egg-info", "python3-markdown"),
    ("six", "1.17.0", "six.py", "six-1.17.0.egg-info", "python3-six"),
    ("tabulate", "0.10.0", "tabulate/__init__.py", "tabulate-0.10.0.egg-info", "python3-tabulate"),
    ("PySocks", "1.7.1", "socks.py", "PySocks-1.7.1.egg-info", "python3-socks"),
]


@pytest.fixture(scope="session")
def public_libraries(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each of PUBLIC_LIBRARIES built with --backend stdeb, once: its .deb by project."""
    built = {}
    for project, version, *_ in PUBLIC_LIBRARIES:
        work = tmp_path_factory.mktemp(project)
        source = unpacked_sdist(project, version, work)
        result = subprocess.run([str(CLI), "build", str(source), "--backend", "stdeb", "--out", str(work / "out")],
                                capture_output=True, text=True, env={**os.environ, "SOURCE_DATE_EPOCH": EPOCH},
                                timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
        [built[project]] = (work / "out").glob(f"python3-*_{version}-*_all.deb")
    return built


@pytest.mark.parametrize(("project", "version", "module", "metadata", "package"), PUBLIC_LIBRARIES,
                         ids=[library[0] for library in PUBLIC_LIBRARIES])
def test_a_public_library_from_pypi_builds_lintian_clean_with_its_version(
    public_libraries: dict[str, Path], project: str, version: str, module: str, metadata: str, package: str
) -> None:
    """Each builds on Debian 12 as it comes from PyPI, holds its module and its metadata at its own version (not
    setuptools' 0.0.0), is named as Debian names the package of its module, and lintian finds no error and no
    warning."""
    deb = public_libraries[project]
    assert deb.name.startswith(f"{package}_{version}-") and control_field(deb, "Package") == package
    files = contents(deb)
    assert f"usr/lib/python3/dist-packages/{module}" in files
    assert f"usr/lib/python3/dist-packages/{metadata}" in files
    verdict = lintian(deb)
    assert (verdict.errors, verdict.warnings) == ([], []), verdict.output


def test_a_library_upgrades_debians_own_package_of_its_module_and_keeps_its_floors(
    public_libraries: dict[str, Path], online_root: OnlineRoot, tmp_path: Path
) -> None:
    """python-slugify 9.2.0 installs as python3-slugify over Debian 12's python3-slugify 4.0.0: an upgrade of the
    package that holds /usr/lib/python3/dist-packages/slugify, not a second package whose files clash with it. Its
    text-unidecode>=1.3 is a versioned Depends, which Debian's 1.3 meets; a library that needs packaging 99 is not
    installed beside Debian's packaging 23, whose API it would not find; one that needs packaging 23.0rc1 is."""
    depends = control_field(public_libraries["python-slugify"], "Depends")
    assert "python3-text-unidecode (>= 1.3)" in depends.split(", "), depends
    project = shutil.copytree(DATA / "tinyfmt", tmp_path / "tinyfmt")
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"packaging>=21"', '"packaging>=99"'))
    subprocess.run([str(CLI), "-q", "build", str(project), "--backend", "stdeb", "--out", str(tmp_path / "out")],
                   check=True, capture_output=True, env={**os.environ, "SOURCE_DATE_EPOCH": EPOCH}, timeout=600)
    [too_new] = (tmp_path / "out").glob("python3-tinyfmt_*_all.deb")
    online_root.run(["apt-get", "update", "-qq"], timeout=300)
    refused = online_root.run(["apt-get", "install", "-y", "--no-install-recommends",
                               online_root.copy_in(too_new, f"/root/{too_new.name}")], check=False, timeout=600)
    assert refused.returncode != 0 and "python3-packaging (>= 99)" in refused.stdout + refused.stderr
    # A pre-release floor, spelt as Debian spells it: Debian 12's packaging 23.0-1 meets 23.0~rc1 (not 23.0rc1).
    pyproject.write_text(pyproject.read_text().replace('"packaging>=99"', '"packaging>=23.0rc1"'))
    subprocess.run([str(CLI), "-q", "build", str(project), "--backend", "stdeb", "--out", str(tmp_path / "rc")],
                   check=True, capture_output=True, env={**os.environ, "SOURCE_DATE_EPOCH": EPOCH}, timeout=600)
    [pre_release] = (tmp_path / "rc").glob("python3-tinyfmt_*_all.deb")
    assert "python3-packaging (>= 23.0~rc1)" in control_field(pre_release, "Depends").split(", ")
    online_root.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends",
                     online_root.copy_in(pre_release, f"/root/{pre_release.name}")], timeout=600)
    online_root.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "python3-slugify"], timeout=600)
    deb = online_root.copy_in(public_libraries["python-slugify"], f"/root/{public_libraries['python-slugify'].name}")
    online_root.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", deb], timeout=600)
    code = "import slugify; print(slugify.__file__, slugify.slugify('Grüße aus Köln'))"
    assert online_root.run(["/usr/bin/python3", "-c", code]).stdout == (
        "/usr/lib/python3/dist-packages/slugify/__init__.py grusse-aus-koln\n")
    status = online_root.run(["dpkg-query", "-W", "-f", "${Package} ${Version}", "python3-slugify"]).stdout
    assert status.startswith("python3-slugify 9.2.0-")


def test_a_library_of_two_modules_replaces_debians_package_of_them(
    public_libraries: dict[str, Path], online_root: OnlineRoot
) -> None:
    """PySocks installs socks.py and sockshandler.py, which Debian 12's python3-socks holds: its package has that
    name, so dpkg replaces Debian's package (a downgrade here: Debian's 1.7.1+dfsg-1 sorts above 1.7.1-1) instead of
    refusing to overwrite its files from a second package."""
    online_root.run(["apt-get", "update", "-qq"], timeout=300)
    online_root.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "python3-socks"], timeout=600)
    deb = online_root.copy_in(public_libraries["PySocks"], f"/root/{public_libraries['PySocks'].name}")
    online_root.run(["dpkg", "-i", deb], timeout=600)
    status = online_root.run(["dpkg-query", "-W", "-f", "${Package} ${Version}\\n", "python3-socks"]).stdout
    assert status.startswith("python3-socks 1.7.1-1"), status
    code = "import socks, sockshandler; print(socks.__file__)"
    assert online_root.run(["/usr/bin/python3", "-c", code]).stdout == "/usr/lib/python3/dist-packages/socks.py\n"
