"""What the build reads from the project: app target, git state, dates (fake runner)."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from microdeploy.build.debiandir.tree import copy_source
from microdeploy.build.dpkg import build_environment, dpkg_buildpackage, relevant_lines
from microdeploy.build.release import license, source
from microdeploy.errors import MicrodeployError
from microdeploy.process import Result
from microdeploy.pyproject import read_pyproject


class FakeRunner:
    """Answers git commands from a table and records every argv."""

    def __init__(self, answers: Mapping[str, tuple[int, str]]):
        self.answers = answers
        self.calls: list[tuple[str, ...]] = []
        self.envs: list[Mapping[str, str] | None] = []

    def __call__(self, argv: Sequence[str], *, cwd: Path | None = None, env: Mapping[str, str] | None = None,
                 check: bool = True, input: str | None = None, timeout: float | None = None,
                 inherit_env: bool = True) -> Result:
        self.calls.append(tuple(argv))
        self.envs.append(env)
        key = " ".join(argv[3:]) if argv[0] == "git" else argv[0]
        code, out = self.answers.get(key, (0, ""))
        return Result(tuple(argv), code, out, "")


def test_git_state_from_describe(tmp_path: Path) -> None:
    """`git describe --long` output becomes tag, distance and short sha."""
    runner = FakeRunner({
        "rev-parse --is-inside-work-tree": (0, "true\n"),
        "rev-parse --short=7 HEAD": (0, "abc1234\n"),
        "describe --tags --long --match v[0-9]* --match [0-9]*": (0, "v1.4.0-3-gabc1234\n"),
    })
    assert source.git_state(tmp_path, runner) == source.GitState("1.4.0", 3, "abc1234")


def test_no_git_means_no_state(tmp_path: Path) -> None:
    """Outside a work tree there is no git state."""
    assert source.git_state(tmp_path, FakeRunner({"rev-parse --is-inside-work-tree": (128, "")})) is None


@pytest.mark.parametrize("words", [
    "fatal: detected dubious ownership in repository at '/w/shop'",  # git 2.36 and later
    "fatal: unsafe repository ('/w/shop' is owned by someone else)",  # git 2.35.2
])
def test_a_repository_git_refuses_as_another_users_exits_2(tmp_path: Path, words: str) -> None:
    """Not "outside git": the version, changelog and dates would come from nowhere. Exit 2, git's remedy."""

    def refusing(argv, **kwargs):  # type: ignore[no-untyped-def]
        return Result(tuple(argv), 128, "", words + "\n")

    with pytest.raises(MicrodeployError) as caught:
        source.git_state(tmp_path, refusing)
    assert caught.value.exit_code == 2
    assert caught.value.hint == f"Build as the checkout's owner, or trust it: git config --global --add " \
                                f"safe.directory {tmp_path}"


def test_source_date_epoch_prefers_the_environment(tmp_path: Path) -> None:
    """SOURCE_DATE_EPOCH wins; else the last commit's time."""
    runner = FakeRunner({"log -1 --format=%ct": (0, "1700000000\n")})
    assert source.source_date_epoch(tmp_path, {"SOURCE_DATE_EPOCH": "42"}, runner) == 42
    assert source.source_date_epoch(tmp_path, {}, runner) == 1700000000
    # The last time a ustar header's octal field holds; one second later is refused (it was a traceback when the
    # package's tar headers were read back).
    assert source.source_date_epoch(tmp_path, {"SOURCE_DATE_EPOCH": "8589934591"}, runner) == 8589934591
    with pytest.raises(MicrodeployError, match="SOURCE_DATE_EPOCH") as raised:
        source.source_date_epoch(tmp_path, {"SOURCE_DATE_EPOCH": "8589934592"}, runner)
    assert raised.value.exit_code == 2


def test_source_date_epoch_outside_git_is_the_newest_source_file(tmp_path: Path) -> None:
    """An unpacked sdist: the newest mtime of its source files, not of build outputs or caches."""
    runner = FakeRunner({"log -1 --format=%ct": (128, "")})
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "mod.py").write_text("")
    (tmp_path / "setup.py").write_text("")
    os.utime(tmp_path / "pkg" / "mod.py", (1600000000, 1600000000))
    os.utime(tmp_path / "setup.py", (1500000000, 1500000000))
    (tmp_path / "pkg" / "__pycache__").mkdir()
    (tmp_path / "pkg" / "__pycache__" / "mod.cpython-311.pyc").write_text("")  # now: ignored
    (tmp_path / "dist").mkdir()
    (tmp_path / "dist" / "old.deb").write_text("")
    assert source.source_date_epoch(tmp_path, {}, runner) == 1600000000


@pytest.mark.parametrize(("requires", "allowed"), [
    (">=3.12", False), ("!=3.11.*", False), ("<3.11", False),
    (">=3.11", True), (">=3.11.4", True), ("~=3.10", True), (">=3.9,<4", True), (None, True),
])
def test_requires_python_is_checked_against_the_packages_python(
    tmp_path: Path, requires: str | None, allowed: bool
) -> None:
    """Python 3.11 (bookworm's) is refused only when no 3.11.* release is allowed; the patch is the host's."""
    line = f'requires-python = "{requires}"\n' if requires else ""
    (tmp_path / "pyproject.toml").write_text(f'[project]\nname = "shop"\nversion = "1"\n{line}')
    if allowed:
        source.check_python(read_pyproject(tmp_path), "3.11", "bookworm")
        return
    with pytest.raises(MicrodeployError) as caught:
        source.check_python(read_pyproject(tmp_path), "3.11", "bookworm")
    assert caught.value.exit_code == 2
    assert "excludes Python 3.11, which the package runs on (bookworm's python3.11)" in str(caught.value)


def test_requires_python_that_is_no_specifier_exits_2(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "shop"\nversion = "1"\nrequires-python = "3.11+"\n')
    with pytest.raises(MicrodeployError) as caught:
        source.check_python(read_pyproject(tmp_path), "3.11", "bookworm")
    assert caught.value.exit_code == 2 and "is not a version specifier" in str(caught.value)


def test_check_app_finds_src_and_flat_layouts(tmp_path: Path) -> None:
    """Modules are found under src/ or at the top; factories and assignments both count."""
    (tmp_path / "src/shop").mkdir(parents=True)
    (tmp_path / "src/shop/__init__.py").write_text("")
    (tmp_path / "src/shop/wsgi.py").write_text("from shop.factory import create_app\napp = create_app()\n")
    (tmp_path / "legacy.py").write_text("def make():\n    pass\n")
    source.check_app(tmp_path, "shop.wsgi:app")
    source.check_app(tmp_path, "shop.wsgi:create_app()")
    source.check_app(tmp_path, "legacy:make()")
    with pytest.raises(MicrodeployError, match="defines no 'application'"):
        source.check_app(tmp_path, "shop.wsgi:application")


def test_build_environment_scrubs_the_callers_python() -> None:
    """The build sees system tools first, a fixed epoch, no dbgsym, and no caller venv."""
    env = build_environment({"VIRTUAL_ENV": "/x", "PYTHONPATH": "/y", "HOME": "/root"}, 1234)
    assert "VIRTUAL_ENV" not in env and "PYTHONPATH" not in env
    assert env["PATH"].startswith("/usr/sbin:/usr/bin")
    assert env["SOURCE_DATE_EPOCH"] == "1234"
    assert "noautodbgsym" in env["DEB_BUILD_OPTIONS"]


def test_build_environment_leaves_out_a_calling_makes_variables() -> None:
    """A CI job's `make release` running microdeploy: its jobserver and flags are not debian/rules' own."""
    env = build_environment({"MAKEFLAGS": " -j8 --jobserver-auth=fifo:/tmp/GMfifo1", "MFLAGS": "-j8",
                             "MAKELEVEL": "1", "HOME": "/root"}, 1234)
    assert not {"MAKEFLAGS", "MFLAGS", "MAKELEVEL"} & set(env) and env["HOME"] == "/root"


def test_dpkg_buildpackage_argv_and_failure_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The exact dpkg-buildpackage command; a failure quotes the lines that say why, and nothing else runs."""
    monkeypatch.setattr("microdeploy.build.dpkg.require_tools", lambda *tools: None)
    runner = FakeRunner({"dpkg-buildpackage": (2, "noise\nERROR: No matching distribution found for nope\nmore")})
    with pytest.raises(MicrodeployError) as info:
        dpkg_buildpackage(tmp_path / "tree", {}, 1234, runner)
    assert runner.calls == [("dpkg-buildpackage", "--rules-target=binary", "--no-sign", "--jobs=auto")]
    assert "No matching distribution found for nope" in info.value.message
    assert "noise" not in info.value.message
    assert info.value.exit_code == 1


@pytest.mark.parametrize("failure", [
    # uv, building MLflow 3.18.0: its pin was not on the index yet.
    "    error: No solution found when resolving dependencies\n      cause: Because there is no version of "
    "mlflow-tracing==3.18.0 and mlflow==3.18.0 depends on mlflow-tracing==3.18.0, we can conclude that "
    "mlflow==3.18.0 cannot be used.\n",
    # pip, the same.
    "ERROR: Could not find a version that satisfies the requirement mlflow-tracing==3.18.0 (from mlflow) (from "
    "versions: 3.17.0, 3.17.1, 3.17.2)\nERROR: No matching distribution found for mlflow-tracing==3.18.0\n",
])
def test_a_requirement_with_no_release_on_the_index_is_named_with_the_index_to_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: str
) -> None:
    """No release of a pinned requirement on the indexes: the hint names it and the indexes the installer uses,
    not "fix the project's dependencies" (a public app's pins are not the user's to fix)."""
    monkeypatch.setattr("microdeploy.build.dpkg.require_tools", lambda *tools: None)
    with pytest.raises(MicrodeployError) as info:
        dpkg_buildpackage(tmp_path / "tree", {}, 1234, FakeRunner({"dpkg-buildpackage": (2, failure)}))
    assert info.value.hint is not None and info.value.hint.startswith(
        "No release of mlflow-tracing==3.18.0 is on the package indexes the installer uses: point it at an index "
        "that has one (UV_INDEX_URL or PIP_INDEX_URL")


def test_a_resolution_that_fails_within_a_lock_names_the_lock_to_write_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """uv's words when pyproject.toml asks for what the lock's pins exclude: the hint says to lock again, as a
    pylock.toml cannot be told stale before; without a lock, the plain hint."""
    monkeypatch.setattr("microdeploy.build.dpkg.require_tools", lambda *tools: None)
    conflict = ("error: No solution found when resolving dependencies\n  cause: Because you require click<8.2 and "
                "click==8.5.1, we can conclude that your requirements are unsatisfiable.\n")
    hints = []
    for lock in ("pylock.toml", None):
        with pytest.raises(MicrodeployError) as info:
            dpkg_buildpackage(tmp_path / "tree", {}, 1234, FakeRunner({"dpkg-buildpackage": (2, conflict)}), lock=lock)
        hints.append(info.value.hint)
    assert hints == [
        "Fix the project's dependencies so that the installer (uv or pip) can resolve them within what pylock.toml "
        "pins: if pyproject.toml changed since, lock again and commit pylock.toml",
        "Fix the project's dependencies so that the installer (uv or pip) can resolve them"]


def test_unmet_build_dependencies_are_the_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """dpkg-buildpackage checks the build dependencies first; when they are unmet, its line and the apt hint are
    the error, and nothing more is made."""
    monkeypatch.setattr("microdeploy.build.dpkg.require_tools", lambda *tools: None)
    unmet = "dpkg-checkbuilddeps: error: Unmet build dependencies: libpq-dev"
    runner = FakeRunner({"dpkg-buildpackage": (3, unmet)})
    with pytest.raises(MicrodeployError) as info:
        dpkg_buildpackage(tmp_path / "tree", {}, 1234, runner)
    assert info.value.message.startswith("dpkg-buildpackage failed")
    assert "Unmet build dependencies: libpq-dev" in info.value.message
    assert info.value.hint is not None and info.value.hint.startswith("Install the missing build dependencies")
    assert runner.calls == [("dpkg-buildpackage", "--rules-target=binary", "--no-sign", "--jobs=auto")]


def test_a_version_git_cannot_give_in_the_copy_says_what_to_set(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """setuptools-scm (or hatch-vcs) finding no git above the project's copy: its line, and the variable to set."""
    monkeypatch.setattr("microdeploy.build.dpkg.require_tools", lambda *tools: None)
    failure = ("noise\n      LookupError: setuptools-scm was unable to detect version for /tmp/microdeploy-x.\n"
               "uv-pip: uv pip install failed with exit status 1")
    with pytest.raises(MicrodeployError) as info:
        dpkg_buildpackage(tmp_path / "tree", {}, 1234, FakeRunner({"dpkg-buildpackage": (2, failure)}))
    assert "setuptools-scm was unable to detect version" in info.value.message
    assert info.value.hint is not None and "SETUPTOOLS_SCM_PRETEND_VERSION" in info.value.hint
    assert info.value.exit_code == 1


@pytest.mark.parametrize("failure", [
    # uv, building wikmd 1.10.6 for trixie (Python 3.13): lxml 5.1.0 has no cp313 wheel.
    "    error: Failed to build `lxml==5.1.0`\n      cause: The build backend returned an error\n"
    "             Error: Please make sure the libxml2 and libxslt development packages are installed.\n",
    # pip (no uv on the build host), the same dependency.
    "  Error: Please make sure the libxml2 and libxslt development packages are installed.\n"
    "  ERROR: Failed building wheel for lxml\nFailed to build lxml\n",
    # uv, mysqlclient 2.2 (it has no Linux wheel) without libmariadb-dev: no header named, pkg-config's words.
    "  x Failed to build `mysqlclient==2.2.7`\n      Command 'pkg-config --exists mysqlclient' returned non-zero "
    "exit status 1.\n      Exception: Can not find valid pkg-config name.\n",
    # mysqlclient 2.1, the same.
    "  x Failed to build `mysqlclient==2.1.1`\n      /bin/sh: 1: mysql_config: not found\n"
    "      OSError: mysql_config not found\n",
])
def test_a_dependency_built_from_source_names_the_build_depends_to_give(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: str
) -> None:
    """A dependency without a wheel for the release's Python fails to build from source: the hint names it and
    where its build's Debian packages go."""
    monkeypatch.setattr("microdeploy.build.dpkg.require_tools", lambda *tools: None)
    with pytest.raises(MicrodeployError) as info:
        dpkg_buildpackage(tmp_path / "tree", {}, 1234, FakeRunner({"dpkg-buildpackage": (2, failure)}))
    assert info.value.message.startswith("dpkg-buildpackage failed (exit status 2):")
    assert info.value.hint is not None and info.value.hint.endswith(
        " has no wheel for the release's Python and was built from source: give the Debian packages its build "
        "needs (the -dev packages its error names) with --build-depends or build_depends, or pin a version of it "
        "that has a wheel")


@pytest.mark.parametrize(("failure", "named"), [
    # uv, building FlaskBB 2.0.2 (bookworm): its requirements.txt pins markupsafe==1.0, whose setup.py imports
    # setuptools.Feature (gone since setuptools 46).
    ("    error: Failed to build `markupsafe==1.0`\n      cause: The build backend returned an error\n"
     "      cause: Call to `setuptools.build_meta:__legacy__.get_requires_for_build_wheel` failed (exit status: 1)\n"
     "             ImportError: cannot import name 'Feature' from 'setuptools' (/root/.cache/uv/s/__init__.py)\n",
     "markupsafe 1.0"),
    # uv, building opencve 1.5.0 (bookworm): psycopg2-binary==2.8.4 predates Python 3.11's C API; its headers were
    # found.
    ("    error: Failed to build `psycopg2-binary==2.8.4`\n      cause: The build backend returned an error\n"
     "             psycopg/psycopgmodule.c:920:36: error: lvalue required as left operand of assignment\n"
     "             error: Command '['x86_64-linux-gnu-gcc', '-c', 'psycopg/psycopgmodule.c']' returned non-zero exit "
     "status 1.\n", "psycopg2-binary 2.8.4"),
])
def test_a_dependency_too_old_to_build_for_the_release_is_told_to_take_a_newer_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: str, named: str
) -> None:
    """A pinned dependency whose code no longer builds (not a header or tool its build lacks): the hint names the
    pin and says to require a version with a wheel, not to give -dev packages that would not help."""
    monkeypatch.setattr("microdeploy.build.dpkg.require_tools", lambda *tools: None)
    with pytest.raises(MicrodeployError) as info:
        dpkg_buildpackage(tmp_path / "tree", {}, 1234, FakeRunner({"dpkg-buildpackage": (2, failure)}))
    assert info.value.hint is not None and info.value.hint.startswith(
        f"{named} has no wheel for the release's Python, and its code no longer builds from source")
    assert "-dev packages" not in info.value.hint


@pytest.mark.parametrize(("failure", "project"), [
    # uv, building fava 1.30.16 for bookworm: its hatch build hook imports typing.override (Python 3.12) or
    # typing_extensions, which its build-system.requires does not list. uv names the source tree.
    ("    error: Failed to build `fava @ file:///tmp/microdeploy-fava.1/fava/src-project`\n"
     "      cause: The build backend returned an error\n"
     "             ModuleNotFoundError: No module named 'typing_extensions'\n", None),
    # pip (no uv on the build host): the project's name says which distribution it is.
    ("  ModuleNotFoundError: No module named 'typing_extensions'\n"
     "  ERROR: Failed building wheel for fava\nFailed to build fava\n", "Fava"),
])
def test_the_projects_own_failed_build_is_not_taken_for_a_dependencys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: str, project: str | None
) -> None:
    """The project's own build failing (its build backend's error) is the project's to fix, not a dependency
    without a wheel: the hint says so, and names neither --build-depends nor a pin."""
    monkeypatch.setattr("microdeploy.build.dpkg.require_tools", lambda *tools: None)
    with pytest.raises(MicrodeployError) as info:
        dpkg_buildpackage(tmp_path / "tree", {}, 1234, FakeRunner({"dpkg-buildpackage": (2, failure)}),
                          project=project)
    assert "No module named 'typing_extensions'" in info.value.message
    assert info.value.hint is not None and info.value.hint.startswith(
        "fava is the project itself: its build backend failed (its error is above). Fix the project's build: a "
        "module the build imports belongs in pyproject.toml's build-system.requires")
    assert "--build-depends" not in info.value.hint


def test_any_other_failure_names_the_debug_option_where_it_is_taken(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """--debug is microdeploy's own option, before the command: the hint writes it there (`microdeploy build
    --debug` is refused by click)."""
    monkeypatch.setattr("microdeploy.build.dpkg.require_tools", lambda *tools: None)
    failure = "dh_strip: error: strip returned exit code 1"
    with pytest.raises(MicrodeployError) as info:
        dpkg_buildpackage(tmp_path / "tree", {}, 1234, FakeRunner({"dpkg-buildpackage": (2, failure)}))
    assert info.value.hint == "Run `microdeploy --debug build ...` and read the full dpkg-buildpackage output"


def test_relevant_lines_fall_back_to_the_tail() -> None:
    """With no recognisable error line, the end of the log is quoted."""
    assert relevant_lines("a\nb\nc", limit=2) == "    b\n    c"


def test_copy_source_leaves_out_only_the_roots_build_litter(tmp_path: Path) -> None:
    """build/, dist/ and caches at the root stay behind; below the root everything is copied."""
    project = tmp_path / "project"
    for relative in ("pkg/static/dist/app.js", "pkg/build/__init__.py", "pkg/node_modules/x.js",
                     "pkg/venv/keep.txt", "build/lib/old.py", "dist/old.whl", ".git/HEAD", "setup.py"):
        (project / relative).parent.mkdir(parents=True, exist_ok=True)
        (project / relative).write_text("x")
    assert copy_source(project, tmp_path / "copy") == []
    copied = sorted(str(path.relative_to(tmp_path / "copy")) for path in (tmp_path / "copy").rglob("*")
                    if path.is_file())
    assert copied == ["pkg/build/__init__.py", "pkg/node_modules/x.js", "pkg/static/dist/app.js",
                      "pkg/venv/keep.txt", "setup.py"]


def test_copy_source_names_what_it_cannot_copy_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A FIFO below the root is left out and named in a single warning."""
    project = tmp_path / "project"
    (project / "pkg").mkdir(parents=True)
    (project / "setup.py").write_text("")
    os.mkfifo(project / "pkg" / "pipe")
    with caplog.at_level(logging.WARNING):
        assert copy_source(project, tmp_path / "copy") == ["pkg/pipe"]
    assert [record.getMessage() for record in caplog.records] == [
        "left out of the package (neither file, directory nor symlink): pkg/pipe"
    ]
    assert (tmp_path / "copy" / "setup.py").is_file()


def test_the_copyright_holders_are_the_authors_the_project_names(tmp_path: Path) -> None:
    """[project].authors (name and email, either alone), else an unpacked sdist's Author and Author-email, on one
    line: a name with a newline or a control character cannot start another debian/copyright field."""
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "shop"\nauthors = [{name = "Ann Example", email = "ann@example.org"}, {name = "Bob"},'
        ' {email = "carol@example.org"}, {name = "Eve\\nLicense: MIT\\u0007"}]\n')
    assert license.project_authors(read_pyproject(tmp_path)) == (
        "Ann Example <ann@example.org>, Bob, carol@example.org, Eve License: MIT")
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "shop"\n')
    assert license.project_authors(read_pyproject(tmp_path)) == ""
    (tmp_path / "PKG-INFO").write_text("Metadata-Version: 2.1\nName: shop\nAuthor: Dan\n"
                                       "Author-email: Dan Example <dan@example.org>\n")
    assert license.project_authors(read_pyproject(tmp_path)) == "Dan Example <dan@example.org>"
    (tmp_path / "PKG-INFO").write_text("Metadata-Version: 2.1\nName: shop\nAuthor: UNKNOWN\n")
    assert license.project_authors(read_pyproject(tmp_path)) == ""
    # setuptools' author and author_email: the address alone in Author-email (supysonic's PKG-INFO).
    (tmp_path / "PKG-INFO").write_text("Metadata-Version: 2.1\nName: shop\nAuthor: Alban F\u00e9ron\n"
                                       "Author-email: alban@example.org\n")
    assert license.project_authors(read_pyproject(tmp_path)) == "Alban F\u00e9ron <alban@example.org>"
    (tmp_path / "PKG-INFO").write_text("Metadata-Version: 2.1\nName: shop\nAuthor: Ann, Bob\n"
                                       "Author-email: ann@example.org, bob@example.org\n")
    assert license.project_authors(read_pyproject(tmp_path)) == "Ann, Bob, ann@example.org, bob@example.org"


def test_the_upstream_name_is_the_projects_own_spelling(tmp_path: Path) -> None:
    """debian/copyright's Upstream-Name: [project].name as written, else an sdist's PKG-INFO Name (a setup.py
    project's, changedetection.io's), printable; "" when the project names itself nowhere (the package's then)."""
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "Orders_API"\n')
    assert license.upstream_name(read_pyproject(tmp_path)) == "Orders_API"
    (tmp_path / "pyproject.toml").unlink()
    assert license.upstream_name(read_pyproject(tmp_path)) == ""
    (tmp_path / "PKG-INFO").write_text("Metadata-Version: 2.1\nName: changedetection.io\nVersion: 0.60.10\n")
    assert license.upstream_name(read_pyproject(tmp_path)) == "changedetection.io"


def test_a_name_of_a_package_installed_here_is_refused_unless_it_is_a_service(tmp_path: Path) -> None:
    """dpkg's files list says what is installed: a package that is not a microdeploy service (no
    /usr/share/NAME/gunicorn.conf.py) refuses its name, exit 2; the service itself, installed here, does not."""
    from microdeploy.validate import check_not_a_system_package

    (tmp_path / "dpkg.list").write_text("/usr/bin/dpkg\n/usr/share/doc/dpkg\n")
    (tmp_path / "libfoo1:amd64.list").write_text("/usr/lib/x86_64-linux-gnu/libfoo.so.1\n")
    (tmp_path / "orders-api.list").write_text("/opt/venvs/orders-api\n/usr/share/orders-api/gunicorn.conf.py\n")
    for name in ("dpkg", "libfoo1"):
        with pytest.raises(MicrodeployError, match=f"{name} is a package installed on this machine") as raised:
            check_not_a_system_package(name, tmp_path)
        assert raised.value.exit_code == 2
    check_not_a_system_package("orders-api", tmp_path)
    check_not_a_system_package("billing-api", tmp_path)
    with pytest.raises(MicrodeployError):
        check_not_a_system_package("dpkg")  # this machine's own dpkg


@pytest.mark.parametrize("conflict", [
    # uv, building pytaku 0.7.0 (gunicorn = "^20" in its [tool.poetry.dependencies]).
    "uv-pip: uv pip install --python venv/bin/python pytaku-0.7.0-py3-none-any.whl gunicorn>=21.2\n"
    "error: No solution found when resolving dependencies\n  cause: Because only pytaku==0.7.0 is available and "
    "pytaku==0.7.0 depends on gunicorn>=20,<21, we can conclude that all versions of pytaku depend on "
    "gunicorn>=20,<21.\n         And because you require gunicorn>=21.2 and pytaku, we can conclude that your "
    "requirements are unsatisfiable.\n",
    # pip, the same.
    "ERROR: Cannot install gunicorn>=21.2 and pytaku==0.7.0 because these package versions have conflicting "
    "dependencies.\nThe conflict is caused by:\n    The user requested gunicorn>=21.2\n    pytaku 0.7.0 depends on "
    "gunicorn<21 and >=20\nERROR: ResolutionImpossible: for help visit https://pip.pypa.io\n",
])
def test_a_project_that_excludes_the_wsgi_server_microdeploy_installs_is_told_why_it_needs_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, conflict: str
) -> None:
    """A project pinned to gunicorn 20: the hint says where the gunicorn>=21.2 it did not ask for comes from and
    why no older one will do; the command line that names it is no conflict (the plain hint then)."""
    monkeypatch.setattr("microdeploy.build.dpkg.require_tools", lambda *tools: None)
    with pytest.raises(MicrodeployError) as info:
        dpkg_buildpackage(tmp_path / "tree", {}, 1234, FakeRunner({"dpkg-buildpackage": (2, conflict)}))
    assert info.value.hint == (
        "The service's unit runs gunicorn, and microdeploy installs gunicorn>=21.2, which the project's own "
        "requirement on gunicorn excludes: gunicorn before 21 imports pkg_resources, which setuptools 82 and later "
        "no longer have, and would not start. Allow gunicorn>=21.2 in the project's dependencies")
    other = ("uv-pip: uv pip install --python venv/bin/python app.whl gunicorn>=21.2\nerror: No solution found when "
             "resolving dependencies\n  cause: Because you require click<8.2 and click==8.5.1, we can conclude that "
             "your requirements are unsatisfiable.\n")
    with pytest.raises(MicrodeployError) as info:
        dpkg_buildpackage(tmp_path / "tree", {}, 1234, FakeRunner({"dpkg-buildpackage": (2, other)}))
    assert info.value.hint == "Fix the project's dependencies so that the installer (uv or pip) can resolve them"


@pytest.mark.parametrize(("module", "found"), [
    # flaskcode 0.0.8's cli.py: `app` is a local of its factory and of its command, never the module's.
    ("def create_flask_app():\n    app = Flask(__name__)\n    return app\n\n\ndef main():\n"
     "    app = create_flask_app()\n    app.run()\n", False),
    ("class Factory:\n    app = None\n", False),
    ("apps = [app for app in range(3)]\n", False),
    ("handler = lambda app: app\n", False),
    ("try:\n    from shop.wsgi import app\nexcept ImportError:\n    app = None\n", True),
    ("import os\nif os.environ.get('X'):\n    app = 1\nelse:\n    app = 2\n", True),
    ("with open('/dev/null') as app:\n    pass\n", True),
    ("for app in range(1):\n    pass\n", True),
    ("app = None\n\n\ndef init():\n    global app\n    app = object()\n", True),
    ("def init():\n    global app\n    app = object()\n", True),
    ("if (app := object()):\n    pass\n", True),
    ("[(app := n) for n in range(1)]\n", True),
    ("from shop.wsgi import *\n", True),
    ("def __getattr__(name):\n    return object()\n", True),
])
def test_check_app_takes_the_names_the_module_binds_not_its_functions_locals(
    tmp_path: Path, module: str, found: bool
) -> None:
    """The app must be a name of the module itself: a local of a function or a class attribute is not one (gunicorn
    would fail to load it on the host); one bound in an if, try, with or for block, or declared global, is."""
    (tmp_path / "site.py").write_text(module)
    if found:
        source.check_app(tmp_path, "site:app")
        return
    with pytest.raises(MicrodeployError) as caught:
        source.check_app(tmp_path, "site:app")
    assert caught.value.exit_code == 2 and "site defines no 'app'" in str(caught.value)


@pytest.mark.parametrize("failure", [
    # uv
    "    error: Couldn't parse requirement in `requirements.txt` at position 6\n"
    "      cause: Expected one of `@`, `(`, `<`, `=`, `>`, `~`, `!`, `;`, found `i`\n",
    # pip 23 (Debian 12's, when no uv is on the build host)
    "ERROR: Invalid requirement: 'this is not a requirement !!!' (from line 2 of requirements.txt)\n",
    # pip 26: the reason, the line and a caret, then where
    "ERROR: Invalid requirement: 'this is not a requirement !!!': Expected end or semicolon (after name and no "
    "valid version specifier)\n    this is not a requirement !!!\n         ^ (from line 2 of requirements.txt)\n",
])
def test_a_requirements_line_that_is_no_requirement_is_bad_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: str
) -> None:
    """The installer refusing a line of the project's requirements file: exit 2, the file named."""
    monkeypatch.setattr("microdeploy.build.dpkg.require_tools", lambda *tools: None)
    with pytest.raises(MicrodeployError) as info:
        dpkg_buildpackage(tmp_path / "tree", {}, 1234, FakeRunner({"dpkg-buildpackage": (2, failure)}))
    assert info.value.exit_code == 2
    assert "the project's requirements.txt holds a line that is not a requirement" in info.value.message
