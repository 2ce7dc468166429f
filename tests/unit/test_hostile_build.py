"""Hostile values for `microdeploy build`: refused before any work (exit 2), nothing written, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.hostile import SERVICE_FLAGS, assert_refused, cases, ids, invoke, service, tree, values

FLAGS = {
    **SERVICE_FLAGS,
    "--version": ("1.4.0", ()),
    "--revision": ("42", ()),
    "--out": ("dist", ("hiera", "dpkg", "quotes")),  # a path may hold these, not control characters
    "--compression-level": ("5", ()),
}
CASES = cases(FLAGS)
ENVIRONMENT = {"BUILD_NUMBER": "42", "SOURCE_DATE_EPOCH": "1700000000"}
# An environment cannot hold a NUL (the C strings end there): every other kind.
ENV_CASES = [(name, kind, value) for name, good in ENVIRONMENT.items() for kind, value in values(good, ("nul",))]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One scaffolded service for the module (a refused build never changes it), its caches beside it (to see that
    none is written)."""
    return service(tmp_path_factory.mktemp("build"))


@pytest.mark.parametrize(("flag", "kind", "value"), CASES, ids=ids(CASES))
def test_every_flag_refuses_hostile_values(project: Path, flag: str, kind: str, value: str) -> None:
    """Each build flag with a hostile value: exit 2 before anything is built or written."""
    root = project.parent
    before = tree(root)
    extra = [flag, str(root / value) if flag == "--out" else value]
    result = invoke(["build", str(project), *extra], env={"MICRODEPLOY_CACHE_DIR": str(root / "cache")})
    assert_refused(result, before, tree(root))


@pytest.mark.parametrize(("name", "kind", "value"), ENV_CASES, ids=ids(ENV_CASES))
def test_every_environment_variable_refuses_hostile_values(project: Path, name: str, kind: str, value: str) -> None:
    """BUILD_NUMBER and SOURCE_DATE_EPOCH are validated like flags."""
    root = project.parent
    before = tree(root)
    result = invoke(["build", str(project)], env={name: value, "MICRODEPLOY_CACHE_DIR": str(root / "cache")})
    assert_refused(result, before, tree(root), name)


@pytest.mark.parametrize(("kind", "value"), values("bookworm", ("nul",)))
def test_deb_distribution_refuses_hostile_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str,
                                                 value: str) -> None:
    """DEB_DISTRIBUTION (read where os-release names no codename) must name a release microdeploy knows."""
    from microdeploy import dists
    from microdeploy.errors import EXIT_BAD_INPUT, MicrodeployError

    (tmp_path / "os-release").write_text('NAME="Debian GNU/Linux"\n')
    monkeypatch.setenv("DEB_DISTRIBUTION", value)
    with pytest.raises(MicrodeployError) as info:
        dists.chosen([], os_release=tmp_path / "os-release")
    assert info.value.exit_code == EXIT_BAD_INPUT and repr(value)[:20] in info.value.message
