"""The Puppet data step's git work is real: clone, commit, then push or open a merge request, against a bare repo.

`microdeploy puppet-data` itself is replaced by a shim that writes the data file
and records its arguments, so this tests the step's shell and git handling (the
command has its own tests): the exact arguments it is called with, the commit, the
push to the branch, GitLab's merge-request push options, and a re-run that
changes nothing.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from microdeploy.config import validate
from microdeploy.jenkins import JenkinsOptions, render_jenkinsfile
from tests.integration.test_jenkins_groovy import run_harness

pytestmark = pytest.mark.integration

TAG = {"BRANCH_NAME": "v1.4.0", "TAG_NAME": "v1.4.0", "BUILD_NUMBER": "3"}
VERSION = "1.4.0~rc1-3"
CREDENTIALS = ["microdeploy-signing-key", "microdeploy-signing-passphrase", "microdeploy-control-repo"]
SHIM = """#!/bin/sh
# Stand-in for `microdeploy puppet-data`: record the arguments, write the data file.
set -e
printf '%s\\n' "$@" > "$SHIM_LOG"
[ "$1" = puppet-data ] && [ "$2" = --control-repo ] && [ "$4" = --version ]
mkdir -p "$3/data"
printf 'microdeploy::services:\\n  orders-api:\\n    ensure: "%s"\\n' "$5" > "$3/data/common.yaml"
# Someone else pushes to the control repository while this build works (once).
if [ -n "$CONCURRENT_PUSH" ] && [ ! -e "$CONCURRENT_PUSH.done" ]; then
    touch "$CONCURRENT_PUSH.done"
    (
        git clone --quiet --branch production "$CONCURRENT_REPO" "$CONCURRENT_PUSH"
        cd "$CONCURRENT_PUSH"
        mkdir -p data
        echo "profile::motd: 'hello'" > "${CONCURRENT_FILE:-ops.yaml}"
        git add --all
        git -c user.name=ops -c user.email=ops@example.org commit --quiet -m "ops: motd"
        git push --quiet origin production
    )
fi
"""
# Records the push options a GitLab server would read to open the merge request.
PRE_RECEIVE = """#!/bin/sh
i=0
while [ "$i" -lt "${GIT_PUSH_OPTION_COUNT:-0}" ]; do
    eval "echo \\"\\$GIT_PUSH_OPTION_$i\\""
    i=$((i + 1))
done > "${PUSH_OPTIONS_LOG:-/dev/null}"
"""


def git(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def make_control_repo(root: Path) -> Path:
    """A bare control repository with a `production` branch and a hook that records push options."""
    bare = root / "control.git"
    git("init", "--quiet", "--bare", "--initial-branch", "production", str(bare))
    git("config", "receive.advertisePushOptions", "true", cwd=bare)
    hook = bare / "hooks/pre-receive"
    hook.write_text(PRE_RECEIVE)
    hook.chmod(0o755)
    seed = root / "seed"
    git("init", "--quiet", "--initial-branch", "production", str(seed))
    (seed / "Puppetfile").write_text("mod 'microdeploy', :git => 'file:///srv/git/microdeploy'\n")
    git("add", "Puppetfile", cwd=seed)
    git("-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "--quiet", "-m", "init", cwd=seed)
    git("push", "--quiet", str(bare), "production", cwd=seed)
    return bare


def puppet_step(root: Path, mode: str, control_repo: Path) -> dict[str, Any]:
    """The recorded Puppet data step of a tag build, for a control repository in `mode`."""
    config = validate({"name": ("orders-api", "NAME")})
    options = JenkinsOptions(control_repo=f"file://{control_repo}", control_repo_mode=mode)
    jenkinsfile = root / "Jenkinsfile"
    jenkinsfile.write_text(render_jenkinsfile(config, options))
    run = run_harness(root, [{"name": "tag", "file": str(jenkinsfile), "env": TAG, "credentials": CREDENTIALS,
                              "stdout": VERSION}])["tag"]
    (step,) = [e for e in run["events"] if e["type"] == "sh" and e["stage"] == "Puppet data"]
    return step


def run_step(step: dict[str, Any], workspace: Path, root: Path,
             extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    shim_dir = root / "shim"
    shim_dir.mkdir(exist_ok=True)
    (shim_dir / "microdeploy").write_text(SHIM)
    (shim_dir / "microdeploy").chmod(0o755)
    env = {**os.environ, **step["env"], "PATH": f"{shim_dir}:{os.environ['PATH']}",
           "SHIM_LOG": str(root / "shim.log"), "PUSH_OPTIONS_LOG": str(root / "push-options.log"),
           "GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z", "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z",
           **(extra_env or {})}
    return subprocess.run(["/bin/sh", "-xe", "-c", step["script"]], cwd=workspace, env=env, capture_output=True,
                          text=True, timeout=120, check=False)


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path, Path]:
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    return tmp_path, workspace, make_control_repo(tmp_path)


def test_push_mode_commits_the_version_to_the_branch(setup: tuple[Path, Path, Path]) -> None:
    """In push mode the step calls puppet-data with the built version and pushes one commit to `production`."""
    root, workspace, bare = setup
    step = puppet_step(root, "push", bare)
    done = run_step(step, workspace, root)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (root / "shim.log").read_text().splitlines() == [
        "puppet-data", "--control-repo", ".control-repo", "--version", VERSION]
    assert git("log", "--format=%s", "production", cwd=bare).splitlines() == [f"orders-api: release {VERSION}", "init"]
    assert f'ensure: "{VERSION}"' in git("show", "production:data/common.yaml", cwd=bare)
    assert (root / "push-options.log").read_text() == ""


def test_a_rejected_push_is_rebased_and_retried(setup: tuple[Path, Path, Path]) -> None:
    """When someone pushed meanwhile, the step rebases its pin onto their commit and pushes again."""
    root, workspace, bare = setup
    step = puppet_step(root, "push", bare)
    done = run_step(step, workspace, root, {"CONCURRENT_PUSH": str(root / "other"), "CONCURRENT_REPO": str(bare)})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "rejected" in done.stderr  # the first push really was refused
    assert git("log", "--format=%s", "production", cwd=bare).splitlines() == [
        f"orders-api: release {VERSION}", "ops: motd", "init"]
    assert git("show", "production:ops.yaml", cwd=bare) == "profile::motd: 'hello'\n"
    assert f'ensure: "{VERSION}"' in git("show", "production:data/common.yaml", cwd=bare)


def test_a_conflicting_concurrent_change_fails_the_step_and_pushes_nothing(setup: tuple[Path, Path, Path]) -> None:
    """If someone changed the same lines meanwhile, the rebase is aborted and the step fails with what to do."""
    root, workspace, bare = setup
    step = puppet_step(root, "push", bare)
    done = run_step(step, workspace, root, {"CONCURRENT_PUSH": str(root / "other"), "CONCURRENT_REPO": str(bare),
                                            "CONCURRENT_FILE": "data/common.yaml"})
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"the pin of orders-api {VERSION} conflicts with production; pin it by hand" in done.stderr
    assert git("log", "--format=%s", "production", cwd=bare).splitlines() == ["ops: motd", "init"]


def test_push_mode_twice_changes_nothing(setup: tuple[Path, Path, Path]) -> None:
    """Running the step again for the same version succeeds without a second commit."""
    root, workspace, bare = setup
    step = puppet_step(root, "push", bare)
    assert run_step(step, workspace, root).returncode == 0
    again = run_step(step, workspace, root)
    assert again.returncode == 0, again.stderr
    assert f"control repository already pins orders-api {VERSION}" in again.stdout
    assert len(git("log", "--format=%s", "production", cwd=bare).splitlines()) == 2


def test_merge_request_mode_pushes_a_topic_branch_with_options(setup: tuple[Path, Path, Path]) -> None:
    """In merge-request mode `production` is untouched; a topic branch arrives with GitLab's push options."""
    root, workspace, bare = setup
    step = puppet_step(root, "merge-request", bare)
    done = run_step(step, workspace, root)
    assert done.returncode == 0, done.stdout + done.stderr
    assert git("log", "--format=%s", "production", cwd=bare).splitlines() == ["init"]
    topic = "microdeploy/orders-api-1.4.0_rc1-3"
    assert git("log", "--format=%s", "-1", topic, cwd=bare).strip() == f"orders-api: release {VERSION}"
    assert (root / "push-options.log").read_text().splitlines() == [
        "merge_request.create", "merge_request.target=production", "merge_request.remove_source_branch"]


def test_unreachable_control_repo_fails_the_step(setup: tuple[Path, Path, Path]) -> None:
    """A control repository that cannot be cloned fails the step before anything is run."""
    root, workspace, _ = setup
    step = puppet_step(root, "push", root / "missing.git")
    done = run_step(step, workspace, root)
    assert done.returncode != 0
    assert not (root / "shim.log").exists()
