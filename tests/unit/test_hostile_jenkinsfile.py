"""Hostile values for `microdeploy jenkinsfile`: every option refused whole, no Jenkinsfile written."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.hostile import SERVICE_FLAGS, assert_refused, cases, ids, invoke, service, tree

FLAGS = {
    **SERVICE_FLAGS,
    "--agent-label": ("microdeploy", ()),
    "--release-branch": ("main", ()),
    "--repo": ("/srv/apt/microdeploy", ()),
    "--signing-key-credentials": ("microdeploy-signing-key", ()),
    "--signing-passphrase-credentials": ("microdeploy-signing-passphrase", ()),
    "--control-repo": ("git@git.example.org:ops/control-repo.git", ()),
    "--control-repo-branch": ("production", ()),
    "--control-repo-credentials": ("microdeploy-control-repo", ()),
    "--deploy-host": ("app1.example.org", ()),
    "--deploy-credentials": ("microdeploy-deploy-ssh", ()),
    "--notify-email": ("team@example.org", ()),
    "--timeout": ("60", ()),
    "--keep-builds": ("20", ()),
    "--output": ("Jenkinsfile", ("hiera", "dpkg", "quotes")),
}
CASES = cases(FLAGS)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One scaffolded service for the module."""
    return service(tmp_path_factory.mktemp("jenkins"))


@pytest.mark.parametrize(("flag", "kind", "value"), CASES, ids=ids(CASES))
def test_every_option_refuses_hostile_values(project: Path, flag: str, kind: str, value: str) -> None:
    """Exit 2, one message, and neither the requested Jenkinsfile nor anything else written."""
    out = project.parent / "out"
    out.mkdir(exist_ok=True)
    before = tree(project.parent)
    target = str(out / value) if flag == "--output" else str(out / "Jenkinsfile")
    extra = [] if flag == "--output" else [flag, value]
    result = invoke(["jenkinsfile", str(project), "--output", target, *extra])
    assert_refused(result, before, tree(project.parent))
