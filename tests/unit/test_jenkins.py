"""`microdeploy jenkinsfile`: rendering, quoting, options and bad input (hermetic; Groovy runs in integration)."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from microdeploy.cli import main
from microdeploy.config import ServiceConfig, validate
from microdeploy.errors import MicrodeployError
from microdeploy.jenkins import (
    LIBRARY_FILE,
    LIBRARY_KEYS,
    JenkinsOptions,
    check_options,
    groovy_string,
    render_jenkinsfile,
)
from microdeploy.resources import template_folder
from microdeploy.scaffold import scaffold

FULL = JenkinsOptions(
    control_repo="git@git.example.org:ops/control-repo.git",
    deploy_hosts=("app1.example.org", "app2.example.org:2222"),
    notify_email=("team@example.org",),
)
SH_STEP = re.compile(r"\bsh\s*(\(|'''|'|\"|\"\"\")")


def service(**values: object) -> ServiceConfig:
    return validate({"name": ("orders-api", "NAME"), **{k: (v, k) for k, v in values.items()}})


def invoke(*args: str) -> click.testing.Result:
    return CliRunner().invoke(main, list(args))


def make_project(tmp_path: Path, extra: str = "") -> Path:
    project = tmp_path / "svc"
    project.mkdir()
    (project / "pyproject.toml").write_text(f'[tool.microdeploy]\nname = "orders-api"\n{extra}')
    return project


def stage_names(text: str) -> list[str]:
    return re.findall(r"^\s*stage\('([^']+)'\)", text, flags=re.MULTILINE)


def test_full_form_has_the_stages_in_order() -> None:
    """With a control repository and deploy hosts, the stages are Test, Build, Lint, Publish, Deploy, Puppet data."""
    text = render_jenkinsfile(service(), FULL)
    assert stage_names(text) == ["Test", "Build", "Lint", "Publish", "Deploy", "Puppet data"]


def test_optional_stages_are_left_out_by_default() -> None:
    """Without a control repository or deploy hosts there is no Puppet data and no Deploy stage."""
    text = render_jenkinsfile(service(), JenkinsOptions())
    assert stage_names(text) == ["Test", "Build", "Lint", "Publish"]
    assert "MD_CONTROL_REPO" not in text and "MD_DEPLOY_HOSTS" not in text and "mail to:" not in text


def test_options_block() -> None:
    """timestamps, buildDiscarder, timeout and disableConcurrentBuilds are rendered from the options."""
    options = JenkinsOptions(timeout_minutes=25, keep_builds=7, agent_label="debian && amd64")
    text = render_jenkinsfile(service(), options)
    assert "timestamps()" in text and "disableConcurrentBuilds()" in text
    assert "buildDiscarder(logRotator(numToKeepStr: '7'))" in text
    assert "timeout(time: 25, unit: 'MINUTES')" in text
    assert "agent { label 'debian && amd64' }" in text


def test_release_branch_and_tags_gate_publish() -> None:
    """Publish runs on the release branch and on tags; Puppet data and Deploy only on tags."""
    text = render_jenkinsfile(service(), replace(FULL, release_branch="release/1.x"))
    assert "when { anyOf { branch 'release/1.x'; buildingTag() } }" in text
    assert text.count("buildingTag()") == 3


def test_every_sh_step_is_a_single_quoted_string() -> None:
    """No sh step is a GString, so Groovy never interpolates a value or a secret into a command."""
    for text in (render_jenkinsfile(service(), FULL), render_jenkinsfile(None, FULL, "library")):
        steps = SH_STEP.findall(text)
        assert len(steps) >= 6
        assert set(steps) <= {"'''", "'", "("}  # single-quoted: never a GString
        assert "sh(script: '" in text


def test_steps_that_see_secrets_turn_tracing_off_first() -> None:
    """Each sh step inside withCredentials starts with `set +x` (Jenkins runs sh with -x)."""
    text = render_jenkinsfile(service(), FULL)
    blocks = text.split("withCredentials(")[1:]
    assert len(blocks) == 3
    for block in blocks:
        script = block.split("sh '''", 1)[1]
        assert script.lstrip().startswith("set +x\n")


def test_secrets_never_reach_a_command_line() -> None:
    """The passphrase goes to gpg-agent through printf (a shell builtin), never as an argument."""
    text = render_jenkinsfile(service(), FULL)
    uses = [line.strip() for line in text.splitlines() if "$MD_SIGNING_PASSPHRASE" in line]
    assert uses == [
        'if [ -n "$MD_SIGNING_PASSPHRASE" ]; then',
        "printf '%s' \"$MD_SIGNING_PASSPHRASE\" | /usr/lib/gnupg/gpg-preset-passphrase --preset \"$grip\"",
    ]
    assert "echo $MD_" not in text and "set -x" not in text


def test_publish_and_build_use_the_microdeploy_commands() -> None:
    """Build, publish, puppet-data and deploy are called with the flags those commands take."""
    text = render_jenkinsfile(service(), FULL)
    assert "sh 'microdeploy build --json > build.json'" in text
    assert 'microdeploy build --dist "$MD_DIST" --json > "build-$MD_DIST.json"' in text
    assert ('microdeploy check "$deb" ${MD_CHECK_SETUP:+--setup "$MD_CHECK_SETUP"} '
            '--junit "reports/check-$(basename "$deb" .deb).xml"') in text
    assert 'microdeploy publish dist/*.deb --repo "$MD_REPO" --gnupghome "$GNUPGHOME" --json' in text
    assert 'microdeploy puppet-data --control-repo .control-repo --version "${MD_VERSION%+deb*}"' in text
    assert 'microdeploy deploy "$MD_NAME" --version "$MD_VERSION" --hosts "$MD_DEPLOY_HOSTS"' in text
    assert "--junitxml=reports/junit.xml" in text and "junit 'reports/junit.xml'" in text
    assert "archiveArtifacts artifacts: 'dist/*.deb', fingerprint: true" in text


def test_merge_request_mode_is_passed_to_the_step() -> None:
    """--control-repo-mode merge-request reaches the shell step through MD_CONTROL_REPO_MODE."""
    options = JenkinsOptions(control_repo="file:///srv/git/control", control_repo_mode="merge-request")
    text = render_jenkinsfile(service(), options)
    assert "MD_CONTROL_REPO_MODE = 'merge-request'" in text
    assert "-o merge_request.create" in text


@pytest.mark.parametrize(
    ("value", "literal"),
    [
        ("plain", "'plain'"),
        ("it's", "'it\\'s'"),
        ("${System.exit(1)}", "'\\${System.exit(1)}'"),
        ("back\\slash", "'back\\\\slash'"),
        ("line\nbreak", "'line\\nbreak'"),
        ("caf\u00e9", "'caf\\u00e9'"),
        ("''' + x + '''", "'\\'\\'\\' + x + \\'\\'\\''"),
    ],
)
def test_groovy_string_quotes_everything(value: str, literal: str) -> None:
    """Quotes, backslashes, dollars, control and non-ASCII characters are escaped in a single-quoted literal."""
    assert groovy_string(value) == literal


def test_description_from_config_is_quoted() -> None:
    """A description with quotes, `$` and a backslash lands in the input message as an inert literal."""
    config = service(description="Bob's $'evil' \\ api")
    text = render_jenkinsfile(config, FULL)
    assert "message 'Deploy orders-api (Bob\\'s \\$\\'evil\\' \\\\ api) to app1.example.org," in text


def test_rendering_is_deterministic() -> None:
    """The same service and options render byte-identical files."""
    assert render_jenkinsfile(service(), FULL) == render_jenkinsfile(service(), FULL)


def test_checked_in_library_is_up_to_date() -> None:
    """jenkins/vars/microdeployPipeline.groovy is exactly what the templates render."""
    checked_in = (template_folder("jenkins") / LIBRARY_FILE).read_text()
    assert checked_in == render_jenkinsfile(None, JenkinsOptions(), "library"), (
        "regenerate: microdeploy jenkinsfile --form library -o jenkins/vars/microdeployPipeline.groovy")


def test_library_defaults_come_from_the_options() -> None:
    """The shared library's defaults are the same as the CLI's."""
    text = render_jenkinsfile(None, JenkinsOptions(), "library")
    for line in ("agentLabel: 'microdeploy',", "releaseBranch: 'main',", "repo: '/srv/apt/microdeploy',",
                 "signingKeyCredentials: 'microdeploy-signing-key',", "timeoutMinutes: '60',"):
        assert line in text


def test_one_line_form_names_only_non_defaults() -> None:
    """The one-line Jenkinsfile passes the name and every option that differs from the default."""
    options = JenkinsOptions(release_branch="release", deploy_hosts=("a", "b"), timeout_minutes=30)
    text = render_jenkinsfile(service(python="python3.11"), options, "one-line")
    assert text.splitlines()[1:] == [
        "@Library('microdeploy') _",
        "microdeployPipeline(name: 'orders-api', python: 'python3.11', releaseBranch: 'release', "
        "deployHosts: 'a,b', timeoutMinutes: '30')",
    ]


def test_new_service_gets_the_one_line_jenkinsfile(tmp_path: Path) -> None:
    """`microdeploy new` writes exactly the default one-line form."""
    config = validate({"name": ("orders-api", "NAME")})
    scaffold(config, tmp_path / "svc")
    expected = render_jenkinsfile(config, JenkinsOptions(), "one-line")
    assert (tmp_path / "svc/Jenkinsfile").read_text() == expected


@pytest.mark.parametrize(
    ("field", "value", "flag"),
    [
        ("agent_label", "x'y", "--agent-label"),
        ("release_branch", "my branch", "--release-branch"),
        ("release_branch", "a..b", "--release-branch"),
        ("repo", "relative/path", "--repo"),
        ("signing_key_credentials", "key id", "--signing-key-credentials"),
        ("control_repo", "git@x:a b.git", "--control-repo"),
        ("control_repo_mode", "fork", "--control-repo-mode"),
        ("deploy_hosts", ("ok.example.org", "bad host"), "--deploy-host"),
        ("notify_email", ("nobody",), "--notify-email"),
        ("timeout_minutes", 0, "--timeout"),
        ("keep_builds", 10**6, "--keep-builds"),
        ("check_setup", "/etc/setup.sh", "--check-setup"),
        ("check_setup", "../outside.sh", "--check-setup"),
        ("check_setup", "ci/../../outside.sh", "--check-setup"),
        ("check_setup", "ci/set up.sh", "--check-setup"),
        ("check_setup", "ci/$(reboot).sh", "--check-setup"),
    ],
)
def test_check_options_refuses_bad_values(field: str, value: object, flag: str) -> None:
    """Each option is validated with the flag named in the message, exit status 2."""
    with pytest.raises(MicrodeployError) as info:
        check_options(JenkinsOptions(**{field: value}))  # type: ignore[arg-type]
    assert info.value.exit_code == 2
    assert f"invalid {flag}" in info.value.message


def test_cli_prints_to_stdout_by_default(tmp_path: Path) -> None:
    """Without --output the Jenkinsfile goes to standard output and nothing is written."""
    project = make_project(tmp_path)
    result = invoke("jenkinsfile", str(project))
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("// Jenkinsfile of orders-api")
    assert sorted(p.name for p in project.iterdir()) == ["pyproject.toml"]


def test_cli_writes_the_output_file(tmp_path: Path) -> None:
    """--output writes the file with the flags applied, and says so on stderr."""
    project = make_project(tmp_path)
    out = project / "Jenkinsfile"
    result = invoke("jenkinsfile", str(project), "-o", str(out), "--release-branch", "trunk",
                    "--control-repo", "file:///srv/git/control", "--deploy-host", "a.example.org,b.example.org")
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert "branch 'trunk'" in text and "MD_DEPLOY_HOSTS = 'a.example.org,b.example.org'" in text
    assert f"Wrote {out}" in result.stderr


def test_cli_library_form_needs_no_project(tmp_path: Path) -> None:
    """--form library renders the shared library step without reading a service."""
    result = invoke("jenkinsfile", str(tmp_path / "absent"), "--form", "library")
    assert result.exit_code == 0, result.output
    assert "def call(Map args = [:])" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--signing-key-credentials", "my key"], "invalid --signing-key-credentials 'my key'"),
        (["--deploy-credentials", "$(id)"], "invalid --deploy-credentials '$(id)'"),
        (["--agent-label", "linux'"], "invalid --agent-label \"linux'\""),
        (["--release-branch", "release 1"], "invalid --release-branch 'release 1'"),
        (["--repo", "/srv/apt repo"], "invalid --repo '/srv/apt repo'"),
        (["--control-repo", "git@x:ops/control.git'"], "invalid --control-repo"),
        (["--deploy-host", "h1;reboot"], "invalid --deploy-host 'h1;reboot'"),
        (["--deploy-host", ""], "invalid --deploy-host ''"),
        (["--deploy-host", "a.example.org,,b.example.org"], "invalid --deploy-host ''"),
        (["--notify-email", "a@b'"], "invalid --notify-email"),
        (["--timeout", "0"], "invalid --timeout 0"),
        (["--name", "Bad_Name"], "invalid name 'Bad_Name' (from --name)"),
        (["-o", "missing/Jenkinsfile"], "output directory not found"),
        (["-o", "."], "is a directory"),
        (["--control-repo-mode", "fork"], "Invalid value for '--control-repo-mode'"),
    ],
)
def test_cli_bad_input_exits_2_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str
) -> None:
    """Every bad flag exits 2 with the value named, without a traceback, and leaves no file behind."""
    project = make_project(tmp_path)
    monkeypatch.chdir(project)
    if "-o" not in args:
        args = [*args, "-o", "Jenkinsfile"]
    result = invoke("jenkinsfile", *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in project.iterdir()) == ["pyproject.toml"]


def test_cli_bad_service_config_exits_2(tmp_path: Path) -> None:
    """An invalid key in [tool.microdeploy] is bad input, and no Jenkinsfile is written."""
    project = make_project(tmp_path, extra='python = "ruby"\n')
    result = invoke("jenkinsfile", str(project), "-o", str(project / "Jenkinsfile"))
    assert result.exit_code == 2
    assert "invalid python 'ruby'" in result.stderr
    assert not (project / "Jenkinsfile").exists()


def test_cli_overwrites_atomically(tmp_path: Path) -> None:
    """A Jenkinsfile microdeploy wrote (the scaffold's one-line form) is replaced whole, with no temporary file left
    beside it."""
    project = make_project(tmp_path)
    out = project / "Jenkinsfile"
    assert invoke("jenkinsfile", str(project), "--form", "one-line", "-o", str(out)).exit_code == 0
    assert invoke("jenkinsfile", str(project), "-o", str(out)).exit_code == 0
    assert out.read_text().startswith("// Jenkinsfile of orders-api")
    assert sorted(p.name for p in project.iterdir()) == ["Jenkinsfile", "pyproject.toml"]
    empty = tmp_path / "made-by-mktemp"  # `-o "$(mktemp)"`: nothing in it to lose
    empty.touch()
    assert invoke("jenkinsfile", str(project), "-o", str(empty)).exit_code == 0
    assert empty.read_text().startswith("// Jenkinsfile of orders-api")
    library = tmp_path / "microdeployPipeline.groovy"
    assert invoke("jenkinsfile", str(project), "--form", "library", "-o", str(library)).exit_code == 0
    assert invoke("jenkinsfile", str(project), "--form", "library", "-o", str(library)).exit_code == 0


@pytest.mark.parametrize("target", ["pyproject.toml", "Jenkinsfile"])
def test_cli_refuses_to_replace_a_file_it_did_not_write(tmp_path: Path, target: str) -> None:
    """-o naming the project's pyproject.toml, or a Jenkinsfile people wrote, exits 2 and leaves it as it was (the
    pipeline replaced pyproject.toml)."""
    project = make_project(tmp_path)
    (project / "Jenkinsfile").write_text("pipeline { agent any }\n")
    before = {path.name: path.read_bytes() for path in project.iterdir()}
    result = invoke("jenkinsfile", str(project), "-o", str(project / target))
    assert result.exit_code == 2, result.output
    assert f"{project / target} is not a file microdeploy jenkinsfile wrote" in result.stderr
    assert {path.name: path.read_bytes() for path in project.iterdir()} == before


def test_library_help_lists_every_option() -> None:
    """vars/microdeployPipeline.txt (Jenkins' help page of the step) names every option of the library."""
    help_text = (template_folder("jenkins") / "vars/microdeployPipeline.txt").read_text()
    for key in (*LIBRARY_KEYS.values(), "python", "onFailure"):
        assert key in help_text, key


def test_the_releases_to_build_reach_the_build_step() -> None:
    """--dist bookworm --dist trixie: MD_DISTS names both; the Build stage makes one parallel branch per release."""
    text = render_jenkinsfile(service(), JenkinsOptions(dists=("bookworm", "trixie")))
    assert "MD_DISTS = 'bookworm trixie'" in text
    assert "List releases = (env.MD_DISTS ?: '').tokenize(', ')" in text
    assert "parallel builds" in text and 'withEnv(["MD_DIST=${dist}".toString()])' in text
    assert "MD_DISTS = ''" in render_jenkinsfile(service(), JenkinsOptions())
    library = render_jenkinsfile(None, JenkinsOptions(), "library")
    assert "MD_DISTS = \"${cfg.dists ?: ''}\"" in library


def test_an_unknown_release_is_refused() -> None:
    """A --dist that microdeploy does not build for is exit 2 with the known releases."""
    with pytest.raises(MicrodeployError) as info:
        render_jenkinsfile(service(), JenkinsOptions(dists=("buster",)))
    assert info.value.exit_code == 2 and info.value.hint == "Use one of: bookworm, trixie"


def test_the_check_setup_script_reaches_the_lint_step_through_the_environment() -> None:
    """--check-setup is a quoted MD_CHECK_SETUP, which the Lint step passes to `microdeploy check --setup` only when
    it is set; without it neither appears; the one-line form names it as checkSetup."""
    options = JenkinsOptions(check_setup="ci/check-setup.sh")
    text = render_jenkinsfile(service(), options)
    assert "        MD_CHECK_SETUP = 'ci/check-setup.sh'\n" in text
    assert 'microdeploy check "$deb" ${MD_CHECK_SETUP:+--setup "$MD_CHECK_SETUP"} --junit' in text
    assert "MD_CHECK_SETUP =" not in render_jenkinsfile(service(), JenkinsOptions())
    assert "checkSetup: 'ci/check-setup.sh'" in render_jenkinsfile(service(), options, "one-line")
    assert check_options(JenkinsOptions(check_setup="ci/.setup-v2+x.sh")).check_setup == "ci/.setup-v2+x.sh"
