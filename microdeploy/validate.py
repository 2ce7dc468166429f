"""Input rules: the one place that says what a value from a flag, the environment or a config file may be.

Every rule matches the whole string (`re.fullmatch`: a `$` would also match
before a trailing newline), no value may carry a control character, and every
refusal is a `bad_input` (exit status 2) that names the key, shows the value
escaped, says where it came from and what is allowed. Callers validate
everything before they write anything.

    from microdeploy import validate
    name = validate.check(validate.SERVICE_NAME, "name", value, "--name")
    bind = validate.bind_address("bind", value, "pyproject.toml key 'bind'")
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from microdeploy.errors import MicrodeployError, bad_input

# Shown values are cut here: a 100 kB value makes a useless error message.
SHOWN_MAX = 60
# Line and paragraph separators and the bidirectional overrides ("Trojan
# Source") are not category Cc but change how a value reads or splits.
_INVISIBLE = frozenset("\u0085\u2028\u2029\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


@dataclass(frozen=True)
class Rule:
    """A whole-string pattern, the longest value allowed, and what to tell a user who got it wrong."""

    pattern: re.Pattern[str]
    allowed: str
    max_length: int = 200
    test: Callable[[str], bool] | None = None


def rule(pattern: str, allowed: str, max_length: int = 200, test: Callable[[str], bool] | None = None) -> Rule:
    """A Rule from an unanchored pattern (it is always matched whole)."""
    return Rule(re.compile(pattern), allowed, max_length, test)


def _is_pep440(text: str) -> bool:
    try:
        Version(text)
    except InvalidVersion:
        return False
    return True


_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_LOWER_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
# Debian Policy §5.6.12: [epoch:]upstream[-revision]; upstream starts with a digit; no trailing '-'.
_DEBIAN_VERSION = r"(?:[0-9]+:)?[0-9](?:[A-Za-z0-9.+~-]*[A-Za-z0-9.+~])?"
_PACKAGE = r"[a-z0-9][a-z0-9+.-]+"

# Debian Policy §5.6.1, narrowed: the name is also the system user (adduser's
# default NAME_REGEX, at most 32 characters) and the systemd unit, so '+', '.'
# and a leading digit, which Debian allows in package names, are refused.
SERVICE_NAME = rule(r"[a-z][a-z0-9-]*[a-z0-9]",
                    "lowercase letters, digits and '-', starting with a letter, at most 32 characters "
                    "(it is also the package, the system user and the systemd unit)", 32)
# The accounts and groups of every Debian system (base-passwd's passwd.master and group.master, bookworm and
# trixie): a service is its own system user, and owns /etc/NAME, /var/lib/NAME and /var/log/NAME.
DEBIAN_SYSTEM_NAMES = frozenset({
    "root", "daemon", "bin", "sys", "sync", "games", "man", "lp", "mail", "news", "uucp", "proxy", "www-data",
    "backup", "list", "irc", "gnats", "nobody", "adm", "tty", "disk", "kmem", "dialout", "fax", "voice", "cdrom",
    "floppy", "tape", "sudo", "audio", "dip", "operator", "src", "shadow", "utmp", "video", "sasl", "plugdev",
    "staff", "users", "nogroup",
})


def reserved_name(name: str) -> str | None:
    """Why `name` cannot be a service's (its package, system user and unit), or None."""
    if name in DEBIAN_SYSTEM_NAMES:
        return f"{name} is a system account of every Debian host (the service would run as it, and purge its " \
               f"/var/lib/{name})"
    if name == "systemd" or name.startswith("systemd-"):
        return "systemd's own name (its package, units and system users)"
    return None


def check_not_a_system_package(name: str, info: Path = Path("/var/lib/dpkg/info")) -> None:
    """Refuse (exit 2) a name that a package installed here has (dpkg, bash, openssh-server...), unless that
    package is a microdeploy service: a service of that name would replace it on the hosts, and purge its
    /var/lib. (Read from dpkg's own files list, no process: the service itself may be installed here.)"""
    for listed in (info / f"{name}.list", *info.glob(f"{name}:*.list")):
        try:
            files = listed.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            continue
        if f"/usr/share/{name}/gunicorn.conf.py" not in files:
            raise bad_input(f"invalid name {name!r}: {name} is a package installed on this machine, not a "
                            "microdeploy service; a service of that name would replace it on the hosts",
                            hint="Give the service a name of its own (--name, or name in [tool.microdeploy])")


PACKAGE_NAME = rule(_PACKAGE, "a Debian package name: lowercase letters, digits, '+', '.', '-' "
                              "(at least 2 characters)", 100)
DEBIAN_VERSION = rule(_DEBIAN_VERSION, "a Debian version, [epoch:]upstream-revision, e.g. 1.4.0-1", 100)
DEBIAN_REVISION = rule(r"[0-9][A-Za-z0-9.+~]*", "a Debian revision: digits, optionally with '.', '+' or '~' "
                                                "(e.g. 42)", 40)
UPSTREAM_VERSION = rule(r"[A-Za-z0-9.!+_-]+", "a PEP 440 version such as '1.4.0'", 80, _is_pep440)
# One relation, optionally versioned; alternatives ('a | b') are split off by `relations`.
DEBIAN_RELATION = rule(rf"{_PACKAGE}(?::[a-z0-9]+)?(?: *\( *(?:<<|<=|=|>=|>>) *{_DEBIAN_VERSION} *\))?",
                       "Debian relations such as 'libpq5' or 'nginx (>= 1.22)'", 200)
# A binary package's: `all` or one concrete architecture. `source` and the wildcards of a source
# package's field (any, linux-any, any-amd64) name no binary-ARCH index, so apt would never see the package.
ARCHITECTURE = rule(r"[a-z0-9][a-z0-9-]*", "a binary package's architecture: all or a concrete one such as amd64",
                    40, test=lambda arch: arch != "source" and "any" not in arch.split("-"))
# aptly and apt: a suite or component is one path segment of dists/.
SUITE = rule(r"[a-z0-9][a-z0-9.-]*", "lower-case letters, digits, dots and dashes, e.g. bookworm", 64)
COMPONENT = rule(r"[a-z0-9][a-z0-9.-]*", "lower-case letters, digits, dots and dashes, e.g. main", 64)
# RFC 1123 host names, so nothing that ssh or a URL could read as an option or a path.
HOSTNAME = rule(rf"{_LABEL}(?:\.{_LABEL})*", "a host name such as app1.example.org", 253)
# A certname as Puppet writes it: lower-case DNS labels joined by dots.
CERTNAME = rule(rf"{_LOWER_LABEL}(?:\.{_LOWER_LABEL})*",
                "the node's certname, a lower-case FQDN such as app1.example.com", 253)
# Puppet environment names (r10k turns branches into them).
ENVIRONMENT = rule(r"[a-z0-9_]+", "a Puppet environment name: lower-case letters, digits and '_', "
                                  "e.g. production", 100)
# git check-ref-format, narrowed to the characters branches and tags really use; a commit id matches too.
GIT_REF = rule(r"(?![-./])(?!.*\.\.)(?!.*//)(?!.*/\.)(?!.*@\{)[A-Za-z0-9._/+-]+(?<![./])(?<!\.lock)",
               "a git branch, tag or commit id such as 'main', 'release/1.x' or 'v0.1.0'", 200)
MAINTAINER = rule(r"[^<>,\"$]+ <[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*>",
                  "'Full Name <email@example.org>'", 200)
PYTHON = rule(r"python3(?:\.[0-9]+)?", "'python3' or a versioned name such as 'python3.11'", 20)
HEALTH_PATH = rule(r"/[A-Za-z0-9._~/-]*", "a URL path starting with '/', e.g. /health", 200)
SETTING_KEY = rule(r"[A-Za-z_][A-Za-z0-9_.-]*", "letters, digits, '_', '.', '-', starting with a letter or '_'", 100)
USER = rule(r"[a-z_][a-z0-9_.-]*", "a POSIX user name such as 'deploy'", 32)
# A Python extra, as PEP 685 writes one (a project name's form).
EXTRA = rule(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?", "names of the project's extras, e.g. ['postgres']", 100)


def shown(value: object) -> str:
    """The value as a message shows it: escaped like a Python literal, long ones cut."""
    if isinstance(value, str) and len(value) > SHOWN_MAX:
        return f"{value[:SHOWN_MAX]!r}… ({len(value)} characters)"
    text = repr(value)
    return text if len(text) <= SHOWN_MAX + 20 else f"{text[:SHOWN_MAX]}… ({len(text)} characters)"


def invalid(key: str, value: object, origin: str, allowed: str, why: str = "") -> MicrodeployError:
    """The error for a refused value (exit status 2)."""
    reason = f": {why}" if why else ""
    return bad_input(f"invalid {key} {shown(value)} (from {origin}){reason}", hint=f"Use {allowed}")


def control_character(text: str) -> str | None:
    """The first control (or invisible line-breaking) character in `text`, as U+XXXX, or None."""
    for char in text:
        if char in _INVISIBLE or unicodedata.category(char) in ("Cc", "Cs"):
            return f"U+{ord(char):04X}"
    return None


def string(key: str, value: Any, origin: str, allowed: str, max_length: int = 200) -> str:
    """A str without control characters and at most `max_length` characters long."""
    if not isinstance(value, str):
        raise invalid(key, value, origin, allowed, "not a string")
    bad = control_character(value)
    if bad is not None:
        raise invalid(key, value, origin, allowed, f"control character {bad}")
    if len(value) > max_length:
        raise invalid(key, value, origin, allowed, f"longer than {max_length} characters")
    return value


def check(spec: Rule, key: str, value: Any, origin: str) -> str:
    """`value` if the whole of it matches `spec`; else a bad_input naming key, value, origin and rule."""
    text = string(key, value, origin, spec.allowed, spec.max_length)
    if not spec.pattern.fullmatch(text) or (spec.test is not None and not spec.test(text)):
        raise invalid(key, value, origin, spec.allowed)
    return text


def text(key: str, value: Any, origin: str, max_length: int = 200) -> str:
    """Free text on one line (a description, a shell command): no control characters, no dpkg `${...}`."""
    allowed = f"one line of at most {max_length} characters, without control characters or '${{'"
    checked = string(key, value, origin, allowed, max_length)
    if "${" in checked:
        # dpkg-gencontrol would substitute it in debian/control (${Newline} adds a field).
        raise invalid(key, value, origin, allowed, "'${' starts a dpkg substitution")
    return checked


def integer(key: str, value: Any, origin: str, low: int, high: int) -> int:
    """An int from `low` to `high`; digits in a string (an environment variable) count."""
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise invalid(key, value, origin, f"an integer from {low} to {high}")
    return value


def port(key: str, value: Any, origin: str, *, allow_zero: bool = False) -> int:
    """A TCP port (0, "any free one", only where a server picks it)."""
    return integer(key, value, origin, 0 if allow_zero else 1, 65535)


def bind_address(key: str, value: Any, origin: str) -> str:
    """An IPv4 or IPv6 address (bare or in brackets) or a host name."""
    allowed = "an IP address such as 127.0.0.1, 0.0.0.0 or ::1, or a host name"
    checked = string(key, value, origin, allowed, 253)
    bracketed = checked.startswith("[") and checked.endswith("]")
    bare = checked[1:-1] if bracketed else checked
    try:
        address = ipaddress.ip_address(bare)
    except ValueError:
        # A dotted quad that is no address (300.1.1.1) is not a host name either.
        if not bracketed and HOSTNAME.pattern.fullmatch(checked) and not checked.replace(".", "").isdigit():
            return checked
        raise invalid(key, value, origin, allowed) from None
    if "%" in bare or (bracketed and address.version != 6):
        raise invalid(key, value, origin, allowed)
    return checked


def relations(key: str, value: Any, origin: str) -> tuple[str, ...]:
    """A list of Debian relations (a single string is a list of one); 'a | b' alternatives allowed."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise invalid(key, value, origin, "a list of Debian package relations")
    checked = []
    for item in items:
        string(key, item, origin, DEBIAN_RELATION.allowed, 500)
        for alternative in item.split("|"):
            check(DEBIAN_RELATION, key, alternative.strip(), origin)
        checked.append(item.strip())
    return tuple(checked)


def extras(key: str, value: Any, origin: str) -> tuple[str, ...]:
    """A list of the project's extras (a single string is a list of one), normalised as PEP 685 does; each once."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise invalid(key, value, origin, EXTRA.allowed)
    return tuple(dict.fromkeys(canonicalize_name(check(EXTRA, key, item, origin)) for item in items))


def upstream_version(key: str, value: Any, origin: str) -> str:
    """A PEP 440 version (which Debian sorts once microdeploy spells it). On the command line, a Debian version
    (`--version 1.4.0-1`, as puppet-data and deploy take it) is refused: PEP 440 reads 1.4.0-1 as 1.4.0.post1. A
    local version (1.0+local-1) is PEP 440's own, and left to it."""
    if origin == "--version" and isinstance(value, str) and re.fullmatch(r"[^-+:]+-[0-9][A-Za-z0-9.+~]*", value):
        upstream, _, revision = value.rpartition("-")
        raise bad_input(f"invalid {key} {shown(value)} (from {origin}): a Debian version, which PEP 440 would read as "
                        f"{upstream}.post{revision}", hint=f"Pass the upstream version and the revision: --version "
                        f"{upstream} --revision {revision}")
    return check(UPSTREAM_VERSION, key, value, origin)


__all__ = [
    "ARCHITECTURE", "CERTNAME", "COMPONENT", "DEBIAN_RELATION", "DEBIAN_REVISION", "DEBIAN_SYSTEM_NAMES",
    "DEBIAN_VERSION",
    "ENVIRONMENT", "EXTRA", "GIT_REF", "HEALTH_PATH", "HOSTNAME", "MAINTAINER", "PACKAGE_NAME", "PYTHON",
    "SERVICE_NAME", "SETTING_KEY", "SUITE", "UPSTREAM_VERSION", "USER", "Rule", "bind_address", "check",
    "control_character", "extras", "integer", "invalid", "port", "relations", "reserved_name", "rule", "shown",
    "string", "text", "upstream_version",
]
