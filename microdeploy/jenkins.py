"""`microdeploy jenkinsfile`: the declarative Jenkins pipeline that tests, builds and releases a service.

Three forms come from one pipeline template (jenkins/pipeline.groovy.j2):

- ``full``: a self-contained Jenkinsfile with this service's options baked in;
- ``one-line``: a Jenkinsfile that calls the shared library,
  ``microdeployPipeline(name: '...')``;
- ``library``: the shared library step itself, ``vars/microdeployPipeline.groovy``
  (checked in under jenkins/vars/, generated from the same template).

Every value is validated here and rendered as a quoted Groovy string literal;
the shell steps read values from the environment, so neither the service
configuration nor a flag can inject Groovy or shell.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from microdeploy import dists, validate
from microdeploy.config import ServiceConfig, load_config
from microdeploy.errors import bad_input
from microdeploy.fsutil import atomic_write, check_writable
from microdeploy.render import render_file
from microdeploy.resources import template_folder

FORMS = ("full", "one-line", "library")
# The first line of each form (Jenkinsfile.j2, Jenkinsfile-oneline.j2, library.groovy.j2), and of the
# scaffold's Jenkinsfile (the one-line form).
RENDERED_FIRST_LINE = re.compile(
    r"// (?:Jenkinsfile of \S+, rendered by `microdeploy jenkinsfile`|\S+ is tested, built and released by the "
    r"microdeploy shared library|microdeployPipeline: the microdeploy release pipeline)")
CONTROL_REPO_MODES = ("push", "merge-request")
LIBRARY_FILE = "vars/microdeployPipeline.groovy"

# Jenkins credential ids as its UI creates them: letters, digits, '.', '_', '-'.
CREDENTIAL_ID = validate.rule(r"[A-Za-z0-9][A-Za-z0-9._-]*", "a Jenkins credentials id: letters, digits, '.', '_', "
                              "'-' (as shown in Manage Jenkins » Credentials)", 128)
# A label expression: labels joined by &&, ||, ! and parentheses.
AGENT_LABEL = validate.rule(r"[A-Za-z0-9_.:()!&| -]+", "a Jenkins label expression: labels of letters, digits, "
                            "'_', '.', '-' joined by &&, ||, !")
REPO_PATH = validate.rule(r"/[A-Za-z0-9._/+-]*", "the absolute path of the APT repository on the Jenkins agent, "
                          "e.g. /srv/apt/microdeploy", 500)
# An ssh (user@host:path), https://, ssh:// or file:// git URL, or a local path.
GIT_URL = validate.rule(r"[A-Za-z0-9@:/._~+-]+", "a git URL such as git@git.example.org:ops/control-repo.git or "
                        "file:///srv/git/control-repo", 500)
HOST = validate.rule(r"(?!-)[A-Za-z0-9.-]{1,253}(?::[0-9]{1,5})?", "a host name or address, optionally with :PORT",
                     260)
# A file of the checked-out repository: a relative path that stays inside it.
WORKSPACE_FILE = validate.rule(r"(?!/)(?!.*(?:^|/)\.\.(?:/|$))[A-Za-z0-9._/+-]+",
                               "a file of the repository, as a relative path such as ci/check-setup.sh", 500)
EMAIL = validate.rule(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+", "an e-mail address such as team@example.org", 254)
GROOVY_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}


@dataclass(frozen=True)
class JenkinsOptions:
    """How the pipeline of a service runs: agents, branches, credentials, targets."""

    agent_label: str = "microdeploy"
    release_branch: str = "main"
    repo: str = "/srv/apt/microdeploy"
    signing_key_credentials: str = "microdeploy-signing-key"
    signing_passphrase_credentials: str = "microdeploy-signing-passphrase"
    control_repo: str | None = None
    control_repo_branch: str = "production"
    control_repo_mode: str = "push"
    control_repo_credentials: str = "microdeploy-control-repo"
    deploy_hosts: tuple[str, ...] = ()
    deploy_credentials: str = "microdeploy-deploy-ssh"
    notify_email: tuple[str, ...] = ()
    timeout_minutes: int = 60
    keep_builds: int = 20
    dists: tuple[str, ...] = ()  # the Debian releases to build for; none: the service's dist, else the agent's
    check_setup: str | None = None  # the Lint stage's `microdeploy check --setup`, a file of the repository


# The shared library's option names (camelCase, as Groovy code spells them).
LIBRARY_KEYS = {
    "agent_label": "agentLabel",
    "release_branch": "releaseBranch",
    "repo": "repo",
    "signing_key_credentials": "signingKeyCredentials",
    "signing_passphrase_credentials": "signingPassphraseCredentials",
    "control_repo": "controlRepo",
    "control_repo_branch": "controlRepoBranch",
    "control_repo_mode": "controlRepoMode",
    "control_repo_credentials": "controlRepoCredentials",
    "deploy_hosts": "deployHosts",
    "deploy_credentials": "deployCredentials",
    "notify_email": "notifyEmail",
    "timeout_minutes": "timeoutMinutes",
    "keep_builds": "keepBuilds",
    "dists": "dists",
    "check_setup": "checkSetup",
}


@dataclass(frozen=True)
class JenkinsfileResult:
    """What `jenkinsfile` produced: the text, and the file it went to (None for stdout)."""

    text: str
    path: Path | None
    form: str


def groovy_string(value: str) -> str:
    """Quote `value` as a single-quoted Groovy string literal: no interpolation, every escape explicit."""
    out = []
    for char in value:
        code = ord(char)
        if char == "\\":
            out.append("\\\\")
        elif char == "'":
            out.append("\\'")
        elif char == "$":
            # Harmless in single quotes, escaped anyway so a reader never wonders.
            out.append("\\$")
        elif char in GROOVY_ESCAPES:
            # Not \u000a: Groovy decodes \uXXXX before it lexes, so that would end the string.
            out.append(GROOVY_ESCAPES[char])
        elif code < 0x20 or code > 0x7E:
            # Other control and non-ASCII characters as \uXXXX (UTF-16 surrogates beyond the BMP):
            # the file stays ASCII and none of them can end the literal.
            data = char.encode("utf-16-be")
            out.extend(f"\\u{int.from_bytes(data[i:i + 2], 'big'):04x}" for i in range(0, len(data), 2))
        else:
            out.append(char)
    return "'" + "".join(out) + "'"


def check_options(options: JenkinsOptions) -> JenkinsOptions:
    """Refuse any option value that is not what Jenkins, git or ssh accept (exit status 2)."""
    _check("--agent-label", options.agent_label, AGENT_LABEL)
    for flag, branch in (("--release-branch", options.release_branch),
                         ("--control-repo-branch", options.control_repo_branch)):
        _check(flag, branch, validate.GIT_REF)
    _check("--repo", options.repo, REPO_PATH)
    for flag, credential in (("--signing-key-credentials", options.signing_key_credentials),
                             ("--signing-passphrase-credentials", options.signing_passphrase_credentials),
                             ("--control-repo-credentials", options.control_repo_credentials),
                             ("--deploy-credentials", options.deploy_credentials)):
        _check(flag, credential, CREDENTIAL_ID)
    if options.control_repo is not None:
        _check("--control-repo", options.control_repo, GIT_URL)
    if options.control_repo_mode not in CONTROL_REPO_MODES:
        raise bad_input(f"invalid --control-repo-mode {validate.shown(options.control_repo_mode)}",
                        hint=f"Use one of: {', '.join(CONTROL_REPO_MODES)}")
    for host in options.deploy_hosts:
        _check("--deploy-host", host, HOST)
    for email in options.notify_email:
        _check("--notify-email", email, EMAIL)
    for dist in options.dists:
        dists.get(dist)
    if options.check_setup is not None:
        _check("--check-setup", options.check_setup, WORKSPACE_FILE)
    for flag, number, low, high in (("--timeout", options.timeout_minutes, 1, 24 * 60),
                                    ("--keep-builds", options.keep_builds, 1, 10_000)):
        validate.integer(flag, number, "the command line", low, high)
    return options


def full_context(config: ServiceConfig, options: JenkinsOptions) -> dict[str, Any]:
    """Template variables of the full Jenkinsfile: every value a quoted Groovy literal."""
    q = groovy_string
    release = f"branch {q(options.release_branch)}"
    environment = [
        ("MD_NAME", q(config.name)),
        ("MD_PYTHON", q(config.python)),
        ("MD_REPO", q(options.repo)),
        ("MD_DISTS", q(" ".join(options.dists))),
    ]
    if options.control_repo is not None:
        environment += [
            ("MD_CONTROL_REPO", q(options.control_repo)),
            ("MD_CONTROL_REPO_BRANCH", q(options.control_repo_branch)),
            ("MD_CONTROL_REPO_MODE", q(options.control_repo_mode)),
        ]
    hosts = ",".join(options.deploy_hosts)
    if hosts:
        environment.append(("MD_DEPLOY_HOSTS", q(hosts)))
    if options.check_setup is not None:
        environment.append(("MD_CHECK_SETUP", q(options.check_setup)))
    return {
        "library": False,
        "name": config.name,
        "release_branch_label": options.release_branch,
        "agent_label": q(options.agent_label),
        "keep_builds": q(str(options.keep_builds)),
        "timeout_minutes": str(options.timeout_minutes),
        "environment": environment,
        "publish_when": f"anyOf {{ {release}; buildingTag() }}",
        "signing_key_credentials": q(options.signing_key_credentials),
        "signing_passphrase_credentials": q(options.signing_passphrase_credentials),
        "puppet_stage": options.control_repo is not None,
        "puppet_when": "buildingTag()",
        "control_repo_credentials": q(options.control_repo_credentials),
        "deploy_stage": bool(hosts),
        "deploy_when": "buildingTag()",
        "deploy_message": q(f"Deploy {config.name} ({config.summary}) to {hosts}?"),
        "deploy_credentials": q(options.deploy_credentials),
        "notify_email": q(",".join(options.notify_email)) if options.notify_email else None,
    }


def library_context() -> dict[str, Any]:
    """Template variables of the shared library: values are read from its `cfg` map at run time."""
    q = groovy_string
    defaults = JenkinsOptions()
    values: list[tuple[str, str]] = [("name", "null"), ("python", q("python3"))]
    for f in fields(JenkinsOptions):
        value = getattr(defaults, f.name)
        if isinstance(value, tuple):
            value = ",".join(value)
        values.append((LIBRARY_KEYS[f.name], "null" if value is None else q(str(value))))
    environment = [
        ("MD_NAME", '"${cfg.name}"'),
        ("MD_PYTHON", '"${cfg.python}"'),
        ("MD_REPO", '"${cfg.repo}"'),
        ("MD_CONTROL_REPO", "\"${cfg.controlRepo ?: ''}\""),
        ("MD_CONTROL_REPO_BRANCH", '"${cfg.controlRepoBranch}"'),
        ("MD_CONTROL_REPO_MODE", '"${cfg.controlRepoMode}"'),
        ("MD_DEPLOY_HOSTS", "\"${cfg.deployHosts ?: ''}\""),
        ("MD_DISTS", "\"${cfg.dists ?: ''}\""),
        ("MD_CHECK_SETUP", "\"${cfg.checkSetup ?: ''}\""),
    ]
    return {
        "library": True,
        "defaults": values,
        "option_names": [key for key, _ in values],
        "name_pattern": q(validate.SERVICE_NAME.pattern.pattern),
        "agent_label": "agentLabel",
        "keep_builds": "keepBuilds",
        "timeout_minutes": "timeoutMinutes",
        "environment": environment,
        "publish_when": "anyOf { expression { env.BRANCH_NAME == cfg.releaseBranch }; buildingTag() }",
        "signing_key_credentials": "cfg.signingKeyCredentials",
        "signing_passphrase_credentials": "cfg.signingPassphraseCredentials",
        "puppet_stage": True,
        "puppet_when": "allOf { buildingTag(); expression { cfg.controlRepo as boolean } }",
        "control_repo_credentials": "cfg.controlRepoCredentials",
        "deploy_stage": True,
        "deploy_when": "allOf { buildingTag(); expression { cfg.deployHosts as boolean } }",
        "deploy_message": '"Deploy ${cfg.name} to ${cfg.deployHosts}?"',
        "deploy_credentials": "cfg.deployCredentials",
        "notify_email": None,
    }


def one_line_arguments(config: ServiceConfig, options: JenkinsOptions) -> str:
    """The named arguments of `microdeployPipeline(...)`: the name and every non-default option."""
    q = groovy_string
    arguments = [f"name: {q(config.name)}"]
    if config.python != "python3":
        arguments.append(f"python: {q(config.python)}")
    defaults = JenkinsOptions()
    for f in fields(JenkinsOptions):
        value = getattr(options, f.name)
        if value == getattr(defaults, f.name):
            continue
        if isinstance(value, int):
            literal = q(str(value))
        elif isinstance(value, tuple):
            literal = q(",".join(value))
        else:
            literal = q(str(value))
        arguments.append(f"{LIBRARY_KEYS[f.name]}: {literal}")
    return ", ".join(arguments)


def render_jenkinsfile(config: ServiceConfig | None, options: JenkinsOptions, form: str = "full") -> str:
    """The text of one form of the pipeline (a pure function of its inputs)."""
    root = template_folder("jenkins")
    if form == "library":
        return render_file(root, "library.groovy.j2", library_context())
    if config is None:
        raise ValueError(f"the {form} form needs the service configuration")
    check_options(options)
    if form == "one-line":
        context = {"name": config.name, "arguments": one_line_arguments(config, options)}
        return render_file(root, "Jenkinsfile-oneline.j2", context)
    if form == "full":
        return render_file(root, "Jenkinsfile.j2", full_context(config, options))
    raise bad_input(f"invalid --form {form!r}", hint=f"Use one of: {', '.join(FORMS)}")


def _check_ours(output: Path) -> None:
    """Refuse to replace a file that no form of this command wrote (its first line says which did): `-o` given
    the wrong path would replace a pyproject.toml, or a Jenkinsfile people wrote, with the pipeline."""
    try:
        with output.open(encoding="utf-8", errors="replace") as existing:
            first = existing.readline()
    except FileNotFoundError:
        return
    except OSError as exc:
        raise bad_input(f"cannot read {output}: {exc.strerror}", hint="Pass -o a new file or a Jenkinsfile "
                        "microdeploy wrote") from exc
    if first and not RENDERED_FIRST_LINE.match(first):  # an empty file (`-o "$(mktemp)"`) holds nothing to lose
        raise bad_input(f"{output} is not a file microdeploy jenkinsfile wrote (its first line is not one of its "
                        "forms'): it would be replaced by the pipeline",
                        hint="Pass -o a new file, or move the file away first")


def jenkinsfile(
    project: Path,
    overrides: dict[str, Any],
    options: JenkinsOptions,
    *,
    form: str = "full",
    output: Path | None = None,
) -> JenkinsfileResult:
    """Render the pipeline of the service in `project`; write it atomically to `output` if given."""
    if output is not None and not output.parent.is_dir():
        raise bad_input(f"output directory not found: {output.parent}",
                        hint="Create the directory first, or pass --output - to print the Jenkinsfile")
    if output is not None and output.is_dir():
        raise bad_input(f"{output} is a directory", hint="Pass the path of the file to write, e.g. DIR/Jenkinsfile")
    if output is not None:
        check_writable(output, "Jenkinsfile path")
        _check_ours(output)
    config = None if form == "library" else load_config(project, overrides)
    text = render_jenkinsfile(config, check_options(options), form)
    if output is not None:
        atomic_write(output, text)
    return JenkinsfileResult(text=text, path=output, form=form)


def _check(flag: str, value: str, spec: validate.Rule) -> None:
    validate.check(spec, flag, value, "the command line")
