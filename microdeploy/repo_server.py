"""Serving a published repository over plain HTTP: `microdeploy repo serve`, and tests in-process.

Its own module so that the other commands do not import http.server.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from microdeploy.errors import MicrodeployError, bad_input
from microdeploy.repo import SERVE_BIND, SERVE_PORT, Layout

log = logging.getLogger(__name__)


class QuietHandler(SimpleHTTPRequestHandler):
    """Static files, never "304 Not Modified", with request lines going to logging rather than stderr."""

    def send_head(self) -> Any:
        # http.server compares If-Modified-Since with mtimes in whole seconds: an
        # index republished within the second apt last fetched it would be
        # answered 304 and apt would keep the old one. Always send the file.
        del self.headers["If-Modified-Since"]
        return super().send_head()

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s - %s", self.address_string(), format % args)


class IPv6HTTPServer(ThreadingHTTPServer):
    """The same server on an IPv6 socket (ThreadingHTTPServer's is IPv4 only)."""

    address_family = socket.AF_INET6


def make_server(repo: Path, bind: str = SERVE_BIND, port: int = SERVE_PORT) -> ThreadingHTTPServer:
    """A static HTTP server over DIR/public (each request follows the symlink, so swaps are seen at once).

    `bind` may be an IPv6 address, bare or in brackets as in a URL.
    """
    public = Layout(repo.absolute()).public
    if not public.is_dir():
        raise bad_input(f"no published repository in {repo}", hint="Run `microdeploy publish DEB --repo DIR` first")
    handler = functools.partial(QuietHandler, directory=str(public))
    host = bind[1:-1] if bind.startswith("[") and bind.endswith("]") else bind
    try:
        server_class = IPv6HTTPServer if ipaddress.ip_address(host).version == 6 else ThreadingHTTPServer
    except ValueError:  # a host name
        server_class = ThreadingHTTPServer
    try:
        return server_class((host, port), handler)
    except OSError as exc:
        raise MicrodeployError(f"cannot listen on {bind}:{port}: {exc.strerror}",
                               hint="Choose another --port or --bind address") from exc


def server_url(server: ThreadingHTTPServer) -> str:
    """The base URL a server answers on."""
    host, port = server.server_address[:2]
    shown = f"[{host!s}]" if server.address_family == socket.AF_INET6 else str(host)
    return f"http://{shown}:{port}/"


@contextmanager
def serving(repo: Path, bind: str = SERVE_BIND, port: int = 0) -> Iterator[str]:
    """Serve the repository from a background thread for the block (e.g. the demo); yield its URL."""
    server = make_server(repo, bind, port)
    thread = threading.Thread(target=server.serve_forever, name="microdeploy-repo-serve", daemon=True)
    thread.start()
    try:
        yield server_url(server)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def serve(
    repo: Path, bind: str = SERVE_BIND, port: int = SERVE_PORT,
    ready: Callable[[str], None] | None = None,
) -> None:
    """Serve DIR/public over HTTP until interrupted; `ready(url)` is called once it listens."""
    server = make_server(repo, bind, port)
    try:
        if ready is not None:
            ready(server_url(server))
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
