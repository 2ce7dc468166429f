"""A fresh Debian root (12, or 13) that shares the machine's network: apt and pip work inside it.

Booted hosts (host.py) are offline by design. Installing a package whose
dependencies come from Debian, or running a build that pip-installs from
PyPI, needs the mirror and the index instead; that needs no systemd, so the
root is not booted: each command runs in `systemd-nspawn -D ROOT` without
`-b` and without a private network, i.e. in the host's network namespace.

The root is an overlay over the cached base image (like a host's), given the
machine's APT sources (the image drops them), its local CA certificates (the
registries may be reached through a TLS-inspecting proxy) and its pip
configuration (/etc/pip.conf, /etc/xdg/pip), as far as they exist.
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from microdeploy.process import Result, run
from microdeploy.testbed.image import SUITE, sources_file, unpacked
from microdeploy.testbed.procs import ROOTS_DIR, mount_root, remove_host_directory, write_owner

__all__ = ["OnlineRoot", "fresh_online_root"]

# What the machine's network access rests on, copied into the root when present.
_SOURCES_IN_ROOT = "etc/apt/sources.list.d/debian.sources"
_MACHINE_FILES = (
    (Path("/etc/pip.conf"), "etc/pip.conf"),
    (Path("/etc/xdg/pip"), "etc/xdg/pip"),
)
_LOCAL_CA_DIR = Path("/usr/local/share/ca-certificates")

_ENV: Mapping[str, str] = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "LANG": "C.UTF-8",
    "DEBIAN_FRONTEND": "noninteractive",
}


@dataclass(frozen=True)
class OnlineRoot:
    """A fresh, unbooted Debian root on the host's network."""

    directory: Path

    @property
    def root(self) -> Path:
        """The root filesystem as seen from our side."""
        return self.directory / "root"

    def copy_in(self, local_path: Path, dest: str) -> str:
        """Copy a file to the absolute path `dest` inside the root; return `dest`."""
        target = self.root / PurePosixPath(dest).relative_to("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(local_path, target)
        return dest

    def run(
        self, argv: Sequence[str], *, cwd: str = "/root", check: bool = True, timeout: float = 600.0
    ) -> Result:
        """Run `argv` inside the root with the host's network (and a clean environment)."""
        nspawn = [
            "systemd-nspawn", "-q", "--register=no", "--keep-unit", "--link-journal=no",
            # nspawn bind-mounts /etc/localtime by default, and tzdata's postinst
            # then fails to replace it; copy resolv.conf so DNS works as here.
            "--timezone=off", "--resolv-conf=copy-host",
            "-D", str(self.root), f"--chdir={cwd}",
            *(f"--setenv={key}={value}" for key, value in _ENV.items()),
        ]  # fmt: skip
        return run([*nspawn, "--", *argv], check=check, timeout=timeout, env=_ENV, inherit_env=False)


@contextmanager
def fresh_online_root(image: Path, suite: str = SUITE) -> Iterator[OnlineRoot]:
    """A fresh root from `image` (of release `suite`) with the machine's APT sources for that release, CA and pip
    configuration; removed afterwards."""
    ROOTS_DIR.mkdir(parents=True, exist_ok=True)
    directory = Path(tempfile.mkdtemp(prefix=f"mdon-{secrets.token_hex(4)}.", dir=ROOTS_DIR))
    try:
        write_owner(directory, None)  # reap_stale_hosts removes it if this session dies
        mount_root(unpacked(image), directory)
        root = OnlineRoot(directory)
        root.copy_in(sources_file(suite, directory), f"/{_SOURCES_IN_ROOT}")
        for source, dest in _MACHINE_FILES:
            if source.is_dir():
                shutil.copytree(source, root.root / dest, dirs_exist_ok=True)
            elif source.is_file():
                root.copy_in(source, f"/{dest}")
        local_cas = sorted(_LOCAL_CA_DIR.glob("*.crt"))
        for cert in local_cas:
            root.copy_in(cert, f"{_LOCAL_CA_DIR}/{cert.name}")
        if local_cas:
            root.run(["update-ca-certificates"], timeout=120)
        yield root
    finally:
        remove_host_directory(directory)

