"""The sh steps of the rendered pipeline are real: run in order in a scaffolded service, they test, build and lint it.

The harness (jenkins/harness/harness.groovy) evaluates the full Jenkinsfile for a
push to a feature branch and records every `sh` step with the environment Jenkins
would give it; each step then runs here as Jenkins runs it (`sh -xe`), in a
workspace made by `microdeploy new`. The service is built once per module.
"""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from microdeploy.cli import main
from microdeploy.config import load_config
from microdeploy.jenkins import JenkinsOptions, render_jenkinsfile
from tests.integration.test_jenkins_groovy import run_harness

pytestmark = pytest.mark.integration

BUILD_NUMBER = "7"
FEATURE = {"BRANCH_NAME": "feature/login", "BUILD_NUMBER": BUILD_NUMBER, "JOB_NAME": "orders-api/feature%2Flogin"}
RELEASE = {"BRANCH_NAME": "main", "BUILD_NUMBER": BUILD_NUMBER, "JOB_NAME": "orders-api/main"}
CREDENTIALS = ["microdeploy-signing-key", "microdeploy-signing-passphrase"]
PASSPHRASE = "correct horse battery staple"


@dataclass(frozen=True)
class Step:
    """One sh step as it ran."""

    stage: str
    script: str
    returncode: int
    stdout: str
    stderr: str
    seconds: float


def run_step(event: dict[str, Any], workspace: Path, extra_env: dict[str, str] | None = None) -> Step:
    """Run one recorded sh step as Jenkins does (`sh -xe`), with microdeploy of this checkout on PATH."""
    env = {**os.environ, **event["env"], **(extra_env or {})}
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
    env.pop("GNUPGHOME", None)
    start = time.monotonic()
    done = subprocess.run(["/bin/sh", "-xe", "-c", event["script"]], cwd=workspace, env=env,
                          capture_output=True, text=True, timeout=900, check=False)
    return Step(event["stage"], event["script"], done.returncode, done.stdout, done.stderr,
                time.monotonic() - start)


def explain(step: Step) -> str:
    return f"{step.stage} step failed ({step.returncode}):\n{step.script}\n--- stdout\n{step.stdout[-3000:]}" \
           f"\n--- stderr\n{step.stderr[-3000:]}"


def patterns_match(workspace: Path, patterns: str) -> dict[str, list[str]]:
    """What Jenkins would pick up for comma-separated Ant-style patterns (no ** used here)."""
    return {p.strip(): sorted(glob.glob(p.strip(), root_dir=workspace)) for p in patterns.split(",")}


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Scaffold orders-api, render its full Jenkinsfile, record both pushes, run the feature-branch steps."""
    root = tmp_path_factory.mktemp("pipeline")
    workspace = root / "workspace"
    result = CliRunner().invoke(main, ["new", "orders-api", "--dir", str(workspace), "--no-input"])
    assert result.exit_code == 0, result.output
    jenkinsfile = root / "Jenkinsfile"
    jenkinsfile.write_text(render_jenkinsfile(load_config(workspace), JenkinsOptions(repo=str(root / "apt"))))
    runs = run_harness(root, [
        {"name": "feature", "file": str(jenkinsfile), "env": FEATURE, "credentials": CREDENTIALS},
        {"name": "release", "file": str(jenkinsfile), "env": RELEASE, "credentials": CREDENTIALS},
    ])
    steps: list[Step] = []
    for event in runs["feature"]["events"]:
        if event["type"] != "sh":
            continue
        step = run_step(event, workspace)
        steps.append(step)
        if step.returncode != 0:
            break  # Jenkins stops at the first failing step
    return {"root": root, "workspace": workspace, "runs": runs, "steps": steps}


def test_feature_branch_steps_all_succeed(pipeline: dict[str, Any]) -> None:
    """Every sh step of a feature-branch build (Test, Build, Lint) exits 0, in that order."""
    recorded = [e for e in pipeline["runs"]["feature"]["events"] if e["type"] == "sh"]
    steps: list[Step] = pipeline["steps"]
    for step in steps:
        assert step.returncode == 0, explain(step)
    assert len(steps) == len(recorded)
    assert [s.stage for s in steps] == ["Test", "Build", "Build", "Build", "Lint"]


def test_test_stage_writes_junit_xml(pipeline: dict[str, Any]) -> None:
    """pytest wrote reports/junit.xml with the service's tests, none failed."""
    suite = ET.parse(pipeline["workspace"] / "reports/junit.xml").getroot()
    suite = suite.find("testsuite") if suite.tag == "testsuites" else suite
    assert suite is not None
    assert int(suite.get("tests", "0")) > 0
    assert (suite.get("failures"), suite.get("errors")) == ("0", "0")


def test_build_stage_makes_the_package(pipeline: dict[str, Any]) -> None:
    """dist/ holds exactly the .deb, .buildinfo and .changes; the revision is BUILD_NUMBER+deb12; build.json agrees."""
    workspace: Path = pipeline["workspace"]
    names = sorted(p.name for p in (workspace / "dist").iterdir())
    version = next(s for s in pipeline["steps"] if "dpkg-deb --field" in s.script).stdout.strip()
    assert version.endswith(f"-{BUILD_NUMBER}+deb12")
    assert names == [f"orders-api_{version}_amd64.{ext}" for ext in ("buildinfo", "changes", "deb")]
    built = json.loads((workspace / "build.json").read_text())
    assert built["version"] == version


def built_deb(workspace: Path) -> Path:
    """The one .deb the feature-branch build made."""
    (deb,) = (workspace / "dist").glob("*.deb")
    return deb


def test_lint_stage_writes_a_passing_check_report(pipeline: dict[str, Any]) -> None:
    """reports/check-PACKAGE.xml is JUnit of `microdeploy check`: lintian, piuparts and the host checks, none failed."""
    workspace: Path = pipeline["workspace"]
    suite = ET.parse(workspace / f"reports/check-{built_deb(workspace).stem}.xml").getroot().find("testsuite")
    assert suite is not None
    names = [case.get("name") for case in suite.iter("testcase")]
    assert names[:3] == ["lintian", "piuparts", "install"] and names[-1] == "purge"
    assert (suite.get("failures"), suite.get("errors"), suite.get("skipped")) == ("0", "0", "0")


def test_archived_patterns_find_their_files(pipeline: dict[str, Any]) -> None:
    """Every junit and archiveArtifacts pattern of the feature-branch run matches real files."""
    workspace: Path = pipeline["workspace"]
    events = pipeline["runs"]["feature"]["events"]
    junit = [e["testResults"] for e in events if e["type"] == "junit"]
    archived = [e["artifacts"] for e in events if e["type"] == "archiveArtifacts"]
    assert junit == ["reports/junit.xml", "reports/check-*.xml"]
    assert archived == ["dist/*.deb", "build*.json,dist/*.buildinfo,dist/*.changes"]
    for patterns in junit + archived:
        for pattern, found in patterns_match(workspace, patterns).items():
            assert len(found) == 1, f"{pattern} matched {found}"


def test_publish_step_signs_with_the_ci_key(pipeline: dict[str, Any], tmp_path: Path) -> None:
    """The release branch's Publish step imports a passphrase-protected key and publishes the built .deb with it.

    The passphrase is never printed, even with `sh -x`, and a wrong one makes the step fail.
    """
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    gpg = ["gpg", "--homedir", str(home), "--batch", "--pinentry-mode", "loopback", "--passphrase", PASSPHRASE]
    subprocess.run([*gpg, "--quick-gen-key", "CI <ci@example.org>", "ed25519", "sign", "never"], check=True,
                   capture_output=True)
    key = tmp_path / "signing-key.asc"
    key.write_bytes(subprocess.run([*gpg, "--armor", "--export-secret-keys"], check=True,
                                   capture_output=True).stdout)
    fingerprint = subprocess.run(["gpg", "--homedir", str(home), "--with-colons", "--list-secret-keys"],
                                 check=True, capture_output=True, text=True).stdout.split("fpr:::::::::")[1][:40]
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], check=False)
    (publish,) = [e for e in pipeline["runs"]["release"]["events"] if e["type"] == "sh" and e["stage"] == "Publish"]
    secrets = {"MD_SIGNING_KEY": str(key)}

    wrong = run_step(publish, pipeline["workspace"], {**secrets, "MD_SIGNING_PASSPHRASE": "wrong"})
    assert wrong.returncode != 0

    step = run_step(publish, pipeline["workspace"], {**secrets, "MD_SIGNING_PASSPHRASE": PASSPHRASE})
    assert step.returncode == 0, explain(step)
    assert PASSPHRASE not in step.stdout + step.stderr + wrong.stdout + wrong.stderr
    result = json.loads((pipeline["workspace"] / "publish.json").read_text())
    assert result["key_fingerprint"] == fingerprint
    assert [deb["name"] for deb in result["added"]] == ["orders-api"]
    assert (Path(result["public_dir"]) / "dists/bookworm/InRelease").is_file()


def test_lint_stage_checks_every_package_and_exits_with_the_worst(pipeline: dict[str, Any], tmp_path: Path) -> None:
    """With two .debs in dist/ the Lint step checks each: a broken one first (exit 2), the good one still checked."""
    workspace = tmp_path / "workspace"
    (workspace / "dist").mkdir(parents=True)
    good = built_deb(pipeline["workspace"])
    os.link(good, workspace / "dist" / good.name)
    # Sorts before the good one, so the loop must go on after a failure.
    broken = workspace / "dist" / "orders-api_0.0.0-1+deb13_amd64.deb"
    broken.write_bytes(good.read_bytes()[:4096])
    (lint,) = [e for e in pipeline["runs"]["feature"]["events"] if e["type"] == "sh" and e["stage"] == "Lint"]
    step = run_step(lint, workspace)
    assert step.returncode == 2, explain(step)
    assert step.stderr.count("+ microdeploy check dist/") == 2
    assert f"--junit reports/check-{broken.stem}.xml" in step.stderr
    suite = ET.parse(workspace / f"reports/check-{good.stem}.xml").getroot().find("testsuite")
    assert suite is not None
    assert (suite.get("failures"), suite.get("errors")) == ("0", "0")


def test_lint_stage_runs_the_repositorys_check_setup_script(pipeline: dict[str, Any], tmp_path: Path) -> None:
    """With MD_CHECK_SETUP (--check-setup) the Lint step passes the repository's script to `microdeploy check
    --setup`: the report has the setup case, passed, between install and the service's checks."""
    workspace = tmp_path / "workspace"
    (workspace / "dist").mkdir(parents=True)
    (workspace / "ci").mkdir()
    good = built_deb(pipeline["workspace"])
    os.link(good, workspace / "dist" / good.name)
    (workspace / "ci" / "check-setup.sh").write_text(
        "mkdir -p /etc/orders-api\necho 'greeting = hello' > /etc/orders-api/site.conf\n")
    (lint,) = [e for e in pipeline["runs"]["feature"]["events"] if e["type"] == "sh" and e["stage"] == "Lint"]
    step = run_step(lint, workspace, {"MD_CHECK_SETUP": "ci/check-setup.sh"})
    assert step.returncode == 0, explain(step)
    assert f"+ microdeploy check dist/{good.name} --setup ci/check-setup.sh --junit" in step.stderr
    suite = ET.parse(workspace / f"reports/check-{good.stem}.xml").getroot().find("testsuite")
    assert suite is not None
    names = [case.get("name") for case in suite.iter("testcase")]
    assert names[2:5] == ["install", "setup", "unit"], names
    assert (suite.get("failures"), suite.get("errors"), suite.get("skipped")) == ("0", "0", "0")
