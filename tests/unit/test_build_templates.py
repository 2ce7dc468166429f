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
from microdeploy.build.release.license import StatedLicense
from microdeploy.config import validate

FACTS = BuildFacts(upstream="1.4.0", version="1.4.0-3", python_minor="3.11", distribution="bookworm",
                   epoch=1767225600, license=StatedLicense("MIT"))


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
 orders-api is a Python web service packaged with its own virtual environment
 under /opt/venvs/orders-api, served by gunicorn through the systemd unit
 orders-api.service. Its address, port and workers come from
 /etc/orders-api/config.ini; its logs go to /var/log/orders-api.
"""


def test_rendered_files_and_modes(tmp_path: Path) -> None:
    """Every debian/ file is there; rules and the scripts it runs are executable; no README leaks in."""
    debian = render(tmp_path)
    names = sorted(p.relative_to(debian).as_posix() for p in debian.rglob("*") if p.is_file())
    assert names == [
        "cached-md5sums", "cached-shlibdeps", "cached-strip", "changelog", "control", "copyright", "elf.py",
        "finalize-venv", "gunicorn.conf.py", "lintian_data.py", "lintian_scripts.py", "lintian_tags.py", "make-venv",
        "orders-api-manage", "orders-api-run", "orders-api-run.1", "orders-api.lintian-overrides",
        "orders-api.logrotate", "orders-api.postinst", "orders-api.postrm", "orders-api.prerm", "orders-api.service",
        "orders-api.triggers", "plain-pip", "rules", "source/format", "uv-pip", "venv-copyright", "venv-overrides",
    ]
    for script in ("rules", "finalize-venv", "make-venv", "cached-md5sums", "cached-shlibdeps", "cached-strip",
                   "venv-overrides", "orders-api-run", "orders-api-manage"):
        assert (debian / script).stat().st_mode & 0o111, script
    # The pip tools are read by make-venv and run by the venv's python, not executed themselves.
    assert not (debian / "uv-pip").stat().st_mode & 0o111
    assert not (debian / "plain-pip").stat().st_mode & 0o111


def test_unit_runs_gunicorn_as_the_service_user_without_capabilities(tmp_path: Path) -> None:
    """The unit runs the app through the packaged gunicorn config, as NAME, with no capabilities."""
    unit = (render(tmp_path) / "orders-api.service").read_text()
    assert "User=orders-api\nGroup=orders-api\n" in unit
    assert ("ExecStart=/opt/venvs/orders-api/bin/gunicorn --config /usr/share/orders-api/gunicorn.conf.py "
            '"orders_api.application:create_app()"') in unit
    assert "EnvironmentFile=-/etc/orders-api/environment" in unit
    assert "CapabilityBoundingSet=\n" in unit and "SystemCallFilter=@system-service" in unit


def test_write_execute_memory_leaves_that_one_setting_out_of_the_unit_and_its_run_command(tmp_path: Path) -> None:
    """By default the unit and NAME-run refuse writable executable memory; a service that needs it (cffi's
    ffi.callback()) gets both without that line and with every other."""
    default, allowed = render(tmp_path / "default"), render(tmp_path / "allowed", write_execute_memory=True)
    for name, line in (("orders-api.service", "MemoryDenyWriteExecute=yes\n"),
                       ("orders-api-run", "--property=MemoryDenyWriteExecute=yes \\\n")):
        assert line in (default / name).read_text()
        assert (allowed / name).read_text() == (default / name).read_text().replace("\t\t" + line, "").replace(line, "")


def test_the_unit_takes_no_capability_whatever_the_packaged_port(tmp_path: Path) -> None:
    """The port is the host's to choose: a packaged default below 1024 renders the same unit, with no capability
    (a host grants CAP_NET_BIND_SERVICE by a drop-in)."""
    unit = (render(tmp_path / "80", port=80) / "orders-api.service").read_text()
    assert unit == (render(tmp_path / "8001", port=8001) / "orders-api.service").read_text()
    assert "CapabilityBoundingSet=\nAmbientCapabilities=\n" in unit


def test_gunicorn_config_layers_defaults_site_config_and_environment(tmp_path: Path) -> None:
    """bind/port/workers: packaged defaults, then [server] of the site config, then the environment. The site
    config is /etc/NAME/config.ini whatever NAME_CONFIG says: that variable is the application's (Radicale's
    RADICALE_CONFIG names a file of its own)."""
    rendered = (render(tmp_path, port=8001, workers=3) / "gunicorn.conf.py").read_text()
    site = tmp_path / "config.ini"
    site.write_text("[server]\nport = 9001\nbind = ::1\n")
    assert rendered.count('"/etc/orders-api/config.ini"') == 1
    source = rendered.replace('"/etc/orders-api/config.ini"', repr(str(site)))
    apps_own = tmp_path / "app.conf"
    apps_own.write_text("[server]\nport = 7000\n")

    def settings(environ: dict[str, str]) -> dict[str, object]:
        import os
        saved = dict(os.environ)
        os.environ.update({"ORDERS_API_CONFIG": str(apps_own), **environ})
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
    # gunicorn ends a stop (killing a worker that is still running) before systemd kills the unit.
    unit = (tmp_path / "debian" / "orders-api.service").read_text()
    stop_timeout = int(unit.split("TimeoutStopSec=", 1)[1].split("\n", 1)[0])
    assert isinstance(layered["graceful_timeout"], int) and 0 < layered["graceful_timeout"] < stop_timeout


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
    assert replace(config(), description="").summary == "Python web service"  # a project that states none
    # The name as a word only (lintian's /^\Qpkg\E\b/i): moin's "MoinMoin is..." kept whole, not "Moin is...".
    assert config(name="moin", description="MoinMoin is a wiki").summary == "MoinMoin is a wiki"
    assert config(name="radi", description="Radicale CalDAV server").summary == "Radicale CalDAV server"
    assert config(description="The orders-api service of the shop").summary == "Service of the shop"


def test_copyright_names_upstream_as_upstream_does(tmp_path: Path) -> None:
    """Upstream-Name is the project's own name (changedetection.io), else the package's."""
    changelog = render_changelog(name="orders-api", version="1.4.0-3", distribution="bookworm",
                                 maintainer="Ann Ops <ann@example.org>", changes=[], epoch=FACTS.epoch)
    facts = replace(FACTS, license=StatedLicense("MIT", upstream_name="Orders.API"))
    render_debian(tmp_path / "own", debian_context(config(), facts), changelog)
    assert "\nUpstream-Name: Orders.API\n" in (tmp_path / "own" / "debian" / "copyright").read_text()
    assert "\nUpstream-Name: orders-api\n" in (render(tmp_path / "none") / "copyright").read_text()


def render_rules(tmp_path: Path, installer: str, keep_installers: bool = False, **settings: object) -> str:
    facts = replace(FACTS, installer=installer, keep_installers=keep_installers)
    changelog = render_changelog(name="orders-api", version="1.4.0-3", distribution="bookworm",
                                 maintainer="Ann Ops <ann@example.org>", changes=[], epoch=FACTS.epoch)
    render_debian(tmp_path, debian_context(config(**settings), facts), changelog)
    return (tmp_path / "debian" / "rules").read_text()


def planned(tree: Path, *targets: str, options: str | None = None) -> list[str]:
    """The commands GNU make would run for `targets` (and options) of the rendered debian/rules (make -n), one per
    line."""
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
    assert planned(tmp_path, "venv") == [
        f"dh_virtualenv --builtin-venv --python {tmp_path}/debian/make-venv --pip-tool uv-pip "
        "--sourcedirectory src-project",
        f"/usr/bin/python3.11 -IS debian/finalize-venv prune {venv} --strip-installers",
    ]
    assert planned(tmp_path, "records", "-o", "strip", "-o", "venv-copyright") == [
        f"/usr/bin/python3.11 -IS debian/finalize-venv records {venv}"]
    assert ("builddeb: md5sums\n"
            "\tfind debian/orders-api ! -newermt @$(SOURCE_DATE_EPOCH) "
            "-exec touch --no-dereference --date=@$(SOURCE_DATE_EPOCH) {} +\n"
            "\tdh_builddeb -- -Znone\n") in rules


def prerequisites(tree: Path) -> dict[str, set[str]]:
    """Each target of the rendered debian/rules and every target it needs, directly or not (make's database)."""
    dump = subprocess.run(["make", "-f", "debian/rules", "-pRrq", "no-such-target"], cwd=tree,
                          env={"PATH": os.environ["PATH"]}, capture_output=True, text=True).stdout
    direct = {}
    for line in dump.splitlines():
        name, colon, rest = line.partition(":")
        if colon and name.replace("-", "").isalnum() and not rest.startswith("="):
            direct[name] = set(rest.split())
    closed: dict[str, set[str]] = {}

    def needs(target: str) -> set[str]:
        if target not in closed:
            closed[target] = set().union(*({first, *needs(first)} for first in direct[target]))
        return closed[target]

    return {target: needs(target) for target in direct}


# Steps that write what another reads (or writes), and so run one after the other under make -j.
ORDERED = [
    ("venv", "systemd"),  # dh_virtualenv's maintainer-script snippets come first
    ("files", "compress"),  # it compresses the changelog and the man page `files` installs
    ("venv", "compress"),  # its find over the whole package fails on what prune removes under it
    *((step, "fixperms") for step in ("venv", "systemd", "compress", "files")),  # every file there
    ("fixperms", "strip"),  # dh_strip tells libraries from programs by their mode
    ("strip", "records"), ("strip", "overrides"),  # they read the stripped ELF files
    ("files", "overrides"),  # venv-overrides adds to the overrides file `files` installs
    ("venv", "elf-copies"), ("elf-copies", "strip"),  # dh_shlibdeps' copies: the venv's ELF files before dh_strip
    ("elf-copies", "shlibs"), ("shlibs", "shlibdeps"),  # dh_shlibdeps on the copies, its answer merged
    ("fixperms", "installdeb"), ("installdeb", "shlibdeps"),  # DEBIAN/ made after the modes; one substvars writer
    *((step, "gencontrol") for step in ("records", "shlibdeps", "installdeb", "overrides")),  # Installed-Size
    ("gencontrol", "md5sums"), ("md5sums", "builddeb"),
    ("gencontrol", "buildinfo"),  # dpkg's generators read debian/files
    ("venv", "venv-copyright"), ("files", "venv-copyright"), ("venv-copyright", "gencontrol"),  # the copyright file
    ("venv-copyright", "records"),  # it reads the RECORD files that `records` rewrites
    ("venv", "manage"), ("manage", "fixperms"),  # NAME-manage goes in when the venv has none of its own
]


def test_rules_run_debhelpers_commands_in_a_graph_that_orders_every_step_sharing_a_file(tmp_path: Path) -> None:
    """Each debhelper command is a target that needs the steps whose files it reads; make -j runs the others at
    once, with DEB_BUILD_OPTIONS' parallel=N jobs (1 without it); every command is one dh's own sequence has."""
    render_rules(tmp_path, "uv")
    graph = prerequisites(tmp_path)
    for before, after in ORDERED:
        assert before in graph[after], (before, after)
    steps = {step for pair in ORDERED for step in pair}
    assert graph["builddeb"] == steps - {"builddeb", "buildinfo"}
    assert graph["buildinfo"] == graph["gencontrol"] | {"gencontrol"}
    assert not graph["files"], "the files around the venv go in while the venv is made"
    assert graph["venv"] == set()
    assert graph["shlibs"] == {"venv", "elf-copies"}, "dh_shlibdeps runs beside dh_fixperms and dh_strip"
    assert planned(tmp_path, "binary", options="nocheck parallel=2")[0] == (
        "make -f debian/rules -j2 --output-sync=target --no-print-directory builddeb buildinfo")
    assert planned(tmp_path, "binary", options="parallel=4 parallel=1")[0].startswith(
        "make -f debian/rules -j1 ")
    assert planned(tmp_path, "binary")[0].startswith("make -f debian/rules -j1 ")
    # The first dh_ word of each command line: the command itself, or the one a cached-* script wraps.
    commands = {next(word for word in line.split() if word.startswith("dh_"))
                for line in planned(tmp_path, "builddeb") if " dh_" in f" {line}"}
    plain = tmp_path / "plain"  # the package with the rules file dh-virtualenv's tutorial writes
    (plain / "debian").mkdir(parents=True)
    for name in ("control", "changelog"):
        (plain / "debian" / name).write_bytes((tmp_path / "debian" / name).read_bytes())
    (plain / "debian" / "rules").write_text("#!/usr/bin/make -f\n%:\n\tdh $@ --with python-virtualenv\n")
    sequence = set(subprocess.run(["dh", "binary", "--with", "python-virtualenv", "--no-act"], cwd=plain,
                                  capture_output=True, text=True, check=True).stdout.split())
    assert commands == {"dh_virtualenv", "dh_installsystemd", "dh_compress", "dh_fixperms", "dh_strip", "dh_installdeb",
                        "dh_shlibdeps", "dh_gencontrol", "dh_md5sums", "dh_builddeb"}
    assert commands <= sequence
    # The rendered files the sequence's dh_install, dh_installdocs, dh_installchangelogs, dh_installlogrotate and
    # dh_lintian would install, where they would put them.
    assert {"dh_install", "dh_installdocs", "dh_installchangelogs", "dh_installlogrotate", "dh_lintian"} <= sequence
    assert planned(tmp_path, "files") == [
        "install -D -m 0755 debian/orders-api-run debian/orders-api/usr/bin/orders-api-run",
        "install -D -m 0644 debian/gunicorn.conf.py debian/orders-api/usr/share/orders-api/gunicorn.conf.py",
        "install -D -m 0644 debian/orders-api-run.1 debian/orders-api/usr/share/man/man1/orders-api-run.1",
        "install -D -m 0644 debian/copyright debian/orders-api/usr/share/doc/orders-api/copyright",
        "install -D -m 0644 debian/changelog debian/orders-api/usr/share/doc/orders-api/changelog.Debian",
        "install -D -m 0644 debian/orders-api.logrotate debian/orders-api/etc/logrotate.d/orders-api",
        "install -D -m 0644 debian/orders-api.lintian-overrides "
        "debian/orders-api/usr/share/lintian/overrides/orders-api",
    ]
    stand_ins = f"{tmp_path.parent}/records"
    assert planned(tmp_path, "buildinfo", "-o", "gencontrol") == [
        f"rm -rf {stand_ins} && mkdir {stand_ins}",
        f"sed -n 's/ .*//p' debian/files | (cd {stand_ins} && xargs touch --)",
        f"env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL dpkg-genbuildinfo --build=binary -u{stand_ins}",
        f"record=$(basename {stand_ins}/*.buildinfo .buildinfo) && env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL "
        f"dpkg-genchanges --build=binary -u{stand_ins} -O../$record.changes",
    ]


def test_rules_compress_with_the_services_compression_and_level(tmp_path: Path) -> None:
    """xz and its level are dpkg-deb's -Z and -z, each compressor with its own default level; gzip at any level
    leaves the members plain for microdeploy to compress (datapack.py), with either installer."""
    assert "\tdh_builddeb -- -Zxz -z6\n" in render_rules(tmp_path / "xz6", "uv", compression="xz", compression_level=6)
    assert "\tdh_builddeb -- -Zxz -z0\n" in render_rules(tmp_path / "xz", "pip", compression="xz")
    assert "\tdh_builddeb -- -Znone\n" in render_rules(tmp_path / "gz9", "uv", compression_level=9)
    assert "\tdh_builddeb -- -Znone\n" in render_rules(tmp_path / "gz", "pip")


def test_rules_without_uv_use_pip_and_keep_installers_when_asked(tmp_path: Path) -> None:
    """pip: make-venv makes the venv and puts plain-pip into it, which installs with the venv's own pip (the WSGI
    server with the project, no --preinstall: dh_virtualenv would run the venv's pip itself); no bytecode;
    --keep-installers drops the strip (plain-pip installs setuptools and wheel beside the venv's own pip)."""
    rules = render_rules(tmp_path, "pip", keep_installers=True)
    venv = f"{tmp_path}/debian/orders-api/opt/venvs/orders-api"
    assert planned(tmp_path, "venv") == [
        f"dh_virtualenv --builtin-venv --python {tmp_path}/debian/make-venv --pip-tool plain-pip "
        "--sourcedirectory src-project --extra-pip-arg=--no-compile --extra-pip-arg=--disable-pip-version-check "
        "--extra-pip-arg=--no-input",
        f"/usr/bin/python3.11 -IS debian/finalize-venv prune {venv}",
    ]
    assert "--strip-installers" not in rules
    tool = (tmp_path / "debian" / "plain-pip").read_text()
    assert 'WSGI_SERVER = "gunicorn>=21.2"\n' in tool
    assert 'INSTALLERS = [name for name in ["pip", "setuptools", "wheel"] if name != "pip"]\n' in tool
    assert "$(FINALIZE) prune $(VENV) --strip-installers" in render_rules(tmp_path / "dropped", "pip")


@pytest.mark.parametrize("installer", ["uv", "pip"])
def test_rules_install_the_project_with_the_services_extras(tmp_path: Path, installer: str) -> None:
    """dh_virtualenv gets one --extras per extra, with uv and with pip: it installs the project as .[a,b]."""
    render_rules(tmp_path / "extras", installer, extras=["database", "ldap"])
    render_rules(tmp_path / "none", installer)
    venv = planned(tmp_path / "extras", "venv")[0]
    assert venv.startswith("dh_virtualenv --builtin-venv ")
    assert "--sourcedirectory src-project --extras database --extras ldap" in venv
    assert "--extras" not in planned(tmp_path / "none", "venv")[0]


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


def test_the_units_description_keeps_a_percent_sign(tmp_path: Path) -> None:
    """systemd expands specifiers in Description= ("%n" is the unit's name): a summary's % is doubled there, and
    only there (debian/control takes it as it is)."""
    debian = render(tmp_path, description="Bookmarks, 100% offline, %n and %h")
    assert "\nDescription=Bookmarks, 100%% offline, %%n and %%h\n" in (debian / "orders-api.service").read_text()
    assert "\nDescription: Bookmarks, 100% offline, %n and %h\n" in (debian / "control").read_text()
    assert (debian / "orders-api.service").read_text().startswith("[Unit]\nDescription=")
