"""`make bench`: microdeploy build against two references, side by side, in one run.

Every round builds the same service with each tool, in a rotating order,
three ways: unchanged (warm caches), after an app-only commit, and after a
commit that changes the dependencies. Then each tool's package is installed
on a booted Debian 12 host, in turn, several times; last, `microdeploy
check` runs on the scaffold's package. Medians and ratios are
printed as a table and written as JSON. Timings are figures, never test
assertions: the targets are reported as met or not.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

from bench.builders import BENCH, REPO, Build, Builders, git, init_checkout
from bench.check import check_rounds
from bench.install import Install, install_and_answer
from bench.large import large_rounds
from bench.large import table as large_table
from microdeploy.testbed.host import booted_host
from microdeploy.testbed.image import ensure_image

# microdeploy-z6: the same build with `--compression xz --compression-level 6`
# (dpkg's default), the size a user can choose at the cost of build time.
# microdeploy-trixie: `--dist trixie` from this Debian 12 machine, in trixie's
# cached build root; not installed (the hosts are Debian 12).
TOOLS = ("A", "B", "microdeploy", "microdeploy-z6", "microdeploy-trixie")
INSTALLED = TOOLS[:4]
SCENARIOS = ("warm", "app_change", "dep_change", "cold")


def prepare_service(work: Path) -> Path:
    """A git checkout of bench/service in the work directory."""
    service = work / "service"
    subprocess.run(["rm", "-rf", str(service)], check=True)
    subprocess.run(["cp", "-a", str(BENCH / "service"), str(service)], check=True)
    init_checkout(service, "hello-api")
    return service


def change_app(service: Path, round_number: int) -> None:
    """An app-only commit: a new greeting."""
    greeting = service / "src" / "hello_api" / "greeting.py"
    greeting.write_text(f'"""The greeting of round {round_number}."""\n\nGREETING = "hello {round_number}"\n')
    git(service, "commit", "-q", "-am", f"greeting {round_number}")


def change_dependencies(service: Path, round_number: int) -> None:
    """A commit that changes the declared dependencies (a new one, a new bound each round)."""
    pyproject = service / "pyproject.toml"
    lines = [line for line in pyproject.read_text().splitlines() if '"six' not in line]
    index = lines.index('    "gunicorn==23.0.0",')
    lines.insert(index + 1, f'    "six>=1.{round_number}",')
    pyproject.write_text("\n".join(lines) + "\n")
    git(service, "commit", "-q", "-am", f"dependencies {round_number}")


def installed_size(deb: Path) -> int:
    """Bytes of the regular files the package installs."""
    data = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return sum(member.size for member in tar.getmembers() if member.isfile())


def rotated(round_number: int) -> list[str]:
    """The tools in this round's order, so none always runs first or last."""
    shift = round_number % len(TOOLS)
    return list(TOOLS[shift:] + TOOLS[:shift])


Times = dict[str, dict[str, list[float]]]


def build_rounds(builders: Builders, service: Path, runs: int) -> tuple[Times, dict[str, Build]]:
    """Warm up, then `runs` rounds of the three scenarios; return the times and each tool's last warm build."""
    times: Times = {tool: {s: [] for s in SCENARIOS} for tool in TOOLS}
    last: dict[str, Build] = {}
    print("warm-up: one build with each tool (fills pip's, uv's and microdeploy's caches)", flush=True)
    for tool in TOOLS:
        builders.build(tool, service)
    for round_number in range(1, runs + 1):
        order = rotated(round_number)
        for scenario in SCENARIOS:
            if scenario == "app_change":
                change_app(service, round_number)
            elif scenario == "dep_change":
                change_dependencies(service, round_number)
            for tool in order:
                built = builders.build(tool, service, cold=scenario == "cold")
                times[tool][scenario].append(built.seconds)
                if scenario == "warm":
                    last[tool] = built
                print(f"round {round_number} {scenario:<10} {tool:<18} {built.seconds:6.2f} s", flush=True)
    return times, last


def install_rounds(debs: dict[str, Path], installs: int) -> dict[str, list[Install]]:
    """Install each tool's package in turn, `installs` rounds, each round on a freshly booted host.

    A fresh host per round, so every round starts from the same state: with
    one host for all rounds, install times were seen to grow round after
    round for every tool, which weighs on whichever tool comes last.
    """
    results: dict[str, list[Install]] = {tool: [] for tool in INSTALLED}
    image = ensure_image()
    for round_number in range(1, installs + 1):
        with booted_host(image) as host:
            for tool in [tool for tool in rotated(round_number) if tool in INSTALLED]:
                done = install_and_answer(host, tool, debs[tool])
                results[tool].append(done)
                print(f"install {round_number} {tool:<11} dpkg -i {done.dpkg_seconds:5.2f} s, "
                      f"answers after {done.answer_seconds:5.2f} s", flush=True)
    return results


# Issue 20: `microdeploy check` of the scaffold's package, images cached, on 2 cores.
CHECK_TARGET_SECONDS = 30.0


def summarise(times: Times, last: dict[str, Build],
              installs: dict[str, list[Install]], checks: list[float] | None = None) -> dict[str, Any]:
    """Medians, sizes, ratios and the targets of the issue, as one JSON-able object."""
    median = {tool: {s: statistics.median(v) for s, v in by.items()} for tool, by in times.items()}
    size = {tool: last[tool].deb.stat().st_size for tool in TOOLS}
    installed = {tool: installed_size(last[tool].deb) for tool in TOOLS}
    dpkg = {tool: statistics.median(i.dpkg_seconds for i in installs[tool]) for tool in INSTALLED}
    answer = {tool: statistics.median(i.answer_seconds for i in installs[tool]) for tool in INSTALLED}
    md, a, b, z6 = median["microdeploy"], median["A"], median["B"], median["microdeploy-z6"]
    trixie = median["microdeploy-trixie"]
    ratios = {
        "warm_speedup_vs_A": a["warm"] / md["warm"],
        "warm_time_vs_B": md["warm"] / b["warm"],
        "app_change_speedup_vs_A": a["app_change"] / md["app_change"],
        "app_change_time_vs_B": md["app_change"] / b["app_change"],
        "cold_time_vs_B": md["cold"] / b["cold"],
        "dep_change_speedup_vs_A": a["dep_change"] / md["dep_change"],
        "deb_size_vs_A": size["microdeploy"] / size["A"],
        "installed_size_vs_A": installed["microdeploy"] / installed["A"],
        "answer_time_vs_A": answer["microdeploy"] / answer["A"],
        "z6_warm_speedup_vs_A": a["warm"] / z6["warm"],
        "z6_app_change_speedup_vs_A": a["app_change"] / z6["app_change"],
        "z6_deb_size_vs_A": size["microdeploy-z6"] / size["A"],
        "trixie_warm_vs_native_warm": trixie["warm"] / md["warm"],
        "trixie_app_change_vs_native": trixie["app_change"] / md["app_change"],
    }
    targets = {
        "warm build >= 15x faster than A": ratios["warm_speedup_vs_A"] >= 15,
        "warm build <= 1.2x B": ratios["warm_time_vs_B"] <= 1.2,
        "app-only rebuild >= 15x faster than A": ratios["app_change_speedup_vs_A"] >= 15,
        "app-only rebuild <= 1.2x B": ratios["app_change_time_vs_B"] <= 1.2,
        "cold build <= 1.3x B's cold build": ratios["cold_time_vs_B"] <= 1.3,
        ".deb size <= 20% of A": ratios["deb_size_vs_A"] <= 0.20,
        "answers no later than A": ratios["answer_time_vs_A"] <= 1,
        "trixie warm build <= 2x the native warm build": ratios["trixie_warm_vs_native_warm"] <= 2,
    }
    check_seconds = statistics.median(checks) if checks else None
    if check_seconds is not None:
        targets[f"check of the scaffold's package < {CHECK_TARGET_SECONDS:g} s"] = check_seconds < CHECK_TARGET_SECONDS
    return {
        "runs": {tool: times[tool] for tool in TOOLS},
        "median_seconds": median,
        "deb_bytes": size,
        "installed_bytes": installed,
        "dpkg_install_seconds": dpkg,
        "answer_seconds": answer,
        "check_seconds": check_seconds,
        "ratios": ratios,
        "targets": targets,
    }


def table(result: dict[str, Any]) -> str:
    """The figures as a small Markdown table, then the ratios and targets."""
    med = result["median_seconds"]

    def installed(key: str) -> dict[str, str]:
        return {t: f"{result[key][t]:.2f}" if t in result[key] else "n/a" for t in TOOLS}

    rows = [
        ("warm build (s)", {t: f"{med[t]['warm']:.2f}" for t in TOOLS}),
        ("app-only rebuild (s)", {t: f"{med[t]['app_change']:.2f}" for t in TOOLS}),
        ("dependency-change rebuild (s)", {t: f"{med[t]['dep_change']:.2f}" for t in TOOLS}),
        ("cold build, every cache empty (trixie: its build root too) (s)",
         {t: f"{med[t]['cold']:.2f}" for t in TOOLS}),
        (".deb size (kB)", {t: f"{result['deb_bytes'][t] / 1000:.0f}" for t in TOOLS}),
        ("installed size (kB)", {t: f"{result['installed_bytes'][t] / 1000:.0f}" for t in TOOLS}),
        ("dpkg -i (s)", installed("dpkg_install_seconds")),
        ("until /health answers (s)", installed("answer_seconds")),
    ]
    if result.get("check_seconds") is not None:
        # `check` is microdeploy's own; the references have nothing like it.
        row = {t: "n/a" for t in TOOLS}
        row["microdeploy"] = f"{result['check_seconds']:.1f}"
        rows.append(("`microdeploy check`, scaffold's package (s)", row))
    lines = ["| median | A: dh-virtualenv tutorial | B: uv + nFPM | microdeploy | microdeploy, xz -6 "
             "| microdeploy --dist trixie |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    lines += [f"| {label} | {' | '.join(v[t] for t in TOOLS)} |" for label, v in rows]
    lines.append("")
    lines += [f"- {name}: {value:.3f}" for name, value in result["ratios"].items()]
    lines.append("")
    lines += [f"- [{'x' if met else ' '}] {name}" for name, met in result["targets"].items()]
    return "\n".join(lines)


def compile_microdeploy() -> None:
    """Compile microdeploy's bytecode, as pip and apt do when they install it.

    The checkout is an editable install: under PYTHONDONTWRITEBYTECODE every
    `microdeploy build` would compile microdeploy's modules again, a cost no
    installed copy has.
    """
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "microdeploy")], check=True,
                   stdout=subprocess.DEVNULL)


def write_json(path: Path, result: dict[str, Any]) -> None:
    """The whole result as JSON at `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="rounds of builds (default 3)")
    parser.add_argument("--installs", type=int, default=3, help="installs of each package (default 3)")
    parser.add_argument("--checks", type=int, default=1, help="timed `microdeploy check` runs (default 1)")
    parser.add_argument("--only-check", action="store_true",
                        help="measure only `microdeploy check` (no builds, no installs)")
    parser.add_argument("--large-runs", type=int, default=3, help="app-only rounds of the large app (default 3)")
    parser.add_argument("--only-large", action="store_true",
                        help="measure only the large app's app-only rebuild and its floor")
    parser.add_argument("--work", type=Path, default=Path("/var/tmp/microdeploy-bench"),
                        help="work directory: caches and build trees (outside the repository)")
    parser.add_argument("--json", type=Path, default=None,
                        help="where to write the JSON result (default build/bench/result.json, with --only-large "
                             "build/bench/large.json)")
    args = parser.parse_args(argv)
    args.json = args.json or REPO / "build" / "bench" / ("large.json" if args.only_large else "result.json")
    if min(args.runs, args.installs, args.checks, args.large_runs) < 1:
        parser.error("--runs, --installs, --checks and --large-runs must be at least 1")
    subprocess.run(["rm", "-rf", str(args.work / "scratch")], check=True)
    args.work.mkdir(parents=True, exist_ok=True)
    compile_microdeploy()
    if args.only_check:
        seconds = statistics.median(check_rounds(args.work, args.checks))
        print(f"\n`microdeploy check` of the scaffold's package: {seconds:.1f} s (median of {args.checks}; "
              f"target < {CHECK_TARGET_SECONDS:g} s)")
        return 0
    builders = Builders(args.work)
    if args.only_large:
        result = {"large": large_rounds(builders, args.work, args.large_runs)}
        write_json(args.json, result)
        print()
        print(large_table(result["large"]))
        print(f"\nJSON: {args.json}")
        return 0
    service = prepare_service(args.work)
    times, last = build_rounds(builders, service, args.runs)
    large = large_rounds(builders, args.work, args.large_runs)
    installs = install_rounds({tool: build.deb for tool, build in last.items()}, args.installs)
    checks = check_rounds(args.work, args.checks)
    result = {**summarise(times, last, installs, checks), "large": large}
    write_json(args.json, result)
    print()
    print(table(result))
    print()
    print(large_table(large))
    print(f"\nJSON: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
