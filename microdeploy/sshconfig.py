"""OpenSSH client configuration files as ssh(1) reads them, for Fabric: paramiko does not follow Include.

Debian's own /etc/ssh/ssh_config includes /etc/ssh/ssh_config.d/*.conf, and
people keep their hosts in files that ~/.ssh/config includes. paramiko
keeps an Include line as a setting it does not know, so the User, Port,
ProxyJump and UserKnownHostsFile of the hosts in those files would not
apply, and a connection would go elsewhere than ssh's. Here each Include
line is replaced by the files it names, as ssh_config(5) says: a relative
path is under ~/.ssh (/etc/ssh for the system's file), a pattern's files in
sorted order, none an error.
"""

from __future__ import annotations

import glob
import re
import shlex
from pathlib import Path

from microdeploy.errors import bad_input

__all__ = ["expanded_text"]

USER_CONFIG = Path("~/.ssh/config")
SYSTEM_CONFIG = Path("/etc/ssh/ssh_config")
# ssh's own limit on nested includes (readconf.c's READCONF_MAX_DEPTH).
MAX_DEPTH = 16
_INCLUDE = re.compile(r"^\s*include(?:\s*=\s*|\s+)(\S.*?)\s*$", re.IGNORECASE)
_BLOCK = re.compile(r"^\s*(?:host|match)(?:\s*=\s*|\s+)", re.IGNORECASE)
# Where a file's own lines apply to every host, as at its start: after an included file that ends in a block.
_EVERY_HOST = "Host *"


def expanded_text(path: Path | None) -> str | None:
    """The configuration deploy's connections follow, its includes in place, as one text for paramiko:
    `path` (--ssh-config) alone, else the user's file, then the system's (the order of Fabric, whose first value
    of a setting wins); None when none of them has an Include line (Fabric reads them itself)."""
    if path is not None:
        files = [(path, USER_CONFIG.parent.expanduser())]
    else:
        files = [(USER_CONFIG.expanduser(), USER_CONFIG.parent.expanduser()), (SYSTEM_CONFIG, SYSTEM_CONFIG.parent)]
    texts = [(file, base, _read(file)) for file, base in files if path is not None or file.is_file()]
    if not any(_INCLUDE.match(line) for _, _, text in texts for line in text.splitlines()):
        return None
    parts = [expanded(file, base, text) for file, base, text in texts]
    return f"\n{_EVERY_HOST}\n".join(parts)


def expanded(file: Path, base: Path, text: str, depth: int = 0) -> str:
    """`text` (of `file`) with each Include line replaced by the text of the files it names (relative to `base`).

    An Include within a Host or Match block applies only where that block
    does: the included files' lines become that block's, so a file with
    blocks of its own cannot go there (paramiko has no nested blocks).
    """
    if depth > MAX_DEPTH:
        raise bad_input(f"{file}: Include nested more than {MAX_DEPTH} deep (does a file include itself?)",
                        hint="Check the Include lines of the ssh config; no host was contacted")
    lines: list[str] = []
    in_block = False
    for line in text.splitlines():
        include = _INCLUDE.match(line)
        if include is None:
            in_block = in_block or bool(_BLOCK.match(line))
            lines.append(line)
            continue
        for pattern in shlex.split(include.group(1)):
            where = Path(pattern).expanduser()
            for name in sorted(glob.glob(str(where if where.is_absolute() else base / where))):
                included = expanded(Path(name), base, _read(Path(name)), depth + 1)
                has_blocks = any(_BLOCK.match(each) for each in included.splitlines())
                if in_block and has_blocks:
                    raise bad_input(
                        f"{file}: '{line.strip()}' is inside a Host or Match block and {name} has blocks of its "
                        "own, which deploy's SSH (paramiko) cannot nest",
                        hint="Move the Include line above the file's first Host or Match line, or pass "
                             "--ssh-config a file without it; no host was contacted")
                lines.append(included)
                if has_blocks:
                    lines.append(_EVERY_HOST)
    return "\n".join(lines)


def _read(file: Path) -> str:
    try:
        return file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise bad_input(f"cannot read the ssh config {file}: {exc}",
                        hint="Pass --ssh-config a readable file; no host was contacted") from exc
