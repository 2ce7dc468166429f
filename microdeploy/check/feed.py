"""The APT feed of a checked host: our own HTTP server on the host's 10.231.N.1 address.

The host has no route out, so everything apt there fetches comes from here:
``/repo/`` is the published repository of ``--repo`` (its public tree, as
`repo serve` serves it), ``/mirror/N/`` is passed through to the N-th mirror
URI of the release (the machine's Debian mirror and its security archive),
its immutable files from a cache on disk. piuparts' chroot, which shares
our network, uses the same feed on 127.0.0.1.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import shutil
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from microdeploy.build.cache import touch
from microdeploy.errors import MicrodeployError
from microdeploy.mirrors import Mirror
from microdeploy.repo_server import QuietHandler
from microdeploy.testbed import CACHE_DIR
from microdeploy.testbed.image_cache import MIRROR_DIR

__all__ = ["Feed", "serving_feed"]

log = logging.getLogger(__name__)

# The mirror's files that never change (packages, indices by hash), kept for
# the next runs: apt in piuparts' chroot and on the hosts fetches them from here.
MIRROR_CACHE = CACHE_DIR / MIRROR_DIR

# One upstream request may take this long (an index of the main archive is ~10 MB).
_UPSTREAM_TIMEOUT = 60.0


@dataclass(frozen=True)
class Feed:
    """A running feed: the URL hosts use, and what it serves."""

    url: str
    mirrors: tuple[Mirror, ...]
    repo_public: Path | None

    def mirror_sources(self) -> str:
        """deb822 stanzas for the host: the release's mirrors through this feed (trusted: we fetch them)."""
        # The host's own keyring verifies the archive's signatures as usual: the
        # feed passes the signed Release files through unchanged.
        return "\n".join(
            Mirror(f"{self.url}mirror/{index}/", mirror.suites).stanza() for index, mirror in enumerate(self.mirrors)
        )


class _FeedHandler(QuietHandler):
    """Static files of the repository under /repo/ (never "304 Not Modified"), the mirrors passed through under
    /mirror/N/."""

    mirrors: Sequence[Mirror] = ()

    def do_GET(self) -> None:
        if self.path.startswith("/mirror/"):
            self._pass_through()
        else:
            super().do_GET()

    def translate_path(self, path: str) -> str:
        # Only /repo/ maps to files; anything else is outside the served tree.
        if not path.startswith("/repo/"):
            return str(Path(self.directory) / ".no-such-file")
        return super().translate_path(path.removeprefix("/repo"))

    def _pass_through(self) -> None:
        index, _, rest = self.path.removeprefix("/mirror/").partition("/")
        if not index.isdigit() or int(index) >= len(self.mirrors) or ".." in rest.split("/"):
            self.send_error(404)
            return
        upstream = self.mirrors[int(index)].uri.rstrip("/") + "/" + rest
        try:
            if _immutable(rest):
                self._send_file(_cached(upstream))
                return
            with urllib.request.urlopen(upstream, timeout=_UPSTREAM_TIMEOUT) as answer:
                self.send_response(200)
                length = answer.headers.get("Content-Length")
                if length:
                    self.send_header("Content-Length", length)
                self.send_header("Content-Type", answer.headers.get("Content-Type", "application/octet-stream"))
                self.end_headers()
                shutil.copyfileobj(answer, self.wfile)
        except urllib.error.HTTPError as exc:
            self.send_error(exc.code)
        except (urllib.error.URLError, OSError) as exc:
            log.debug("mirror pass-through of %s failed: %s", upstream, exc)
            self.send_error(502)

    def _send_file(self, path: Path) -> None:
        """Answer with a file of the cache."""
        with path.open("rb") as handle:
            self.send_response(200)
            self.send_header("Content-Length", str(path.stat().st_size))
            self.send_header("Content-Type", "application/octet-stream")
            self.end_headers()
            shutil.copyfileobj(handle, self.wfile)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("feed: %s - %s", self.address_string(), format % args)


def _immutable(rest: str) -> bool:
    """Whether a mirror path never changes its content: packages in pool/, indices by their hash."""
    return rest.startswith("pool/") or "/by-hash/" in rest


def _cached(upstream: str) -> Path:
    """The file at `upstream` from the cache, fetched into it first if need be (atomically: runs share it)."""
    target = MIRROR_CACHE / hashlib.sha256(upstream.encode()).hexdigest()
    if target.is_file():
        touch(target)  # its last use, for the cache's prune (testbed/image_cache.py)
        return target
    MIRROR_CACHE.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".tmp-{os.getpid()}-{threading.get_ident()}-{target.name}")
    try:
        with urllib.request.urlopen(upstream, timeout=_UPSTREAM_TIMEOUT) as answer, tmp.open("wb") as out:
            shutil.copyfileobj(answer, out)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


@contextmanager
def serving_feed(bind: str, mirrors: Sequence[Mirror], repo_public: Path | None) -> Iterator[Feed]:
    """Serve the feed on `bind` (any free port) from a background thread for the block."""
    # With no repository the static part serves an empty directory's nothing.
    directory = repo_public if repo_public is not None else Path("/nonexistent")
    handler = type("Handler", (_FeedHandler,), {"mirrors": tuple(mirrors)})
    try:
        server = ThreadingHTTPServer((bind, 0), functools.partial(handler, directory=str(directory)))
    except OSError as exc:
        raise MicrodeployError(f"cannot serve the host's APT feed on {bind}: {exc.strerror}",
                               hint="Check that the host's network namespace is up") from exc
    thread = threading.Thread(target=server.serve_forever, name="microdeploy-check-feed", daemon=True)
    thread.start()
    try:
        yield Feed(f"http://{bind}:{server.server_address[1]}/", tuple(mirrors), repo_public)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
