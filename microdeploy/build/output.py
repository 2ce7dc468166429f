"""What a build leaves in the output directory, and what it reports."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from microdeploy import dists
from microdeploy.build.dpkg import Artifacts
from microdeploy.build.release.settings import BuildSettings
from microdeploy.errors import bad_input
from microdeploy.fsutil import atomic_write

log = logging.getLogger(__name__)


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
    """--out, else PROJECT/dist; refused when it is a file."""
    out = settings.out or settings.project / "dist"
    if out.exists() and not out.is_dir():
        raise bad_input(f"output path {out} is not a directory", hint="Pass a directory with --out")
    return out


def publish_artifacts(built: Artifacts, out: Path) -> Artifacts:
    """Copy the three files into `out`, each atomically, the .deb last."""
    out.mkdir(parents=True, exist_ok=True)
    copied = {}
    for kind in ("buildinfo", "changes", "deb"):
        path: Path = getattr(built, kind)
        atomic_write(out / path.name, path.read_bytes())
        copied[kind] = out / path.name
    return Artifacts(**copied)
