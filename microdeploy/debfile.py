"""Reading a .deb (python-debian's reader): what `publish` and `deploy` take from it, and where `check` opens it."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import tarfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from microdeploy import validate
from microdeploy.dists import DEFAULT_DIST
from microdeploy.errors import bad_input

if TYPE_CHECKING:
    from debian import debfile


@dataclass(frozen=True, order=True)
class PackageRef:
    """A binary package in a repository: name, version, architecture."""

    name: str
    version: str
    architecture: str

    @property
    def key(self) -> str:
        """aptly's package key, as `aptly repo show -with-packages` prints it."""
        return f"{self.name}_{self.version}_{self.architecture}"

    @property
    def filename(self) -> str:
        """The Debian file name of the package (the epoch is not part of it)."""
        return f"{self.name}_{self.version.partition(':')[2] or self.version}_{self.architecture}.deb"

    def query(self) -> str:
        """An aptly query matching exactly this package."""
        return f"Name (= {self.name}), $Version (= {self.version}), $Architecture (= {self.architecture})"


@dataclass(frozen=True)
class DebFile:
    """A validated .deb given to publish: its package, checksum and size."""

    path: Path
    package: PackageRef
    sha256: str
    size: int
    dist: str = DEFAULT_DIST  # the suite it is published into


def inspect_deb(path: Path) -> DebFile:
    """Validate a .deb and return its package, checksum and size (bad input: exit 2)."""
    if not path.is_file():
        found = f"{path} is not a file" if path.exists() else f"no such file: {path}"
        raise bad_input(found, hint="Pass the path of a built .deb")
    check_ar_archive(path)
    with opened(path) as deb:
        package = package_of(deb.debcontrol(), path)
    return DebFile(path, package, sha256_of(path), path.stat().st_size)


@contextlib.contextmanager
def opened(path: Path) -> Iterator[debfile.DebFile]:
    """The .deb at `path`, open to read its control fields and files; bad input (exit 2) where it cannot be read."""
    # python-debian reads a member only when asked: the control fields alone
    # never decompress the data archive. It is imported here, where it is
    # used: the CLI imports this module for every command.
    from debian import arfile, debfile

    try:
        with contextlib.closing(debfile.DebFile(str(path))) as deb:
            yield deb
    except (arfile.ArError, EOFError, OSError, tarfile.TarError) as exc:  # DebError is an ArError
        raise bad_input(f"{path} is not a readable Debian package: {exc}",
                        hint="Pass a .deb built by `microdeploy build` or dpkg-deb") from exc


def package_of(control: Mapping[str, str], path: Path) -> PackageRef:
    """The package a .deb's control fields name, each of the three checked (bad input: exit 2)."""
    package = PackageRef(control.get("Package", ""), control.get("Version", ""), control.get("Architecture", ""))
    for what, value, spec in (("package name", package.name, validate.PACKAGE_NAME),
                              ("version", package.version, validate.DEBIAN_VERSION),
                              ("architecture", package.architecture, validate.ARCHITECTURE)):
        validate.check(spec, what, value, str(path))
    return package


def check_ar_archive(path: Path) -> None:
    """Refuse a file that is not a complete ar archive (a truncated or foreign file), before dpkg-deb sees it."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        if handle.read(8) != b"!<arch>\n":
            raise bad_input(f"{path} is not a Debian package (no ar archive header)",
                            hint="Pass a .deb built by `microdeploy build` or dpkg-deb")
        offset = 8
        while offset < size:
            handle.seek(offset)
            header = handle.read(60)
            try:
                member = int(header[48:58].decode("ascii").strip())
            except (UnicodeDecodeError, ValueError):
                member = -1
            if len(header) < 60 or (member >= 0 and offset + 60 + member > size):
                raise bad_input(f"{path} is a truncated Debian package ({size} bytes)",
                                hint="Rebuild it or copy it again")
            if header[58:60] != b"`\n" or member < 0:
                raise bad_input(f"{path} is a corrupt Debian package (bad member header at byte {offset})",
                                hint="Rebuild it or copy it again")
            offset += 60 + member + (member % 2)  # members are padded to even offsets


def sha256_of(path: Path) -> str:
    """The SHA-256 of a file, in hex."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(functools.partial(handle.read, 1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
