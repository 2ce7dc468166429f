"""A built package on a fresh Debian 12 host booted with systemd: the whole life cycle."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from microdeploy.deploy_commands import health_command
from tests.debtweak import repack
from tests.hostcheck import health, install_deb, main_pid, proc_status, wait_for
from tests.packages import BuiltService, build_service, new_service
from tests.testbed.fixtures import BootHost

pytestmark = [pytest.mark.integration, pytest.mark.host]

SITE_CONFIG = "[server]\nport = 8123\n[app]\ngreeting = from the site config\n"
PORT_DROPIN = Path(__file__).resolve().parents[2] / "puppet" / "templates" / "port.conf.epp"


def port_dropin(name: str, port: int) -> str:
    """The unit drop-in the Puppet module writes for a port below 1024, rendered by puppet itself."""
    values = f"{{service => '{name}', port => {port}}}"
    return subprocess.run(["puppet", "epp", "render", str(PORT_DROPIN), "--values", values],
                          check=True, capture_output=True, text=True, timeout=120).stdout


def test_scaffolded_service_lifecycle(
    boot_host: BootHost, plain_service: BuiltService, plain_service_v2: BuiltService
) -> None:
    """Install starts it hardened as its own user; site config is honoured; upgrade, remove, purge behave."""
    host = boot_host()
    name = plain_service.name
    host.copy_in(plain_service.result.deb, "/root/v1.deb")
    host.copy_in(plain_service_v2.result.deb, "/root/v2.deb")
    install_deb(host, "/root/v1.deb")

    # Started by the package, answering, as its own user, under the unit's hardening.
    body = health(host, 8000, "/health")
    assert body == {"status": "ok", "version": "0.1.0"}
    pid = main_pid(host, name)
    assert host.run(["ps", "-o", "user=", "-p", str(pid)]).stdout.strip() == name
    status = proc_status(host, pid)
    assert status["NoNewPrivs"] == "1" and status["Seccomp"] == "2"
    assert int(status["CapEff"], 16) == 0
    assert host.run(["getent", "passwd", name]).stdout.strip().endswith(":/usr/sbin/nologin")

    # Logs under /var/log/NAME: the app's log and gunicorn's access log.
    assert f"{name} configured" in host.read_file(f"/var/log/{name}/app.log")
    assert "GET /health" in wait_for(host, ["grep", "-h", "GET /health", f"/var/log/{name}/access.log"])
    # Bytecode compiled on install, for the host's interpreter.
    assert host.run(["find", f"/opt/venvs/{name}", "-name", "*.pyc", "-print", "-quit"]).stdout.strip()

    # The site config is read at start: a new port after a restart.
    host.run(["install", "-m", "0640", "-g", name, "/dev/null", f"/etc/{name}/config.ini"])
    host.run(["tee", f"/etc/{name}/config.ini"], input=SITE_CONFIG)
    host.run(["systemctl", "restart", name])
    assert health(host, 8123, "/health")["status"] == "ok"
    assert host.run(["curl", "-fsS", "http://127.0.0.1:8000/health"], check=False).returncode != 0
    # Readable by adm after a restart too: gunicorn chowned its access log to its own group at every start.
    assert host.run(["stat", "-c", "%U:%G %a", f"/var/log/{name}/access.log", f"/var/log/{name}/app.log"]
                    ).stdout.split("\n")[:2] == [f"{name}:adm 640"] * 2
    # deploy's probe (the real command, through systemd-run) asks the package where the host's config puts it.
    probe = host.run(["sh", "-c", health_command(name, "http://127.0.0.1:8000/health")])
    assert probe.stdout.strip() == "http://127.0.0.1:8123/health"
    # Deploy run outside the service's directory knows no health path: the package's own is probed all the same
    # (it probed the main page, where any answer below 500, a 404 too, passed a version whose /health failed).
    probe = host.run(["sh", "-c", health_command(name, "http://127.0.0.1:8000/", any_answer=True)])
    assert probe.stdout.strip() == "http://127.0.0.1:8123/health"
    # NAME_CONFIG is the application's variable (Radicale's RADICALE_CONFIG names a file of its own format): set
    # in the unit's environment, it moves neither gunicorn nor deploy's probe off config.ini.
    app_variable = name.replace("-", "_").upper() + "_CONFIG"
    host.run(["tee", f"/etc/{name}/apps-own.ini"], input="[server]\nport = 8124\n")
    host.run(["tee", f"/etc/{name}/environment"], input=f"{app_variable}=/etc/{name}/apps-own.ini\n")
    host.run(["systemctl", "restart", name])
    assert health(host, 8123, "/health")["status"] == "ok"
    probe = host.run(["sh", "-c", health_command(name, "http://127.0.0.1:8000/health")])
    assert probe.stdout.strip() == "http://127.0.0.1:8123/health"
    host.run(["rm", f"/etc/{name}/environment", f"/etc/{name}/apps-own.ini"])

    # A port below 1024 is the host's choice too: the Puppet module's drop-in grants the one capability it needs.
    dropin = f"/etc/systemd/system/{name}.service.d/microdeploy-port.conf"
    host.run(["mkdir", "-p", f"/etc/systemd/system/{name}.service.d"])
    host.run(["tee", dropin], input=port_dropin(name, 80))
    host.run(["tee", f"/etc/{name}/config.ini"], input="[server]\nport = 80\n")
    host.run(["systemctl", "daemon-reload"])
    host.run(["systemctl", "restart", name])
    assert health(host, 80, "/health")["status"] == "ok"
    assert int(proc_status(host, main_pid(host, name))["CapEff"], 16) == 1 << 10  # CAP_NET_BIND_SERVICE alone
    assert host.run(["sh", "-c", health_command(name, "http://127.0.0.1:8000/health")]).stdout.strip() == (
        "http://127.0.0.1:80/health")
    host.run(["rm", dropin])
    host.run(["tee", f"/etc/{name}/config.ini"], input=SITE_CONFIG)
    host.run(["systemctl", "daemon-reload"])
    host.run(["systemctl", "restart", name])
    assert health(host, 8123, "/health")["status"] == "ok"

    # Upgrade: restarted by the package, the administrator's config untouched,
    # and a dpkg-statoverride on the state directory respected.
    host.run(["dpkg-statoverride", "--update", "--add", name, name, "0700", f"/var/lib/{name}"])
    before = main_pid(host, name)
    install_deb(host, "/root/v2.deb")
    assert health(host, 8123, "/health")["status"] == "ok"
    assert main_pid(host, name) != before
    assert host.read_file(f"/etc/{name}/config.ini") == SITE_CONFIG
    modes = host.run(["stat", "-c", "%a %U:%G", f"/var/lib/{name}", f"/var/log/{name}"]).stdout.split("\n")
    assert modes[:2] == [f"700 {name}:{name}", f"2750 {name}:adm"]
    host.run(["dpkg-statoverride", "--remove", f"/var/lib/{name}"])

    # Remove: stopped; config and logs survive; no bytecode left behind; /opt kept.
    host.run(["apt-get", "remove", "-y", name])
    assert host.run(["systemctl", "is-active", name], check=False).stdout.strip() == "inactive"
    assert host.read_file(f"/etc/{name}/config.ini") == SITE_CONFIG
    assert host.run(["test", "-s", f"/var/log/{name}/app.log"], check=False).returncode == 0
    assert host.run(["test", "-e", f"/opt/venvs/{name}"], check=False).returncode != 0
    assert host.run(["test", "-d", "/opt"], check=False).returncode == 0

    # Purge: state and logs go; the administrator's config.ini is not the package's.
    host.run(["apt-get", "purge", "-y", name])
    for path in (f"/var/log/{name}", f"/var/lib/{name}"):
        assert host.run(["test", "-e", path], check=False).returncode != 0, path
    assert host.read_file(f"/etc/{name}/config.ini") == SITE_CONFIG
    assert host.run(["test", "-e", f"/opt/venvs/{name}"], check=False).returncode != 0


def test_run_command_runs_as_the_service_in_its_sandbox(boot_host: BootHost, plain_service: BuiltService) -> None:
    """NAME-run: as root or NAME it runs a venv command (else a host one) as NAME in /var/lib/NAME with FLASK_APP,
    where Flask's instance folder is /var/lib/NAME and the system is read-only; anyone else is refused."""
    host = boot_host()
    name = plain_service.name
    host.copy_in(plain_service.result.deb, "/root/v1.deb")
    install_deb(host, "/root/v1.deb")
    host.run(["tee", f"/etc/{name}/environment"], input="PROBE_SETTING=from the environment file\n")
    probe = ("import os, flask; from orders_api.application import create_app; app = create_app(); "
             "open(os.path.join(app.instance_path, 'made-by-run'), 'w').close(); "
             "print(os.getcwd(), app.instance_path, os.environ['FLASK_APP'], os.environ['PROBE_SETTING'], sep='|')")
    for prefix in ([], ["runuser", "-u", name, "--"]):
        ran = host.run([*prefix, f"/usr/bin/{name}-run", "python", "-c", probe])
        assert ran.stdout.strip().splitlines()[-1] == (
            f"/var/lib/{name}|/var/lib/{name}|orders_api.application:create_app()|from the environment file")
        assert host.run(["stat", "-c", "%U", f"/var/lib/{name}/made-by-run"]).stdout.strip() == name
        host.run(["rm", f"/var/lib/{name}/made-by-run"])
        # A program the venv lacks is the host's, run the same way.
        assert host.run([*prefix, f"/usr/bin/{name}-run", "id", "-un"]).stdout.strip() == name
    assert "/health" in host.run([f"/usr/bin/{name}-run", "flask", "routes"]).stdout
    read_only = host.run([f"/usr/bin/{name}-run", "python", "-c", f"open('/opt/venvs/{name}/probe', 'w')"],
                         check=False)
    assert read_only.returncode != 0 and "Read-only file system" in read_only.stdout + read_only.stderr
    refused = host.run(["runuser", "-u", "nobody", "--", f"/usr/bin/{name}-run", "python"], check=False)
    assert refused.returncode == 1
    assert f"run it as root (sudo {name}-run ...) or as the user {name}, not as nobody" in refused.stderr
    assert health(host, 8000, "/health")["status"] == "ok"


# cffi's old-style callback, as cairocffi makes one to write a PNG into a file object (CairoSVG's svg2png).
CFFI_CALLBACK = ("import cffi; ffi = cffi.FFI(); add_one = ffi.callback('int(int)', lambda x: x + 1); "
                 "print(add_one(41))")


def test_a_service_that_needs_writable_executable_memory_gets_it_with_write_execute_memory(
    boot_host: BootHost, tmp_path: Path
) -> None:
    """The unit refuses writable executable memory (MemoryDenyWriteExecute=yes), and cffi's ffi.callback()
    fails under it; built with write_execute_memory, the same service's unit and its run command allow it."""
    project = new_service(tmp_path, "wx-api")
    pyproject = project / "pyproject.toml"
    listed = "dependencies = [\n"
    pyproject.write_text(pyproject.read_text().replace(listed, f'{listed}    "cffi>=1.15",\n', 1))
    refused = build_service(project, tmp_path / "refused")
    allowed = build_service(project, tmp_path / "allowed", revision="2", write_execute_memory=True)
    host = boot_host()
    for result, word in ((refused, "yes"), (allowed, "no")):
        host.copy_in(result.deb, "/root/wx.deb")
        install_deb(host, "/root/wx.deb")
        assert host.run(["systemctl", "show", "--property=MemoryDenyWriteExecute", "--value",
                         "wx-api"]).stdout.strip() == word
    run = ["/usr/bin/wx-api-run", "python", "-c", CFFI_CALLBACK]
    assert host.run(run).stdout.strip() == "42"
    host.copy_in(refused.deb, "/root/wx-refused.deb")
    host.run(["dpkg", "-i", "/root/wx-refused.deb"], env={"DEBIAN_FRONTEND": "noninteractive"}, timeout=300)
    failed = host.run(run, check=False)
    assert failed.returncode != 0 and "Cannot allocate write+execute memory for ffi.callback()" in failed.stderr


def test_the_service_reads_procs_system_files_and_sees_no_other_process(boot_host: BootHost,
                                                                      plain_service: BuiltService) -> None:
    """/proc/stat and /proc/meminfo stay readable in the sandbox (prometheus_client's process collector reads the
    boot time from /proc/stat and reports nothing without it; psutil reads both), while the processes of others,
    PID 1 among them, stay hidden (ProtectProc=invisible)."""
    host = boot_host()
    host.copy_in(plain_service.result.deb, "/root/v1.deb")
    install_deb(host, "/root/v1.deb")
    probe = ("import os; btime = [l for l in open('/proc/stat') if l.startswith('btime ')]; "
             "total = [l for l in open('/proc/meminfo') if l.startswith('MemTotal:')]; "
             "print(len(btime), len(total), '1' in os.listdir('/proc'))")
    assert host.run([f"/usr/bin/{plain_service.name}-run", "python", "-c", probe]).stdout.split() == ["1", "1", "False"]


def test_interpreter_upgrade_restarts_the_service(boot_host: BootHost, plain_service: BuiltService) -> None:
    """A Python patch upgrade (its file trigger) restarts the service on the new interpreter."""
    host = boot_host()
    name = plain_service.name
    host.copy_in(plain_service.result.deb, "/root/v1.deb")
    install_deb(host, "/root/v1.deb")
    health(host, 8000, "/health")
    before = main_pid(host, name)
    # What dpkg does when python3.11-minimal ships a new /usr/bin/python3.11.
    host.run(["dpkg-trigger", "--no-await", "/usr/bin/python3.11"])
    host.run(["dpkg", "--triggers-only", "--pending"])
    assert health(host, 8000, "/health")["status"] == "ok"
    assert main_pid(host, name) not in (0, before)


def test_a_pth_file_that_changes_the_venv_does_not_run_as_root(boot_host: BootHost, plain_service: BuiltService,
                                                              tmp_path: Path) -> None:
    """A wheel's .pth file runs code at every start of the venv's interpreter (urllib3-future's rewrites urllib3):
    the bytecode compiled as root on install and on the interpreter's trigger leaves dpkg's files as shipped."""
    name = plain_service.name
    site = f"opt/venvs/{name}/lib/python3.11/site-packages"
    mutate = ("import sys; open(sys.prefix + '/lib/python3.11/site-packages/orders_api/__init__.py', 'a')"
              ".write('# changed by a .pth file\\n')\n")
    deb = repack(plain_service.result.deb, tmp_path, lambda tree: (tree / site / "zz_mutate.pth").write_text(mutate))
    host = boot_host()
    host.copy_in(deb, "/root/mutating.deb")
    install_deb(host, "/root/mutating.deb")
    host.run(["dpkg-trigger", "--no-await", "/usr/bin/python3.11"])
    host.run(["dpkg", "--triggers-only", "--pending"])
    assert host.run(["find", f"/opt/venvs/{name}", "-name", "*.pyc", "-print", "-quit"]).stdout.strip()
    assert host.run(["dpkg", "--verify", name], check=False).stdout == ""
    assert health(host, 8000, "/health")["status"] == "ok"


def test_database_service_migrates_and_persists(boot_host: BootHost, db_service: BuiltService) -> None:
    """With --with-db: `NAME-manage db upgrade` as the service user creates SQLite under /var/lib/NAME."""
    host = boot_host()
    name = db_service.name
    host.copy_in(db_service.result.deb, "/root/db.deb")
    install_deb(host, "/root/db.deb")
    # The operator's way: NAME-run, as root, runs the venv's command as the service user.
    host.run([f"/usr/bin/{name}-run", f"{name}-manage", "db", "upgrade"])
    assert host.run(["stat", "-c", "%U", f"/var/lib/{name}/{name}.sqlite3"]).stdout.strip() == name
    assert health(host, 8000, "/health")["database"] == "ok"
    created = host.run(["curl", "-fsS", "-H", "Content-Type: application/json", "-d", '{"name": "bolt"}',
                        "http://127.0.0.1:8000/api/v1/items"])
    assert '"name": "bolt"' in created.stdout or '"name":"bolt"' in created.stdout
    host.run(["systemctl", "restart", name])
    health(host, 8000, "/health")
    assert "bolt" in host.run(["curl", "-fsS", "http://127.0.0.1:8000/api/v1/items"]).stdout
