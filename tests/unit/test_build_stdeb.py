"""The stdeb backend's own logic: refusals, names, exact argv, and what reaches dist/ (fake runner)."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from microdeploy import pyproject
from microdeploy.build import stdeb, stdeb_debian
from microdeploy.build.pipeline import build, build_releases
from microdeploy.build.release.settings import BuildSettings
from microdeploy.build.stdeb_debian import package_name
from microdeploy.build.stdeb_names import FALLBACK as FALLBACK_PATH
from microdeploy.build.stdeb_names import debian_package, package_of
from microdeploy.build.stdeb_sdist import SdistFacts, read_sdist
from microdeploy.cli import main
from microdeploy.errors import EXIT_BAD_INPUT, MicrodeployError
from microdeploy.process import Result
from microdeploy.pyproject import read_pyproject

DATA = Path(__file__).resolve().parent.parent / "data" / "stdeb"
EPOCH = "1767225600"


def library(root: Path, name: str = "tinyfmt", *, pyproject_extra: str = "", tool: str = "") -> Path:
    """A pure pyproject-only setuptools library in root/name."""
    project = root / name
    (project / "src" / name.replace("-", "_")).mkdir(parents=True)
    (project / "src" / name.replace("-", "_") / "__init__.py").write_text('"""A library."""\n')
    (project / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n\n'
        f'[project]\nname = "{name}"\nversion = "1.2.0"\ndescription = "A small library"\n{pyproject_extra}\n'
        f"[tool.microdeploy]\nmaintainer = \"Library Team <libs@example.org>\"\n{tool}"
    )
    return project


class FakeStdeb:
    """Plays setup.py sdist, stdeb sdist_dsc and dpkg-buildpackage by writing what they would; records argv."""

    def __init__(self, *, compiled: bool = False):
        self.calls: list[tuple[str, ...]] = []
        self.cwds: list[Path | None] = []
        self.envs: list[Mapping[str, str] | None] = []
        self.compiled = compiled

    def __call__(self, argv: Sequence[str], *, cwd: Path | None = None, env: Mapping[str, str] | None = None,
                 check: bool = True, input: str | None = None, timeout: float | None = None,
                 inherit_env: bool = True) -> Result:
        args = tuple(argv)
        self.calls.append(args)
        self.cwds.append(cwd)
        self.envs.append(env)
        if args[0] == "git":
            return Result(args, 128, "", "not a git repository")
        if "sdist" in args:
            dist = Path(args[args.index("--dist-dir") + 1])
            dist.mkdir(parents=True)
            (dist / "tinyfmt-1.2.0.tar.gz").write_bytes(b"sdist")
        elif "sdist_dsc" in args:
            tree = Path(args[args.index("--dist-dir") + 1]) / "tinyfmt-1.2.0"
            (tree / "debian").mkdir(parents=True)
            (tree / "debian" / "control").write_text(
                "Source: tinyfmt\nMaintainer: X <x@example.org>\n\n"
                "Package: python3-tinyfmt\nArchitecture: all\nDescription: A small library\n"
            )
            (tree / "debian" / "changelog").write_text("stdeb's changelog\n")
            (tree.parent / "tinyfmt_1.2.0-1_source.changes").write_text("source changes\n")
        elif args[0] == "dpkg-buildpackage":
            assert cwd is not None
            staged = cwd / "debian" / "python3-tinyfmt" / "usr/lib/python3/dist-packages/tinyfmt"
            staged.mkdir(parents=True)
            if self.compiled:
                (staged / "_speedups.cpython-311-x86_64-linux-gnu.so").write_bytes(b"\x7fELF")
            for name in ("python3-tinyfmt_1.2.0-1_all.deb", "tinyfmt_1.2.0-1_amd64.buildinfo",
                         "tinyfmt_1.2.0-1_amd64.changes"):
                (cwd.parent / name).write_text(name)
        return Result(args, 0, "", "")


@pytest.fixture
def tools(monkeypatch: pytest.MonkeyPatch) -> None:
    """The build tools count as installed: the fake runner plays them."""
    monkeypatch.setattr("microdeploy.build.stdeb.require_tools", lambda *tools: None)


def settings(project: Path, out: Path, **overrides: object) -> BuildSettings:
    return BuildSettings(project=project, out=out, overrides=overrides, revision="3",
                         environ={"SOURCE_DATE_EPOCH": EPOCH}, backend="stdeb", work_dir=out.parent, dist="bookworm")


def test_package_name_is_python3_and_the_normalised_dist_name(tmp_path: Path) -> None:
    """[project].name Tiny_Fmt.Utils becomes python3-tiny-fmt-utils."""
    project = library(tmp_path, "tinyfmt")
    text = (project / "pyproject.toml").read_text().replace('name = "tinyfmt"', 'name = "Tiny_Fmt.Utils"')
    (project / "pyproject.toml").write_text(text)
    planned = stdeb.plan(settings(project, tmp_path / "dist"), FakeStdeb())
    assert (planned.source, planned.package, planned.version) == ("tiny-fmt-utils", "python3-tiny-fmt-utils",
                                                                        "1.2.0-3+deb12")


def test_ext_modules_in_setup_py_is_refused(tmp_path: Path) -> None:
    """setup.py with Extension()/ext_modules exits 2 naming the file and pointing to the venv backend."""
    project = tmp_path / "fastsum"
    shutil.copytree(DATA / "withext", project)
    (project / "src/fastsum/_speedups.c").unlink()  # the setup.py alone is enough
    with pytest.raises(MicrodeployError) as info:
        stdeb.check_pure(project, read_pyproject(project))
    assert info.value.exit_code == EXIT_BAD_INPUT
    assert "setup.py builds compiled extensions (Extension(), ext_modules)" in info.value.message
    assert info.value.hint == stdeb.LIBRARY_HINT


@pytest.mark.parametrize("source", ["src/tinyfmt/_fast.c", "src/tinyfmt/_fast.pyx", "native/lib.cpp"])
def test_compiled_sources_are_refused(tmp_path: Path, source: str) -> None:
    """A C, C++ or Cython file in the project exits 2 and is named in the message."""
    project = library(tmp_path)
    (project / source).parent.mkdir(parents=True, exist_ok=True)
    (project / source).write_text("/* native */\n")
    with pytest.raises(MicrodeployError) as info:
        stdeb.check_pure(project, read_pyproject(project))
    assert info.value.exit_code == EXIT_BAD_INPUT
    assert source in info.value.message


def test_compiled_files_in_venvs_and_build_outputs_do_not_count(tmp_path: Path) -> None:
    """.c files under .venv/, build/ or .git/ are not the project's sources."""
    project = library(tmp_path)
    for ignored in (".venv/lib/x.c", "build/temp/y.c", ".git/z.c", "tinyfmt.egg-info/w.c"):
        (project / ignored).parent.mkdir(parents=True, exist_ok=True)
        (project / ignored).write_text("")
    assert stdeb.compiled_sources(project) == []
    stdeb.check_pure(project, read_pyproject(project))


def test_setuptools_ext_modules_table_is_refused(tmp_path: Path) -> None:
    """[tool.setuptools] ext-modules in pyproject.toml exits 2."""
    project = library(tmp_path, pyproject_extra='\n[[tool.setuptools.ext-modules]]\nname = "x"\nsources = ["x.c"]\n')
    with pytest.raises(MicrodeployError) as info:
        stdeb.check_pure(project, read_pyproject(project))
    assert info.value.exit_code == EXIT_BAD_INPUT
    assert "ext-modules" in info.value.message


def test_non_setuptools_backend_is_refused(tmp_path: Path) -> None:
    """A hatchling project without setup.py exits 2: stdeb runs setup.py."""
    project = library(tmp_path)
    text = (project / "pyproject.toml").read_text().replace("setuptools.build_meta", "hatchling.build")
    (project / "pyproject.toml").write_text(text)
    with pytest.raises(MicrodeployError) as info:
        stdeb.check_pure(project, read_pyproject(project))
    assert info.value.exit_code == EXIT_BAD_INPUT
    assert "'hatchling.build'" in info.value.message
    # Not the venv backend for the library itself: it makes services.
    assert info.value.hint == ("Switch [build-system] to setuptools.build_meta, or list it in the dependencies of "
                               "the service that uses it: the default dh-virtualenv backend installs its wheel into "
                               "that service's venv")


def test_configured_wsgi_app_is_refused(tmp_path: Path) -> None:
    """app in [tool.microdeploy] exits 2 with the venv backend as the fix."""
    project = library(tmp_path, tool='app = "tinyfmt.wsgi:app"\n')
    with pytest.raises(MicrodeployError) as info:
        stdeb.check_no_app(project, {}, read_pyproject(project))
    assert info.value.exit_code == EXIT_BAD_INPUT
    assert "WSGI app 'tinyfmt.wsgi:app' (pyproject.toml key 'app')" in info.value.message
    assert "dh-virtualenv" in (info.value.hint or "")


def test_app_flag_is_refused_and_default_app_is_not(tmp_path: Path) -> None:
    """--app is as explicit as the config key; the model's default app alone is fine."""
    project = library(tmp_path)
    stdeb.check_no_app(project, {"app": None}, read_pyproject(project))
    with pytest.raises(MicrodeployError) as info:
        stdeb.check_no_app(project, {"app": "tinyfmt:app"}, read_pyproject(project))
    assert "(--app)" in info.value.message


def test_extras_are_refused_for_a_library(tmp_path: Path) -> None:
    """python3-NAME has no venv for an extra's dependencies: --extra exits 2 before anything is written."""
    project = library(tmp_path)
    with pytest.raises(MicrodeployError) as info:
        stdeb.plan(settings(project, tmp_path / "dist", extras=("cli",)), FakeStdeb())
    assert info.value.exit_code == EXIT_BAD_INPUT
    assert "the stdeb backend installs no extras (cli)" in info.value.message
    assert not (tmp_path / "dist").exists()


def test_build_runs_sdist_stdeb_and_dpkg_buildpackage_with_exact_argv(tmp_path: Path, tools: None) -> None:
    """The three commands, in order and exactly; the model's changelog replaces stdeb's; three files in dist/."""
    project = library(tmp_path, tool='depends = ["libfoo1"]\n')
    runner = FakeStdeb()
    result = build(settings(project, tmp_path / "dist"), runner)
    commands = [call for call in runner.calls if call[0] != "git"]
    work = Path(commands[0][commands[0].index("--dist-dir") + 1]).parent
    assert commands == [
        ("/usr/bin/python3", "setup.py", "--quiet", "sdist", "--dist-dir", str(work / "sdist")),
        ("/usr/bin/python3", "-c", stdeb.STDEB_COMPAT, "setup.py", "--quiet", "--command-packages=stdeb.command",
         "sdist_dsc", "--dist-dir", str(work / "deb"),
         "--use-premade-distfile", str(work / "sdist/tinyfmt-1.2.0.tar.gz"),
         "--source", "tinyfmt", "--package3", "python3-tinyfmt", "--maintainer", "Library Team <libs@example.org>",
         "--suite3", "bookworm", "--section", "python", "--compat", "13",
         "--depends3", "libfoo1"),
        ("dpkg-buildpackage", "--build=binary", "--no-sign", "--jobs=auto"),
    ]
    assert sorted(path.name for path in (tmp_path / "dist").iterdir()) == [
        "python3-tinyfmt_1.2.0-1_all.deb", "tinyfmt_1.2.0-1_amd64.buildinfo", "tinyfmt_1.2.0-1_amd64.changes",
    ]
    assert (result.name, result.version) == ("python3-tinyfmt", "1.2.0-3+deb12")
    assert not work.exists(), "the work directory is removed"
    dpkg_env = runner.envs[runner.calls.index(commands[-1])]
    assert dpkg_env is not None
    assert (dpkg_env["DPKG_DEB_COMPRESSOR_TYPE"], dpkg_env["DPKG_DEB_COMPRESSOR_LEVEL"]) == ("gzip", "5")


def test_a_library_build_parses_pyproject_toml_once(tmp_path: Path, tools: None,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The checks, the service model and the license of a stdeb build come from one parse of pyproject.toml."""
    project = library(tmp_path, pyproject_extra='license = "MIT"')
    parsed: list[Path] = []
    load = pyproject.load_toml
    monkeypatch.setattr(pyproject, "load_toml", lambda path: parsed.append(path) or load(path))
    build_releases(settings(project, tmp_path / "dist"), FakeStdeb())
    assert parsed == [project / "pyproject.toml"]


def test_finish_debian_writes_changelog_copyright_and_description(tmp_path: Path) -> None:
    """Our changelog (version, maintainer, SOURCE_DATE_EPOCH), a DEP-5 copyright of pyproject's license, a long
    description."""
    project = library(tmp_path, pyproject_extra='license = "MIT"')
    planned = stdeb.plan(settings(project, tmp_path / "dist"), FakeStdeb())
    debian = tmp_path / "debian"
    debian.mkdir()
    # stdeb's long description is the project's README as written (six's starts with a reStructuredText image).
    (debian / "control").write_text("Source: tinyfmt\n\nPackage: python3-tinyfmt\nDescription: A small library\n"
                                    " .. image:: https://img.shields.io/pypi/v/tinyfmt.svg\n"
                                    " [![CI](https://example.org/ci.svg)](https://example.org/ci) " + "x" * 90 + "\n")
    stdeb_debian.finish_debian(debian, planned)
    changelog = (debian / "changelog").read_text()
    assert changelog.startswith("tinyfmt (1.2.0-3+deb12) bookworm; urgency=medium")
    assert " -- Library Team <libs@example.org>  Thu, 01 Jan 2026 00:00:00 +0000" in changelog
    assert "License: MIT\n" in (debian / "copyright").read_text()
    assert (debian / "control").read_text().endswith(
        "Package: python3-tinyfmt\nDescription: Small library\n"
        " The pure-Python library tinyfmt, packaged for the system python3:\n"
        " python3-tinyfmt installs it under /usr/lib/python3/dist-packages, for Debian's\n"
        " own interpreter and the programs that use it.\n"
    )


def test_a_projects_own_setup_py_runs_the_shims_patches_first(tmp_path: Path) -> None:
    """Without a setup.py the build copy gets the shim; with one, the shim's two patches run before the project's
    code, after its `from __future__` imports (which must stay first); the result is valid Python."""
    shim = stdeb.SETUP_SHIM.read_text()
    assert stdeb.with_shim(None) == shim
    own = '"""Its setup."""\nfrom __future__ import annotations\n\nfrom setuptools import setup\n\nsetup()\n'
    merged = stdeb.with_shim(own)
    assert merged.startswith('"""Its setup."""\nfrom __future__ import annotations\n')
    assert merged.endswith("\naccept_spdx_license_on_old_setuptools()\nversion_without_setuptools_scm()\n"
                           "leave_debian_out_of_discovery()\n\n\n\nfrom setuptools import setup\n\nsetup()\n")
    assert 'if __name__ == "__main__"' not in merged
    compile(merged, "setup.py", "exec")


def test_debians_setuptools_without_setuptools_scm_takes_the_version_the_build_pins(tmp_path: Path) -> None:
    """jaraco.functools and tabulate take their version from setuptools-scm, which Debian's python3 lacks: the shim
    gives setuptools SETUPTOOLS_SCM_PRETEND_VERSION (the build sets it), not 0.0.0; a static version stays."""
    project = tmp_path / "scmlib"
    (project / "scmlib").mkdir(parents=True)
    (project / "scmlib" / "__init__.py").write_text("")
    (project / "setup.py").write_text(stdeb.with_shim(None))
    for version_key, pinned, expected in (('dynamic = ["version"]', "4.6.0", "4.6.0"),
                                          ('version = "1.0"', "4.6.0", "1.0")):
        (project / "pyproject.toml").write_text(
            '[build-system]\nrequires = ["setuptools>=61", "setuptools-scm>=8"]\n'
            f'build-backend = "setuptools.build_meta"\n\n[project]\nname = "scmlib"\n{version_key}\n\n'
            "[tool.setuptools_scm]\n")
        result = subprocess.run([stdeb.SYSTEM_PYTHON, "setup.py", "--version"], cwd=project, capture_output=True,
                                text=True, env={**os.environ, "SETUPTOOLS_SCM_PRETEND_VERSION": pinned})
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines()[-1] == expected


def test_a_library_without_a_dated_notice_overrides_lintians_tag_for_it(tmp_path: Path) -> None:
    """A project whose license files state no copyright notice with a year (certifi, python-slugify): its holders are
    the authors it names, and lintian's copyright-without-copyright-notice gets its override with the reason; a
    notice with its year needs none."""
    for notice, overridden in (("", True), ("Copyright (c) 2026 Library Team\n", False)):
        project = library(tmp_path / str(overridden), pyproject_extra='license = "MIT"')
        (project / "LICENSE").write_text(f"MIT License\n\n{notice}\nPermission is hereby granted.\n")
        planned = stdeb.plan(settings(project, tmp_path / str(overridden) / "dist"), FakeStdeb())
        debian = tmp_path / str(overridden) / "debian"
        debian.mkdir()
        (debian / "control").write_text("Source: tinyfmt\n\nPackage: python3-tinyfmt\nDescription: A library\n")
        stdeb_debian.finish_debian(debian, planned)
        overrides = debian / "python3-tinyfmt.lintian-overrides"
        assert overrides.exists() == overridden
        if overridden:
            assert overrides.read_text() == (
                "# The project states no copyright notice with a year: its holders are the authors it names.\n"
                "python3-tinyfmt: copyright-without-copyright-notice\n")


def test_the_copyright_override_follows_lintians_own_test_of_the_whole_file(tmp_path: Path) -> None:
    """text-unidecode's license text says "Public Domain" and names no dated notice: lintian finds what it wants
    there, so there is no override to leave unused; a file of holders alone gets one, a dated notice anywhere none."""
    project = library(tmp_path)
    planned = stdeb.plan(settings(project, tmp_path / "dist"), FakeStdeb())
    holders_only = "Files: *\nCopyright: Mikhail Korobov <kmike84@gmail.com>\nLicense: other\n"
    assert "copyright-without-copyright-notice" in stdeb_debian.lintian_overrides(planned, holders_only, ())
    for text in (holders_only + " tables derived from the Public Domain data of Text::Unidecode\n",
                 holders_only.replace("Mikhail", "2014 Mikhail"),
                 holders_only + " Copyright (C) 2001, 2014 Sean M. Burke\n"):
        assert stdeb_debian.lintian_overrides(planned, text, ()) == "", text


def test_a_librarys_programs_get_the_overrides_of_the_manual_pages_the_project_does_not_ship(tmp_path: Path) -> None:
    """Markdown's markdown_py, tabulate's tabulate: their names come from the entry points setup.py sdist wrote into
    the sdist's egg-info (src layout too), and each /usr/bin program gets no-manual-page's override with the
    reason, beside the copyright one."""
    sdist = tmp_path / "tinyfmt-1.2.0.tar.gz"
    entry_points = (b"[console_scripts]\ntinyfmt = tinyfmt.cli:main\nTinyFmt-Report = tinyfmt.cli:report\n\n"
                    b"[gui_scripts]\ntinyfmt-gui = tinyfmt.gui:main\n\n[markdown.extensions]\n"
                    b"abbr = markdown.extensions.abbr\n")
    tarball(sdist, {"tinyfmt-1.2.0/src/tinyfmt.egg-info/entry_points.txt": entry_points})
    scripts = list(read_sdist(sdist).scripts)
    assert scripts == ["TinyFmt-Report", "tinyfmt", "tinyfmt-gui"]
    project = library(tmp_path, pyproject_extra='license = "MIT"')
    planned = stdeb.plan(settings(project, tmp_path / "dist"), FakeStdeb())
    debian = tmp_path / "debian"
    debian.mkdir()
    (debian / "control").write_text("Source: tinyfmt\n\nPackage: python3-tinyfmt\nDescription: A library\n")
    stdeb_debian.finish_debian(debian, planned, scripts)
    assert (debian / "python3-tinyfmt.lintian-overrides").read_text() == (
        "# The project states no copyright notice with a year: its holders are the authors it names.\n"
        "python3-tinyfmt: copyright-without-copyright-notice\n"
        "# The project ships no manual page for its programs; each one's --help documents it.\n"
        "python3-tinyfmt: no-manual-page [usr/bin/TinyFmt-Report]\n"
        "python3-tinyfmt: no-manual-page [usr/bin/tinyfmt]\n"
        "python3-tinyfmt: no-manual-page [usr/bin/tinyfmt-gui]\n")
    assert list(read_sdist(tmp_path / "nothing").scripts) == []


def test_a_compiled_build_result_is_refused_and_nothing_reaches_dist(tmp_path: Path, tools: None) -> None:
    """A .so in the staged package (a non-pure build) exits 2 and dist/ stays empty."""
    project = library(tmp_path)
    with pytest.raises(MicrodeployError) as info:
        build(settings(project, tmp_path / "dist"), FakeStdeb(compiled=True))
    assert info.value.exit_code == EXIT_BAD_INPUT
    assert "_speedups.cpython-311-x86_64-linux-gnu.so" in info.value.message
    assert not (tmp_path / "dist").exists()


def test_cli_refuses_a_c_extension_with_exit_2_and_writes_nothing(tmp_path: Path) -> None:
    """`microdeploy build --backend stdeb` on a C extension project: exit 2, the reason on stderr, no dist/."""
    project = tmp_path / "fastsum"
    shutil.copytree(DATA / "withext", project)
    result = CliRunner().invoke(main, ["build", str(project), "--backend", "stdeb"])
    assert result.exit_code == 2
    assert "builds compiled extensions" in result.stderr
    assert ("hint: The system python3 gets pure-Python libraries only; list it in the dependencies of the service "
            "that uses it") in result.stderr
    assert sorted(path.name for path in project.iterdir()) == ["microdeploy.toml", "setup.py", "src"]


def test_unknown_backend_is_bad_input(tmp_path: Path) -> None:
    """A library caller naming a backend that does not exist gets exit 2."""
    with pytest.raises(MicrodeployError) as info:
        build(BuildSettings(project=tmp_path, backend="rpm"))
    assert info.value.exit_code == EXIT_BAD_INPUT
    assert "unknown build backend 'rpm'" in info.value.message


def sdist_of(tmp_path: Path, top_level: str | None, *files: str) -> Path:
    """A .tar.gz like setup.py sdist's: NAME-1.0/ with `files` and, unless None, NAME.egg-info/top_level.txt."""
    entries = {f"lib-1.0/{name}": b"" for name in files}
    if top_level is not None:
        src = "src/" if any(name.startswith("src/") for name in files) else ""
        entries[f"lib-1.0/{src}lib.egg-info/top_level.txt"] = top_level.encode()
    return tarball(tmp_path / "lib-1.0.tar.gz", entries)


def tarball(path: Path, files: dict[str, bytes]) -> Path:
    """A gzipped tar at `path` of `files` (member name -> bytes), as setup.py sdist writes one."""
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize(("top_level", "files", "package"), [
    ("slugify\n", ["slugify/__init__.py", "slugify/slugify.py"], "python3-slugify"),  # python-slugify
    ("six\n", ["six.py"], "python3-six"),
    ("dateutil\n", ["src/dateutil/__init__.py"], "python3-dateutil"),  # python-dateutil, a src/ layout
    ("typing_extensions\n", ["src/typing_extensions.py"], "python3-typing-extensions"),
    ("jaraco\n", ["jaraco/functools/__init__.py"], "python3-lib"),  # a namespace: other libraries share its name
    ("attr\nattrs\n", ["src/attr/__init__.py", "src/attrs/__init__.py"], "python3-lib"),  # two modules
    ("_private\n", ["_private.py"], "python3-lib"),  # no Debian package name starts with "-"
    (None, ["lib.py"], "python3-lib"),  # no top_level.txt: the distribution's name
])
def test_the_package_is_named_after_the_one_module_the_sdist_installs(
    tmp_path: Path, top_level: str | None, files: list[str], package: str
) -> None:
    """Debian's Python policy names the package of module foo python3-foo; where a library installs not exactly one
    such module, its normalised distribution name stays."""
    assert package_name("lib", read_sdist(sdist_of(tmp_path, top_level, *files)).modules) == package


def test_a_name_given_for_the_package_is_kept_and_an_unreadable_sdist_names_nothing(tmp_path: Path) -> None:
    project = library(tmp_path, "tinyfmt")
    planned = stdeb.plan(settings(project, tmp_path / "dist", name="fmt-tools"), FakeStdeb())
    assert replace(planned, modules=("tinyfmt",)).package == "python3-fmt-tools", "--name wins"
    unnamed = stdeb.plan(settings(project, tmp_path / "dist"), FakeStdeb())
    assert replace(unnamed, modules=("tiny_fmt",)).package == "python3-tiny-fmt"
    (tmp_path / "broken.tar.gz").write_bytes(b"not a tarball")
    assert read_sdist(tmp_path / "broken.tar.gz") == SdistFacts()


# Lines as dh-python's cpython3_fallback has them (Debian 12's), and the forms its format allows.
FALLBACK = """\
# comment
PySocks python3-socks
attrs python3-attr
argparse python3 (>= 3.2)
azure_storage_blob python3-azure
azure_storage_queue python3-azure
glances glances
setuptools python3-pkg-resources
oldlib 2.7- python3-oldlib
ruamel.yaml python3-ruamel.yaml
twoways python3-twoways
twoways python3-twoways-legacy
"""


@pytest.mark.parametrize(("distribution", "package"), [
    ("PySocks", "python3-socks"), ("pysocks", "python3-socks"),  # names compared as PEP 503 normalises them
    ("attrs", "python3-attr"),
    ("ruamel-yaml", "python3-ruamel.yaml"),
    ("oldlib", "python3-oldlib"),  # after a range of Python versions
    ("argparse", ""),  # a relation, not a package
    ("azure-storage-blob", ""),  # the package holds other distributions too
    ("glances", ""),  # a program's package, not python3-*
    ("twoways", ""),  # two packages
    ("comment", ""), ("tinyfmt", ""),
])
def test_debians_own_package_of_a_distribution_comes_from_dh_pythons_data(distribution: str, package: str) -> None:
    assert package_of(distribution, FALLBACK) == package


def test_dh_pythons_data_is_read_in_the_root_the_library_is_built_in(tmp_path: Path) -> None:
    assert debian_package("attrs", tmp_path) == "", "no dh-python in that root"
    (tmp_path / FALLBACK_PATH).parent.mkdir(parents=True)
    (tmp_path / FALLBACK_PATH).write_text(FALLBACK)
    assert debian_package("attrs", tmp_path) == "python3-attr"


@pytest.mark.parametrize(("debian", "modules", "package"), [
    ("python3-attr", ("attr", "attrs"), "python3-attr"),  # Debian's name wins over two modules
    ("python3-socks", ("socks", "sockshandler"), "python3-socks"),
    ("python3-tinyfmt", (), "python3-tinyfmt"),  # named after the distribution itself
    ("python3-pkg-resources", ("tinyfmt",), "python3-tinyfmt"),  # after none of its modules: not taken
    ("", ("tiny_fmt",), "python3-tiny-fmt"),
])
def test_debians_own_name_for_the_library_is_taken_when_it_names_one_of_its_modules(
    tmp_path: Path, debian: str, modules: tuple[str, ...], package: str
) -> None:
    planned = stdeb.plan(settings(library(tmp_path, "tinyfmt"), tmp_path / "dist"), FakeStdeb())
    assert replace(planned, debian_package=debian, modules=modules).package == package
    named = stdeb.plan(settings(library(tmp_path / "n", "tinyfmt"), tmp_path / "dist", name="fmt-tools"), FakeStdeb())
    assert replace(named, debian_package=debian, modules=modules).package == "python3-fmt-tools", "--name wins"


def test_pre_release_versions_in_the_floors_get_their_debian_spelling_in_the_substvars(tmp_path: Path) -> None:
    """dh_python3 writes an upstream version as it is: 23.0rc1 sorts above Debian's 23.0-1 (and 23.0~rc1), so the
    relations that hold a pre-release or a dev release are spelt as Debian spells them, with '~', in the package's
    substvars after dh_python3; a release's and a post-release's stay. The sed of the rules target, run on a
    substvars file as dh_python3 writes it."""
    rules = stdeb_debian.versioned_depends(
        ["packaging>=23.0rc1", "foo<3.0.dev1,>=2.0", "bar==1.0.post1", "baz>=2.0b2"], "python3-lib")
    seds = [line.strip() for line in rules.splitlines() if line.strip().startswith("sed ")]
    assert seds == [f"sed -i 's/ {old})/ {new})/g' debian/python3-lib.substvars" for old, new in (
        ("2[.]0b2", "2.0~b2"), ("23[.]0rc1", "23.0~rc1"), ("3[.]0[.]dev1", "3.0~~dev1"))]
    debian = tmp_path / "debian"
    debian.mkdir()
    (debian / "python3-lib.substvars").write_text(
        "python3:Depends=python3-bar (= 1.0.post1), python3-baz (>= 2.0b2), python3-foo (<< 3.0.dev1), "
        "python3-foo (>= 2.0), python3-packaging (>= 23.0rc1), python3:any\n")
    for sed in seds:
        subprocess.run(["sh", "-c", sed], cwd=tmp_path, check=True)
    assert (debian / "python3-lib.substvars").read_text() == (
        "python3:Depends=python3-bar (= 1.0.post1), python3-baz (>= 2.0~b2), python3-foo (<< 3.0~~dev1), "
        "python3-foo (>= 2.0), python3-packaging (>= 23.0~rc1), python3:any\n")
    assert stdeb_debian.versioned_depends(["packaging>=21", "click==8.*"], "python3-lib").count("sed ") == 0


def test_the_requirements_that_carry_a_version_are_the_floors_given_to_dh_python3(tmp_path: Path) -> None:
    """requires.txt's first section (every install's), with a version, as written; extras and markers (the later
    sections) are dh_python3's own, and a URL is no Debian dependency."""
    requires = ('packaging>=21\ntext-unidecode>=1.3\nclick\nrequests[socks]<3,>=2.0\nlib @ https://x.invalid/l.whl\n'
                '\n[:python_version < "3.10"]\nimportlib-metadata>=4.4\n\n[unidecode]\nUnidecode>=1.1.1\n')
    sdist = sdist_of(tmp_path, "lib\n", "lib.py")
    facts = read_sdist(tarball(tmp_path / "with-requires.tar.gz", {
        "lib-1.0/lib.py": b"", "lib-1.0/lib.egg-info/top_level.txt": b"lib\n",
        "lib-1.0/lib.egg-info/requires.txt": requires.encode()}))
    assert facts == SdistFacts(("lib",), ("packaging>=21", "text-unidecode>=1.3", "requests[socks]<3,>=2.0"))
    assert read_sdist(sdist).floors == ()
    debian = tmp_path / "debian"
    debian.mkdir()
    (debian / "rules").write_text("#!/usr/bin/make -f\n%:\n\tdh $@ --with python3 --buildsystem=pybuild\n")
    (debian / "control").write_text("Source: lib\n\nPackage: python3-lib\nDescription: x\n")
    planned = replace(stdeb.plan(settings(library(tmp_path / "p", "tinyfmt"), tmp_path / "dist"), FakeStdeb()),
                      floors=facts.floors)
    stdeb_debian.finish_debian(debian, planned)
    assert (debian / "rules").read_text().endswith(
        "override_dh_python3:\n\tdh_python3 --accept-upstream-versions '--depends=packaging>=21' "
        "'--depends=text-unidecode>=1.3' '--depends=requests[socks]<3,>=2.0'\n")
    assert os.access(debian / "rules", os.X_OK)
