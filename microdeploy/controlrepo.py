"""`microdeploy control-repo`: an r10k control repository from the `r10k/` templates, with the module in it.

r10k installs a Puppetfile module from the root of a git repository, and
microdeploy's module is a folder (`puppet/`) of a larger project. So `init`
vendors the module: a copy of it is committed under
`site-modules/microdeploy`, which environment.conf's modulepath reads, and
`r10k deploy environment` deploys the repository as it is. `update-module`
replaces that copy with the module of the installed microdeploy. Teams that
keep the module in a repository of its own pass `--module-url` instead, and
the Puppetfile pins it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from microdeploy import validate
from microdeploy.errors import bad_input
from microdeploy.fsutil import process_umask, replace_directory, staged_directory
from microdeploy.process import Runner, run
from microdeploy.render import render_tree
from microdeploy.resources import template_folder

BRANCH = "production"
DEFAULT_BASEDIR = "/etc/puppetlabs/code/environments"
DEFAULT_CACHEDIR = "/var/cache/r10k"
VENDORED = Path("site-modules") / "microdeploy"
# What a module release holds (puppet/ without its specs): the files Puppet reads and the documents.
MODULE_PARTS = ("manifests", "functions", "types", "templates", "data", "hiera.yaml", "metadata.json", "README.md",
                "REFERENCE.md", "CHANGELOG.md", "LICENSE")

# The commit is made without the user's git configuration, so it works on a
# fresh CI agent; the author says which tool made it.
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "microdeploy",
    "GIT_AUTHOR_EMAIL": "microdeploy@localhost",
    "GIT_COMMITTER_NAME": "microdeploy",
    "GIT_COMMITTER_EMAIL": "microdeploy@localhost",
}

# Values end up inside single-quoted Ruby (Puppetfile) and YAML (r10k.yaml)
# strings: no quotes, backslashes, spaces or control characters; no braces,
# which no URL holds unencoded and which would read as a Puppet or Hiera
# interpolation (`%{...}`) to anyone copying the values on.
_URL = validate.rule(r"(?:[a-z][a-z0-9+.-]*://|[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:)[^\s'\"\\{}]+",
                     "a git URL such as https://git.example.com/puppet-microdeploy.git", 500)
_PATH = validate.rule(r"/[^\s'\"\\{}]*", "an absolute path without spaces, quotes or braces", 500)


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
    module_url: str | None
    module_ref: str | None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly view for --json."""
        return {
            "path": str(self.path), "branch": self.branch, "commit": self.commit,
            "files": [str(path.relative_to(self.path)) for path in self.files],
            "module_url": self.module_url, "module_ref": self.module_ref,
        }


def module_version() -> str:
    """The version of the shipped module, from its metadata.json."""
    metadata = json.loads((template_folder("puppet") / "metadata.json").read_text(encoding="utf-8"))
    return str(metadata["version"])


def context(dest: Path, options: ControlRepoOptions) -> dict[str, str | None]:
    """The template context, every value checked (pure but for reading the module's metadata)."""
    module_url = options.module_url
    module_ref = options.module_ref
    remote = options.remote or f"file://{dest.absolute()}"
    if module_url is None and module_ref is not None:
        raise bad_input("--module-ref needs --module-url",
                        hint="Pass --module-url with the module's git repository, or leave out --module-ref "
                             "to vendor the module under site-modules/microdeploy")
    if module_url is not None:
        module_ref = module_ref or f"v{module_version()}"
        validate.check(_URL, "--module-url", module_url, "the command line")
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
    """The directory must be new or empty: init never mixes its files with others, nor writes through a link."""
    if dest.is_symlink():
        raise bad_input(f"{dest} is a symbolic link", hint="Pass the directory itself, or a new path")
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise bad_input(f"{dest} already exists and is not an empty directory",
                        hint="Pass a new directory to control-repo init")


def init_control_repo(dest: Path, options: ControlRepoOptions, runner: Runner = run) -> ControlRepoResult:
    """Render the control repository into `dest`, vendor the module unless a URL is given, commit on `production`."""
    check_destination(dest)
    values = context(dest, options)
    with staged_directory(dest) as staging:
        files = render_tree(template_folder("r10k"), staging, values)
        if values["module_url"] is None:
            files += vendor_module(staging / VENDORED)
        runner(["git", "init", "--quiet", f"--initial-branch={BRANCH}", str(staging)])
        runner(["git", "-C", str(staging), "add", "--all"])
        runner(["git", "-C", str(staging), "-c", "commit.gpgsign=false", "commit", "--quiet", "--no-verify",
                "-m", "Control repository made by microdeploy control-repo init"], env=GIT_IDENTITY)
        commit = runner(["git", "-C", str(staging), "rev-parse", "HEAD"]).stdout.strip()
        relative = [path.relative_to(staging) for path in files]
    return ControlRepoResult(dest, BRANCH, commit, tuple(dest / path for path in relative),
                             values["module_url"], values["module_ref"])


def vendor_module(dest: Path) -> list[Path]:
    """Copy the module that ships with this microdeploy into `dest` (new, or empty); the files copied."""
    source = template_folder("puppet")
    dest.mkdir(parents=True, exist_ok=True)
    for part in MODULE_PARTS:
        if (source / part).is_dir():
            shutil.copytree(source / part, dest / part)
        else:
            shutil.copy2(source / part, dest / part)
    return sorted(path for path in dest.rglob("*") if path.is_file())


def update_module(control_repo: Path, runner: Runner = run) -> tuple[str | None, str]:
    """Replace the vendored module of `control_repo` with this microdeploy's; the old and the new version.

    Only a module whose every file git has committed is replaced: the
    replacement is whole, so an edit or a file of someone's own in it would
    be lost for good.
    """
    vendored = control_repo / VENDORED
    if vendored.is_symlink():
        raise bad_input(f"{vendored} is a symbolic link (to {os.readlink(vendored)}), not the copy that "
                        "control-repo init vendors", hint="Update the module where the link points instead "
                        "(nothing was changed)")
    metadata = vendored / "metadata.json"
    if not metadata.is_file():
        raise bad_input(f"{control_repo} has no vendored module ({VENDORED}/metadata.json)",
                        hint="Pass a control repository made by `microdeploy control-repo init`; with a module "
                             "repository of your own, bump its :ref in the Puppetfile instead")
    check_committed(control_repo, runner)
    try:
        old: str | None = str(json.loads(metadata.read_text(encoding="utf-8"))["version"])
    except (ValueError, KeyError, TypeError):
        old = None
    replace_module(vendored)
    return old, module_version()


def check_committed(control_repo: Path, runner: Runner = run) -> None:
    """Refuse (exit 2) a vendored module with changes git has not committed, ignored files included."""
    status = runner(["git", "-C", str(control_repo), "status", "--porcelain", "--untracked-files=all",
                     "--ignored=matching", "--", str(VENDORED)], check=False)
    if status.returncode != 0:
        reason = (status.stderr.strip().splitlines() or ["git status failed"])[-1]
        raise bad_input(f"cannot tell whether {VENDORED} in {control_repo} has changes of its own: {reason}",
                        hint="Run update-module in the control repository's git checkout: it replaces the "
                             "module's files, and only git can give back what they were (nothing was changed)")
    changed = [line[3:] for line in status.stdout.splitlines() if line.strip()]
    if changed:
        raise bad_input(f"{VENDORED} in {control_repo} has changes that are not committed ({len(changed)}: "
                        f"{', '.join(changed[:3])}{', ...' if len(changed) > 3 else ''}); update-module would "
                        "replace them", hint="Commit them first (git keeps a fix of your own that the new module "
                        f"lacks), or discard them (git checkout -- {VENDORED}; git clean -fdx -- {VENDORED}); "
                        "nothing was changed")


def replace_module(vendored: Path) -> None:
    """Put this microdeploy's module at `vendored` by renames: it is copied beside first, so that a failure (a
    full disk, Ctrl-C) leaves the old module whole."""
    new = Path(tempfile.mkdtemp(prefix=f".{vendored.name}.", suffix=".new", dir=vendored.parent))
    try:
        # mkdtemp makes it 0700; the module's directory follows the umask as a copy's would.
        os.chmod(new, 0o777 & ~process_umask())
        vendor_module(new)
        replace_directory(new, vendored)
    except BaseException:
        shutil.rmtree(new, ignore_errors=True)
        raise
