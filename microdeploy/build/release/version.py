"""Debian versions of a service: upstream from the project and git, revision from CI."""

from __future__ import annotations

from dataclasses import dataclass

from packaging.version import InvalidVersion, Version

from microdeploy import validate
from microdeploy.errors import bad_input


@dataclass(frozen=True)
class GitState:
    """Where the commit stands relative to the last release tag."""

    tag_version: str | None
    commits_since_tag: int
    short_sha: str | None


def debian_upstream(version: str) -> str:
    """A PEP 440 version spelt so that dpkg sorts it the same way (pre-releases with '~')."""
    try:
        parsed = Version(version)
    except InvalidVersion:
        raise bad_input(f"invalid version {version!r}", hint="Use a PEP 440 version such as '1.4.0'") from None
    text = ".".join(str(part) for part in parsed.release)
    if parsed.pre is not None:
        text += f"~{parsed.pre[0]}{parsed.pre[1]}"
    if parsed.post is not None:
        text += f".post{parsed.post}"
    if parsed.dev is not None:
        # A dev release of a final version sorts before its pre-releases: 1.0.dev4 < 1.0a1,
        # so it needs '~~', which dpkg sorts below a single '~'.
        text += f"~dev{parsed.dev}" if parsed.pre is not None or parsed.post is not None else f"~~dev{parsed.dev}"
    if parsed.local is not None:
        text += f"+{parsed.local}"
    return f"{parsed.epoch}:{text}" if parsed.epoch else text


def next_patch(version: str) -> str:
    """The release after `version`: its patch level plus one."""
    release = [*Version(version).release, 0, 0]
    return f"{release[0]}.{release[1]}.{release[2] + 1}"


def upstream_version(project_version: str | None, git: GitState | None) -> str:
    """The upstream part: the project's version, or a pre-release past the last tag.

    Commits past the last release tag get `<next>~dev<N>.g<sha>`, which sorts
    after the tag and before the next release, and rises with every commit.
    """
    base = project_version or (git.tag_version if git else None)
    if base is None:
        raise bad_input(
            "cannot tell the version of the project: no --version, no [project].version, none from its "
            "build backend or PKG-INFO, and no release tag",
            hint="Pass --version, set [project].version, or tag a release (v1.0.0)",
        )
    if git is None or git.tag_version is None or git.commits_since_tag == 0 or is_vcs_version(base):
        return debian_upstream(base)
    tag = git.tag_version
    upcoming = base if Version(base) > Version(tag) else next_patch(tag)
    return f"{debian_upstream(upcoming)}~dev{git.commits_since_tag}.g{git.short_sha}"


def is_vcs_version(version: str) -> bool:
    """Whether a version already says how far it is past a release (setuptools-scm's 1.2.4.dev3+gabc1234)."""
    try:
        parsed = Version(version)
    except InvalidVersion:
        return False
    return parsed.dev is not None and parsed.local is not None


def debian_revision(revision: str | None, build_number: str | None) -> str:
    """The Debian revision: --revision, else the CI's BUILD_NUMBER, else 1. An empty --revision is refused (an
    unset variable in `--revision "$X"`), an empty BUILD_NUMBER is no build number."""
    if revision is not None:
        return validate.check(validate.DEBIAN_REVISION, "Debian revision", revision, "--revision")
    if build_number:
        return validate.check(validate.DEBIAN_REVISION, "Debian revision", build_number, "BUILD_NUMBER")
    return "1"


def full_version(upstream: str, revision: str) -> str:
    """UPSTREAM-REVISION."""
    return f"{upstream}-{revision}"
