"""The machine's Debian mirror, relayed to a booted test host that has no route out.

Hosts live in network namespaces that reach only our 10.231.N.1 address. A
dist-upgrade test needs Debian's archive of the new release there: this
relay listens on our address and answers each GET under /debian/ and
/debian-security/ with the machine's mirror's answer for the same path
(the URIs of /etc/apt/sources.list.d/debian.sources, never written here).
apt on the host verifies what it gets against Debian's keyring as usual.
Package files (pool/, immutable by name) are kept in the test bed's cache,
so only the first dist-upgrade of a machine downloads them.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

from microdeploy.testbed import CACHE_DIR

SOURCES = Path("/etc/apt/sources.list.d/debian.sources")
POOL_CACHE = CACHE_DIR / "mirror-pool"
UPSTREAM_TIMEOUT = 120.0


def mirror_uris(sources: Path = SOURCES) -> dict[str, str]:
    """The machine's archive URIs by their last path segment: {"debian": URI, "debian-security": URI}."""
    uris = re.findall(r"^URIs:\s*(\S+)", sources.read_text(encoding="utf-8"), re.M)
    return {uri.rstrip("/").rsplit("/", 1)[-1]: uri.rstrip("/") for uri in uris}


class _Relay(BaseHTTPRequestHandler):
    upstream: ClassVar[dict[str, str]] = {}

    def do_GET(self) -> None:
        archive, _, rest = self.path.lstrip("/").partition("/")
        base = self.upstream.get(archive)
        if base is None or ".." in rest:
            self.send_error(404)
            return
        kept = POOL_CACHE / archive / rest if rest.startswith("pool/") and rest.endswith(".deb") else None
        try:
            if kept is not None and not kept.is_file():
                fetch(f"{base}/{rest}", kept)
            if kept is not None:
                with kept.open("rb") as answer:
                    self.answer(answer, kept.stat().st_size)
                return
            with urllib.request.urlopen(f"{base}/{rest}", timeout=UPSTREAM_TIMEOUT) as upstream:
                self.answer(upstream, int(upstream.headers.get("Content-Length", "0")))
        except urllib.error.HTTPError as exc:
            self.send_error(exc.code)

    def answer(self, body: Any, length: int) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        shutil.copyfileobj(body, self.wfile)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def fetch(url: str, dest: Path) -> None:
    """Download `url` to `dest` through a temporary file beside it and a rename."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=dest.parent, prefix=".fetch.")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=UPSTREAM_TIMEOUT) as upstream:
            shutil.copyfileobj(upstream, out)
        os.replace(name, dest)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise


@contextmanager
def relayed_mirror(bind: str) -> Iterator[str]:
    """Relay the machine's mirror on `bind` (a free port) for the block; yield the base URL (…/)."""
    handler = type("Relay", (_Relay,), {"upstream": mirror_uris()})
    server = ThreadingHTTPServer((bind, 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="mirror-relay", daemon=True)
    thread.start()
    try:
        yield f"http://{bind}:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def debian_sources(relay: str, codename: str) -> str:
    """A deb822 sources file for `codename` through the relay (main, updates, security)."""
    return (
        f"Types: deb\nURIs: {relay}debian\nSuites: {codename} {codename}-updates\nComponents: main\n"
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"
        f"Types: deb\nURIs: {relay}debian-security\nSuites: {codename}-security\nComponents: main\n"
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
    )
