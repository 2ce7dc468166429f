"""What `microdeploy build` was asked to do."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from microdeploy.pyproject import Pyproject, read_pyproject

BACKENDS = ("dh-virtualenv", "stdeb")


@dataclass(frozen=True)
class BuildSettings:
    """Everything `microdeploy build` was asked to do."""

    project: Path
    out: Path | None = None
    overrides: Mapping[str, Any] = field(default_factory=dict)
    revision: str | None = None
    environ: Mapping[str, str] = field(default_factory=dict)
    keep_installers: bool = False
    work_dir: Path | None = None
    refresh_deps: bool = False
    backend: str = "dh-virtualenv"
    dist: str | None = None  # the release codename to build for; None: this machine's own
    clean_root: bool = False  # build in the release's clean root even when it is this machine's
    refresh_root: bool = False  # remake the release's build root first
    # The project's pyproject.toml, read once at the build's start (pipeline.py) and handed down with the settings.
    pyproject: Pyproject | None = None

    def project_file(self) -> Pyproject:
        """The project's pyproject.toml: as read at the build's start, else (settings made for one step) read now."""
        return self.pyproject if self.pyproject is not None else read_pyproject(self.project)
