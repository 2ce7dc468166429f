"""The `microdeploy::apt_*` Hiera keys of the signed APT source: a URL apt can fetch, and the public key alone.

Hiera data is committed in a control repository and read by every host, so
nothing secret may go in: no credentials in the URL, no secret key beside the
public one.
"""

from __future__ import annotations

import urllib.parse
from pathlib import Path
from typing import Any

from microdeploy import pgpkey, validate
from microdeploy.errors import bad_input


def _is_apt_url(text: str) -> bool:
    """A URL apt can fetch from, with no credentials in it: Hiera data is committed, and apt takes those from
    /etc/apt/auth.conf.d."""
    try:
        parts = urllib.parse.urlsplit(text)
        parts.port  # noqa: B018 -- parsing the port raises for a bad one
    except ValueError:  # an unclosed [ of an IPv6 address, a port that is no number
        return False
    if parts.username is not None or parts.password is not None:
        return False
    return parts.scheme.rpartition("+")[2] == "file" or bool(parts.hostname)  # file:, mirror+file:


APT_URL = validate.rule(r"[a-z][a-z0-9+.-]*:[^\s'\"\\]+",
                        "a URL such as http://apt.example.com/microdeploy/, with a host and no user or password "
                        "(apt reads those from /etc/apt/auth.conf.d)", 500, _is_apt_url)


def apt_data(location: str | None, key: Path | None) -> dict[str, Any]:
    """The `microdeploy::apt_*` keys of the signed APT source, or nothing when no location is given."""
    if location is None and key is None:
        return {}
    if location is None or key is None:
        raise bad_input("--apt-location and --apt-key go together",
                        hint="Pass both: the repository URL and its ASCII-armored public key file")
    validate.check(APT_URL, "APT repository URL", location, "--apt-location")
    try:
        text = key.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise bad_input(f"cannot read the APT key {key}: {exc}",
                        hint="Pass the repository's ASCII-armored public key (publish writes one)") from exc
    # Hiera data is committed and read by every host: nothing but the public key may go in.
    refused = pgpkey.refusal(text)
    if refused is not None:
        raise bad_input(f"the APT key {key} {refused}",
                        hint="Pass the repository's public key alone: its .asc file (publish writes one), or "
                             "`gpg --armor --export KEYID`")
    return {
        "microdeploy::manage_apt_source": True,
        "microdeploy::apt_location": location,
        "microdeploy::apt_key_content": text.replace("\r\n", "\n").strip("\n") + "\n",
    }
