"""The template context of debian/: a pure function of the service and the build facts."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from microdeploy.build.debiandir.tree import SOURCE_SUBDIR
from microdeploy.build.fastpath import contract
from microdeploy.config import ServiceConfig

WSGI_SERVER = "gunicorn>=21.2"


@dataclass(frozen=True)
class BuildFacts:
    """What the build found out beyond the service config."""

    upstream: str
    version: str
    python_minor: str
    distribution: str
    epoch: int
    license_name: str
    keep_installers: bool = False
    installer: str = "pip"  # "uv" when uv fills the venv (with the shared caches)


def copyright_context(name: str, maintainer: str, epoch: int, license_name: str, kind: str) -> dict[str, Any]:
    """What debian_templates/copyright.j2 uses; `kind` is what is packaged ("service", "library")."""
    return {
        "name": name,
        "maintainer": maintainer,
        "copyright_year": time.gmtime(epoch).tm_year,
        "license_name": license_name,
        "license_text": (
            f"This {kind} is distributed under the terms of its upstream license."
            if license_name != "other"
            else "See the license of the upstream project."
        ),
    }


def debian_context(config: ServiceConfig, facts: BuildFacts) -> dict[str, Any]:
    """Everything the debian/ templates use."""
    return {
        **copyright_context(config.name, config.maintainer, facts.epoch, facts.license_name, "service"),
        "name": config.name,
        "app": config.app,
        "summary": config.summary,
        "maintainer": config.maintainer,
        "port": config.port,
        "bind": config.bind,
        "workers": config.workers,
        "compression": config.compression,
        "compression_level": config.compression_level,
        "health_path": config.health_path,
        "depends": config.depends,
        "build_depends": config.build_depends,
        "python_package": f"python{facts.python_minor}",
        "wsgi_server": WSGI_SERVER,
        "source_dir": SOURCE_SUBDIR,
        "keep_pip": facts.keep_installers,
        "installer": facts.installer,
        "env_prefix": config.module.upper() + "_",
        "contract": contract.script_names(),
    }
