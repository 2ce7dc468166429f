"""The debian/ directory rendered for a service: whole files compared, context pure."""

from __future__ import annotations

import os
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from debian.changelog import Changelog

from microdeploy.build.debiandir.context import BuildFacts, debian_context
from microdeploy.build.debiandir.tree import date_tree, render_debian, rendering_key
from microdeploy.build.release.changelog import render_changelog
from microdeploy.config import validate

FACTS = BuildFacts(upstream="1.4.0", version="1.4.0-3", python_minor="3.11", distribution="bookworm",
                   epoch=1767225600, license_name="MIT")


def config(**extra: object):  # type: ignore[no-untyped-def]
    values = {"name": ("orders-api", "t"), "description": ("Orders of the shop", "t"),
              "maintainer": ("Ann Ops <ann@example.org>", "t")}
    values.update({key: (value, "t") for key, value in extra.items()})
    return validate(values)


def render(tmp_path: Path, **extra: object) -> Path:
    changelog = render_changelog(name="orders-api", version="1.4.0-3", distribution="bookworm",
                                 maintainer="Ann Ops <ann@example.org>", changes=["Add orders"], epoch=FACTS.epoch)
    render_debian(tmp_path, debian_context(config(**extra), FACTS), changelog)
    return tmp_path / "debian"


def test_control_file(tmp_path: Path) -> None:
    """The whole control file, with extra relations and the pinned interpreter."""
    debian = render(tmp_path, depends=["libpq5"], build_depends=["libpq-dev"])
    assert (debian / "control").read_text() == """\
Source: orders-api
Section: web
Priority: optional
Maintainer: Ann Ops <ann@example.org>
Build-Depends: debhelper-compat (= 13),
               dh-virtualenv (>= 1.2),
               python3.11,
               python3.11-venv,
               libpq-dev
Standards-Version: 4.6.2
Rules-Requires-Root: no

Package: orders-api
Architecture: any
Depends: ${misc:Depends},
         ${shlibs:Depends},
         adduser,
         python3.11,
         libpq5
Description: Orders of the shop
 orders-api is a Flask web service packaged with its own Python virtual
 environment under /opt/venvs/orders-api, served by gunicorn through the
 systemd unit orders-api.service. It reads /etc/orders-api/config.ini and logs
 to /var/log/orders-api.
"""


def test_rendered_files_and_modes(tmp_path: Path) -> None:
    """Every debian/ file is there; rules and the scripts it runs are executable; no README leaks in."""
    debian = render(tmp_path)
    names = sorted(p.relative_to(debian).as_posix() for p in debian.rglob("*") if p.is_file())
    assert names == [
        "cached-md5sums", "cached-shlibdeps", "cached-strip", "changelog", "control", "copyright", "finalize-venv",
        "gunicorn.conf.py", "make-venv", "orders-api-run", "orders-api-run.1", "orders-api.install",
        "orders-api.lintian-overrides", "orders-api.logrotate", "orders-api.postinst", "orders-api.postrm",
        "orders-api.prerm", "orders-api.service", "orders-api.triggers", "rules", "source/format", "uv-pip",
        "venv-overrides",
    ]
    for script in ("rules", "finalize-venv", "make-venv", "cached-md5sums", "cached-shlibdeps", "cached-strip",
                   "venv-overrides", "orders-api-run"):
        assert (debian / script).stat().st_mode & 0o111, script
    # uv-pip is read by make-venv and run by the venv's python, not executed itself.
    assert not (debian / "uv-pip").stat().st_mode & 0o111


def test_unit_runs_gunicorn_as_the_service_user_without_capabilities(tmp_path: Path) -> None:
    """The unit runs the app through the packaged gunicorn config, as NAME, with no capabilities."""
    unit = (render(tmp_path) / "orders-api.service").read_text()
    assert "User=orders-api\nGroup=orders-api\n" in unit
    assert ("ExecStart=/opt/venvs/orders-api/bin/gunicorn --config /usr/share/orders-api/gunicorn.conf.py "
            '"orders_api.application:create_app()"') in unit
    assert "EnvironmentFile=-/etc/orders-api/environment" in unit
    assert "CapabilityBoundingSet=\n" in unit and "SystemCallFilter=@system-service" in unit


def test_the_unit_takes_no_capability_whatever_the_packaged_port(tmp_path: Path) -> None:
    """The port is the host's to choose: a packaged default below 1024 renders the same unit, with no capability
    (a host grants CAP_NET_BIND_SERVICE by a drop-in)."""
    unit = (render(tmp_path / "80", port=80) / "orders-api.service").read_text()
    assert unit == (render(tmp_path / "8001", port=8001) / "orders-api.service").read_text()
    assert "CapabilityBoundingSet=\nAmbientCapabilities=\n" in unit


def test_gunicorn_config_layers_defaults_site_config_and_environment(tmp_path: Path) -> None:
    """bind/port/workers: packaged defaults, then [server] of the site config, then the environment."""
    source = (render(tmp_path, port=8001, workers=3) / "gunicorn.conf.py").read_text()
    site = tmp_path / "config.ini"
    site.write_text("[server]\nport = 9001\nbind = ::1\n")

    def settings(environ: dict[str, str]) -> dict[str, object]:
        import os
        saved = dict(os.environ)
        os.environ.update({"ORDERS_API_CONFIG": str(site), **environ})
        try:
            namespace: dict[str, object] = {}
            exec(compile(source, "gunicorn.conf.py", "exec"), namespace)
            return namespace
        finally:
            os.environ.clear()
            os.environ.update(saved)

    layered = settings({})
    assert (layered["bind"], layered["workers"]) == (["[::1]:9001"], 3)
    assert settings({"ORDERS_API_SERVER__WORKERS": "5"})["workers"] == 5
    assert layered["control_socket_disable"] is True


def test_changelog_parses_and_wraps(tmp_path: Path) -> None:
    """python-debian reads back the entry; long subjects wrap under 80 columns."""
    text = render_changelog(name="orders-api", version="1.4.0-3", distribution="bookworm",
                            maintainer="Ann Ops <ann@example.org>", changes=["x" * 20 + " word" * 30], epoch=0)
    parsed = Changelog(text)
    assert (str(parsed.version), parsed.distributions, parsed.author) == (
        "1.4.0-3", "bookworm", "Ann Ops <ann@example.org>")
    assert parsed.date == "Thu, 01 Jan 1970 00:00:00 +0000"
    assert max(len(line) for line in text.splitlines()) < 80


def test_summary_never_starts_with_the_name_or_an_article() -> None:
    """lintian's synopsis rules are met whatever the description says."""
    assert config(description="orders-api: takes orders").summary == "Takes orders"
    assert config(description="A shop API").summary == "Shop API"
    assert config(description="").summary == "Flask web service"


def render_rules(tmp_path: Path, installer: str, keep_installers: bool = False, **settings: object) -> str:
    facts = replace(FACTS, installer=installer, keep_installers=keep_installers)
    changelog = render_changelog(name="orders-api", version="1.4.0-3", distribution="bookworm",
                                 maintainer="Ann Ops <ann@example.org>", changes=[], epoch=FACTS.epoch)
    render_debian(tmp_path, debian_context(config(**settings), facts), changelog)
    return (tmp_path / "debian" / "rules").read_text()


def planned(tree: Path, *targets: str, options: str | None = None) -> list[str]:
    """The commands GNU make would run for `targets` of the rendered debian/rules (make -n), one per line."""
    env = {"PATH": os.environ["PATH"]}
    if options is not None:
        env["DEB_BUILD_OPTIONS"] = options
    result = subprocess.run(["make", "-f", "debian/rules", "-n", *targets], cwd=tree, env=env,
                            capture_output=True, text=True, check=True)
    return [" ".join(line.split()) for line in result.stdout.replace("\\\n", " ").splitlines()]


def test_rules_with_uv_use_the_venv_shim_and_pip_tool(tmp_path: Path) -> None:
    """uv: dh_virtualenv gets make-venv as its interpreter and uv-pip as its pip tool; no pip options."""
    rules = render_rules(tmp_path, "uv")
    assert ("\tdh_virtualenv --builtin-venv --python $(CURDIR)/debian/make-venv --pip-tool uv-pip \\\n"
            "\t\t--sourcedirectory src-project\n") in rules
    assert "--preinstall" not in rules and "--extra-pip-arg" not in rules
    venv = f"{tmp_path}/debian/orders-api/opt/venvs/orders-api"
    assert planned(tmp_path, "venv-part") == [
        f"dh_virtualenv --builtin-venv --python {tmp_path}/debian/make-venv --pip-tool uv-pip "
        "--sourcedirectory src-project",
        f"/usr/bin/python3.11 -IS debian/finalize-venv prune {venv} --strip-installers",
        "dh_installsystemd",
    ]
    assert planned(tmp_path, "finalize-part") == [f"/usr/bin/python3.11 -IS debian/finalize-venv records {venv}"]
    assert ("override_dh_builddeb:\n"
            "\tfind debian/orders-api ! -newermt @$(SOURCE_DATE_EPOCH) "
            "-exec touch --no-dereference --date=@$(SOURCE_DATE_EPOCH) {} +\n"
            "\tdh_builddeb -- -Znone\n") in rules


def test_rules_make_the_venv_and_the_files_around_it_at_once_in_debhelper_order(tmp_path: Path) -> None:
    """venv-part beside files-part, then dh_strip (through cached-strip), then records, shlibdeps, installdeb and the
    venv overrides at once.

    make -j follows DEB_BUILD_OPTIONS parallel=N (1 without it); the steps
    moved into these parts have empty overrides, so dh runs each once.
    """
    rules = render_rules(tmp_path, "uv")
    run_at_once = planned(tmp_path, "override_dh_virtualenv", "override_dh_strip", options="parallel=2")
    assert run_at_once[0] == "make -f debian/rules -j2 --output-sync=target --no-print-directory venv-part files-part"
    files_part = ["dh_install", "dh_installdocs", "dh_installchangelogs", "dh_installlogrotate", "dh_lintian"]
    assert run_at_once[4:9] == files_part
    assert run_at_once[9] == "/usr/bin/python3.11 -IS debian/cached-strip debian/orders-api -- dh_strip"
    assert run_at_once[10] == ("make -f debian/rules -j2 --output-sync=target --no-print-directory "
                               "finalize-part shlibdeps-part installdeb-part overrides-part")
    assert run_at_once[-2:] == ["dh_installdeb",
                                "/usr/bin/python3.11 -IS debian/venv-overrides debian/orders-api orders-api"]
    assert planned(tmp_path, "override_dh_virtualenv", options="nocheck parallel=4 parallel=1")[0].startswith(
        "make -f debian/rules -j1 ")
    assert planned(tmp_path, "override_dh_virtualenv")[0].startswith("make -f debian/rules -j1 ")
    sequence = subprocess.run(["dh", "binary", "--with", "python-virtualenv", "--no-act"], cwd=tmp_path,
                              capture_output=True, text=True, check=True).stdout.split()
    for step in [*files_part, "dh_installsystemd", "dh_shlibdeps", "dh_installdeb"]:
        assert f"\noverride_{step}:\n" in rules, step
        assert step not in sequence and f"override_{step}" not in sequence, step
    assert sequence.index("override_dh_virtualenv") < sequence.index("dh_compress") < sequence.index(
        "dh_fixperms") < sequence.index("override_dh_strip") < sequence.index("dh_gencontrol")


def test_rules_compress_with_the_services_compression_and_level(tmp_path: Path) -> None:
    """xz and its level are dpkg-deb's -Z and -z, each compressor with its own default level; gzip at any level
    leaves the members plain for microdeploy to compress (datapack.py), with either installer."""
    assert "\tdh_builddeb -- -Zxz -z6\n" in render_rules(tmp_path / "xz6", "uv", compression="xz", compression_level=6)
    assert "\tdh_builddeb -- -Zxz -z0\n" in render_rules(tmp_path / "xz", "pip", compression="xz")
    assert "\tdh_builddeb -- -Znone\n" in render_rules(tmp_path / "gz9", "uv", compression_level=9)
    assert "\tdh_builddeb -- -Znone\n" in render_rules(tmp_path / "gz", "pip")


def test_rules_without_uv_use_pip_and_keep_installers_when_asked(tmp_path: Path) -> None:
    """pip: the system interpreter, gunicorn preinstalled, no bytecode; --keep-installers drops the strip."""
    rules = render_rules(tmp_path, "pip", keep_installers=True)
    assert ("--python /usr/bin/python3.11 \\\n\t\t--sourcedirectory src-project \\\n"
            "\t\t--preinstall 'gunicorn>=21.2'") in rules
    assert "--extra-pip-arg=--no-compile" in rules
    assert "make-venv" not in rules
    assert "\t$(FINALIZE) prune $(VENV)\n" in rules
    assert "--strip-installers" not in rules


def test_rules_skip_the_steps_that_do_nothing_for_a_venv(tmp_path: Path) -> None:
    """Empty overrides (dh runs nothing for them) for the debhelper steps a venv package does not need."""
    rules = render_rules(tmp_path, "uv")
    for step in ("dh_update_autotools_config", "dh_autoreconf", "dh_installinit", "dh_perl",
                 "dh_strip_nondeterminism", "dh_makeshlibs", "dh_dwz", "dh_missing", "dh_python3"):
        assert f"\noverride_{step}:\n" in rules, step


def test_date_tree_dates_every_entry_and_symlinks_not_their_targets(tmp_path: Path) -> None:
    """Files, directories and symlinks below the root get the epoch; a symlink's target outside keeps its time."""
    outside = tmp_path / "outside.txt"
    outside.write_text("x")
    os.utime(outside, (1000, 1000))
    root = tmp_path / "tree"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "mod.py").write_text("x = 1\n")
    (root / "link").symlink_to(outside)
    date_tree(root, 1767225600)
    entries = [root, root / "pkg", root / "pkg" / "mod.py", root / "link"]
    assert {path.lstat().st_mtime for path in entries} == {1767225600}
    assert outside.stat().st_mtime == 1000


def files_of(debian: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(debian)): (p.read_bytes(), p.stat().st_mode & 0o777)
            for p in sorted(debian.rglob("*")) if p.is_file()}


def test_a_cached_rendering_is_copied_with_the_same_files_and_a_fresh_changelog(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first build renders and keeps debian/ (without the changelog); the next one copies it, byte for byte
    and mode for mode, without rendering, and writes its own changelog; another configuration renders anew."""
    context = debian_context(config(), FACTS)
    cache = tmp_path / "cache"
    plain = render_debian(tmp_path / "plain", context, "plain changelog\n")
    first = render_debian(tmp_path / "first", context, "first changelog\n", cache=cache)
    [kept] = cache.iterdir()
    assert not (kept / "changelog").exists()

    def no_rendering(*args: object) -> None:
        raise AssertionError("rendered although the cache holds this rendering")

    monkeypatch.setattr("microdeploy.render.render_tree", no_rendering)
    second = render_debian(tmp_path / "second", context, "second changelog\n", cache=cache)
    assert [p.relative_to(tmp_path / "second") for p in second] == [p.relative_to(tmp_path / "plain") for p in plain]
    assert [p.relative_to(tmp_path / "first") for p in first] == [p.relative_to(tmp_path / "plain") for p in plain]
    expected = files_of(tmp_path / "plain" / "debian")
    expected["changelog"] = (b"second changelog\n", expected["changelog"][1])
    assert files_of(tmp_path / "second" / "debian") == expected
    assert expected["rules"][1] == 0o755
    with pytest.raises(AssertionError, match="rendered although"):
        render_debian(tmp_path / "other", debian_context(config(port=9000), FACTS), "x\n", cache=cache)


def test_the_rendering_key_follows_templates_modes_and_context(tmp_path: Path) -> None:
    """A changed template byte, a template's mode, a new template or another context value: another key."""
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "rules.j2").write_text("{{ name }}\n")
    keys = {rendering_key(templates, {"name": "a"})}
    assert rendering_key(templates, {"name": "a"}) in keys, "the same inputs give the same key"
    keys.add(rendering_key(templates, {"name": "b"}))
    (templates / "rules.j2").write_text("{{ name }} \n")
    keys.add(rendering_key(templates, {"name": "a"}))
    (templates / "rules.j2").chmod(0o755)
    keys.add(rendering_key(templates, {"name": "a"}))
    (templates / "extra").write_text("")
    keys.add(rendering_key(templates, {"name": "a"}))
    assert len(keys) == 5


def test_the_rendering_cache_keeps_each_configuration_and_marks_its_use(tmp_path: Path) -> None:
    """Each configuration keeps its own rendering; using one again makes it the most recently used."""
    cache = tmp_path / "cache"
    for port in (9000, 9001):
        render_debian(tmp_path / str(port), debian_context(config(port=port), FACTS), "x\n", cache=cache)
    renderings = list(cache.iterdir())
    assert len(renderings) == 2
    for rendering in renderings:
        os.utime(rendering, (1000, 1000))
    render_debian(tmp_path / "again", debian_context(config(port=9000), FACTS), "x\n", cache=cache)
    assert sorted(rendering.stat().st_mtime > 1000 for rendering in renderings) == [False, True]
