"""The template context of debian/: a pure function of the service and the build facts."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from typing import Any

from microdeploy.apptarget import shell_quoted, systemd_quoted
from microdeploy.build.debiandir.tree import SOURCE_SUBDIR
from microdeploy.build.fastpath import contract, datapack
from microdeploy.build.release.license import StatedLicense, script_tables
from microdeploy.config import ServiceConfig

WSGI_SERVER = "gunicorn>=21.2"
# What --keep-installers ships in the venv (uv's venvs have none of them; a pip venv on Python 3.12 and later
# has no setuptools).
INSTALLERS = ("pip", "setuptools", "wheel")
# How long a stop may take: systemd (TimeoutStopSec) then kills every process of the unit and marks it failed.
# gunicorn's graceful_timeout ends first: a worker that does not exit on SIGTERM (an app's non-daemon thread)
# is killed by gunicorn, which then exits, and the stop succeeds.
STOP_TIMEOUT = 30
GRACEFUL_TIMEOUT = 25


def sandbox(name: str, write_execute_memory: bool = False) -> list[tuple[str, str]]:
    """The unit's sandbox, setting by setting: NAME.service has these lines and NAME-run passes them to
    systemd-run, so an operator's command runs exactly as confined as the service. `write_execute_memory`: the
    service's code needs such memory (the config's key), so none is refused."""
    return [
        ("UMask", "0027"),
        # Writable places: its state (also Flask's instance folder) and its logs; everything else is read-only.
        ("ProtectSystem", "strict"),
        ("ReadWritePaths", f"/var/lib/{name} /var/log/{name}"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("PrivateUsers", "yes"),
        ("PrivateMounts", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectKernelLogs", "yes"),
        ("ProtectControlGroups", "yes"),
        ("ProtectClock", "yes"),
        ("ProtectHostname", "yes"),
        # Other processes are invisible; /proc's system files stay readable (no ProcSubset=pid): without
        # /proc/stat and /proc/meminfo, prometheus_client's process metrics vanish without a word, and psutil's
        # memory and boot time fail.
        ("ProtectProc", "invisible"),
        ("NoNewPrivileges", "yes"),
        # No capability: the port is the host's choice (/etc/NAME/config.ini), and a host
        # that gives it a port below 1024 grants CAP_NET_BIND_SERVICE by a drop-in (the
        # Puppet module writes one).
        ("CapabilityBoundingSet", ""),
        ("AmbientCapabilities", ""),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("RestrictNamespaces", "yes"),
        ("RestrictRealtime", "yes"),
        ("RestrictSUIDSGID", "yes"),
        ("LockPersonality", "yes"),
        *([] if write_execute_memory else [("MemoryDenyWriteExecute", "yes")]),
        ("RemoveIPC", "yes"),
        ("KeyringMode", "private"),
        ("DevicePolicy", "closed"),
        ("SystemCallArchitectures", "native"),
        # @system-service is what gunicorn needs; "~@privileged" kills it with SIGSYS.
        ("SystemCallFilter", "@system-service"),
        ("SystemCallFilter", "~@resources @mount @swap @reboot @raw-io @module @obsolete @cpu-emulation @debug"),
        ("SystemCallErrorNumber", "EPERM"),
    ]


@dataclass(frozen=True)
class BuildFacts:
    """What the build found out beyond the service config."""

    upstream: str
    version: str
    python_minor: str
    distribution: str
    epoch: int
    license: StatedLicense  # for debian/copyright (license.stated_license)
    keep_installers: bool = False
    installer: str = "pip"  # "uv" when uv fills the venv (with the shared caches)


def copyright_context(name: str, maintainer: str, stated: StatedLicense, kind: str) -> dict[str, Any]:
    """What debian_templates/copyright.j2 uses: the name upstream uses, else the package's (`name`); the copyright
    holders are the notices of the project's license files, else the authors it names, else its packager
    (`maintainer`); `kind` is what is packaged ("service", "library")."""
    # Without a notice no year is known: the build's date is an sdist's file time (hatchling's are all 2020-02-02)
    # or a commit's, not the year of a copyright. DEP-5 takes the holders alone.
    holders = list(stated.notices) or [stated.authors or maintainer]
    text = list(stated.text) or [
        f"This {kind} is distributed under the terms of its upstream license." if stated.name != "other"
        else "See the license of the upstream project."
    ]
    return {
        "upstream_name": stated.upstream_name or name,
        # DEP-5 continuation lines: one space, and " ." for an empty line.
        "copyright_holders": "\n ".join(holders),
        "license_name": stated.name,
        "license_text": "\n".join(f" {line}" if line.strip() else " ." for line in text),
    }


def extended_description(name: str) -> list[str]:
    """debian/control's extended description, wrapped to lintian's 80 columns whatever the name's length."""
    text = (f"{name} is a Python web service packaged with its own virtual environment under "
            f"/opt/venvs/{name}, served by gunicorn through the systemd unit {name}.service. Its address, "
            f"port and workers come from /etc/{name}/config.ini; its logs go to /var/log/{name}.")
    return textwrap.wrap(text, width=78, break_long_words=False, break_on_hyphens=False)


def debian_context(config: ServiceConfig, facts: BuildFacts) -> dict[str, Any]:
    """Everything the debian/ templates use."""
    settings = sandbox(config.name, config.write_execute_memory)
    return {
        **copyright_context(config.name, config.maintainer, facts.license, "service"),
        "name": config.name,
        "app": config.app,
        # The unit's ExecStart word and N-run's shell word: literal arguments may hold quotes, % or $.
        "app_exec_word": systemd_quoted(config.app),
        "app_shell_word": shell_quoted(config.app),
        "summary": config.summary,
        "extended_description": extended_description(config.name),
        "maintainer": config.maintainer,
        "port": config.port,
        "bind": config.bind,
        "workers": config.workers,
        "stop_timeout": STOP_TIMEOUT,
        "graceful_timeout": GRACEFUL_TIMEOUT,
        "compression": config.compression,
        "compression_level": config.compression_level,
        # dpkg-deb writes the members plain, and microdeploy compresses them (fastpath/datapack.py).
        "plain_members": datapack.writes(config.compression),
        "health_path": config.health_path,
        "depends": config.depends,
        "build_depends": config.build_depends,
        "python_package": f"python{facts.python_minor}",
        "wsgi_server": WSGI_SERVER,
        "source_dir": SOURCE_SUBDIR,
        "keep_pip": facts.keep_installers,
        "installers": list(INSTALLERS) if facts.keep_installers else [],
        "extras": list(config.extras),
        "installer": facts.installer,
        # dh_virtualenv's --pip-tool, which make-venv puts into the venv: uv's install, or the venv's own pip.
        "pip_tool": contract.PIP_TOOL if facts.installer == "uv" else contract.PLAIN_PIP_TOOL,
        "sandbox": settings,
        # N-run's systemd-run arguments: one shell word per property.
        "sandbox_words": [shell_quoted(f"--property={key}={value}") for key, value in settings],
        "env_prefix": config.module.upper() + "_",
        "contract": contract.script_names(),
        "licenses": script_tables(),
        # The service's own distribution, whose files debian/copyright's Files: * covers (debian/venv-copyright).
        "project_distribution_word": shell_quoted(facts.license.upstream_name or config.name),
    }
