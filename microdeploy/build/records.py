"""The .buildinfo and .changes of a binary build, given the finished package's checksums.

dpkg-genbuildinfo and dpkg-genchanges are slow to start (Perl, dpkg's
status file), and they record the package's size and checksums, so they
would have to wait for its compression. debian/rules runs them as soon as
dh_gencontrol has named the package in debian/files, beside the steps after
it, on a stand-in for the package (an empty file of its name in
STAND_IN_DIR beside the build tree, their -u). Once the package is
compressed, `finish` puts its size and checksums in place of the
stand-in's in both files, and the .buildinfo's own into the .changes.
Everything else in them is what the generators wrote.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from microdeploy.build.fastpath.contract import STAND_IN_DIR
from microdeploy.errors import MicrodeployError

BLOCK = 1 << 20


@dataclass(frozen=True)
class Checksums:
    """A file's size and digests, as .buildinfo and .changes list them."""

    size: int
    md5: str
    sha1: str
    sha256: str

    @classmethod
    def of(cls, path: Path) -> Checksums:
        digests = [hashlib.md5(usedforsecurity=False), hashlib.sha1(usedforsecurity=False), hashlib.sha256()]
        with path.open("rb") as handle:
            while block := handle.read(BLOCK):
                for digest in digests:
                    digest.update(block)
        return cls(path.stat().st_size, *(digest.hexdigest() for digest in digests))

    def replacing(self, old: Checksums) -> dict[str, str]:
        """Each of `old`'s digests, and its size, mapped to this file's."""
        return {old.md5: self.md5, old.sha1: self.sha1, old.sha256: self.sha256, str(old.size): str(self.size)}


def finish(tree: Path, deb: Path) -> None:
    """Put the finished `deb`'s checksums into the records that dpkg's generators wrote of `tree`'s build on a
    stand-in, and move them beside `tree`."""
    stand_ins = tree.parent / STAND_IN_DIR
    found = sorted(stand_ins.glob("*.buildinfo"))
    if len(found) != 1:
        raise MicrodeployError(f"dpkg-genbuildinfo left {len(found)} .buildinfo files in {stand_ins}")
    record = found[0]
    changes = tree.parent / f"{record.stem}.changes"
    final, old_record = Checksums.of(deb).replacing(Checksums.of(stand_ins / deb.name)), Checksums.of(record)
    put_checksums(record, deb.name, final)
    put_checksums(changes, deb.name, final)
    put_checksums(changes, record.name, Checksums.of(record).replacing(old_record))
    shutil.move(record, tree.parent / record.name)
    shutil.rmtree(stand_ins)


def put_checksums(path: Path, name: str, new: Mapping[str, str]) -> None:
    """In the checksum lines of `path` that list the file `name` (" DIGEST SIZE [SECTION PRIORITY] NAME"),
    replace the digest and the size by their values in `new`."""
    lines = path.read_text(encoding="utf-8").split("\n")
    replaced = 0
    for index, line in enumerate(lines):
        fields = line.split(" ")
        if line.startswith(" ") and fields[-1] == name and fields[1] in new and fields[2] in new:
            lines[index] = " ".join(["", new[fields[1]], new[fields[2]], *fields[3:]])
            replaced += 1
    if replaced < 3:  # Checksums-Sha1, Checksums-Sha256, and Files or Checksums-Md5
        raise MicrodeployError(f"{path} lists {name} with other checksums than dpkg's generators were given")
    path.write_text("\n".join(lines), encoding="utf-8")
