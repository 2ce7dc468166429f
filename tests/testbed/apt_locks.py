"""The host's own apt at work, as apt-daily and unattended-upgrades are soon after a boot.

`hold_apt_locks` starts a transient unit on a booted host that holds the APT
lists' lock and dpkg's locks: the lists' lock for a few seconds (or, with
`until_retried`, until a shell loop that names the lock is sleeping to try
`apt-get update` again), dpkg's until an `apt-get ... install` has come and
waits for them; each for 60 s at most. `install_waited` and `update_retried`
say whether those came.
"""

from __future__ import annotations

import time

from microdeploy.testbed.host import Host

UNIT = "apt-lock-holder"
HELD = "/run/apt-locks-held"
INSTALL_WAITED = "/run/apt-install-waited"
UPDATE_RETRIED = "/run/apt-update-retried"

LOCK_HOLDER = """\
import fcntl, pathlib, sys, time
def processes():
    for path in pathlib.Path("/proc").glob("[0-9]*"):
        try:
            argv = (path / "cmdline").read_bytes().split(b"\\0")
            parent = (path / "stat").read_text().rsplit(")", 1)[1].split()[1]
            yield argv, pathlib.Path("/proc", parent, "cmdline").read_bytes()
        except (OSError, IndexError):  # a process that has ended since
            continue
def wait_for(found, marker):
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if any(found(argv, parent) for argv, parent in processes()):
            pathlib.Path(marker).touch()
            return
        time.sleep(0.05)
locks = [open(p, "w") for p in ("/var/lib/apt/lists/lock", "/var/lib/dpkg/lock-frontend", "/var/lib/dpkg/lock")]
for lock in locks:
    fcntl.lockf(lock, fcntl.LOCK_EX)
mode, held, retried, waited = sys.argv[1:]
pathlib.Path(held).touch()
if mode == "until-retried":
    wait_for(lambda argv, parent: argv[0] == b"sleep" and b"/var/lib/apt/lists/lock" in parent, retried)
else:
    time.sleep(4)
locks[0].close()
wait_for(lambda argv, parent: argv[0].endswith(b"apt-get") and b"install" in argv, waited)
time.sleep(2)
"""


def hold_apt_locks(host: Host, until_retried: bool = False) -> None:
    """Start the holder on `host` and return once it holds every lock."""
    host.run(["rm", "-f", HELD, INSTALL_WAITED, UPDATE_RETRIED])
    host.run(["systemd-run", f"--unit={UNIT}", "--collect", "python3", "-c", LOCK_HOLDER,
              "until-retried" if until_retried else "for-a-while", HELD, UPDATE_RETRIED, INSTALL_WAITED])
    deadline = time.monotonic() + 30
    while host.run(["test", "-e", HELD], check=False).returncode != 0:
        assert time.monotonic() < deadline, host.journal(f"{UNIT}.service")
        time.sleep(0.1)


def install_waited(host: Host) -> bool:
    """Whether an `apt-get install` ran while the holder held dpkg's locks."""
    return host.run(["test", "-e", INSTALL_WAITED], check=False).returncode == 0


def update_retried(host: Host) -> bool:
    """Whether a shell loop slept to try `apt-get update` again while the holder held the lists' lock."""
    return host.run(["test", "-e", UPDATE_RETRIED], check=False).returncode == 0
