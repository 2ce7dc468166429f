"""Hiera data in a control repository that people edit: where each level's file is, and the pin set in place.

Environment and node files (and a common.yaml that still pins a service)
belong to operations: they hold eyaml blocks, comments, keys and overrides
that a release must not touch. A YAML dumper, even a round-trip one,
re-indents, re-wraps and re-quotes what it writes, so `set_pin` edits the
text itself: the parser only says where the `ensure` scalar of
`microdeploy::services.NAME` is (or the line a missing key goes after), one
line is replaced or inserted, and the result is parsed again and compared
with the expected data before anything is written. Every other byte of the
file stays as it was.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import YAMLError

from microdeploy import validate
from microdeploy.errors import bad_input

SERVICES_KEY = "microdeploy::services"
# Where the levels of the control repository's hierarchy keep their files.
NODE_VARIABLES = ("%{trusted.certname}", "%{::trusted.certname}")
ENV_VARIABLES = ("%{server_facts.environment}", "%{::server_facts.environment}",
                 "%{environment}", "%{::environment}")
# Keys written plain; anything else (and the YAML 1.1 booleans and nulls that
# Psych still reads, such as a service named `yes` or `on`) is quoted.
_PLAIN_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*(?:::[A-Za-z_][A-Za-z0-9_.-]*)*")
_YAML11_WORDS = frozenset({"y", "n", "yes", "no", "on", "off", "true", "false", "null"})
# The files microdeploy owns in the data directory, as the level of hiera.yaml that reads them names them.
SERVICES_GLOB = "services/*.yaml"
APT_FILE = "microdeploy.yaml"
OWNED_LEVEL = f"""  - name: 'Written by microdeploy puppet-data'
    globs:
      - '{SERVICES_GLOB}'
      - '{APT_FILE}'"""
_HINT_BY_HAND = "Set the pin by hand (`ensure: 'VERSION'` under microdeploy::services.{name}) or write that entry " \
                "in block style; nothing was written"


def check_env(value: str) -> str:
    """A Puppet environment name, as r10k makes it from a branch."""
    return validate.check(validate.ENVIRONMENT, "environment name", value, "--env")


def check_fqdn(value: str) -> str:
    """A node's certname: a lower-case host name or FQDN."""
    return validate.check(validate.CERTNAME, "node name", value, "--node")


def check_control_repo(path: Path) -> Path:
    """The control repository's hiera.yaml, or an error if `path` is not a control repository."""
    hiera = path / "hiera.yaml"
    if not path.is_dir() or not hiera.is_file():
        raise bad_input(f"{path} is not a control repository (no hiera.yaml)",
                        hint="Pass the checkout of your r10k control repository, or create one with "
                             "`microdeploy control-repo init DIR`")
    return hiera


def data_file(control_repo: Path, env: str | None = None, node: str | None = None) -> tuple[Path, str]:
    """The data file of the level that `env`/`node` select, as the repository's hiera.yaml declares it."""
    hiera_path = check_control_repo(control_repo)
    config = _load_hiera_config(hiera_path)
    variables: tuple[str, ...]
    if node is not None:
        level, variables, value = "node", NODE_VARIABLES, check_fqdn(node)
    elif env is not None:
        level, variables, value = "environment", ENV_VARIABLES, check_env(env)
    else:
        level, variables, value = "common", (), ""
    for entry, datadir in _levels(config):
        for template in _level_files(entry):
            found = _fill(template, variables, value)
            if found is not None:
                return _inside(control_repo, control_repo / datadir / found, f"the {level} level's file"), level
    examples = {"node": "nodes/%{trusted.certname}.yaml", "environment": "environments/%{environment}.yaml",
                "common": "common.yaml"}
    raise bad_input(f"{hiera_path} has no {level} level",
                    hint=f"Add a hierarchy level with path '{examples[level]}' to {hiera_path.name}")


def owned_files(control_repo: Path) -> tuple[Path, Path]:
    """The directory of the per-service files and the APT source file, from the level that reads them."""
    hiera_path = check_control_repo(control_repo)
    config = _load_hiera_config(hiera_path)
    services_dir = apt_path = None
    for entry, datadir in _levels(config):
        patterns = [entry.get(key) for key in ("glob", "path")] + list(entry.get("globs") or []) \
            + list(entry.get("paths") or [])
        for pattern in patterns:
            if pattern == SERVICES_GLOB:
                services_dir = _inside(control_repo, control_repo / datadir / SERVICES_GLOB.rsplit("/", 1)[0],
                                       "the services' directory")
            elif pattern == APT_FILE:
                apt_path = _inside(control_repo, control_repo / datadir / APT_FILE, "the APT source file")
    if services_dir is None or apt_path is None:
        raise bad_input(f"{hiera_path} has no level for the files microdeploy writes "
                        f"({SERVICES_GLOB} and {APT_FILE} in the data directory)",
                        hint=f"Add this level at the end of the hierarchy in {hiera_path.name}:\n{OWNED_LEVEL}")
    if services_dir.exists() and not services_dir.is_dir():
        raise bad_input(f"{services_dir} is not a directory: microdeploy writes each service's data file in it",
                        hint="Move the file away (or rename it), and run puppet-data again")
    return services_dir, apt_path


def _inside(control_repo: Path, path: Path, what: str) -> Path:
    """`path`, if it is in the control repository: hiera.yaml may take a level out of it (an absolute datadir,
    `..` in a path, a link), and microdeploy writes only what the repository holds and r10k deploys."""
    if not path.resolve().is_relative_to(control_repo.resolve()):
        raise bad_input(f"{control_repo / 'hiera.yaml'} puts {what} at {path}, outside the control repository "
                        f"({path.resolve()})", hint="Give that level a datadir and path inside the control "
                        "repository; nothing was written")
    return path


def _level_files(entry: Mapping[str, Any]) -> list[str]:
    """The files a level names one by one: its paths, and its globs that are a plain file name (no wildcard) other
    than microdeploy's own file."""
    globs = entry.get("globs") or [entry.get("glob")]
    named = [*(entry.get("paths") or [entry.get("path")]),
             *(pattern for pattern in globs if isinstance(pattern, str) and not re.search(r"[*?\[{]", pattern)
               and pattern != APT_FILE)]
    return [template for template in named if isinstance(template, str)]


def _levels(config: Mapping[str, Any]) -> list[tuple[Mapping[str, Any], str]]:
    """The hierarchy's levels, each with its data directory."""
    defaults = config.get("defaults")
    default_dir = defaults.get("datadir") if isinstance(defaults, Mapping) else None
    return [(entry, str(entry.get("datadir") or default_dir or "data"))
            for entry in config.get("hierarchy") or [] if isinstance(entry, Mapping)]


def _fill(template: str, variables: tuple[str, ...], value: str) -> str | None:
    """The path of a level for this variable, or None when the level is not the one wanted."""
    if not variables:
        return template if "%{" not in template else None
    for variable in variables:
        if variable in template:
            filled = template.replace(variable, value)
            return None if "%{" in filled else filled
    return None


def _load_hiera_config(path: Path) -> dict[str, Any]:
    try:
        config = YAML(typ="safe").load(path.read_text(encoding="utf-8"))
    except (YAMLError, UnicodeDecodeError) as exc:
        raise bad_input(f"cannot parse {path}: {exc}", hint="Fix the YAML syntax of hiera.yaml") from exc
    if not isinstance(config, dict) or config.get("version") != 5:
        raise bad_input(f"{path} is not a Hiera 5 configuration", hint="Use `version: 5` with a hierarchy list")
    return config



# --- the pin, set in place -------------------------------------------------------


def set_pin(text: str, name: str, version: str, source: str = "<data>") -> str:
    """`text` with `microdeploy::services.NAME.ensure` set to `version`; every other byte kept."""
    document = _load_round_trip(text, source)
    lines = text.splitlines(keepends=True)
    newline = "\r\n" if lines and lines[0].endswith("\r\n") else "\n"
    quoted_name = _quoted_key(name)
    if document is None or SERVICES_KEY not in document:
        head = text if not text or text.endswith(("\n", "\r")) else text + newline
        block = [f"{SERVICES_KEY}:", f"  {quoted_name}:", f"    ensure: '{version}'"]
        new_text = head + newline.join(block) + newline
    else:
        new_text = "".join(_edit(document, lines, name, quoted_name, version, newline, source))
    _verify(text, new_text, name, version, source)
    return new_text


def pinned_version(text: str, name: str, source: str = "<data>") -> str | None:
    """The `ensure` that `text` gives the service, when it sets one."""
    # Read as a round trip reads it: a file Hiera cannot read is reported, and a tag that only its own
    # readers know (`!secret`) is not an error here.
    value = _dig(_load_round_trip(text, source), SERVICES_KEY, name, "ensure")
    return None if value is None else str(value)


def _edit(document: CommentedMap, lines: list[str], name: str, quoted_name: str, version: str, newline: str,
          source: str) -> list[str]:
    if SERVICES_KEY not in document.lc.data:
        raise bad_input(f"{SERVICES_KEY} in {source} is merged in (`<<: *anchor`), not a key of the file's own: a "
                        "pin written there would change every place that uses the anchor",
                        hint=_HINT_BY_HAND.format(name=name))
    services = document[SERVICES_KEY]
    services_line, services_col = document.lc.key(SERVICES_KEY)
    if services is None:
        return _insert(lines, services_line, [f"{' ' * (services_col + 2)}{quoted_name}:",
                                              f"{' ' * (services_col + 4)}ensure: '{version}'"], newline)
    if not isinstance(services, CommentedMap):
        raise bad_input(f"{SERVICES_KEY} in {source} is not a mapping of services",
                        hint=f"Make {SERVICES_KEY} a mapping of service names; nothing was written")
    _refuse_flow(services, source, name)
    child_col = services.lc.key(next(iter(services)))[1]
    step = max(child_col - services_col, 1)
    if name not in services:
        return _insert(lines, services_line, [f"{' ' * child_col}{quoted_name}:",
                                              f"{' ' * (child_col + step)}ensure: '{version}'"], newline)
    if name not in services.lc.data:
        raise bad_input(f"{SERVICES_KEY}.{name} in {source} is merged in (`<<: *anchor`), not a key of the file's "
                        "own: a pin written there would change every place that uses the anchor",
                        hint=_HINT_BY_HAND.format(name=name))
    entry = services[name]
    entry_line = services.lc.key(name)[0]
    if entry is None:
        return _insert(lines, entry_line, [f"{' ' * (child_col + step)}ensure: '{version}'"], newline)
    if not isinstance(entry, CommentedMap):
        raise bad_input(f"{SERVICES_KEY}.{name} in {source} is not a mapping",
                        hint=_HINT_BY_HAND.format(name=name))
    _refuse_flow(entry, source, name)
    # The entry's own keys: one merged in (`<<: *defaults`) has no place of its own, and an own `ensure`
    # written under the entry overrides it.
    own = list(entry.lc.data)
    if "ensure" not in own:
        key_col = entry.lc.key(own[0])[1] if own else child_col + step
        return _insert(lines, entry_line, [f"{' ' * key_col}ensure: '{version}'"], newline)
    line, col = entry.lc.value("ensure")
    return [*lines[:line], _replace_scalar(lines[line], col, version, source, name), *lines[line + 1:]]


def _insert(lines: list[str], after: int, new: list[str], newline: str) -> list[str]:
    """`new` lines right after line `after` (the key they belong under)."""
    head = lines[:after + 1]
    if head and not head[-1].endswith(("\n", "\r")):
        head[-1] += newline
    return [*head, *(line + newline for line in new), *lines[after + 1:]]


def _replace_scalar(line: str, col: int, version: str, source: str, name: str) -> str:
    """The line with the scalar that starts at `col` replaced by `version`, in the same quotes when quoted."""
    first = line[col:col + 1]
    if first in ("'", '"'):
        end = _closing_quote(line, col)
        quote = first
    elif first and first not in "|>&*!{[":
        comment = line.find(" #", col)
        stop = len(line.rstrip("\r\n")) if comment < 0 else comment
        end = len(line[:stop].rstrip())
        quote = "'"  # a plain 1.4 would be read as a number
    else:
        end = -1
    if end <= col:
        raise bad_input(f"cannot edit the ensure of {name} in {source} in place (it is not a one-line scalar)",
                        hint=_HINT_BY_HAND.format(name=name))
    return f"{line[:col]}{quote}{version}{quote}{line[end:]}"


def _closing_quote(line: str, col: int) -> int:
    """The index just after the quoted scalar starting at `col`, or -1 if it does not end on this line."""
    quote = line[col]
    index = col + 1
    while index < len(line):
        char = line[index]
        if quote == '"' and char == "\\":
            index += 2
            continue
        if char == quote:
            if quote == "'" and line[index + 1:index + 2] == "'":
                index += 2  # '' is an escaped quote inside single quotes
                continue
            return index + 1
        index += 1
    return -1


def _refuse_flow(mapping: CommentedMap, source: str, name: str) -> None:
    if mapping.fa.flow_style() or not len(mapping):
        raise bad_input(f"cannot edit the pin of {name} in {source} in place (a flow-style {{...}} mapping)",
                        hint=_HINT_BY_HAND.format(name=name))


def _verify(old: str, new: str, name: str, version: str, source: str) -> None:
    """The edited text must parse to the old data with the one pin changed, or nothing is written."""
    safe = YAML(typ="safe")
    try:
        expected = safe.load(old) or {}
        got = safe.load(new)
    except YAMLError as exc:
        raise bad_input(f"cannot edit {source} in place: {exc}", hint=_HINT_BY_HAND.format(name=name)) from exc
    services = expected.get(SERVICES_KEY) or {}
    expected[SERVICES_KEY] = services
    services[name] = {**(services.get(name) or {}), "ensure": version}
    try:
        same = got == expected
    except RecursionError:  # `a: &x [*x]`: data that holds itself, which no Hiera lookup can return
        raise bad_input(f"cannot edit {source} in place: it holds a recursive alias (an anchor used inside "
                        "itself)", hint="Remove the recursive alias from the file") from None
    if not same:
        raise bad_input(f"cannot edit the pin of {name} in {source} in place without changing other data",
                        hint=_HINT_BY_HAND.format(name=name))


def _load_round_trip(text: str, source: str) -> CommentedMap | None:
    try:
        document = YAML().load(text)
    except YAMLError as exc:
        raise bad_input(f"cannot parse {source}: {exc}",
                        hint="Fix the YAML syntax of the file (nothing was written)") from exc
    if document is not None and not isinstance(document, CommentedMap):
        raise bad_input(f"{source} is not a Hiera data file (its top level is not a mapping)",
                        hint="Point puppet-data at a YAML file of key: value pairs, or remove it")
    return document


def plain_key(key: str) -> bool:
    """Whether every YAML reader (Puppet's Psych reads YAML 1.1) takes `key` written plain as that string."""
    return bool(_PLAIN_KEY_RE.fullmatch(key)) and key.lower() not in _YAML11_WORDS


def _quoted_key(key: str) -> str:
    return key if plain_key(key) else "'" + key.replace("'", "''") + "'"


def _dig(data: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data
