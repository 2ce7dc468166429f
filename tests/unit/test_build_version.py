"""Debian versions: PEP 440 spelt for dpkg, pre-releases past a tag, CI revisions."""

from __future__ import annotations

import pytest
from debian.debian_support import Version as DebianVersion

from microdeploy.build.release.version import GitState, debian_revision, debian_upstream, upstream_version
from microdeploy.errors import MicrodeployError


@pytest.mark.parametrize(
    ("pep440", "debian"),
    [("1.4.0", "1.4.0"), ("1.4.0rc1", "1.4.0~rc1"), ("2.0a3", "2.0~a3"), ("1.0.post2", "1.0.post2"),
     ("1.0.dev4", "1.0~~dev4"), ("1.0a1.dev2", "1.0~a1~dev2"), ("1!2.0", "1:2.0"), ("1.0+local.7", "1.0+local.7")],
)
def test_pep440_to_debian(pep440: str, debian: str) -> None:
    """Pre-releases get '~' so dpkg sorts them before the release."""
    assert debian_upstream(pep440) == debian


def test_dpkg_order_matches_release_order() -> None:
    """The Debian spellings sort the way the PEP 440 versions do."""
    ordered = ["1.0.dev4", "1.0a1.dev2", "1.0a1", "1.0rc1", "1.0", "1.0.post1.dev1", "1.0.post1", "1.1"]
    spelt = [DebianVersion(debian_upstream(v)) for v in ordered]
    assert spelt == sorted(spelt)


def test_commits_past_a_tag_sort_between_it_and_the_next_release() -> None:
    """Three commits past v1.4.0 give 1.4.1~dev3.g<sha>: above 1.4.0, below 1.4.1, rising."""
    third = upstream_version("1.4.0", GitState("1.4.0", 3, "abc1234"))
    fourth = upstream_version("1.4.0", GitState("1.4.0", 4, "0ffee00"))
    assert third == "1.4.1~dev3.gabc1234"
    assert DebianVersion("1.4.0") < DebianVersion(third) < DebianVersion(fourth) < DebianVersion("1.4.1")


def test_bumped_project_version_is_the_upcoming_release() -> None:
    """If the project already says 2.0.0 past tag v1.4.0, pre-releases lead to 2.0.0."""
    assert upstream_version("2.0.0", GitState("1.4.0", 2, "abc1234")) == "2.0.0~dev2.gabc1234"


def test_on_the_tag_or_outside_git_the_version_is_plain() -> None:
    """A tagged commit, or no git at all, gives the project's own version."""
    assert upstream_version("1.4.0", GitState("1.4.0", 0, "abc1234")) == "1.4.0"
    assert upstream_version("1.4.0", None) == "1.4.0"
    assert upstream_version(None, GitState("3.1", 0, "abc1234")) == "3.1"


def test_no_version_anywhere_is_bad_input() -> None:
    """Without a project version or a tag the build asks for --version."""
    with pytest.raises(MicrodeployError) as info:
        upstream_version(None, None)
    assert info.value.exit_code == 2 and "--version" in (info.value.hint or "")


def test_revision_from_flag_then_build_number() -> None:
    """--revision wins over BUILD_NUMBER, which wins over 1; increasing numbers sort upward."""
    assert debian_revision("5", "9") == "5"
    assert debian_revision(None, "41") == "41"
    assert debian_revision(None, None) == "1"
    assert debian_revision(None, "") == "1"  # an empty BUILD_NUMBER is none
    assert DebianVersion("1.0-9") < DebianVersion("1.0-10")


@pytest.mark.parametrize("bad", ["x/y", "-1", "1 2", "a1", ""])
def test_bad_revisions_are_refused(bad: str) -> None:
    """A revision dpkg would reject is bad input."""
    with pytest.raises(MicrodeployError) as info:
        debian_revision(bad, None)
    assert info.value.exit_code == 2


def test_a_debian_version_on_the_command_line_is_refused_with_the_flags_to_use() -> None:
    """--version 1.4.0-1 (a Debian version, as puppet-data and deploy take it) would build 1.4.0.post1: refused,
    with --version and --revision to use; a PEP 440 local version with a '-' (1.0+local-1) is PEP 440's."""
    from microdeploy import validate

    with pytest.raises(MicrodeployError) as info:
        validate.upstream_version("version", "1.4.0-1", "--version")
    assert info.value.exit_code == 2
    assert info.value.hint == "Pass the upstream version and the revision: --version 1.4.0 --revision 1"
    assert validate.upstream_version("version", "1.0+local-1", "--version") == "1.0+local-1"
    assert validate.upstream_version("version", "1.4.0-1", "[project].version") == "1.4.0-1"  # the project's own
