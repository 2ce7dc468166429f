"""`microdeploy control-repo init`: an r10k control repository from the `r10k/` templates, as a git repository."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from microdeploy import validate
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
_URL = validate.rule(r"(?:[a-z][a-z0-9+.-]*://|[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:)[^\s'\"\\]+",
                     "a git URL such as https://git.example.com/puppet-microdeploy.git", 500)
_PATH = validate.rule(r"/[^\s'\"\\]*", "an absolute path without spaces or quotes", 500)


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
    validate.check(_URL, "--module-url", module_url, origin(options.module_url))
    validate.check(validate.GIT_REF, "--module-ref", module_ref, origin(options.module_ref))
    validate.check(_URL, "--remote", remote, origin(options.remote))
    validate.check(_PATH, "--basedir", options.basedir, "the command line")
    validate.check(_PATH, "--cachedir", options.cachedir, "the command line")
    return {"module_url": module_url, "module_ref": module_ref, "remote": remote,
            "basedir": options.basedir, "cachedir": options.cachedir}


def origin(given: str | None) -> str:
    """Where a value came from: the command line, or the default."""
    return "the default" if given is None else "the command line"


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
