"""The benchmark's own logic: rotation, the scenario commits, medians, ratios and targets (no timing asserted)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bench import __main__ as bench
from bench import large
from bench.builders import Build, init_checkout
from bench.install import Install


def test_every_tool_takes_every_place_in_turn() -> None:
    """As many rounds as tools put each tool first once, so none is always warmed by the others."""
    firsts = {bench.rotated(n)[0] for n in range(1, len(bench.TOOLS) + 1)}
    assert firsts == set(bench.TOOLS)
    assert all(sorted(bench.rotated(n)) == sorted(bench.TOOLS) for n in range(1, 7))


def test_scenario_commits_change_the_app_then_the_dependencies(tmp_path: Path) -> None:
    """The app change rewrites the greeting; each dependency change declares a new bound on six."""
    service = bench.prepare_service(tmp_path)
    bench.change_app(service, 2)
    assert 'GREETING = "hello 2"' in (service / "src" / "hello_api" / "greeting.py").read_text()
    bench.change_dependencies(service, 1)
    bench.change_dependencies(service, 2)
    pyproject = (service / "pyproject.toml").read_text()
    assert '"six>=1.2",' in pyproject and '"six>=1.1",' not in pyproject
    log = subprocess.run(["git", "log", "--format=%s"], cwd=service, capture_output=True, text=True, check=True)
    assert log.stdout.splitlines() == ["dependencies 2", "dependencies 1", "greeting 2", "hello-api"]


def test_summary_medians_ratios_and_targets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Medians per tool and scenario; ratios against A and B; each target met or not, as computed."""
    debs = {}
    for tool, size in (("A", 1000), ("B", 300), ("microdeploy", 150), ("microdeploy-z6", 120),
                       ("microdeploy-trixie", 151)):
        deb = tmp_path / f"{tool}.deb"
        deb.write_bytes(b"x" * size)
        debs[tool] = Build(tool, 0.0, deb)
    times = {
        "A": {"warm": [20.0, 22.0, 21.0], "app_change": [30.0], "dep_change": [20.0], "cold": [25.0]},
        "B": {"warm": [1.0], "app_change": [1.0], "dep_change": [1.0], "cold": [2.0]},
        "microdeploy": {"warm": [1.5, 2.5, 2.0], "app_change": [1.8], "dep_change": [2.0], "cold": [2.5]},
        "microdeploy-z6": {"warm": [3.0], "app_change": [3.0], "dep_change": [3.0], "cold": [4.0]},
        "microdeploy-trixie": {"warm": [3.0, 2.8], "app_change": [3.6], "dep_change": [4.0], "cold": [45.0]},
    }
    installs = {tool: [Install(tool, 0.5, answer)]
                for tool, answer in (("A", 1.0), ("B", 0.9), ("microdeploy", 0.8), ("microdeploy-z6", 0.8))}
    sizes = {"A": 4000, "B": 900, "microdeploy": 800, "microdeploy-z6": 790, "microdeploy-trixie": 801}
    monkeypatch.setattr(bench, "installed_size", lambda deb: sizes[deb.stem])
    result = bench.summarise(times, debs, installs)
    assert result["median_seconds"]["A"]["warm"] == 21.0
    assert result["median_seconds"]["microdeploy"]["warm"] == 2.0
    assert result["ratios"]["warm_speedup_vs_A"] == pytest.approx(10.5)
    assert result["ratios"]["app_change_speedup_vs_A"] == pytest.approx(30 / 1.8)
    assert result["ratios"]["deb_size_vs_A"] == pytest.approx(0.15)
    assert result["ratios"]["z6_deb_size_vs_A"] == pytest.approx(0.12)
    assert result["ratios"]["z6_warm_speedup_vs_A"] == pytest.approx(7.0)
    assert result["ratios"]["cold_time_vs_B"] == pytest.approx(1.25)
    assert result["targets"] == {
        "warm build >= 15x faster than A": False,
        "warm build <= 1.2x B": False,
        "app-only rebuild >= 15x faster than A": True,
        "app-only rebuild <= 1.2x B": False,
        "cold build <= 1.3x B's cold build": True,
        ".deb size <= 20% of A": True,
        "answers no later than A": True,
        "trixie warm build <= 2x the native warm build": True,
    }
    assert result["ratios"]["trixie_warm_vs_native_warm"] == pytest.approx(1.45)
    table = bench.table(result)
    assert "| warm build (s) | 21.00 | 1.00 | 2.00 | 3.00 | 2.90 |" in table
    assert "| cold build, every cache empty (trixie: its build root too) (s) | 25.00 | 2.00 | 2.50 | 4.00 | 45.00 |" \
        in table
    assert "| dpkg -i (s) | 0.50 | 0.50 | 0.50 | 0.50 | n/a |" in table
    assert "- [ ] warm build <= 1.2x B" in table and "- [x] cold build <= 1.3x B's cold build" in table


def test_check_row_and_target(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The median of the `check` runs gets a row under microdeploy and a target of 30 s, met or not."""
    debs = {tool: Build(tool, 0.0, tmp_path / f"{tool}.deb") for tool in bench.TOOLS}
    for build in debs.values():
        build.deb.write_bytes(b"x")
    times = {tool: {s: [1.0] for s in bench.SCENARIOS} for tool in bench.TOOLS}
    installs = {tool: [Install(tool, 0.5, 1.0)] for tool in bench.INSTALLED}
    monkeypatch.setattr(bench, "installed_size", lambda deb: 1)
    result = bench.summarise(times, debs, installs, checks=[41.0, 28.5, 29.0])
    assert result["check_seconds"] == 29.0
    assert result["targets"]["check of the scaffold's package < 30 s"] is True
    assert "| `microdeploy check`, scaffold's package (s) | n/a | n/a | 29.0 | n/a | n/a |" in bench.table(result)
    assert bench.summarise(times, debs, installs, checks=[31.0])["targets"][
        "check of the scaffold's package < 30 s"] is False


def test_large_app_change_rewrites_one_module_per_round(tmp_path: Path) -> None:
    """Each app-only commit of the large app is the original module plus that round's line, nothing else."""
    checkout = tmp_path / "app"
    (checkout / large.CHANGED_MODULE).parent.mkdir(parents=True)
    (checkout / large.CHANGED_MODULE).write_text("X = 1\n")
    init_checkout(checkout, "original")
    large.change_app(checkout, "X = 1\n", 1)
    large.change_app(checkout, "X = 1\n", 2)
    assert (checkout / large.CHANGED_MODULE).read_text() == "X = 1\n\nBENCH_ROUND = 2\n"
    log = subprocess.run(["git", "log", "--format=%s"], cwd=checkout, capture_output=True, text=True, check=True)
    assert log.stdout.splitlines() == ["round 2", "round 1", "original"]


def test_large_summary_ratio_to_the_floor_and_targets(tmp_path: Path) -> None:
    """The large row's medians, its ratio to the floor of the same rounds, and both targets, met or not."""
    debs = {}
    for tool, size in (("B", 40_000_000), ("microdeploy", int(large.DEB_BYTES_BEFORE * (1 + large.DEB_SLACK)) + 1)):
        debs[tool] = tmp_path / f"{tool}.deb"
        with debs[tool].open("wb") as handle:
            handle.truncate(size)  # sparse: only its size counts
    times = {"B": [20.0, 30.0, 25.0], "microdeploy": [4.0, 3.0, 9.0], "floor": [2.5, 2.0, 2.2]}
    result = large.summarise(times, debs, large.Floor(2.0, large.DEB_BYTES_BEFORE, 95_000_000))
    assert result["median_seconds"] == {"B": 25.0, "microdeploy": 4.0, "floor": 2.2}
    assert result["ratios"]["app_change_vs_floor"] == pytest.approx(4.0 / 2.2)
    assert result["ratios"]["app_change_vs_B"] == pytest.approx(0.16)
    assert list(result["targets"].values()) == [False, False]
    table = large.table(result)
    assert "| app-only rebuild (s) | 25.00 | 4.00 | 2.20 |" in table
    assert "95 MB installed" in table and "floor: dpkg-deb --build, gzip -5" in table
    fast = large.summarise({**times, "microdeploy": [3.0]}, {**debs, "microdeploy": debs["B"]}, large.Floor(
        2.0, 1, 1))
    assert fast["targets"]["large app-only rebuild <= 1.5x the floor"] is True
    with debs["microdeploy"].open("wb") as handle:
        handle.truncate(large.DEB_BYTES_BEFORE + 400)  # a few more lines of changelog
    assert large.summarise(times, debs, large.Floor(2.0, 1, 1))["targets"]["large app's .deb no larger than before"]
