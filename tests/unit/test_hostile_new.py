"""Hostile values for `microdeploy new`: NAME, --dir, --port and the maintainer from the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.hostile import assert_refused, cases, ids, invoke, tree, values

FLAGS = {"NAME": ("orders-api", ()), "--dir": ("svc", ("hiera", "dpkg", "quotes")), "--port": ("8000", ())}
CASES = cases(FLAGS)
# An environment cannot hold a NUL.
ENV_CASES = [(name, kind, value) for name, good in (("DEBFULLNAME", "Jane Doe"), ("DEBEMAIL", "jane@example.org"))
             for kind, value in values(good, ("nul", "hiera", "very-long") if name == "DEBFULLNAME" else ("nul",))]


@pytest.mark.parametrize(("flag", "kind", "value"), CASES, ids=ids(CASES))
def test_every_argument_refuses_hostile_values(tmp_path: Path, flag: str, kind: str, value: str) -> None:
    """NAME, --dir and --port with a hostile value: exit 2, one message, no directory made."""
    args = {"NAME": "orders-api", "--dir": str(tmp_path / "svc")}
    if flag == "NAME":
        args["NAME"] = value
    elif flag == "--dir":
        args["--dir"] = str(tmp_path / value)
    before = tree(tmp_path)
    extra = ["--port", value] if flag == "--port" else []
    result = invoke(["new", args["NAME"], "--dir", args["--dir"], "--no-input", *extra])
    assert_refused(result, before, tree(tmp_path))


@pytest.mark.parametrize(("name", "kind", "value"), ENV_CASES, ids=ids(ENV_CASES))
def test_the_maintainer_from_the_environment_is_validated(tmp_path: Path, name: str, kind: str, value: str) -> None:
    """DEBFULLNAME/DEBEMAIL make the maintainer: a hostile one is refused, naming where it came from."""
    env = {"DEBFULLNAME": "Jane Doe", "DEBEMAIL": "jane@example.org", name: value}
    result = invoke(["new", "orders-api", "--dir", str(tmp_path / "svc"), "--no-input"], env=env)
    assert_refused(result, {}, tree(tmp_path), "DEBFULLNAME/DEBEMAIL")


@pytest.mark.parametrize("kind", ["symlink", "dangling-symlink", "unwritable"])
def test_a_destination_that_cannot_be_made_is_bad_input(tmp_path: Path, kind: str) -> None:
    """--dir that is a link, a dangling link, or under /proc: exit 2 and a message, not a traceback."""
    dest = tmp_path / "svc"
    if kind == "symlink":
        (tmp_path / "real").mkdir()
        dest.symlink_to(tmp_path / "real")
    elif kind == "dangling-symlink":
        dest.symlink_to(tmp_path / "nowhere")
    else:
        dest = Path("/proc/microdeploy-new/svc")
    before = tree(tmp_path)
    assert_refused(invoke(["new", "orders-api", "--dir", str(dest), "--no-input"]), before, tree(tmp_path))


def test_new_follows_the_umask(tmp_path: Path) -> None:
    """The service directory is made by the umask (0755 under 022), not mkdtemp's 0700."""
    import os

    old = os.umask(0o022)
    try:
        assert invoke(["new", "orders-api", "--dir", str(tmp_path / "svc"), "--no-input"]).exit_code == 0
    finally:
        os.umask(old)
    assert (tmp_path / "svc").stat().st_mode & 0o777 == 0o755
