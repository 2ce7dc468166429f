"""`microdeploy control-repo init`: an r10k control repository from the `r10k/` templates, as a git repository."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from microdeploy.errors import bad_input
from microdeploy.fsutil import staged_directory
from microdeploy.process import Runner, run
from microdeploy.render import render_tree
from microdeploy.resources import template_folder

BRANCH = "production"
DEFAULT_BASEDIR = "/etc/puppetlabs/code/environments"
DEFAULT_CACHEDIR = "/var/cache/r10k"

# The commit is made without the user's git configuration, so it works on a
# fresh CI agent; the author says which tool made it.
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "microdeploy",
    "GIT_AUTHOR_EMAIL": "microdeploy@localhost",
    "GIT_COMMITTER_NAME": "microdeploy",
    "GIT_COMMITTER_EMAIL": "microdeploy@localhost",
}

# Values end up inside single-quoted Ruby (Puppetfile) and YAML (r10k.yaml)
# strings: no quotes, backslashes, spaces or control characters.
_SAFE_VALUE_RE = re.compile(r"^[^\s'\"\\\x00-\x1f\x7f]+$")
_URL_RE = re.compile(r"^(?:[a-z][a-z0-9+.-]*://|[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:)[^\s'\"\\]+$")
# git check-ref-format, narrowed: a branch, a tag or a commit id.
_REF_RE = re.compile(r"^(?!.*\.\.)(?!.*//)[A-Za-z0-9_][A-Za-z0-9._/+-]*(?<![./])$")


@dataclass(frozen=True)
class ControlRepoOptions:
    """What `control-repo init` was asked to make."""

    module_url: str | None = None
    module_ref: str | None = None
    remote: str | None = None
    basedir: str = DEFAULT_BASEDIR
    cachedir: str = DEFAULT_CACHEDIR


@dataclass(frozen=True)
class ControlRepoResult:
    """The repository made."""

    path: Path
    branch: str
    commit: str
    files: tuple[Path, ...]
    module_url: str
    module_ref: str

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly view for --json."""
        return {
            "path": str(self.path), "branch": self.branch, "commit": self.commit,
            "files": [str(path.relative_to(self.path)) for path in self.files],
            "module_url": self.module_url, "module_ref": self.module_ref,
        }


def module_defaults() -> tuple[str, str]:
    """The module's source URL and release tag, from the shipped module's metadata.json."""
    metadata = json.loads((template_folder("puppet") / "metadata.json").read_text(encoding="utf-8"))
    return str(metadata["source"]), f"v{metadata['version']}"


def context(dest: Path, options: ControlRepoOptions) -> dict[str, str]:
    """The template context, every value checked (pure but for reading the module's metadata)."""
    default_url, default_ref = module_defaults()
    module_url = options.module_url or default_url
    module_ref = options.module_ref or default_ref
    remote = options.remote or f"file://{dest.absolute()}"
    _check(module_url, "--module-url", _URL_RE, "a git URL such as https://git.example.com/puppet-microdeploy.git")
    _check(module_ref, "--module-ref", _REF_RE, "a tag, branch or commit id, such as v0.1.0")
    _check(remote, "--remote", _URL_RE, "the git URL of this control repository")
    for value, flag in ((options.basedir, "--basedir"), (options.cachedir, "--cachedir")):
        if not value.startswith("/"):
            raise bad_input(f"invalid {flag} {value!r}", hint=f"Use an absolute path for {flag}")
        _check(value, flag, _SAFE_VALUE_RE, "an absolute path without spaces or quotes")
    return {"module_url": module_url, "module_ref": module_ref, "remote": remote,
            "basedir": options.basedir, "cachedir": options.cachedir}


def _check(value: str, flag: str, pattern: re.Pattern[str], allowed: str) -> None:
    if not pattern.match(value) or not _SAFE_VALUE_RE.match(value):
        raise bad_input(f"invalid {flag} {value!r}", hint=f"Use {allowed}")


def check_destination(dest: Path) -> None:
    """The directory must be new or empty: init never mixes its files with others."""
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise bad_input(f"{dest} already exists and is not an empty directory",
                        hint="Pass a new directory to control-repo init")


def init_control_repo(dest: Path, options: ControlRepoOptions, runner: Runner = run) -> ControlRepoResult:
    """Render the control repository into `dest` and commit it on a `production` branch."""
    check_destination(dest)
    values = context(dest, options)
    with staged_directory(dest) as staging:
        files = render_tree(template_folder("r10k"), staging, values)
        runner(["git", "init", "--quiet", f"--initial-branch={BRANCH}", str(staging)])
        runner(["git", "-C", str(staging), "add", "--all"])
        runner(["git", "-C", str(staging), "-c", "commit.gpgsign=false", "commit", "--quiet", "--no-verify",
                "-m", "Control repository made by microdeploy control-repo init"], env=GIT_IDENTITY)
        commit = runner(["git", "-C", str(staging), "rev-parse", "HEAD"]).stdout.strip()
        relative = [path.relative_to(staging) for path in files]
    return ControlRepoResult(dest, BRANCH, commit, tuple(dest / path for path in relative),
                             values["module_url"], values["module_ref"])
