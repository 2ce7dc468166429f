"""The build requirements taken from the release's Python packages: which satisfy them, and what is linked."""

from __future__ import annotations

from pathlib import Path

from microdeploy.build.fastpath import systembackend
from microdeploy.build.fastpath.systembackend import link_into, python_version, satisfying


def egg_info(site: Path, name: str, version: str, top_level: list[str], requires: str = "") -> None:
    """A distribution as Debian's python3-* packages install many: NAME-VERSION.egg-info with PKG-INFO."""
    meta = site / f"{name}-{version}.egg-info"
    meta.mkdir(parents=True)
    (meta / "PKG-INFO").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (meta / "top_level.txt").write_text("".join(f"{module}\n" for module in top_level))
    if requires:
        (meta / "requires.txt").write_text(requires)
    for module in top_level:
        (site / module).mkdir(exist_ok=True)
        (site / module / "__init__.py").write_text("")


def dist_info(site: Path, name: str, version: str, files: list[str], requires: list[str] = ()) -> None:  # type: ignore[assignment]
    """A distribution installed from a wheel: NAME-VERSION.dist-info with METADATA and RECORD."""
    meta = site / f"{name}-{version}.dist-info"
    meta.mkdir(parents=True)
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}",
             *(f"Requires-Dist: {requirement}" for requirement in requires)]
    (meta / "METADATA").write_text("\n".join(lines) + "\n")
    record = [*files, f"{meta.name}/METADATA,,", f"{meta.name}/RECORD,,"]
    (meta / "RECORD").write_text("".join(f"{line.split(',')[0]},,\n" for line in record))
    for path in files:
        target = site / path.split(",")[0]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("")


def bookworm_site(site: Path) -> Path:
    """What Debian 12 installs for python3-setuptools, python3-wheel and python3-debian (whose `debian` package
    setuptools' top_level.txt names too)."""
    egg_info(site, "setuptools", "66.1.1", ["_distutils_hack", "debian", "pkg_resources", "setuptools"],
             "\n[certs]\ncertifi==2016.9.26\n\n[testing]\npytest>=6\n")
    egg_info(site, "wheel", "0.38.4", ["wheel"], "\n[test]\npytest>=3.0.0\n")
    egg_info(site, "python_debian", "0.1.49", ["debian", "deb822"], "chardet\n")
    return site


def names(dists: list | None) -> list[tuple[str, str]] | None:  # type: ignore[type-arg]
    return None if dists is None else [(dist.metadata["Name"], dist.version) for dist in dists]


def test_setuptools_from_the_release_brings_the_wheel_its_backend_asks_for(tmp_path: Path) -> None:
    """Debian 12's setuptools 66 satisfies setuptools>=61; its build_wheel needs wheel (setuptools took in
    bdist_wheel at 70.1), which the release has too; its extras' requirements are not wanted."""
    site = bookworm_site(tmp_path / "site")
    assert names(satisfying(["setuptools>=61"], "3.11", site)) == [("setuptools", "66.1.1"), ("wheel", "0.38.4")]
    assert names(satisfying(["Setuptools >= 40.8", "wheel"], "3.11", site)) == [
        ("setuptools", "66.1.1"), ("wheel", "0.38.4")]


def test_a_requirement_the_release_does_not_satisfy_leaves_it_to_uv(tmp_path: Path) -> None:
    """Too old, too new, missing, missing below a requirement, unreadable: None (uv's build environment)."""
    site = bookworm_site(tmp_path / "site")
    assert satisfying(["setuptools>=77"], "3.11", site) is None
    assert satisfying(["setuptools<60"], "3.11", site) is None
    assert satisfying(["hatchling"], "3.11", site) is None
    assert satisfying(["setuptools>=61", "setuptools-scm>=8"], "3.11", site) is None
    assert satisfying(["setuptools>=61 ; ; nonsense"], "3.11", site) is None
    # python-debian needs chardet, which this site lacks.
    assert satisfying(["python-debian"], "3.11", site) is None
    assert satisfying(["setuptools"], "3.11", tmp_path / "no-such-site") is None


def test_requirements_follow_their_markers_and_what_distributions_require(tmp_path: Path) -> None:
    """A marker for another Python leaves a requirement out; a distribution's own requirements are followed (and
    those of an extra asked for)."""
    site = tmp_path / "site"
    dist_info(site, "hatchling", "1.18.0", ["hatchling/__init__.py,,"],
              ["pathspec>=0.10.1", "tomli>=1.2.2; python_version < '3.11'", "editables>=0.3; extra == 'edit'"])
    dist_info(site, "pathspec", "0.11.0", ["pathspec/__init__.py,,"])
    assert names(satisfying(["hatchling>=1.10"], "3.11", site)) == [("hatchling", "1.18.0"), ("pathspec", "0.11.0")]
    assert satisfying(["hatchling>=1.10"], "3.10", site) is None, "tomli is wanted below 3.11 and missing"
    assert satisfying(["hatchling[edit]"], "3.11", site) is None, "the extra asks for editables"
    assert names(satisfying(["tomli; python_version < '3.11'", "pathspec"], "3.11", site)) == [("pathspec", "0.11.0")]


def test_linked_environment_holds_the_distributions_and_nothing_another_one_names(tmp_path: Path) -> None:
    """Links to each distribution's metadata and modules, at the path the release's interpreter sees them (in a
    build root, its own /usr/lib/python3/dist-packages, read here through the root); a module another
    distribution names too (Debian's setuptools lists `debian`, python-debian's package) is left out."""
    root = tmp_path / "root"
    site = bookworm_site(root / "usr" / "lib" / "python3" / "dist-packages")
    dist_info(site, "six", "1.16.0", ["six.py,,", "../../../bin/not-in-site,,", "__pycache__/six.cpython-311.pyc,,"])
    dists = satisfying(["setuptools>=61", "six"], "3.11", site)
    assert dists is not None
    env_site = tmp_path / "env" / "lib" / "python3.11" / "site-packages"
    env_site.mkdir(parents=True)
    link_into(env_site, dists, site)
    links = {path.name: str(path.readlink()) for path in env_site.iterdir()}
    system = "/usr/lib/python3/dist-packages"
    assert links == {name: f"{system}/{name}" for name in (
        "_distutils_hack", "pkg_resources", "setuptools", "setuptools-66.1.1.egg-info", "six.py",
        "six-1.16.0.dist-info", "wheel", "wheel-0.38.4.egg-info")}


def test_the_environment_key_follows_the_interpreter_requirements_and_versions(tmp_path: Path) -> None:
    """Another Python, another requirement set or another version of a linked distribution (an upgrade of
    python3-setuptools) is another environment; the order of the requirements is not."""
    site = bookworm_site(tmp_path / "site")
    dists = satisfying(["setuptools>=61"], "3.11", site)
    assert dists is not None
    key = systembackend.environment_key("/usr/bin/python3.11", ["setuptools>=61", "wheel"], dists)
    assert key == systembackend.environment_key("/usr/bin/python3.11", ["wheel", "setuptools>=61"], dists)
    assert key != systembackend.environment_key("/usr/bin/python3.13", ["setuptools>=61", "wheel"], dists)
    assert key != systembackend.environment_key("/usr/bin/python3.11", ["setuptools>=62", "wheel"], dists)
    newer = bookworm_site(tmp_path / "newer")
    (newer / "setuptools-66.1.1.egg-info" / "PKG-INFO").write_text("Name: setuptools\nVersion: 66.1.2\n")
    upgraded = satisfying(["setuptools>=61"], "3.11", newer)
    assert upgraded is not None
    assert key != systembackend.environment_key("/usr/bin/python3.11", ["setuptools>=61", "wheel"], upgraded)


def test_python_version_is_read_from_the_interpreters_name() -> None:
    assert python_version("/usr/bin/python3.11") == "3.11"
    assert python_version("/usr/bin/python3.13") == "3.13"
    assert python_version("/usr/bin/python3") is None
    assert python_version("/opt/custom/bin/python") is None
