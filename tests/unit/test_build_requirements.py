"""The build tree's requirements files: no editable install, no relative path, not the project twice."""

from __future__ import annotations

from pathlib import Path

from microdeploy.build.debiandir.requirements import deploy_requirements


def test_the_project_itself_is_left_out_and_editables_become_plain_absolute_requirements(tmp_path: Path) -> None:
    """`-e .` in all its spellings goes (the wheel installs the project); other editables lose -e; relative paths
    become absolute (pip reads them from its working directory); names, options and comments stay."""
    project = tmp_path / "src-project"
    (project / "vendor" / "tools").mkdir(parents=True)
    (project / "requirements.txt").write_text(
        "# pinned\nflask==3.1.3 ; python_version >= '3.11'\n-e .\n--editable=./vendor/tools\n-e .[postgres]\n"
        "--editable .\n.\n-e file:./\n-e git+https://example.org/lib.git#egg=lib\n-r more/extra.txt\n"
        "--index-url https://pypi.org/simple\n"
    )
    (project / "more").mkdir()
    (project / "more" / "extra.txt").write_text("-e ..\r\nsix\r\n../vendor/tools\r\n")
    changed = deploy_requirements(project)
    assert (project / "requirements.txt").read_text() == (
        f"# pinned\nflask==3.1.3 ; python_version >= '3.11'\n{project}/vendor/tools\n{project}[postgres]\n"
        "git+https://example.org/lib.git#egg=lib\n-r more/extra.txt\n--index-url https://pypi.org/simple\n"
    )
    assert (project / "more" / "extra.txt").read_text() == f"six\n{project}/vendor/tools\n"  # CRLF read as pip does
    assert changed == ["-e .", "--editable=./vendor/tools", "-e .[postgres]", "--editable .", ".", "-e file:./",
                       "-e git+https://example.org/lib.git#egg=lib", "-e ..", "../vendor/tools"]


def test_files_without_such_lines_or_outside_the_copy_are_not_written(tmp_path: Path) -> None:
    """A requirements file with names only is not rewritten; one included from outside the project is not ours."""
    project = tmp_path / "src-project"
    project.mkdir()
    (tmp_path / "common.txt").write_text("-e ./lib\n")
    (project / "requirements.txt").write_text("flask\n-r ../common.txt\n")
    before = (project / "requirements.txt").stat().st_mtime_ns
    assert deploy_requirements(project) == []
    assert (project / "requirements.txt").stat().st_mtime_ns == before
    assert (tmp_path / "common.txt").read_text() == "-e ./lib\n"
    assert deploy_requirements(tmp_path / "no-such-project") == []


def test_a_continued_line_for_the_project_stays_as_an_absolute_path(tmp_path: Path) -> None:
    """`. \\` continued by hash lines cannot be dropped alone: it stays, as an absolute path."""
    project = tmp_path / "p"
    project.mkdir()
    (project / "requirements.txt").write_text(".  \\\n    --hash=sha256:00\nsix\n")
    deploy_requirements(project)
    assert (project / "requirements.txt").read_text() == f"{project}  \\\n    --hash=sha256:00\nsix\n"
