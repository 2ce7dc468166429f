"""The rendered pipelines compile with Debian's groovy, and run as Jenkins would run them with stubbed steps."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from microdeploy.config import ServiceConfig, validate
from microdeploy.jenkins import LIBRARY_FILE, JenkinsOptions, groovy_string, render_jenkinsfile
from microdeploy.resources import template_folder
from microdeploy.scaffold import scaffold

pytestmark = pytest.mark.integration

JAVA_HOME = "/usr/lib/jvm/java-17-openjdk-amd64"
HARNESS = template_folder("jenkins") / "harness"
CREDENTIALS = ["microdeploy-signing-key", "microdeploy-signing-passphrase", "microdeploy-control-repo",
               "microdeploy-deploy-ssh"]
ALL_STAGES = ["Test", "Build", "Lint", "Publish", "Deploy", "Puppet data"]
FEATURE = {"BRANCH_NAME": "feature/login", "BUILD_NUMBER": "12", "JOB_NAME": "orders-api/feature%2Flogin"}
RELEASE = {"BRANCH_NAME": "main", "BUILD_NUMBER": "13", "JOB_NAME": "orders-api/main"}
TAG = {"BRANCH_NAME": "v1.4.0", "TAG_NAME": "v1.4.0", "BUILD_NUMBER": "1", "JOB_NAME": "orders-api/v1.4.0"}
OPTIONS = JenkinsOptions(
    control_repo="git@git.example.org:ops/control-repo.git",
    deploy_hosts=("app1.example.org", "app2.example.org"),
    notify_email=("team@example.org",),
    signing_key_credentials="apt-signing-key",
    deploy_credentials="deploy-ssh",
    agent_label="debian-12 && amd64",
    timeout_minutes=45,
    keep_builds=5,
    dists=("bookworm", "trixie"),
)
OPTION_CREDENTIALS = ["apt-signing-key", "microdeploy-signing-passphrase", "microdeploy-control-repo", "deploy-ssh"]


def java_home() -> str:
    """The JDK that `java` on PATH belongs to (groovy looks for a default-java link that Debian 12 lacks)."""
    java = shutil.which("java")
    return str(Path(java).resolve().parents[1]) if java else JAVA_HOME


def groovy(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run Debian's groovy (a missing one is a failure: `make setup` installs it)."""
    assert shutil.which("groovy"), "groovy is not installed: run `make setup` (apt package groovy)"
    env = {**os.environ, "JAVA_HOME": os.environ.get("JAVA_HOME") or java_home()}
    return subprocess.run(["groovy", "-cp", str(HARNESS), *map(str, args)], env=env, capture_output=True,
                          text=True, timeout=300, check=False)


def run_harness(tmp: Path, scenarios: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Evaluate scenarios in one JVM with the harness; return each result by name."""
    spec = tmp / "scenarios.json"
    spec.write_text(json.dumps(scenarios))
    result = groovy(HARNESS / "harness.groovy", "run", spec)
    assert result.returncode == 0, result.stderr
    return {run["name"]: run for run in json.loads(result.stdout)}


def service() -> ServiceConfig:
    return validate({"name": ("orders-api", "NAME"), "description": ("Bob's $orders \\ api", "description")})


def stages(run: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["status"] for e in run["events"] if e["type"] == "stage"}


def events(run: dict[str, Any], kind: str, stage: str | None = None) -> list[dict[str, Any]]:
    return [e for e in run["events"] if e["type"] == kind and (stage is None or e["stage"] == stage)]


def dedent_scripts(run: dict[str, Any]) -> list[str]:
    return ["\n".join(line.strip() for line in e["script"].strip().splitlines()) for e in events(run, "sh")]


@pytest.fixture(scope="module")
def variants(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every form and option combination we render, as files."""
    root = tmp_path_factory.mktemp("jenkinsfiles")
    config = service()
    rendered = {
        "full-minimal": render_jenkinsfile(config, JenkinsOptions()),
        "full-puppet-push": render_jenkinsfile(config, JenkinsOptions(control_repo="file:///srv/git/control")),
        "full-puppet-merge-request": render_jenkinsfile(
            config, JenkinsOptions(control_repo="file:///srv/git/control", control_repo_mode="merge-request")),
        "full-deploy": render_jenkinsfile(config, JenkinsOptions(deploy_hosts=("app1.example.org",))),
        "full-notify": render_jenkinsfile(config, JenkinsOptions(notify_email=("a@example.org", "b@example.org"))),
        "full-everything": render_jenkinsfile(config, OPTIONS),
        "one-line-default": render_jenkinsfile(config, JenkinsOptions(), "one-line"),
        "one-line-everything": render_jenkinsfile(config, OPTIONS, "one-line"),
    }
    paths = {name: root / f"{name}.Jenkinsfile" for name in rendered}
    for name, text in rendered.items():
        paths[name].write_text(text)
    paths["library"] = template_folder("jenkins") / LIBRARY_FILE
    scaffold(config, root / "svc")
    paths["scaffolded"] = root / "svc/Jenkinsfile"
    return paths


def test_every_variant_compiles(variants: dict[str, Path], tmp_path: Path) -> None:
    """groovy compiles each rendered Jenkinsfile, the shared library and the scaffolded Jenkinsfile."""
    broken = tmp_path / "broken.Jenkinsfile"
    broken.write_text(variants["full-minimal"].read_text().replace("'''", "'", 1))
    result = groovy(HARNESS / "harness.groovy", "compile", *variants.values(), broken)
    assert result.returncode == 0, result.stderr
    errors = json.loads(result.stdout)
    assert errors.pop(str(broken)), "a broken Jenkinsfile must fail to compile"
    assert errors == {str(path): None for path in variants.values()}


def test_groovy_string_round_trips(tmp_path: Path) -> None:
    """Groovy reads every quoted literal back as exactly the original string (nothing is interpolated)."""
    values = ["plain", "it's", "${System.exit(3)}", "$HOME", "back\\slash\\", "a\nb\r\tc\x01\x7f\u2028\b\f",
              "caf\u00e9 \U0001f600", "''' + System.exit(4) + '''", "\\u0027", "\\", "\"${x}\""]
    script = tmp_path / "roundtrip.groovy"
    literals = ", ".join(groovy_string(v) for v in values)
    script.write_text(f"print groovy.json.JsonOutput.toJson([{literals}])\n", encoding="ascii")
    result = groovy(script)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == values


@pytest.fixture(scope="module")
def runs(variants: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """The full and the one-line (shared library) forms, run for a feature branch, the release branch and a tag."""
    library = str(variants["library"])
    scenarios: list[dict[str, Any]] = []
    for form, extra in (("full", {}), ("library", {"library": library})):
        file = variants["full-everything" if form == "full" else "one-line-everything"]
        for push, env in (("feature", FEATURE), ("release", RELEASE), ("tag", TAG)):
            scenarios.append({"name": f"{form}-{push}", "file": str(file), "env": env,
                              "credentials": OPTION_CREDENTIALS, **extra})
        scenarios.append({"name": f"{form}-tag-lintian-fails", "file": str(file), "env": TAG,
                          "credentials": OPTION_CREDENTIALS, "fail_on": "microdeploy check", **extra})
        scenarios.append({"name": f"{form}-tag-deploy-fails", "file": str(file), "env": TAG,
                          "credentials": OPTION_CREDENTIALS, "fail_on": "microdeploy deploy", **extra})
        scenarios.append({"name": f"{form}-release-missing-credentials", "file": str(file), "env": RELEASE,
                          "credentials": [], **extra})
        scenarios.append({"name": f"{form}-feature-build-fails", "file": str(file), "env": FEATURE,
                          "credentials": OPTION_CREDENTIALS, "fail_on": "microdeploy build --dist", **extra})
    scenarios.append({"name": "library-minimal-tag", "file": str(variants["one-line-default"]), "env": TAG,
                      "credentials": CREDENTIALS, "library": library})
    scenarios.append({"name": "full-minimal-tag", "file": str(variants["full-minimal"]), "env": TAG,
                      "credentials": CREDENTIALS})
    bad = tmp_path_factory.mktemp("bad") / "Jenkinsfile"
    bad.write_text("@Library('microdeploy') _\nmicrodeployPipeline(name: 'orders-api', relaseBranch: 'main')\n")
    scenarios.append({"name": "library-typo", "file": str(bad), "env": FEATURE, "library": library})
    nameless = bad.with_name("Jenkinsfile-nameless")
    nameless.write_text("@Library('microdeploy') _\nmicrodeployPipeline()\n")
    scenarios.append({"name": "library-nameless", "file": str(nameless), "env": FEATURE, "library": library})
    hooked = bad.with_name("Jenkinsfile-hooked")
    hooked.write_text("@Library('microdeploy') _\n"
                      "microdeployPipeline(name: 'orders-api', onFailure: { echo 'paging on-call' })\n")
    scenarios.append({"name": "library-hook", "file": str(hooked), "env": FEATURE, "library": library,
                      "credentials": CREDENTIALS, "fail_on": "pytest"})
    return run_harness(tmp_path_factory.mktemp("harness"), scenarios)


@pytest.mark.parametrize("form", ["full", "library"])
def test_stage_order_and_conditions(runs: dict[str, dict[str, Any]], form: str) -> None:
    """Feature branches test, build and lint; the release branch also publishes; a tag also pins and deploys."""
    run, skip = "run", "skipped (when)"
    assert stages(runs[f"{form}-feature"]) == dict(zip(ALL_STAGES, [run, run, run, skip, skip, skip], strict=True))
    assert stages(runs[f"{form}-release"]) == dict(zip(ALL_STAGES, [run, run, run, run, skip, skip], strict=True))
    assert stages(runs[f"{form}-tag"]) == dict(zip(ALL_STAGES, [run] * 6, strict=True))
    for push in ("feature", "release", "tag"):
        assert runs[f"{form}-{push}"]["result"] == "SUCCESS"
        assert [e["name"] for e in events(runs[f"{form}-{push}"], "stage")] == ALL_STAGES


@pytest.mark.parametrize("form", ["full", "library"])
def test_options_agent_and_environment(runs: dict[str, dict[str, Any]], form: str) -> None:
    """The agent label, the four options and the MD_* environment reach the run."""
    run = runs[f"{form}-feature"]
    assert events(run, "agent")[0]["label"] == "debian-12 && amd64"
    assert [e["option"] for e in events(run, "option")] == [
        "timestamps", "buildDiscarder", "timeout", "disableConcurrentBuilds"]
    timeout = events(run, "option")[2]
    assert (timeout["time"], timeout["unit"]) == (45, "MINUTES")
    assert events(run, "option")[1]["numToKeepStr"] == "5"
    env = events(run, "environment")[0]["values"]
    assert env["MD_NAME"] == "orders-api" and env["MD_REPO"] == "/srv/apt/microdeploy"
    assert env["MD_CONTROL_REPO"] == "git@git.example.org:ops/control-repo.git"
    assert env["MD_DEPLOY_HOSTS"] == "app1.example.org,app2.example.org"


@pytest.mark.parametrize("form", ["full", "library"])
def test_credentials_wiring(runs: dict[str, dict[str, Any]], form: str) -> None:
    """Publish binds the signing key file and passphrase; Puppet data and Deploy bind their SSH keys."""
    run = runs[f"{form}-tag"]
    bindings = {e["stage"]: e["bindings"] for e in events(run, "withCredentials")}
    assert bindings == {
        "Publish": [
            {"kind": "file", "credentialsId": "apt-signing-key", "variable": "MD_SIGNING_KEY"},
            {"kind": "string", "credentialsId": "microdeploy-signing-passphrase", "variable": "MD_SIGNING_PASSPHRASE"},
        ],
        "Puppet data": [{"kind": "sshUserPrivateKey", "credentialsId": "microdeploy-control-repo",
                         "keyFileVariable": "MD_CONTROL_REPO_KEY"}],
        "Deploy": [{"kind": "sshUserPrivateKey", "credentialsId": "deploy-ssh", "keyFileVariable": "MD_DEPLOY_KEY",
                    "usernameVariable": "MD_DEPLOY_USER"}],
    }
    assert not events(runs[f"{form}-feature"], "withCredentials")


@pytest.mark.parametrize("form", ["full", "library"])
def test_secrets_are_never_interpolated(runs: dict[str, dict[str, Any]], form: str) -> None:
    """No script text contains a secret value, and every script that sees one starts with `set +x`."""
    run = runs[f"{form}-tag"]
    for event in events(run, "sh"):
        assert "SECRET-" not in event["script"]
        if any(value.startswith("SECRET-") for value in event["env"].values()):
            assert event["script"].strip().startswith("set +x\n")
    secret_steps = [e for e in events(run, "sh") if "MD_SIGNING_KEY" in e["env"]]
    assert len(secret_steps) == 1 and "microdeploy publish" in secret_steps[0]["script"]


@pytest.mark.parametrize("form", ["full", "library"])
def test_artifacts_and_reports(runs: dict[str, dict[str, Any]], form: str) -> None:
    """JUnit XML of the tests and of `check` is published, and the .deb, build records and JSON results are archived."""
    run = runs[f"{form}-tag"]
    assert [(e["stage"], e["testResults"]) for e in events(run, "junit")] == [
        ("Test", "reports/junit.xml"), ("Lint", "reports/check-*.xml")]
    archived = [(e["stage"], e["artifacts"], e.get("fingerprint", False), e.get("allowEmptyArchive", False))
                for e in events(run, "archiveArtifacts")]
    assert archived == [
        ("Build", "dist/*.deb", True, False),
        ("Build", "build*.json,dist/*.buildinfo,dist/*.changes", False, False),
        ("Publish", "publish.json", False, False),
        ("Deploy", "deploy.json", False, True),
    ]


@pytest.mark.parametrize("form", ["full", "library"])
def test_deploy_waits_for_approval(runs: dict[str, dict[str, Any]], form: str) -> None:
    """Deploy asks for input before running, naming the service and the hosts."""
    run = runs[f"{form}-tag"]
    (prompt,) = events(run, "input", "Deploy")
    assert prompt["ok"] == "Deploy"
    assert prompt["message"].startswith("Deploy orders-api")
    assert "app1.example.org,app2.example.org" in prompt["message"]
    if form == "full":
        assert "(Bob's $orders \\ api)" in prompt["message"]
    (deploy,) = events(run, "sh", "Deploy")
    assert 'microdeploy deploy "$MD_NAME" --version "$MD_VERSION"' in deploy["script"]
    assert deploy["env"]["MD_VERSION"] == "1.0.0-1"


@pytest.mark.parametrize("form", ["full", "library"])
def test_failure_skips_the_rest_and_notifies(runs: dict[str, dict[str, Any]], form: str) -> None:
    """A failing `microdeploy check` fails the build: later stages skipped, its JUnit published, mail sent."""
    run = runs[f"{form}-tag-lintian-fails"]
    assert run["result"] == "FAILURE"
    assert list(stages(run).values()) == ["run", "run", "run"] + ["skipped (earlier failure)"] * 3
    assert events(run, "junit", "Lint")[0]["testResults"] == "reports/check-*.xml"
    posts = [e["condition"] for e in events(run, "post", None) if e["stage"] is None]
    assert posts == ["failure", "cleanup"]
    (mail,) = events(run, "mail")
    assert mail["to"] == "team@example.org"
    assert events(run, "deleteDir")


@pytest.mark.parametrize("form", ["full", "library"])
def test_a_failed_deploy_commits_no_pin(runs: dict[str, dict[str, Any]], form: str) -> None:
    """When the deploy fails (and rolls back), the Puppet data stage never runs: the pin stays where it was."""
    run = runs[f"{form}-tag-deploy-fails"]
    assert run["result"] == "FAILURE"
    assert stages(run) == {**dict.fromkeys(ALL_STAGES[:-1], "run"), "Puppet data": "skipped (earlier failure)"}
    assert events(run, "sh", "Deploy") and not events(run, "sh", "Puppet data")
    assert not [e for e in events(run, "sh") if "puppet-data" in e["script"] or "git push" in e["script"]]
    assert not events(run, "withCredentials", "Puppet data")
    # The same tag with a deploy that succeeds does pin, after the deploy.
    names = [e["stage"] for e in events(runs[f"{form}-tag"], "sh")]
    assert names.index("Puppet data") > names.index("Deploy")


@pytest.mark.parametrize("form", ["full", "library"])
def test_missing_credentials_fail_publish(runs: dict[str, dict[str, Any]], form: str) -> None:
    """Without the signing credentials the release build fails in Publish, after Test, Build and Lint."""
    run = runs[f"{form}-release-missing-credentials"]
    assert run["result"] == "FAILURE"
    assert "Could not find credentials entry with ID 'apt-signing-key'" in events(run, "failure")[0]["message"]
    assert not [e for e in events(run, "sh", "Publish")]


def test_full_and_library_forms_run_the_same_commands(runs: dict[str, dict[str, Any]]) -> None:
    """The one-line Jenkinsfile (shared library) and the full form run identical sh steps in identical order."""
    for push in ("feature", "release", "tag"):
        assert dedent_scripts(runs[f"full-{push}"]) == dedent_scripts(runs[f"library-{push}"])
        assert events(runs[f"full-{push}"], "archiveArtifacts") == events(runs[f"library-{push}"], "archiveArtifacts")


def test_minimal_forms_skip_optional_stages(runs: dict[str, dict[str, Any]]) -> None:
    """Without a control repository or hosts the library skips Puppet data and Deploy; the full form has none."""
    assert stages(runs["library-minimal-tag"]) == {
        "Test": "run", "Build": "run", "Lint": "run", "Publish": "run",
        "Puppet data": "skipped (when)", "Deploy": "skipped (when)"}
    assert stages(runs["full-minimal-tag"]) == {"Test": "run", "Build": "run", "Lint": "run", "Publish": "run"}


def test_library_refuses_unknown_options(runs: dict[str, dict[str, Any]]) -> None:
    """A misspelt option of microdeployPipeline stops the build with the name and the valid ones."""
    run = runs["library-typo"]
    assert run["result"] == "ERROR"
    assert "unknown option(s) relaseBranch" in events(run, "error")[0]["message"]
    assert not events(run, "stage")


def test_release_branch_option_moves_publishing(tmp_path: Path) -> None:
    """With --release-branch release/1.x, pushes to main no longer publish and pushes to release/1.x do."""
    file = tmp_path / "Jenkinsfile"
    file.write_text(render_jenkinsfile(service(), replace(JenkinsOptions(), release_branch="release/1.x")))
    result = run_harness(tmp_path, [
        {"name": "main", "file": str(file), "env": RELEASE, "credentials": CREDENTIALS},
        {"name": "release", "file": str(file), "env": {**RELEASE, "BRANCH_NAME": "release/1.x"},
         "credentials": CREDENTIALS},
    ])
    assert stages(result["main"])["Publish"] == "skipped (when)"
    assert stages(result["release"])["Publish"] == "run"


def test_library_requires_a_valid_name(runs: dict[str, dict[str, Any]]) -> None:
    """microdeployPipeline() without a name stops before any stage, saying what to pass."""
    run = runs["library-nameless"]
    assert run["result"] == "ERROR"
    assert "invalid name 'null'; pass name: 'the-service'" in events(run, "error")[0]["message"]
    assert not events(run, "stage")


def test_library_runs_the_failure_hook(runs: dict[str, dict[str, Any]]) -> None:
    """A failing Test stage runs the caller's onFailure closure in post, then cleans the workspace."""
    run = runs["library-hook"]
    assert run["result"] == "FAILURE"
    assert list(stages(run).values()) == ["run"] + ["skipped (earlier failure)"] * 5
    assert [e["condition"] for e in events(run, "post") if e["stage"] is None] == ["failure", "cleanup"]
    assert [e["message"] for e in events(run, "echo")] == ["paging on-call"]
    assert not events(run, "mail")
    assert events(run, "junit", "Test")


@pytest.mark.parametrize("form", ["full", "library"])
def test_each_release_builds_in_its_own_parallel_branch(runs: dict[str, dict[str, Any]], form: str) -> None:
    """Build runs one parallel branch per configured release, each with its --dist; then the version is read."""
    run = runs[f"{form}-feature"]
    (parallel,) = events(run, "parallel", "Build")
    assert parallel["branches"] == ["Build bookworm", "Build trixie"]
    builds = [(e.get("branch"), e["env"].get("MD_DIST"), e["script"].strip()) for e in events(run, "sh", "Build")]
    assert builds == [
        (None, None, "rm -rf dist build*.json"),
        ("Build bookworm", "bookworm", 'microdeploy build --dist "$MD_DIST" --json > "build-$MD_DIST.json"'),
        ("Build trixie", "trixie", 'microdeploy build --dist "$MD_DIST" --json > "build-$MD_DIST.json"'),
        (None, None, 'dpkg-deb --field "$(ls dist/"$MD_NAME"_*.deb | head -n 1)" Version'),
    ]
    # The branch's MD_DIST stays inside the branch.
    (lint,) = events(run, "sh", "Lint")
    assert "MD_DIST" not in lint["env"]
    assert 'for deb in dist/"$MD_NAME"_*.deb; do' in lint["script"]


@pytest.mark.parametrize("form", ["full", "library"])
def test_a_failed_release_build_fails_the_build_after_every_branch(runs: dict[str, dict[str, Any]], form: str) -> None:
    """Every branch runs even when one fails; then Build fails and Lint and Publish are skipped."""
    run = runs[f"{form}-feature-build-fails"]
    assert run["result"] == "FAILURE"
    assert [e["name"] for e in events(run, "branch", "Build")] == ["Build bookworm", "Build trixie"]
    assert [e.get("branch") for e in events(run, "failure", "Build")] == ["Build bookworm", "Build trixie", None]
    assert "parallel branch(es) failed: Build bookworm, Build trixie" in events(run, "failure", "Build")[-1]["message"]
    assert stages(run)["Lint"] == "skipped (earlier failure)"
    assert not events(run, "sh", "Lint")


def test_without_releases_one_build_runs(runs: dict[str, dict[str, Any]]) -> None:
    """With no --dist the Build stage makes no parallel branches: one build, for the service's dist or the agent's."""
    for name in ("full-minimal-tag", "library-minimal-tag"):
        run = runs[name]
        assert not events(run, "parallel")
        assert [e["script"].strip() for e in events(run, "sh", "Build")][1] == "microdeploy build --json > build.json"
