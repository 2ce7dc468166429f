"""Hostile values for `microdeploy control-repo init`: nothing is made for a refused value."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.hostile import assert_refused, cases, ids, invoke, tree

FLAGS = {
    "--module-url": ("https://git.example.org/puppet-microdeploy.git", ()),
    "--module-ref": ("v0.1.0", ()),
    "--remote": ("git@git.example.org:ops/control.git", ()),
    "--basedir": ("/etc/puppetlabs/code/environments", ()),
    "--cachedir": ("/var/cache/r10k", ()),
    "DIR": ("control", ("hiera", "dpkg", "quotes")),
}
CASES = cases(FLAGS)


@pytest.mark.parametrize(("flag", "kind", "value"), CASES, ids=ids(CASES))
def test_every_option_refuses_hostile_values(tmp_path: Path, flag: str, kind: str, value: str) -> None:
    """Exit 2, one message, no repository (the Puppetfile and r10k.yaml would carry the value)."""
    target = tmp_path / (value if flag == "DIR" else "control")
    extra = [] if flag == "DIR" else [flag, value]
    if flag == "--module-ref":
        extra = ["--module-url", "https://git.example.org/puppet-microdeploy.git", *extra]
    result = invoke(["control-repo", "init", str(target), *extra])
    assert_refused(result, {}, tree(tmp_path))
