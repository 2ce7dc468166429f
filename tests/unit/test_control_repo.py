"""`microdeploy control-repo init`: the rendered control repository, its git commit, and bad input."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from ruamel.yaml import YAML

from microdeploy.cli import main
from microdeploy.controlrepo import (
    GIT_IDENTITY,
    MODULE_PARTS,
    ControlRepoOptions,
    context,
    init_control_repo,
    module_version,
)
from microdeploy.errors import MicrodeployError
from microdeploy.hierarepo import data_file, owned_files
from microdeploy.process import Result
from microdeploy.resources import template_folder

FILES = [
    ".gitignore", "Puppetfile", "README.md", "data/common.yaml", "environment.conf", "hiera.yaml",
    "manifests/site.pp", "r10k.yaml", "site-modules/profile/manifests/microdeploy.pp",
    "site-modules/role/manifests/microservice_host.pp",
]
MODULE = template_folder("puppet")
VENDORED = sorted(f"site-modules/microdeploy/{path.relative_to(MODULE)}" for part in MODULE_PARTS
                  for path in ([MODULE / part] if (MODULE / part).is_file() else (MODULE / part).rglob("*"))
                  if path.is_file())


def invoke(*args: str) -> click.testing.Result:
    """Run `control-repo init` in-process."""
    return CliRunner().invoke(main, ["control-repo", "init", *args])


def git(repo: Path, *args: str) -> str:
    """A git query in `repo`, without the user's configuration."""
    env = {"PATH": os.environ["PATH"], "HOME": str(repo), "GIT_CONFIG_NOSYSTEM": "1"}
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
                          env=env).stdout


@pytest.fixture(autouse=True)
def no_git_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fake HOME without .gitconfig, as on a fresh CI agent."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for variable in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL", "EMAIL"):
        monkeypatch.delenv(variable, raising=False)


def test_init_renders_the_control_repository_and_commits_it_on_production(tmp_path: Path) -> None:
    """init writes every template, commits them all on branch production, and leaves a clean work tree."""
    dest = tmp_path / "control"
    result = invoke(str(dest), "--module-url", "https://git.example.com/puppet-microdeploy.git",
                    "--module-ref", "v0.1.0", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert sorted(report["files"]) == FILES
    assert report["branch"] == "production"
    assert git(dest, "rev-parse", "--abbrev-ref", "HEAD").strip() == "production"
    assert git(dest, "rev-parse", "HEAD").strip() == report["commit"]
    assert sorted(git(dest, "ls-files").split()) == FILES
    assert git(dest, "status", "--porcelain") == ""
    assert git(dest, "log", "--format=%an <%ae>").strip() == "microdeploy <microdeploy@localhost>"
    assert not list(tmp_path.glob(".control.*"))  # no staging directory left


def test_the_module_is_vendored_by_default_and_the_puppetfile_lists_none(tmp_path: Path) -> None:
    """Without --module-url the module is committed under site-modules/microdeploy, byte for byte, specs left out."""
    dest = tmp_path / "control"
    result = invoke(str(dest), "--json")
    assert result.exit_code == 0, result.output
    assert sorted(json.loads(result.stdout)["files"]) == sorted(FILES + VENDORED)
    assert sorted(git(dest, "ls-files").split()) == sorted(FILES + VENDORED)
    for name in VENDORED:
        assert (dest / name).read_bytes() == (MODULE / name.removeprefix("site-modules/microdeploy/")).read_bytes()
    assert "LICENSE" in {Path(name).name for name in VENDORED}
    assert not (dest / "site-modules/microdeploy/spec").exists()
    puppetfile = (dest / "Puppetfile").read_text()
    assert "mod " not in puppetfile and "control-repo update-module" in puppetfile
    assert puppetfile.endswith("\n")


def test_update_module_replaces_the_vendored_copy(tmp_path: Path) -> None:
    """update-module restores the shipped module over an old or edited copy and drops files it no longer has."""
    dest = tmp_path / "control"
    assert invoke(str(dest)).exit_code == 0
    vendored = dest / "site-modules/microdeploy"
    (vendored / "manifests/init.pp").write_text("# old\n")
    (vendored / "manifests/gone.pp").write_text("# removed upstream\n")
    metadata = json.loads((vendored / "metadata.json").read_text())
    (vendored / "metadata.json").write_text(json.dumps({**metadata, "version": "0.0.9"}))
    commit_all(dest, "An old module, edited")
    result = CliRunner().invoke(main, ["control-repo", "update-module", str(dest)])
    assert result.exit_code == 0, result.output
    assert f"from 0.0.9 to {module_version()}" in result.stdout
    assert (vendored / "manifests/init.pp").read_bytes() == (MODULE / "manifests/init.pp").read_bytes()
    assert not (vendored / "manifests/gone.pp").exists()
    assert git(dest, "diff", "--stat", "HEAD~1") == ""  # back to exactly the module init committed
    assert sorted(path.name for path in vendored.parent.iterdir()) == ["microdeploy", "profile", "role"]


def commit_all(repo: Path, message: str) -> None:
    """Commit every change of `repo`, as its owner would."""
    git(repo, "add", "--all")
    git(repo, "-c", "user.name=Ops", "-c", "user.email=ops@example.org", "commit", "--quiet", "-m", message)


def test_update_module_refuses_changes_that_are_not_committed(tmp_path: Path) -> None:
    """A local fix in the vendored module, or a file of someone's own in it, that git does not have would be lost
    for good by the replacement: exit 2, the names in the message, every file as it was."""
    dest = tmp_path / "control"
    assert invoke(str(dest)).exit_code == 0
    vendored = dest / "site-modules/microdeploy"
    (vendored / "manifests/init.pp").write_text("# my local fix\n")
    (vendored / "files_local.txt").write_text("local\n")
    before = snapshot(dest)
    result = CliRunner().invoke(main, ["control-repo", "update-module", str(dest)])
    assert result.exit_code == 2, result.output
    assert "has changes that are not committed (2: " in result.stderr
    assert "manifests/init.pp" in result.stderr and "files_local.txt" in result.stderr
    assert snapshot(dest) == before


def test_update_module_refuses_a_module_git_cannot_give_back(tmp_path: Path) -> None:
    """Outside a git work tree nothing tells what the module's files were, and a symbolic link is not the copy
    init vendors: exit 2 and nothing changed, for each."""
    dest = tmp_path / "control"
    assert invoke(str(dest)).exit_code == 0
    shutil.rmtree(dest / ".git")
    before = snapshot(dest)
    result = CliRunner().invoke(main, ["control-repo", "update-module", str(dest)])
    assert result.exit_code == 2, result.output
    assert "cannot tell whether site-modules/microdeploy" in result.stderr and "git checkout" in result.stderr
    assert snapshot(dest) == before
    linked = tmp_path / "linked"
    assert invoke(str(linked)).exit_code == 0
    (linked / "site-modules/microdeploy").rename(tmp_path / "module")
    (linked / "site-modules/microdeploy").symlink_to(tmp_path / "module")
    result = CliRunner().invoke(main, ["control-repo", "update-module", str(linked)])
    assert result.exit_code == 2, result.output
    assert "is a symbolic link" in result.stderr
    assert (linked / "site-modules/microdeploy").is_symlink()


def test_update_module_that_fails_midway_leaves_the_old_module_whole(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A full disk during the copy: the module in place stays as it was (it was deleted first, then half
    copied, and the next run found no module), and nothing is left beside it."""
    dest = tmp_path / "control"
    assert invoke(str(dest)).exit_code == 0
    before = snapshot(dest)
    copied = []

    def full_disk(source: Path, target: Path) -> None:
        copied.append(target)
        if len(copied) > 3:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(target))
        shutil.copyfile(source, target)

    monkeypatch.setattr("microdeploy.controlrepo.shutil.copy2", full_disk)
    result = CliRunner().invoke(main, ["control-repo", "update-module", str(dest)])
    assert result.exit_code != 0
    assert len(copied) == 4
    assert snapshot(dest) == before
    assert git(dest, "status", "--porcelain", "--ignored") == ""


def snapshot(tree: Path) -> dict[str, bytes]:
    """Every file below `tree` (git's own aside) with its bytes, and every link with its target."""
    return {str(path.relative_to(tree)): os.readlink(path).encode() if path.is_symlink() else path.read_bytes()
            for path in sorted(tree.rglob("*")) if ".git" not in path.parts and (path.is_file() or path.is_symlink())}


def test_update_module_without_a_vendored_module_is_bad_input(tmp_path: Path) -> None:
    """A repository that takes the module from a Puppetfile URL is told to bump the :ref instead (exit 2)."""
    dest = tmp_path / "control"
    assert invoke(str(dest), "--module-url", "file:///srv/git/microdeploy").exit_code == 0
    result = CliRunner().invoke(main, ["control-repo", "update-module", str(dest)])
    assert result.exit_code == 2
    assert "has no vendored module" in result.stderr and "bump its :ref" in result.stderr


def test_puppetfile_pins_the_module_from_git(tmp_path: Path) -> None:
    """The Puppetfile takes the microdeploy module from --module-url at --module-ref, and nothing from the Forge."""
    dest = tmp_path / "control"
    assert invoke(str(dest), "--module-url", "file:///srv/git/microdeploy", "--module-ref", "0123abc").exit_code == 0
    puppetfile = (dest / "Puppetfile").read_text()
    assert "mod 'microdeploy',\n  :git => 'file:///srv/git/microdeploy',\n  :ref => '0123abc'\n" in puppetfile
    assert "forge " not in puppetfile


def test_r10k_yaml_points_at_the_repository_itself_by_default(tmp_path: Path) -> None:
    """r10k.yaml's source is the new repository (file://) unless --remote says otherwise; basedir and cachedir apply."""
    dest = tmp_path / "control"
    assert invoke(str(dest), "--basedir", "/srv/envs", "--cachedir", "/srv/r10k-cache").exit_code == 0
    config = YAML(typ="safe").load((dest / "r10k.yaml").read_text())
    assert config == {"cachedir": "/srv/r10k-cache",
                      "sources": {"control": {"remote": f"file://{dest}", "basedir": "/srv/envs"}}}
    other = tmp_path / "other"
    assert invoke(str(other), "--remote", "git@git.example.com:ops/control.git").exit_code == 0
    config = YAML(typ="safe").load((other / "r10k.yaml").read_text())
    assert config["sources"]["control"]["remote"] == "git@git.example.com:ops/control.git"
    assert config["sources"]["control"]["basedir"] == "/etc/puppetlabs/code/environments"


def test_module_ref_defaults_to_the_shipped_modules_version_tag(tmp_path: Path) -> None:
    """With --module-url but no --module-ref the v<version> tag of the shipped module is pinned."""
    values = context(tmp_path / "c", ControlRepoOptions(module_url="file:///m"))
    assert values["module_ref"] == f"v{module_version()}"
    assert context(tmp_path / "c", ControlRepoOptions())["module_url"] is None


def test_hiera_yaml_declares_the_levels_puppet_data_writes(tmp_path: Path) -> None:
    """The rendered hiera.yaml is Hiera 5 with node, environment and common levels, in that order."""
    dest = tmp_path / "control"
    assert invoke(str(dest)).exit_code == 0
    config = YAML(typ="safe").load((dest / "hiera.yaml").read_text())
    assert config["version"] == 5
    assert [level.get("path") or level["globs"] for level in config["hierarchy"]] == [
        "nodes/%{trusted.certname}.yaml", "environments/%{environment}.yaml", "common.yaml",
        ["services/*.yaml", "microdeploy.yaml"]]
    assert owned_files(dest) == (dest / "data/services", dest / "data/microdeploy.yaml")
    assert data_file(dest, node="app1.example.com")[0] == dest / "data/nodes/app1.example.com.yaml"
    assert data_file(dest, env="production")[0] == dest / "data/environments/production.yaml"
    assert data_file(dest)[0] == dest / "data/common.yaml"


def test_role_profile_and_site_manifest(tmp_path: Path) -> None:
    """site.pp gives nodes the microservice-host role, which includes the profile, which includes the module."""
    dest = tmp_path / "control"
    assert invoke(str(dest)).exit_code == 0
    assert "'role::microservice_host'" in (dest / "manifests/site.pp").read_text()
    role = (dest / "site-modules/role/manifests/microservice_host.pp").read_text()
    assert "class role::microservice_host {\n  include profile::microdeploy\n}\n" in role
    profile = (dest / "site-modules/profile/manifests/microdeploy.pp").read_text()
    assert "class profile::microdeploy {\n  include microdeploy\n}\n" in profile
    assert (dest / "environment.conf").read_text().count("modulepath = site-modules:modules:$basemodulepath") == 1


def test_git_runs_with_a_fixed_identity_and_exact_commands(tmp_path: Path) -> None:
    """git is called through the runner with these argv lists, and the commit carries the fixed author env."""
    calls: list[tuple[tuple[str, ...], object]] = []

    def runner(argv: Sequence[str], **kwargs: object) -> Result:
        calls.append((tuple(argv), kwargs.get("env")))
        return Result(tuple(argv), 0, "c0ffee\n" if "rev-parse" in argv else "", "")

    dest = tmp_path / "control"
    result = init_control_repo(dest, ControlRepoOptions(module_url="file:///m", module_ref="v1"), runner=runner)
    assert result.commit == "c0ffee"
    staging = calls[0][0][-1]
    assert [argv for argv, _ in calls] == [
        ("git", "init", "--quiet", "--initial-branch=production", staging),
        ("git", "-C", staging, "add", "--all"),
        ("git", "-C", staging, "-c", "commit.gpgsign=false", "commit", "--quiet", "--no-verify",
         "-m", "Control repository made by microdeploy control-repo init"),
        ("git", "-C", staging, "rev-parse", "HEAD"),
    ]
    assert calls[2][1] == GIT_IDENTITY
    assert (dest / "Puppetfile").is_file()


def test_a_failing_git_leaves_nothing_behind(tmp_path: Path) -> None:
    """If git fails, the destination is not created and no staging directory is left."""

    def runner(argv: Sequence[str], **_: object) -> Result:
        raise MicrodeployError("`git commit` failed")

    with pytest.raises(MicrodeployError):
        init_control_repo(tmp_path / "control", ControlRepoOptions(), runner=runner)
    assert list(tmp_path.iterdir()) == [tmp_path / "home"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--module-url", "https://x.example/m.git'; system('id')"], "invalid --module-url"),
        (["--module-url", "not a url"], "invalid --module-url"),
        (["--module-url", "file:///m", "--module-ref", "v1..2"], "invalid --module-ref 'v1..2'"),
        (["--module-url", "file:///m", "--module-ref", "-rf"], "invalid --module-ref '-rf'"),
        (["--module-url", "file:///m", "--module-ref", "a b"], "invalid --module-ref"),
        (["--remote", "/no/scheme"], "invalid --remote"),
        (["--basedir", "relative/envs"], "invalid --basedir 'relative/envs'"),
        (["--cachedir", "/with space"], "invalid --cachedir"),
        (["--module-ref", "v1"], "--module-ref needs --module-url"),
    ],
)
def test_bad_options_exit_2_and_create_nothing(tmp_path: Path, args: list[str], message: str) -> None:
    """URLs, refs and paths that would break the Puppetfile or r10k.yaml exit 2 before anything is written."""
    result = invoke(str(tmp_path / "control"), *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "hint: " in result.stderr
    assert not (tmp_path / "control").exists()


def test_a_non_empty_directory_or_a_file_is_refused(tmp_path: Path) -> None:
    """init never writes into a directory that has files, nor over a file (exit 2, untouched)."""
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine\n")
    result = invoke(str(busy))
    assert result.exit_code == 2 and "already exists and is not an empty directory" in result.stderr
    assert [p.name for p in busy.iterdir()] == ["keep.txt"]
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert invoke(str(afile)).exit_code == 2
    assert afile.read_text() == "x"


@pytest.mark.parametrize("target", ["elsewhere", "nowhere"])
def test_a_symbolic_link_is_refused(tmp_path: Path, target: str) -> None:
    """A link, to a directory or dangling, is refused before git runs (exit 2, nothing made on either side): it was
    "Not a directory: '.dangl.raj4572d.staging'" (exit 1), after a commit in the staging directory."""
    (tmp_path / "elsewhere").mkdir()
    link = tmp_path / "link"
    link.symlink_to(tmp_path / target)
    before = sorted(path.name for path in tmp_path.iterdir())
    result = invoke(str(link))
    assert result.exit_code == 2, result.output
    assert f"{link} is a symbolic link" in result.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == before
    assert list((tmp_path / "elsewhere").iterdir()) == []


def test_an_empty_directory_is_used(tmp_path: Path) -> None:
    """An existing empty directory becomes the control repository."""
    empty = tmp_path / "empty"
    empty.mkdir()
    assert invoke(str(empty)).exit_code == 0
    assert (empty / ".git").is_dir() and (empty / "hiera.yaml").is_file()
