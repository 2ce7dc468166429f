"""What a build leaves in the output directory, and what it reports.

The output directory gets a build's .deb, .buildinfo and .changes together,
or nothing. The three files are linked (from another file system: copied)
into a staging directory beside it (inside it when it is a file system of its
own), synced, and renamed in, the .deb last,
with a list of them written first. A build killed during those renames
leaves the staging directory and its list behind; the next build into the
same directory puts back what was there before and removes the rest. Files
of the same name that a rename replaces are kept in the staging directory
(hard links) until all three are in.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from microdeploy import dists
from microdeploy.build.dpkg import Artifacts
from microdeploy.build.release.settings import BuildSettings
from microdeploy.errors import MicrodeployError, bad_input
from microdeploy.fsutil import (
    abandoned,
    atomic_write,
    check_writable,
    link_or_copy,
    private_directory,
    sync_directory,
    sync_file,
)

log = logging.getLogger(__name__)

LIST = ".files"
PREVIOUS = ".previous"
ORDER = ("buildinfo", "changes", "deb")


@dataclass(frozen=True)
class BuildResult:
    """What the build produced."""

    name: str
    version: str
    deb: Path
    buildinfo: Path
    changes: Path
    size: int
    seconds: float
    dist: str = ""  # the release it is built for (from the version's +debN)

    @classmethod
    def of(cls, name: str, version: str, artifacts: Artifacts, started: float) -> BuildResult:
        """The result of a build that began at `started` (time.monotonic) and put `artifacts` in place."""
        result = cls(
            name=name, version=version, deb=artifacts.deb, buildinfo=artifacts.buildinfo,
            changes=artifacts.changes, size=artifacts.deb.stat().st_size, seconds=time.monotonic() - started,
            dist=getattr(dists.of_version(version), "codename", ""),
        )
        log.info("built %s (%d kB)", result.deb, result.size // 1024)
        return result

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly view for --json."""
        return {
            "name": self.name, "version": self.version, "deb": str(self.deb),
            "buildinfo": str(self.buildinfo), "changes": str(self.changes),
            "size": self.size, "seconds": round(self.seconds, 2), "dist": self.dist,
        }


def output_directory(settings: BuildSettings) -> Path:
    """--out, else PROJECT/dist."""
    return settings.out or settings.project / "dist"


def staging_prefix(out: Path) -> str:
    """The name prefix of the staging directories of `out`."""
    return f".{out.name}.staging"


def staging_parent(out: Path) -> Path:
    """Where `out`'s staging directories live: beside it, or inside it when it is a file system of its own (a
    mount point, or a link to one: a CI job's artifact directory), since a rename cannot cross file systems."""
    real = out.resolve()
    try:
        own = real.is_dir() and os.stat(real).st_dev != os.stat(real.parent).st_dev
    except OSError:
        own = False
    return real if own else real.parent


def prepare_output(out: Path) -> Path:
    """Check that `out` can take the build, recover what a killed build left, and make a staging directory."""
    check_writable(out, "--out")
    if out.exists() and not out.is_dir():
        raise bad_input(f"output path {out} is not a directory", hint="Pass a directory with --out")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        recover(out)
        staging = private_directory(staging_prefix(out), staging_parent(out))
    except OSError as exc:
        raise bad_input(f"cannot write the build's output beside {out}: {exc.strerror}",
                        hint="Pass a directory you can write with --out") from exc
    if out.is_dir():
        # Tried, not read from the mode bits: they say nothing for root, a read-only mount or /proc.
        try:
            fd, probe = tempfile.mkstemp(prefix=".microdeploy-probe.", dir=out)
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            shutil.rmtree(staging, ignore_errors=True)
            raise bad_input(f"cannot write the build's output into {out}: {exc.strerror}",
                            hint="Pass a directory you can write with --out") from exc
    return staging


def recover(out: Path) -> None:
    """Undo the half-done move of a killed build into `out`, and remove its staging directory."""
    for leftover in abandoned(staging_parent(out), staging_prefix(out)):
        listed = leftover / LIST
        names = listed.read_text(encoding="utf-8").split("\n") if listed.is_file() else []
        if any((leftover / name).exists() for name in names if name):
            for name in filter(None, names):
                previous = leftover / (name + PREVIOUS)
                if previous.exists():
                    os.replace(previous, out / name)
                elif not (leftover / name).exists():
                    (out / name).unlink(missing_ok=True)
        shutil.rmtree(leftover, ignore_errors=True)


def stage(made: Path, staged: Path) -> None:
    """Put the file `made` at `staged`, on disk: a hard link where both are on one file system, else a copy."""
    link_or_copy(made, staged)
    os.chmod(staged, 0o644)
    sync_file(staged)


def move_in(built: Artifacts, staging: Path, out: Path) -> Artifacts:
    """Stage the build's files in `staging`, then rename them into `out` (the .deb last)."""
    names = [getattr(built, kind).name for kind in ORDER]
    try:
        for kind, name in zip(ORDER, names, strict=True):
            stage(getattr(built, kind), staging / name)
        out.mkdir(parents=True, exist_ok=True)
        for name in names:
            if (out / name).exists():
                os.link(out / name, staging / (name + PREVIOUS))
        atomic_write(staging / LIST, "\n".join(names) + "\n")
    except OSError as exc:
        raise MicrodeployError(f"cannot write the build's output to {out}: {exc.strerror}",
                               hint="Free some space (or fix the permissions) and build again") from exc
    for name in names:
        os.replace(staging / name, out / name)
    sync_directory(out)
    shutil.rmtree(staging, ignore_errors=True)
    return Artifacts(**{kind: out / name for kind, name in zip(ORDER, names, strict=True)})
