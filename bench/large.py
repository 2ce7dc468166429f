"""The large application's row: an app-only rebuild of a public Flask app with compiled wheels.

The application is otterwiki, its sdist from PyPI, unmodified and pinned
(downloaded once into the work directory, then reused offline). Each round
commits a change to the app's code and rebuilds it from a fresh copy, warm
caches, with microdeploy and with B (uv + nFPM). The floor is in the same
round: `dpkg-deb --build` packing the finished tree of microdeploy's package
(unpacked from it with `dpkg-deb -R`, owner root) with the compressor and
level microdeploy uses by default, the part of a build no tool can avoid.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.builders import Builders, git, init_checkout, run
from microdeploy.config import COMPRESSION_LEVELS, DEFAULT_COMPRESSION

PROJECT, VERSION = "otterwiki", "2.26.1"
NAME, APP = "otterwiki", "otterwiki.server:app"
CHANGED_MODULE = Path("otterwiki") / "util.py"  # the app's code the app-only commit changes
TOOLS = ("B", "microdeploy")
COMPRESSION = (DEFAULT_COMPRESSION, COMPRESSION_LEVELS[DEFAULT_COMPRESSION][2])
# Issue 21: the app-only rebuild at most this many times the floor, and a
# .deb no larger than the one built before the work on it, give or take
# DEB_SLACK: every round's commit adds a line to the package's changelog.
FLOOR_TARGET = 1.5
DEB_BYTES_BEFORE = 29_821_764
DEB_SLACK = 0.001


@dataclass(frozen=True)
class Floor:
    """`dpkg-deb --build` of a finished package tree: how long, how large."""

    seconds: float
    deb_bytes: int
    installed_bytes: int


def sdist(work: Path) -> Path:
    """The pinned sdist, from PyPI the first time, from the work directory's copy after that."""
    cache = work / "sdists"
    found = sorted(cache.glob(f"{PROJECT}-{VERSION}.tar.gz"))
    if not found:
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
                        "--dest", str(cache), f"{PROJECT}=={VERSION}"], check=True)
        found = sorted(cache.glob(f"{PROJECT}-{VERSION}.tar.gz"))
    return found[0]


def prepare_app(work: Path) -> Path:
    """A git checkout of the unpacked sdist in the work directory."""
    unpacked = work / "large-app"
    subprocess.run(["rm", "-rf", str(unpacked)], check=True)
    unpacked.mkdir(parents=True)
    subprocess.run(["tar", "--no-same-owner", "-xzf", str(sdist(work)), "-C", str(unpacked)], check=True)
    checkout = unpacked / f"{PROJECT}-{VERSION}"
    init_checkout(checkout, f"{PROJECT} {VERSION}")
    return checkout


def change_app(checkout: Path, original: str, round_number: int) -> None:
    """An app-only commit: one more line in one of the app's modules."""
    (checkout / CHANGED_MODULE).write_text(f"{original}\nBENCH_ROUND = {round_number}\n", encoding="utf-8")
    git(checkout, "commit", "-q", "-am", f"round {round_number}")


def floor(deb: Path, scratch: Path) -> Floor:
    """Unpack `deb` (owner root, as dh_builddeb packs it), then time `dpkg-deb --build` of that tree."""
    tree = scratch / "tree"
    run(["dpkg-deb", "-R", str(deb), str(tree)])
    installed = sum(path.stat().st_size for path in tree.rglob("*")
                    if path.is_file() and not path.is_symlink() and "DEBIAN" not in path.relative_to(tree).parts)
    compressor, level = COMPRESSION
    out = scratch / "floor.deb"
    started = time.monotonic()
    run(["dpkg-deb", "--root-owner-group", f"-Z{compressor}", f"-z{level}", "--build", str(tree), str(out)])
    seconds = time.monotonic() - started
    return Floor(seconds, out.stat().st_size, installed)


def build(builders: Builders, tool: str, checkout: Path) -> tuple[float, Path]:
    """One build of the large app with `tool`; its time and .deb."""
    scratch = builders.scratch(f"large-{tool}")
    if tool == "B":
        built = builders.reference_b(checkout, scratch, builders.env, package=NAME)
    else:
        built = builders.microdeploy(checkout, scratch, builders.env, "--name", NAME, "--app", APP, package=NAME)
    return built.seconds, built.deb


def large_rounds(builders: Builders, work: Path, runs: int) -> dict[str, Any]:
    """Warm up, then `runs` app-only rounds, the tools' order alternating, the floor after microdeploy's build."""
    checkout = prepare_app(work)
    original = (checkout / CHANGED_MODULE).read_text(encoding="utf-8")
    times: dict[str, list[float]] = {tool: [] for tool in (*TOOLS, "floor")}
    debs: dict[str, Path] = {}
    floors: list[Floor] = []
    print(f"large app {PROJECT} {VERSION}, warm-up: one build with each tool (fills the caches)", flush=True)
    for tool in TOOLS:
        build(builders, tool, checkout)
    for round_number in range(1, runs + 1):
        change_app(checkout, original, round_number)
        for tool in TOOLS if round_number % 2 else reversed(TOOLS):
            seconds, debs[tool] = build(builders, tool, checkout)
            times[tool].append(seconds)
            print(f"large {round_number} app_change {tool:<18} {seconds:6.2f} s", flush=True)
            if tool == "microdeploy":
                floors.append(floor(debs[tool], builders.scratch("large-floor")))
                times["floor"].append(floors[-1].seconds)
                print(f"large {round_number} app_change {'floor':<18} {floors[-1].seconds:6.2f} s", flush=True)
    return summarise(times, debs, floors[-1])


def summarise(times: dict[str, list[float]], debs: dict[str, Path], last_floor: Floor) -> dict[str, Any]:
    """Medians, sizes, the ratio to the floor and the targets of the large app's row."""
    median = {tool: statistics.median(values) for tool, values in times.items()}
    deb_bytes = {tool: debs[tool].stat().st_size for tool in TOOLS}
    deb_bytes["floor"] = last_floor.deb_bytes
    ratios = {
        "app_change_vs_floor": median["microdeploy"] / median["floor"],
        "app_change_vs_B": median["microdeploy"] / median["B"],
    }
    return {
        "application": f"{PROJECT} {VERSION}",
        "compression": f"{COMPRESSION[0]} -{COMPRESSION[1]}",
        "runs": times,
        "median_seconds": median,
        "deb_bytes": deb_bytes,
        "installed_bytes": last_floor.installed_bytes,
        "ratios": ratios,
        "targets": {
            f"large app-only rebuild <= {FLOOR_TARGET:g}x the floor": ratios["app_change_vs_floor"] <= FLOOR_TARGET,
            "large app's .deb no larger than before": deb_bytes["microdeploy"] <= DEB_BYTES_BEFORE * (1 + DEB_SLACK),
        },
    }


def table(result: dict[str, Any]) -> str:
    """The large app's row as a small Markdown table, its ratios and its targets."""
    med, size = result["median_seconds"], result["deb_bytes"]
    lines = [
        f"| large app ({result['application']}, {result['installed_bytes'] / 1e6:.0f} MB installed), median "
        f"| B: uv + nFPM | microdeploy | floor: dpkg-deb --build, {result['compression']} |",
        "| --- | ---: | ---: | ---: |",
        f"| app-only rebuild (s) | {med['B']:.2f} | {med['microdeploy']:.2f} | {med['floor']:.2f} |",
        f"| .deb size (kB) | {size['B'] / 1000:.0f} | {size['microdeploy'] / 1000:.0f} | {size['floor'] / 1000:.0f} |",
        "",
    ]
    lines += [f"- large {name}: {value:.3f}" for name, value in result["ratios"].items()]
    lines.append("")
    lines += [f"- [{'x' if met else ' '}] {name}" for name, met in result["targets"].items()]
    return "\n".join(lines)
