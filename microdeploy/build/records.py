"""The .buildinfo and .changes of a binary build, written by dpkg's generators while the package is compressed.

dpkg-genbuildinfo and dpkg-genchanges take a third of a second between them
(Perl, dpkg's status file), and they record the package's size and
checksums, so they would have to wait for its compression. They run beside
it instead, on a stand-in for the package (an empty file of its name in a
directory of its own, -u), and the finished package's size and checksums
then replace the stand-in's in both files, the .buildinfo's own in the
.changes too. Everything else in them is what the generators wrote.
"""

from __future__ import annotations

import hashlib
import shutil
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from microdeploy.errors import MicrodeployError

BLOCK = 1 << 20
STAND_IN_DIR = "records"


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


def generate(tree: Path, deb: Path, run_step: Callable[[list[str]], None], compress: Callable[[], None]) -> None:
    """Run `compress` (which rewrites `deb`) while dpkg's generators write the records of `tree`'s build beside
    `tree`; then put `deb`'s final checksums into them.

    `run_step` runs one generator in `tree` and raises when it fails.
    """
    stand_ins = tree.parent / STAND_IN_DIR
    stand_ins.mkdir()
    stand_in = stand_ins / deb.name
    stand_in.touch()
    failed: list[BaseException] = []

    def write_records() -> None:
        try:
            run_step(["dpkg-genbuildinfo", "--build=binary", f"-u{stand_ins}"])
            run_step(["dpkg-genchanges", "--build=binary", f"-u{stand_ins}", f"-O../{buildinfo().stem}.changes"])
        except BaseException as exc:  # re-raised on the caller's thread
            failed.append(exc)

    def buildinfo() -> Path:
        found = sorted(stand_ins.glob("*.buildinfo"))
        if len(found) != 1:
            raise MicrodeployError(f"dpkg-genbuildinfo left {len(found)} .buildinfo files in {stand_ins}")
        return found[0]

    writer = threading.Thread(target=write_records, name="records", daemon=True)
    writer.start()
    try:
        compress()
    finally:
        writer.join()
    if failed:
        raise failed[0]
    record = buildinfo()
    changes = tree.parent / f"{record.stem}.changes"
    final, old_record = Checksums.of(deb).replacing(Checksums.of(stand_in)), Checksums.of(record)
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
