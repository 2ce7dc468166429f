"""What `microdeploy build` was asked to do."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
