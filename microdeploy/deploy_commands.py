"""The commands a rollout runs on a host, every word quoted, and how their output is read."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator

from debian.deb822 import Deb822
from debian.debian_support import Version as DebianVersion

from microdeploy.dists import DISTS, SUFFIX_RE, Dist, codename_in
from microdeploy.hosts import CommandResult

# One health request may take this long before it counts as a failed poll.
HEALTH_REQUEST_TIMEOUT = 5
# World-writable and not a tmpfs on the host, so it works for a non-root --user too;
# each upload goes into a fresh private directory there (mktemp -d: 0700, unpredictable).
REMOTE_DEB_DIR = "/var/tmp"
REMOTE_DIR_TEMPLATE = f"{REMOTE_DEB_DIR}/microdeploy.XXXXXXXXXX"
REMOTE_DIR_RE = re.compile(re.escape(REMOTE_DEB_DIR) + r"/microdeploy\.[A-Za-z0-9]{10}")
# apt-get and dpkg may wait on the dpkg lock or a slow maintainer script.
APT_TIMEOUT = 600.0
# How long a rollout waits for the host's own apt (apt-daily, unattended-upgrades)
# to let go of its locks: apt-get waits this long for dpkg's lock when told to,
# and `apt-get update` is tried again while the lists are locked (it never waits).
LOCK_WAIT = 300.0
LOCK_RETRY_INTERVAL = 2.0
# apt-get update's line for a source it could not fetch (LC_ALL=C: its English words).
_FETCH_FAILED = re.compile(r"^[WE]: Failed to fetch (\S+)\s+(.*)$", re.MULTILINE)
# A path in apt's message for locked lists, in every language apt speaks.
_LISTS_LOCKED = re.compile(r"/lists/lock\b")

# What dpkg-query prints for an installed package: `${db:Status-Status}` is
# "installed" only when fully configured ("config-files", "half-installed",
# ... are not an installed version to come back to).
DPKG_QUERY_FORMAT = "${db:Status-Status} ${Version}"
# Between dpkg-query's answer and os-release in state_command's output.
STATE_MARK = "--- microdeploy: os-release ---"
# Between os-release and the Puppet module's apt pin of the package.
PIN_MARK = "--- microdeploy: apt pin ---"


def _apt_env() -> list[str]:
    # No debconf prompts, and keep an administrator's changed conffiles.
    return ["env", "DEBIAN_FRONTEND=noninteractive"]


def _dpkg_options() -> list[str]:
    # Wait for dpkg's lock rather than fail on it (apt-get's default is not to wait).
    return ["-o", f"DPkg::Lock::Timeout={LOCK_WAIT:.0f}",
            "-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold"]


def query_command(package: str) -> str:
    """Print the installed version of the package (fails when dpkg never heard of it)."""
    return shlex.join(["dpkg-query", "--show", f"--showformat={DPKG_QUERY_FORMAT}", package])


def release_command() -> str:
    """Print the host's os-release (its VERSION_CODENAME names its Debian release)."""
    return shlex.join(["cat", "/etc/os-release"])


def pin_path(package: str) -> str:
    """The apt preferences file in which the Puppet module pins the package at the version Hiera names.

    As the module names it: apt skips preferences files with a '+' in their name.
    """
    return f"/etc/apt/preferences.d/microdeploy-{package.replace('+', '_')}.pref"


def state_command(package: str) -> str:
    """The package's installed version, the host's os-release, then the Puppet module's pin of the package, if any:
    the preflight's one round trip to a host."""
    pin = shlex.join(["cat", pin_path(package)])
    return (f"{query_command(package)}; echo; echo {shlex.quote(STATE_MARK)}; {release_command()}; "
            f"echo; echo {shlex.quote(PIN_MARK)}; {pin} 2>/dev/null || true")


def update_command(apt_source: str | None) -> str:
    """Refresh the APT lists, only from the service's source when one is named.

    apt-get update exits 0 when a source cannot be fetched (a warning; the
    lists it had stay): with the service's source alone, `--error-on=any`
    makes that a failure. Its messages are read (fetch_failures), so they are
    asked for in English.
    """
    argv = [*_apt_env(), "LC_ALL=C.UTF-8", "apt-get", "update", "-q"]
    if apt_source is not None:
        # Only that file; List-Cleanup=0 because apt would otherwise delete the
        # lists of every other source it was not told about.
        parts = "Dir::Etc::sourceparts=-"
        argv += ["--error-on=any", "-o", f"Dir::Etc::sourcelist={apt_source}", "-o", parts,
                 "-o", "APT::Get::List-Cleanup=0"]
    return shlex.join(argv)


def fetch_failures(result: CommandResult) -> list[str]:
    """The sources `apt-get update` could not fetch ("URL: reason"), which it reports as warnings only."""
    return [f"{url}: {reason.strip()}" for url, reason in _FETCH_FAILED.findall(result.stdout + result.stderr)]


def available_command(package: str) -> str:
    """List the versions of the package the APT lists know."""
    return shlex.join(["apt-cache", "madison", package])


def install_command(package: str, version: str, *, allow_downgrades: bool = False) -> str:
    """Install exactly `version` of the package from the repository."""
    return _install(f"{package}={version}", allow_downgrades)


def install_file_command(path: str, *, allow_downgrades: bool = False) -> str:
    """Install an uploaded .deb (apt, unlike dpkg -i, also installs its dependencies)."""
    return _install(path, allow_downgrades)


def _install(what: str, allow_downgrades: bool) -> str:
    argv = [*_apt_env(), "apt-get", "install", "-y", "-q", *_dpkg_options()]
    if allow_downgrades:
        argv.append("--allow-downgrades")
    return shlex.join([*argv, what])


def private_dir_command() -> str:
    """Make a fresh private directory for an upload (as the SSH user: it owns it, mode 0700)."""
    return shlex.join(["mktemp", "-d", REMOTE_DIR_TEMPLATE])


def cleanup_command(directory: str) -> str:
    """Delete the upload's private directory and the .deb in it."""
    return shlex.join(["rm", "-rf", "--", directory])


def remove_command(package: str) -> str:
    """Remove the package, keeping its configuration and logs (not a purge)."""
    return shlex.join([*_apt_env(), "apt-get", "remove", "-y", "-q", *_dpkg_options(), package])


def health_command(package: str, url: str, *, any_answer: bool = False) -> str:
    """Exit 0 when the service answers where the host's own configuration puts it: 2xx or 3xx from its health
    URL, or any HTTP status below 500 from its main page when it has no health route.

    The package's gunicorn.conf.py runs in the unit's environment (its
    EnvironmentFile, through systemd-run) and gives the health URL from the
    host's config.ini (`_health_url`), or only the main page's (`_main_url`)
    when the package was built without a health path. `url` and
    `any_answer`, from the service configuration on this side, are the
    fallback for a package without one. The URL probed is printed first.
    """
    script = (
        "import runpy, sys, urllib.error, urllib.request\n"
        "url, any_answer = sys.argv[1], sys.argv[4] == 'any-answer'\n"
        "try:\n"
        "    conf = runpy.run_path(sys.argv[3])\n"
        "except OSError:\n"
        "    conf = {}\n"
        "if '_health_url' in conf:\n"
        "    url, any_answer = conf['_health_url'], False\n"
        "elif '_main_url' in conf:\n"
        "    url, any_answer = conf['_main_url'], True\n"
        "print(url, flush=True)\n"
        "try:\n"
        "    urllib.request.urlopen(url, timeout=float(sys.argv[2]))\n"
        # Without a health route the main page may answer 404 or 401 and still be up.
        "except urllib.error.HTTPError as error:\n"
        "    if error.code >= 500 or not any_answer:\n"
        "        sys.exit(f'HTTP {error.code} {error.reason} from {error.url}')\n"
        # The reason, for the report of a host that never answered (a port nothing listens on, a timeout).
        "except (urllib.error.URLError, OSError) as error:\n"
        "    sys.exit(str(getattr(error, 'reason', error)))\n"
    )
    return shlex.join([
        "systemd-run", "--quiet", "--pipe", "--wait", "--collect",
        f"--property=EnvironmentFile=-/etc/{package}/environment",
        "/usr/bin/python3", "-I", "-c", script, url, str(HEALTH_REQUEST_TIMEOUT),
        f"/usr/share/{package}/gunicorn.conf.py", "any-answer" if any_answer else "2xx",
    ])


def hook_command(hook: str) -> str:
    """A user's drain or undrain hook, run by a POSIX shell."""
    return shlex.join(["sh", "-c", hook])


def lists_locked(result: CommandResult) -> bool:
    """Whether `apt-get update` failed only because another apt holds the lists' lock."""
    return not result.ok and _LISTS_LOCKED.search(result.stdout + result.stderr) is not None


def parse_query(result: CommandResult) -> str | None:
    """The installed version from `dpkg-query` output, or None when the package is not installed."""
    return installed_version(result.stdout) if result.ok else None


def _dpkg_answer(output: str) -> tuple[str, str]:
    """The package's dpkg state and version from dpkg-query's answer (DPKG_QUERY_FORMAT); empty for none."""
    status, _, version = output.strip().partition(" ")
    return status, version.strip()


def installed_version(output: str) -> str | None:
    """The version in dpkg-query's answer (DPKG_QUERY_FORMAT) when the package is installed; None else, or for no
    answer (dpkg never heard of it)."""
    status, version = _dpkg_answer(output)
    return version or None if status == "installed" else None


# dpkg's states of a package whose install, upgrade or removal did not finish (an interrupted dpkg, a failed
# maintainer script): the package is on the host, in no state to roll back to.
UNFINISHED = ("half-installed", "unpacked", "half-configured")


def unfinished(result: CommandResult) -> str | None:
    """The package's dpkg state and version ("half-configured 2.0-1") from state_command's output when an install
    or removal of it did not finish; None else."""
    status, version = _dpkg_answer(result.stdout.partition(f"\n{STATE_MARK}\n")[0])
    return f"{status} {version}".strip() if status in UNFINISHED else None


def parse_state(result: CommandResult) -> tuple[str | None, Dist | None]:
    """The installed version and the Debian release from state_command's output."""
    query, mark, release = result.stdout.partition(f"\n{STATE_MARK}\n")
    release = release.partition(f"\n{PIN_MARK}\n")[0]
    if not mark:  # the shell did not get as far as the mark
        return None, None
    codename = codename_in(release)
    return installed_version(query), DISTS.get(codename) if codename else None


def parse_pin(result: CommandResult, package: str) -> str | None:
    """The version (an apt pattern: `1.4.0-1+deb*`) the Puppet module's preferences file pins the package at, from
    state_command's output; None without that file."""
    text = result.stdout.partition(f"\n{PIN_MARK}\n")[2]
    for paragraph in Deb822.iter_paragraphs(text.splitlines()):
        kind, _, version = str(paragraph.get("Pin", "")).partition(" ")
        if paragraph.get("Package") == package and kind == "version" and version.strip():
            return version.strip()
    return None


def madison_rows(output: str, package: str) -> Iterator[tuple[str, str]]:
    """(version, source) of each line `apt-cache madison` prints for the package."""
    for line in output.splitlines():
        columns = [column.strip() for column in line.split("|")]
        if len(columns) >= 3 and columns[0] == package:
            yield columns[1], columns[2]


def parse_madison(output: str, package: str) -> list[str]:
    """The versions `apt-cache madison` lists for the package."""
    return list(dict.fromkeys(version for version, _ in madison_rows(output, package)))


def madison_sources(output: str, package: str) -> set[str]:
    """The repository URLs `apt-cache madison` lists the package's versions from."""
    return {source.split()[0].rstrip("/") + "/" for _, source in madison_rows(output, package) if source}


def is_downgrade(before: str | None, after: str) -> bool:
    """Whether installing `after` over `before` goes back in Debian version order."""
    return before is not None and DebianVersion(after) < DebianVersion(before)


def version_for(wanted: str, dist: Dist | None, available: list[str]) -> str | None:
    """The version a host of release `dist` installs for `wanted`, among the versions its repository suite has.

    The build of the host's own release comes first: `1.4.0-7+deb12` or `1.4.0-7` is
    `1.4.0-7+deb13` on a trixie host (a bookworm build there would lack its python3.11);
    then `wanted` itself (a package built without `+debN`). None: the suite has neither.
    """
    base = SUFFIX_RE.sub("", wanted)
    candidates = ([base + dist.suffix] if dist is not None else []) + [wanted]
    return next((version for version in candidates if version in available), None)
