"""Hostile values for `microdeploy puppet-data`: every option and key refused whole, no data file written."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.hostile import SERVICE_FLAGS, assert_refused, cases, ids, invoke, service, tree

FLAGS = {
    **SERVICE_FLAGS,
    "--env": ("production", ()),
    "--node": ("app1.example.org", ()),
    "--version": ("1.4.0-1", ()),
    "--apt-location": ("http://apt.example.org/microdeploy/", ()),
    "--output": ("services.yaml", ("hiera", "dpkg", "quotes")),
}
CASES = cases(FLAGS)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scaffolded service and a control repository (control-repo init) side by side."""
    root = tmp_path_factory.mktemp("puppet")
    service(root)
    made = invoke(["control-repo", "init", str(root / "control")])
    assert made.exit_code == 0, made.output
    return root


@pytest.mark.parametrize(("flag", "kind", "value"), CASES, ids=ids(CASES))
def test_every_option_refuses_hostile_values(workspace: Path, flag: str, kind: str, value: str) -> None:
    """Exit 2, one message, and neither the control repository nor an output file changed."""
    project = workspace / "svc"
    before = tree(workspace)
    if flag == "--output":
        args = ["--output", str(workspace / value)]
    elif flag in ("--env", "--node"):
        args = ["--control-repo", str(workspace / "control"), flag, value]
    elif flag == "--apt-location":
        key = workspace / "key.asc"
        args = [flag, value, "--apt-key", str(key)]
    else:
        args = ["--control-repo", str(workspace / "control"), flag, value]
    if flag not in ("--version",):
        args += ["--version", "1.4.0-1"]
    result = invoke(["puppet-data", str(project), *args])
    assert_refused(result, before, tree(workspace))
