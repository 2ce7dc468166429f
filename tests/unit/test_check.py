"""Unit tests of `microdeploy check`'s own logic: reading the .deb, the release, reasons, reports, bad input."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

from microdeploy import dists
from microdeploy.check import CheckSettings, check
from microdeploy.check.package import Override, parse_overrides, read_deb, release_of
from microdeploy.check.qa import _piuparts_reason
from microdeploy.check.report import FAILED, PASSED, SKIPPED, Outcome, Report
from microdeploy.check.service import LAST_WORD_MAX, ServiceProbe
from microdeploy.cli import main
from microdeploy.debfile import PackageRef, inspect_deb
from microdeploy.dists import Dist
from microdeploy.errors import EXIT_BAD_INPUT, MicrodeployError
from microdeploy.mirrors import Mirror
from tests.support import make_deb

OVERRIDES = """\
# dh-virtualenv installs the venv under /opt/venvs.
orders-api: dir-or-file-in-opt
# The venv's scripts run with the venv's interpreter;
# third-party modules keep their upstream lines.
orders-api: unusual-interpreter *
orders-api: script-not-executable [opt/venvs/orders-api/lib/*]

# A site-local package.
initial-upload-closes-no-bugs
orders-api binary: long-form-override [usr/share/doc/*]

orders-api: unexplained
"""


def test_overrides_carry_the_comment_above_them_as_reason() -> None:
    """Each override gets the comment block above it; overrides in a row share it; none gives a placeholder."""
    assert parse_overrides(OVERRIDES) == [
        Override("dir-or-file-in-opt", "dh-virtualenv installs the venv under /opt/venvs."),
        Override("unusual-interpreter",
                 "The venv's scripts run with the venv's interpreter; third-party modules keep their upstream lines."),
        Override("script-not-executable",
                 "The venv's scripts run with the venv's interpreter; third-party modules keep their upstream lines."),
        Override("initial-upload-closes-no-bugs", "A site-local package."),
        Override("long-form-override", "A site-local package."),
        Override("unexplained", "(no reason given)"),
    ]


def test_read_deb_finds_overrides_and_unit(tmp_path: Path) -> None:
    """The package's name, version, overrides and unit come from the .deb itself."""
    deb = make_deb(tmp_path, files={
        "usr/share/lintian/overrides/orders-api": OVERRIDES,
        "lib/systemd/system/orders-api.service": "[Service]\nExecStart=/bin/true\n",
    })
    info = read_deb(deb)
    assert (info.name, info.version, info.unit, info.has_unit) == ("orders-api", "1.0-1", "orders-api.service", True)
    assert [o.tag for o in info.overrides][:2] == ["dir-or-file-in-opt", "unusual-interpreter"]


def test_check_and_publish_read_a_deb_through_one_reader(tmp_path: Path) -> None:
    """check's facts of a .deb are the package publish and deploy read from it (microdeploy.debfile)."""
    deb = make_deb(tmp_path, version="2:1.4.0-3+deb12")
    info = read_deb(deb)
    assert PackageRef(info.name, info.version, info.architecture) == inspect_deb(deb).package


def test_read_deb_of_a_package_without_unit_or_overrides(tmp_path: Path) -> None:
    """A package without a unit or overrides reads as such (its service checks are then not run)."""
    info = read_deb(make_deb(tmp_path))
    assert (info.has_unit, info.overrides) == (False, ())


@pytest.mark.parametrize(("version", "depends", "release"), [
    ("1.0-1", "python3.11, adduser", "bookworm"),
    ("1.0-1", "libc6, python3.13", "trixie"),
    ("1.0-1+deb13u1", "python3.11", "trixie"),
    ("1.0-1+deb12", "python3.13", "bookworm"),
    ("1.0-1", "adduser", "bookworm"),
])
def test_release_comes_from_the_revision_then_the_python_dependency(
    tmp_path: Path, version: str, depends: str, release: str
) -> None:
    """+debNN in the revision wins, then a python3.X dependency; without either, bookworm."""
    assert release_of(read_deb(make_deb(tmp_path, version=version, depends=depends))) == release


def test_release_follows_the_one_table_of_releases(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A release added to dists.DISTS is known to check by its number, its python3 and its name, with no other edit."""
    forky = Dist("forky", 14, "3.14")
    monkeypatch.setattr(dists, "DISTS", {**dists.DISTS, "forky": forky})
    assert release_of(read_deb(make_deb(tmp_path, version="1.0-1+deb14u2"))) == "forky"
    assert release_of(read_deb(make_deb(tmp_path, version="2.0-1", depends="python3.14"))) == "forky"
    assert release_of(read_deb(make_deb(tmp_path)), "forky") == "forky"


def test_unknown_dist_is_bad_input(tmp_path: Path) -> None:
    """--dist must name a release hosts can be made of."""
    with pytest.raises(MicrodeployError, match="unknown release 'sid'") as caught:
        release_of(read_deb(make_deb(tmp_path)), "sid")
    assert caught.value.exit_code == EXIT_BAD_INPUT


def test_junit_report_has_one_testcase_per_check_with_the_failure_inside() -> None:
    """The JUnit XML parses, counts right, and carries a failure's reason and output (XML-safe)."""
    report = Report("orders-api", "1.0-1", "bookworm", [
        Outcome("lintian", PASSED, "0 errors", 1.5, "override x: y"),
        Outcome("health", FAILED, "GET /health answered 500", 2.0, "journal line\x1b[0m"),
        Outcome("purge", SKIPPED, "not run: health failed"),
    ], seconds=3.5)
    root = ET.fromstring(report.junit_xml())
    suite = root.find("testsuite")
    assert suite is not None
    assert {k: suite.get(k) for k in ("tests", "failures", "errors", "skipped")} == {
        "tests": "3", "failures": "1", "errors": "0", "skipped": "1"}
    cases = {case.get("name"): case for case in suite.iter("testcase")}
    failure = cases["health"].find("failure")
    assert failure is not None and failure.get("message") == "GET /health answered 500"
    assert failure.text == "GET /health answered 500\n\njournal line?[0m\n"
    assert cases["purge"].find("skipped") is not None
    assert report.exit_code == 1


def test_piuparts_reason_is_its_first_problem_with_the_first_items() -> None:
    """The one-line reason of a piuparts failure names the problem and what it lists."""
    output = (
        "0m1.0s INFO: starting\n"
        "0m9.8s ERROR: FAIL: Package purging left files on system:\n"
        "  /srv/orders-api/\t not owned\n"
        "  /srv/orders-api/cache\t not owned\n"
        "0m9.9s ERROR: piuparts run ends.\n"
    )
    assert _piuparts_reason(output) == (
        "piuparts: Package purging left files on system: "
        "/srv/orders-api/\t not owned, /srv/orders-api/cache\t not owned"
    )
    assert _piuparts_reason("nothing useful") == "piuparts failed (see its log)"


def test_last_error_prefers_the_services_own_exception() -> None:
    """The reason of a unit that does not start is the service's exception, not systemd's summary."""
    journal = (
        "Dec 04 19:51:21 h gunicorn[145]: [ERROR] Exception in worker process\n"
        "Dec 04 19:51:21 h gunicorn[145]: ModuleNotFoundError: No module named 'orders_api.missing'\n"
        "Dec 04 19:51:21 h gunicorn[138]: [ERROR] Reason: Worker failed to boot.\n"
        "Dec 04 19:51:21 h systemd[1]: orders-api.service: Failed with result 'exit-code'.\n"
    )
    assert ServiceProbe.last_error(journal) == "ModuleNotFoundError: No module named 'orders_api.missing'"
    assert ServiceProbe.last_error("Dec 04 h app[1]: [ERROR] disk full\n") == "[ERROR] disk full"


def test_a_long_last_error_keeps_its_cause_at_the_end() -> None:
    """Puppetboard without its PuppetDB: urllib3's line names the failure first and its cause last, 272
    characters; the reason keeps both ends."""
    line = ("ERROR:puppetboard.utils:HTTPConnectionPool(host='localhost', port=8080): Max retries exceeded with url: "
            "/pdb/meta/v1/version (Caused by NewConnectionError(\"HTTPConnection(host='localhost', port=8080): "
            "Failed to establish a new connection: [Errno 111] Connection refused\"))")
    why = ServiceProbe.last_error(f"Dec 06 21:50:01 h gunicorn[212]: {line}\n")
    assert len(line) > LAST_WORD_MAX >= len(why)
    assert why.startswith("ERROR:puppetboard.utils:HTTPConnectionPool(host='localhost', port=8080): Max retries")
    assert why.endswith("[Errno 111] Connection refused\"))") and " … " in why


def test_not_root_is_bad_input_with_the_command_to_run(tmp_path: Path) -> None:
    """Without root, check refuses before reading anything and says to run it with sudo."""
    with pytest.raises(MicrodeployError) as caught:
        check(CheckSettings(deb=tmp_path / "x.deb", previous="1.0-1"), is_root=lambda: False)
    assert caught.value.exit_code == EXIT_BAD_INPUT
    assert caught.value.hint == f"Run it as root: sudo microdeploy check {tmp_path / 'x.deb'} --previous 1.0-1"


def test_cli_not_root_exits_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The command line maps the refusal to exit status 2 with the hint, and writes no report."""
    monkeypatch.setattr("microdeploy.check.os.geteuid", lambda: 1000)
    result = CliRunner().invoke(main, ["check", str(make_deb(tmp_path)), "--junit", str(tmp_path / "r.xml")])
    assert result.exit_code == 2
    assert "needs root" in result.output and "hint: Run it as root: sudo microdeploy check" in result.output
    assert not (tmp_path / "r.xml").exists()


@pytest.mark.parametrize(("extra", "message"), [
    (["--previous", "0.9-1"], "is a version, and no --repo to install it from"),
    (["--previous", "2.0-1"], "--previous 2.0-1 is not older than 1.0-1"),
    (["--previous", "not a version!"], "is neither a .deb nor a Debian version"),
    # python-debian sorts it below any version: it was "--previous not-a-version is not older than ...".
    (["--previous", "not-a-version"], "--previous 'not-a-version' is neither a .deb nor a Debian version"),
    (["--dist", "sid"], "unknown release 'sid'"),
    (["--repo", "{tmp}/no-repo"], "no published repository in"),
    (["--junit", "{tmp}/missing/report.xml"], "no directory for the JUnit report"),
])
def test_cli_bad_input_exits_2_and_writes_nothing(tmp_path: Path, extra: list[str], message: str) -> None:
    """Each bad option exits 2 with a message before any host boots; no report is written."""
    deb = make_deb(tmp_path)
    args = [arg.replace("{tmp}", str(tmp_path)) for arg in extra]
    before = sorted(tmp_path.rglob("*"))
    result = CliRunner().invoke(main, ["check", str(deb), *args])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert sorted(tmp_path.rglob("*")) == before


def test_cli_missing_or_foreign_files_exit_2(tmp_path: Path) -> None:
    """A missing DEB, a file that is not a .deb, and a --previous of another package are bad input."""
    (tmp_path / "junk.deb").write_text("not a package")
    other = make_deb(tmp_path, name="other-api", version="0.5-1")
    deb = make_deb(tmp_path)
    for args, message in (
        ([str(tmp_path / "missing.deb")], "no such package file"),
        ([str(tmp_path / "junk.deb")], "is not a readable Debian package"),
        ([str(deb), "--previous", str(other)], "is package other-api, not orders-api"),
    ):
        result = CliRunner().invoke(main, ["check", *args])
        assert result.exit_code == 2, result.output
        assert message in result.output


def test_feed_serves_the_repository_and_caches_the_mirrors_immutable_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """/repo/ serves --repo's tree; /mirror/0/ passes through, pool/ and by-hash/ files from the cache next time."""
    import functools
    import threading
    import urllib.error
    import urllib.request
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    from microdeploy.check import feed as feed_module

    upstream_dir, public = tmp_path / "upstream", tmp_path / "public"
    (upstream_dir / "pool/main/o").mkdir(parents=True)
    (upstream_dir / "dists/bookworm").mkdir(parents=True)
    (upstream_dir / "pool/main/o/o.deb").write_bytes(b"package v1")
    (upstream_dir / "dists/bookworm/InRelease").write_text("release 1")
    public.mkdir()
    (public / "key.gpg").write_text("key")
    monkeypatch.setattr(feed_module, "MIRROR_CACHE", tmp_path / "cache")

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    upstream = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(upstream_dir)))
    thread = threading.Thread(target=upstream.serve_forever, daemon=True)
    thread.start()
    mirror = Mirror(f"http://127.0.0.1:{upstream.server_address[1]}/", ("bookworm", "bookworm-updates"),
                    "/usr/share/keyrings/debian-archive-keyring.gpg")

    def get(url: str) -> bytes:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return bytes(answer.read())

    try:
        with feed_module.serving_feed("127.0.0.1", [mirror], public) as feed:
            assert get(f"{feed.url}repo/key.gpg") == b"key"
            assert get(f"{feed.url}mirror/0/pool/main/o/o.deb") == b"package v1"
            assert get(f"{feed.url}mirror/0/dists/bookworm/InRelease") == b"release 1"
            (upstream_dir / "pool/main/o/o.deb").write_bytes(b"changed upstream")
            (upstream_dir / "dists/bookworm/InRelease").write_text("release 2")
            assert get(f"{feed.url}mirror/0/pool/main/o/o.deb") == b"package v1"  # from the cache
            assert get(f"{feed.url}mirror/0/dists/bookworm/InRelease") == b"release 2"  # never cached
            for path in ("mirror/1/pool/x", "mirror/0/../etc/passwd", "etc/passwd", "repo/../upstream/x"):
                with pytest.raises(urllib.error.HTTPError) as refused:
                    get(f"{feed.url}{path}")
                assert refused.value.code == 404, path
                refused.value.close()
            # The host's own keyring checks the passed-through archive: no Signed-By of this machine's.
            assert feed.mirror_sources() == (f"Types: deb\nURIs: {feed.url}mirror/0/\n"
                                             "Suites: bookworm bookworm-updates\nComponents: main\n")
    finally:
        upstream.shutdown()
        upstream.server_close()
        thread.join(10)


def test_refresh_discards_the_cached_image_and_its_tree(tmp_path: Path) -> None:
    """--refresh-images removes a cached image and its unpacked tree, so the next use builds them again."""
    from microdeploy.testbed import image

    tar = tmp_path / "bookworm-host-0123.tar"
    tar.write_bytes(b"tar")
    (tmp_path / "bookworm-host-0123.tree" / "etc").mkdir(parents=True)
    image._discard(tar)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bookworm-host-0123.tar.lock", "bookworm-host-0123.tree.lock"]
