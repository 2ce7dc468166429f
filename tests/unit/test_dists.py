"""The Debian releases: names, the +debN suffix, this machine's own release."""

from __future__ import annotations

from pathlib import Path

import pytest

from microdeploy import dists
from microdeploy.errors import EXIT_BAD_INPUT, MicrodeployError


def os_release(tmp_path: Path, codename: str) -> Path:
    path = tmp_path / "os-release"
    path.write_text(f'PRETTY_NAME="Debian"\nVERSION_CODENAME={codename}\nID=debian\n')
    return path


def test_each_release_has_its_number_python_and_suffix() -> None:
    """bookworm is 12 with Python 3.11 (+deb12), trixie 13 with Python 3.13 (+deb13)."""
    assert [(d.codename, d.number, d.python_minor, d.suffix) for d in dists.DISTS.values()] == [
        ("bookworm", 12, "3.11", "+deb12"), ("trixie", 13, "3.13", "+deb13")]


def test_the_release_of_a_version_is_read_from_its_suffix() -> None:
    """1.4.0-2+deb13 is trixie's; a version without a known +debN belongs to no release."""
    assert dists.of_version("1.4.0-2+deb13") == dists.DISTS["trixie"]
    assert dists.of_version("1:1.4.0~dev3.gabc1234-7+deb12") == dists.DISTS["bookworm"]
    assert dists.of_version("1.4.0-2") is None
    assert dists.of_version("1.4.0-2+deb11") is None
    assert dists.of_version("1.4.0-2+deb13.1") is None


def test_no_release_asked_means_this_machines_own(tmp_path: Path) -> None:
    """Without --dist or dist, the build is for the codename in os-release."""
    assert dists.chosen([], os_release=os_release(tmp_path, "trixie")) == (dists.DISTS["trixie"],)
    both = dists.chosen(["trixie", "bookworm", "trixie"], os_release=os_release(tmp_path, "trixie"))
    assert [d.codename for d in both] == ["trixie", "bookworm"]


def test_a_machine_of_an_unknown_release_must_name_one(tmp_path: Path) -> None:
    """On sid (or Ubuntu) the default is refused with exit 2 and the fix."""
    with pytest.raises(MicrodeployError) as info:
        dists.chosen([], os_release=os_release(tmp_path, "sid"))
    assert info.value.exit_code == EXIT_BAD_INPUT
    assert "'sid'" in info.value.message and "--dist" in (info.value.hint or "")


def test_an_unknown_release_name_is_bad_input() -> None:
    """An unknown codename exits 2, naming it, where it came from, and the known ones."""
    with pytest.raises(MicrodeployError) as info:
        dists.get("buster", "config key 'dist'")
    assert info.value.exit_code == EXIT_BAD_INPUT
    assert "'buster' (from config key 'dist')" in info.value.message
    assert info.value.hint == "Use one of: bookworm, trixie"


def test_host_codename_reads_os_release_and_falls_back(tmp_path: Path) -> None:
    """VERSION_CODENAME (quoted or not), else $DEB_DISTRIBUTION, else unstable."""
    quoted = tmp_path / "quoted"
    quoted.write_text('VERSION_CODENAME="bookworm"\n')
    assert dists.host_codename(quoted, {}) == "bookworm"
    assert dists.host_codename(tmp_path / "missing", {"DEB_DISTRIBUTION": "trixie"}) == "trixie"
    assert dists.host_codename(tmp_path / "missing", {}) == "unstable"
