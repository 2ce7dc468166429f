"""`microdeploy puppet-data`: the Hiera data of SPEC §7, printed, or written into a control repository.

In a control repository microdeploy writes only what it owns (SPEC §7,
"Ownership"): one file per service, `data/services/NAME.yaml`, with the
service's defaults and its release pin, and `data/microdeploy.yaml` with the
APT source. Both are rewritten whole. People's overrides live in the levels
above (common, environment, node), which the module deep-merges; in those
files microdeploy only ever sets a pin, through `hierapin`, byte for byte.

YAML is confined to this module and `hierapin`. Every string value is
single-quoted, every key that a YAML 1.1 reader (Puppet's Psych) could take
for something else is quoted, and every `%{` is escaped for Hiera, so no
name or setting can add structure, a tag or an alias to the document, nor
make Hiera interpolate anything.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import YAMLError
from ruamel.yaml.scalarstring import LiteralScalarString, SingleQuotedScalarString

from microdeploy import validate
from microdeploy.build.release.plan import project_version
from microdeploy.build.release.settings import BuildSettings
from microdeploy.build.release.source import git_state
from microdeploy.build.release.version import debian_revision, full_version, upstream_version
from microdeploy.config import ServiceConfig, Settings, load_config
from microdeploy.errors import bad_input
from microdeploy.fsutil import atomic_write, check_writable
from microdeploy.hiera_apt import apt_data
from microdeploy.hierarepo import SERVICES_KEY, data_file, owned_files, pinned_version, plain_key, set_pin
from microdeploy.process import Runner, run

APT_KEYS = ("microdeploy::manage_apt_source", "microdeploy::apt_location", "microdeploy::apt_key_content")

# Hiera interpolates `%{...}` in keys and values; `%{literal('%')}` is its one way to write a `%` before `{`.
HIERA_ESCAPE = ("%{", "%{literal('%')}{")
OWNED_HEADER = """\
# Written by `microdeploy puppet-data`{what}.
# Do not edit: the next release rewrites this file. Override any key in
# common.yaml, environments/ENV.yaml or nodes/FQDN.yaml; the module
# deep-merges microdeploy::services, and the more specific level wins.
"""
OWNER_MARK = "# Written by `microdeploy puppet-data`"
OUTPUT_WHAT = ": services' defaults and release pins"
# Service keys that only the owned file holds: --env/--node write the pin alone.
ENTRY_FLAGS = {"port": "--port", "bind": "--bind", "workers": "--workers", "settings": "--setting"}


@dataclass(frozen=True)
class PuppetDataSettings:
    """What `microdeploy puppet-data` was asked to do."""

    projects: tuple[Path, ...] = (Path("."),)
    overrides: Mapping[str, Any] = field(default_factory=dict)
    version: str | None = None
    env: str | None = None
    node: str | None = None
    control_repo: Path | None = None
    output: Path | None = None
    apt_location: str | None = None
    apt_key: Path | None = None
    environ: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PuppetDataResult:
    """The data produced, and where it went."""

    services: Mapping[str, Mapping[str, Any]]
    text: str
    path: Path | None
    level: str
    changed: bool
    written: tuple[Path, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly view for --json (the YAML text only when it was not written to a file)."""
        data: dict[str, Any] = {
            "services": {name: dict(entry) for name, entry in self.services.items()},
            "path": None if self.path is None else str(self.path),
            "level": self.level,
            "changed": self.changed,
            "written": [str(path) for path in self.written],
        }
        if self.path is None:
            data["yaml"] = self.text
        return data


def check_debian_version(value: str, origin: str = "--version") -> str:
    """An exact Debian version that the module accepts as `ensure`."""
    return validate.check(validate.DEBIAN_VERSION, "Debian version", value, origin)


def service_version(project: Path, config: ServiceConfig, environ: Mapping[str, str], runner: Runner = run) -> str:
    """The Debian version `microdeploy build` gives the project now (upstream from project and git, revision),
    without the release's +debN: the Puppet module installs each host's release's build of it.

    The project's own version is found as the build finds it: a dynamic one (setuptools-scm past a tag,
    `attr:`, hatch-vcs) from its build backend, which spells it otherwise than git's tag alone would.
    """
    stated = project_version(project, config, BuildSettings(project=project, environ=environ), runner)
    upstream = upstream_version(stated, git_state(project, runner))
    return full_version(upstream, debian_revision(None, environ.get("BUILD_NUMBER")))


def service_entry(config: ServiceConfig, version: str) -> dict[str, Any]:
    """One entry of `microdeploy::services` (SPEC §7) for a service at `version`."""
    name = config.name
    return {
        "ensure": version,
        "config_path": f"/etc/{name}/config.ini",
        "log_dir": f"/var/log/{name}",
        "user": name,
        "port": config.port,
        # The module takes IPv6 addresses without brackets; gunicorn's config adds them.
        "bind": config.bind.removeprefix("[").removesuffix("]"),
        "workers": config.workers,
        "settings": _checked_settings(name, config.settings),
    }


def _checked_settings(name: str, settings: Settings) -> dict[str, dict[str, Any]]:
    # The config model refuses "\n"; the INI file and the module refuse "\r" as well.
    for section, entries in settings.items():
        for key, value in entries.items():
            if isinstance(value, str) and ("\r" in value or "\n" in value):
                raise bad_input(f"invalid settings.{section}.{key} {value!r} of {name}: a line break",
                                hint="Use a single-line value")
    return {section: dict(entries) for section, entries in settings.items()}


# --- YAML ----------------------------------------------------------------------------


def _yaml() -> YAML:
    yaml = YAML()  # round-trip
    yaml.preserve_quotes = True
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 4096  # never fold a long value
    yaml.allow_unicode = True
    return yaml


def quoted_key(key: str) -> str:
    """A key written plain when every YAML reader takes it as that string, else single-quoted."""
    key = escape_interpolation(key)
    if plain_key(key):
        return key
    quoted: str = SingleQuotedScalarString(key)
    return quoted


def escape_interpolation(text: str) -> str:
    """`text` as Hiera data that Hiera returns as written: every `%{` escaped."""
    return text.replace(*HIERA_ESCAPE)


def typed(value: Any) -> Any:
    """A value for the document: strings single-quoted (multi-line ones literal), numbers and booleans as is."""
    if isinstance(value, Mapping):
        node = CommentedMap()
        for key, item in value.items():
            node[quoted_key(str(key))] = typed(item)
        return node
    if isinstance(value, str):
        value = escape_interpolation(value)
        return LiteralScalarString(value) if "\n" in value else SingleQuotedScalarString(value)
    if isinstance(value, bool | int | float):
        return value
    raise TypeError(f"cannot write {type(value).__name__} to Hiera data")


def render_document(top: Mapping[str, Any], services: Mapping[str, Mapping[str, Any]]) -> str:
    """A new data file: the top-level keys, then `microdeploy::services`."""
    return _dump(_build(top, services), explicit_start=True)


def _build(top: Mapping[str, Any], services: Mapping[str, Mapping[str, Any]]) -> CommentedMap:
    document = typed(top)
    document[SERVICES_KEY] = typed(services)
    assert isinstance(document, CommentedMap)
    return document


def _dump(document: Any, explicit_start: bool) -> str:
    yaml = _yaml()
    yaml.explicit_start = explicit_start
    stream = io.StringIO()
    yaml.dump(document, stream)
    return stream.getvalue()


def merge_document(text: str, top: Mapping[str, Any], services: Mapping[str, Mapping[str, Any]],
                   source: str = "<data>") -> str:
    """A file microdeploy owns with `top` keys and the `services` entries set; its other entries kept."""
    try:
        document = _yaml().load(text)
    except YAMLError as exc:
        raise bad_input(f"cannot parse {source}: {exc}",
                        hint="Fix the YAML syntax of the file (nothing was written)") from exc
    if document is None:
        document = CommentedMap()
    if not isinstance(document, CommentedMap):
        raise bad_input(f"{source} is not a Hiera data file (its top level is not a mapping)",
                        hint="Point puppet-data at a YAML file of key: value pairs, or remove it")
    existing = document.get(SERVICES_KEY)
    if existing is not None and not isinstance(existing, CommentedMap):
        raise bad_input(f"{SERVICES_KEY} in {source} is not a mapping of services",
                        hint=f"Make {SERVICES_KEY} a mapping of service names, or remove the key")
    # Values already in the file are kept as they were read (escaped once); only new ones are typed.
    for key, value in top.items():
        document[key] = typed(value)
    entries = existing if existing is not None else CommentedMap()
    for name, entry in services.items():
        entries[quoted_key(name)] = typed(entry)
    if services:
        document[SERVICES_KEY] = entries
    document.ca.comment = None  # the header is written again below
    return "---\n" + OWNED_HEADER.format(what=OUTPUT_WHAT) + _dump(document, explicit_start=False)


# --- the command -------------------------------------------------------------------


def collect_services(settings: PuppetDataSettings, runner: Runner = run) -> dict[str, dict[str, Any]]:
    """The `microdeploy::services` entries of every project, validated, before anything is written."""
    projects = settings.projects or (Path("."),)
    if settings.version is not None:
        check_debian_version(settings.version)
        if len(projects) > 1:
            raise bad_input(f"--version {settings.version} given for {len(projects)} projects",
                            hint="Pass one project with --version, or leave the versions to each project")
    services: dict[str, dict[str, Any]] = {}
    for project in projects:
        config = load_config(project, settings.overrides)
        if config.name in services:
            raise bad_input(f"two projects are the service {config.name} (the second is {project})",
                            hint="Pass each service once (and --name only with one project)")
        version = settings.version or service_version(project, config, settings.environ, runner)
        services[config.name] = service_entry(config, check_debian_version(version, f"the version of {project}"))
    return services


def puppet_data(settings: PuppetDataSettings, runner: Runner = run) -> PuppetDataResult:
    """Build the Hiera data of the services and print it, write it, or write it into the control repository."""
    target, level = _target(settings)
    if target is not None:
        check_writable(target, "data file")
    services = collect_services(settings, runner)
    top = apt_data(settings.apt_location, settings.apt_key)
    if settings.control_repo is not None and target is not None:
        return _into_control_repo(settings.control_repo, target, level, services, top)
    if target is None:
        return PuppetDataResult(services, render_document(top, services), None, level, changed=False)
    text, mode = _existing(target)
    if text == "":  # an empty file (`-o "$(mktemp)"`) holds nothing anyone wrote
        text = None
    if text is not None and not text.startswith(f"---\n{OWNER_MARK}"):
        raise bad_input(f"{target} is not a file microdeploy wrote (it does not start "
                        f"with '---' and '{OWNER_MARK}'): a release would overwrite what people wrote there",
                        hint="Pass --control-repo DIR to release into a control repository (people's files get "
                             "the pin alone), or pass -o a new file")
    new_text = owned_document(OUTPUT_WHAT, top, services) if text is None \
        else merge_document(text, top, services, str(target))
    changed = new_text != text
    if changed:
        atomic_write(target, new_text, mode=mode)
    return PuppetDataResult(services, new_text, target, level, changed, (target,) if changed else ())


def _into_control_repo(control_repo: Path, target: Path, level: str, services: Mapping[str, Mapping[str, Any]],
                       top: Mapping[str, Any]) -> PuppetDataResult:
    """Pins alone at environment and node level; else the owned files, and a pin common.yaml already holds."""
    outputs: dict[Path, str] = {}
    if level != "common":
        text, _ = _existing(target)
        for name, entry in services.items():
            text = set_pin(text or "---\n", name, str(entry["ensure"]), str(target))
        outputs[target] = text or ""
    else:
        services_dir, apt_path = owned_files(control_repo)
        for name, entry in services.items():
            outputs[services_dir / f"{name}.yaml"] = owned_document(f" for {name}: its defaults and release pin",
                                                                   {}, {name: entry})
        if top:
            outputs[apt_path] = owned_document(": the signed APT source of the services", top, {})
        # A version that a person (or an older microdeploy) pinned in common.yaml would win over the
        # owned file: it is moved along, so that the release takes effect, and nothing else there.
        # A state (absent, purged, latest, present) is someone's decision and stays.
        common, _ = _existing(target)
        for name, entry in services.items():
            pinned = None if common is None else pinned_version(common, name, str(target))
            if common is not None and pinned is not None and validate.DEBIAN_VERSION.pattern.fullmatch(pinned):
                common = set_pin(common, name, str(entry["ensure"]), str(target))
                outputs[target] = common
    written = [path for path, text in outputs.items() if text != _existing(path)[0]]
    for path in written:
        atomic_write(path, outputs[path], mode=_existing(path)[1])
    main = target if level != "common" else next(iter(outputs))
    return PuppetDataResult(services, outputs[main], main, level, bool(written), tuple(written))


def owned_document(what: str, top: Mapping[str, Any], services: Mapping[str, Mapping[str, Any]]) -> str:
    """A file microdeploy owns: a header that says so, then the data."""
    body = _dump(_build(top, services) if services else typed(top), explicit_start=False)
    return "---\n" + OWNED_HEADER.format(what=what) + body


def _target(settings: PuppetDataSettings) -> tuple[Path | None, str]:
    """The file to write (None: standard output) and its hierarchy level, all flags checked."""
    if settings.env is not None and settings.node is not None:
        raise bad_input("--env and --node select different levels",
                        hint="Pass one of them: --node for one host, --env for an environment")
    if settings.control_repo is None:
        if settings.env is not None or settings.node is not None:
            flag = "--env" if settings.env is not None else "--node"
            raise bad_input(f"{flag} needs --control-repo",
                            hint=f"Pass --control-repo DIR to write into its data/ tree, or leave out {flag}")
        if settings.output is None:
            return None, "output"
        if settings.output.is_dir():
            raise bad_input(f"output path {settings.output} is a directory", hint="Pass a file name or '-'")
        return settings.output, "output"
    if settings.output is not None:
        raise bad_input("--output and --control-repo both say where to write",
                        hint="Pass one: --control-repo picks the data file from --env/--node")
    if settings.env is not None or settings.node is not None:
        flag = "--env" if settings.env is not None else "--node"
        given = [ENTRY_FLAGS[key] for key in ENTRY_FLAGS if settings.overrides.get(key) not in (None, {}, ())]
        if settings.apt_location is not None or settings.apt_key is not None:
            given.append("--apt-location/--apt-key")
        if given:
            raise bad_input(f"{flag} writes the release pin alone; {', '.join(given)} would be lost",
                            hint=f"Leave out {', '.join(given)}, and set overrides by hand in the "
                                 f"{'environment' if flag == '--env' else 'node'}'s data file")
    return data_file(settings.control_repo, settings.env, settings.node)


def _existing(path: Path) -> tuple[str | None, int]:
    """The current text (its line endings as they are) and mode of the data file (None and 0644 when it does not
    exist)."""
    if path.is_symlink():
        # Written through, a pin for one node would change every node that shares the file; replaced, the
        # nodes would part silently.
        raise bad_input(f"{path} is a symbolic link (to {os.readlink(path)}): a release would change every file "
                        "that shares it, or part them", hint="Replace the link with a file of its own, or pin at "
                        "the level the shared file stands for (nothing was written)")
    if not path.exists():
        return None, 0o644
    try:
        return path.read_bytes().decode("utf-8"), path.stat().st_mode & 0o777
    except (OSError, UnicodeDecodeError) as exc:
        raise bad_input(f"cannot read {path}: {exc}", hint="Fix or remove the file (nothing was written)") from exc
