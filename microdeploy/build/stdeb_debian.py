"""The stdeb backend's plan of one library, and stdeb's debian/ made the package microdeploy means.

stdeb writes debian/ from setup.py; microdeploy puts in its own changelog
(the service model's versions and dates), a DEP-5 copyright, an extended
description of its own, and lintian's overrides for what the project does
not give the package, each with its reason.
"""

from __future__ import annotations

import contextlib
import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from debian.deb822 import Deb822
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from microdeploy import validate
from microdeploy.build.debiandir.context import copyright_context
from microdeploy.build.release.license import StatedLicense
from microdeploy.build.release.plan import Release
from microdeploy.build.release.version import debian_upstream
from microdeploy.config import ServiceConfig
from microdeploy.fsutil import atomic_write
from microdeploy.render import render_file
from microdeploy.resources import template_folder

# A copyright notice with its year, or public domain, as lintian's Debian::Copyright check looks for one anywhere in
# debian/copyright (else: copyright-without-copyright-notice).
NOTICE = re.compile(r"(?:Copyright|Copr\.|\u00a9)(?:.*|[(C):\s]+)\b\d{4}\b|\bpublic(?:\s+|-)domain\b", re.IGNORECASE)


@dataclass(frozen=True)
class LibraryPlan:
    """What the stdeb build of one library will make, decided before any file is written (its modules: once its
    sdist names them)."""

    config: ServiceConfig
    release: Release  # its versions (the project's own for setup.py's metadata), suite, dates and changelog
    license: StatedLicense  # for debian/copyright
    named: bool = False  # the package's name was given (--name, [tool.microdeploy] name), not the project's own
    debian_package: str = ""  # Debian's own package of the distribution (stdeb_names.debian_package)
    modules: tuple[str, ...] = ()  # the top-level modules the library installs (stdeb_sdist.py)
    floors: tuple[str, ...] = ()  # its requirements that carry a version (stdeb_sdist.py)

    @property
    def version(self) -> str:
        """The package's Debian version."""
        return self.release.version

    @property
    def source(self) -> str:
        """The Debian source package name: the normalised distribution name."""
        return self.config.name

    @property
    def package(self) -> str:
        """The binary package name: python3-NAME when given; else Debian's own package of the distribution when it
        is named after one of its modules or itself (attrs: python3-attr, PySocks: python3-socks),
        which the library then upgrades; else as Debian's Python policy names it (package_name)."""
        if self.named:
            return package_name(self.config.name)
        own = {canonicalize_name(name) for name in (self.config.name, *self.modules)}
        if canonicalize_name(self.debian_package.removeprefix("python3-")) in own:
            return self.debian_package
        return package_name(self.config.name, self.modules)


def package_name(name: str, modules: Sequence[str] = ()) -> str:
    """python3-MODULE after the one module a library installs, as Debian's Python policy names the package of
    module MODULE (python-slugify's is python3-slugify: Debian's own package of that module has the name, so ours
    upgrades it instead of clashing with its files); else python3-NAME, the normalised distribution name. MODULE
    starts with a letter or digit, as a package name does."""
    module = modules[0].lower().replace("_", "-") if len(modules) == 1 else ""
    named = f"python3-{module}"
    return named if module[:1].isalnum() and validate.PACKAGE_NAME.pattern.fullmatch(named) else f"python3-{name}"


def finish_debian(debian: Path, library: LibraryPlan, scripts: Sequence[str] = ()) -> None:
    """Put the model's changelog, a copyright file, a long description and lintian's overrides into stdeb's
    debian/; `scripts`: the names of the library's programs in /usr/bin."""
    # stdeb dates its changelog now() and versions it from setup.py; ours follows
    # the service model (BUILD_NUMBER revision, git, SOURCE_DATE_EPOCH).
    atomic_write(debian / "changelog", library.release.changelog)
    copyright = copyright_text(library)
    atomic_write(debian / "copyright", copyright)
    overrides = lintian_overrides(library, copyright, scripts)
    if overrides:
        atomic_write(debian / f"{library.package}.lintian-overrides", overrides)  # dh_lintian installs it
    control = debian / "control"
    paragraphs = list(Deb822.iter_paragraphs(control.read_text(encoding="utf-8")))
    for paragraph in paragraphs:
        if "Package" in paragraph:
            # A project that describes itself with nothing is no "web service" (ServiceConfig.summary's word).
            summary = library.config.summary if library.config.description else "Pure-Python library for python3"
            paragraph["Description"] = "\n".join([summary, *(
                f" {line}" for line in extended_description(library.source, library.package))])
    atomic_write(control, "\n".join(paragraph.dump() for paragraph in paragraphs))
    if library.floors:
        rules = debian / "rules"
        text = rules.read_text(encoding="utf-8")
        if "override_dh_python3:" not in text:
            atomic_write(rules, text.rstrip("\n") + "\n" + versioned_depends(library.floors, library.package))
            rules.chmod(0o755)


def versioned_depends(floors: Sequence[str], package: str) -> str:
    """debian/rules' dh_python3 with the library's requirements that carry a version given again as --depends:
    dh_python3 maps those of requires.txt to Debian packages without their versions (python3-foo for foo>=2.0,
    which lets apt keep an older foo, and the library fails on import), and Debian 12's ignores
    --accept-upstream-versions there. It writes the upstream versions as they are, which are Debian ones for a
    release (Debian's 2.0-1 is above 2.0), not for a pre-release: 2.0rc1 sorts above Debian's 2.0 and 2.0~rc1,
    so those relations in `package`'s substvars get the version's Debian spelling (2.0~rc1). dpkg-gencontrol keeps
    the versioned one of the two."""
    options = " ".join(f"'--depends={floor}'" for floor in floors)
    rules = f"\n# microdeploy: the library's version floors reach its Depends.\noverride_dh_python3:\n" \
            f"\tdh_python3 --accept-upstream-versions {options}\n"
    for upstream, spelt in sorted(debian_spellings(floors).items()):
        # A PEP 440 version holds no character sed's pattern reads otherwise but the dot.
        rules += f"\tsed -i 's/ {upstream.replace('.', '[.]')})/ {spelt})/g' debian/{package}.substvars\n"
    return rules


def debian_spellings(floors: Sequence[str]) -> dict[str, str]:
    """The versions in `floors` that dpkg would sort otherwise than PEP 440 does, each with its Debian spelling (a
    wildcard, as in ==1.*, is dh_python3's to translate)."""
    spellings = {}
    for version in {spec.version for floor in floors for spec in Requirement(floor).specifier}:
        with contextlib.suppress(InvalidVersion):
            Version(version)  # debian_upstream refuses what this refuses, with exit 2
            if (spelt := debian_upstream(version)) != version:
                spellings[version] = spelt
    return spellings


def lintian_overrides(library: LibraryPlan, copyright: str, scripts: Sequence[str]) -> str:
    """The overrides of what the project does not give the package (`copyright`: its debian/copyright), each with
    its reason ("" if none)."""
    lines = []
    if not NOTICE.search(copyright):
        # lintian wants a notice with its year, which only the project's license files can give.
        lines += ["# The project states no copyright notice with a year: its holders are the authors it names.",
                  f"{library.package}: copyright-without-copyright-notice"]
    if scripts:
        lines.append("# The project ships no manual page for its programs; each one's --help documents it.")
        lines += [f"{library.package}: no-manual-page [usr/bin/{script}]" for script in scripts]
    return "".join(f"{line}\n" for line in lines)


def extended_description(name: str, package: str) -> list[str]:
    """The binary package's extended description, wrapped to lintian's 80 columns. Not stdeb's, which is the
    project's README as written: reStructuredText's `..` lines are control statements to dpkg, badges and
    long lines are lintian's warnings, and stdeb cuts it after 20 lines."""
    text = (f"The pure-Python library {name}, packaged for the system python3: {package} installs it under "
            f"/usr/lib/python3/dist-packages, for Debian's own interpreter and the programs that use it.")
    return textwrap.wrap(text, width=78, break_long_words=False, break_on_hyphens=False)


def copyright_text(library: LibraryPlan) -> str:
    """A machine-readable debian/copyright from the project's license, from the services' template."""
    context = copyright_context(library.source, library.config.maintainer, library.license, "library")
    return render_file(template_folder("debian_templates"), "copyright.j2", context)
