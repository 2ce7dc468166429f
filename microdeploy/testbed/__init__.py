"""Fresh Debian hosts on this machine: cached images, booted with systemd in systemd-nspawn.

`microdeploy check` proves a package on such a host, and the project's own
test suite boots the same hosts (``tests/testbed/fixtures.py``):

- ``image``    -- cached mmdebstrap tarballs per release under CACHE_DIR
  (target-host images keyed by their package list, the piuparts base)
- ``network``  -- per-host network namespaces with a veth pair (10.231.N.0/24)
- ``host``     -- boot a fresh overlay copy of an image, run commands in it, power it off
- ``procs``    -- the /proc bookkeeping that ends hosts by pid and reaps dead sessions' leftovers

Hosts are offline: they carry no APT sources, and a namespaced host reaches
only its loopback and our 10.231.N.1 addresses (serve a repository there).
Everything here needs root.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from microdeploy.errors import MicrodeployError
from microdeploy.fsutil import held_lock

__all__ = ["CACHE_DIR", "file_lock"]

# Images are large and shared by every checkout, test session and `check` run
# on the machine, and must survive `git clean`: outside any repository.
CACHE_DIR = Path("/var/cache/microdeploy/hosts")


@contextmanager
def file_lock(path: Path, timeout: float = 1200.0, *, shared: bool = False) -> Iterator[None]:
    """Hold an exclusive (or `shared`) flock on `path`, waiting at most `timeout` seconds for it."""
    # The default wait outlasts any sane image build another session may be doing.
    with held_lock(path, timeout, lambda: MicrodeployError(
        f"waited {timeout:g} s for the lock {path}",
        hint="Look for a hung test session or image build (`pgrep -a mmdebstrap`)",
    ), poll=0.5, shared=shared):
        yield
