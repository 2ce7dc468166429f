"""The license a project states, as debian/copyright gives it: a name, the copyright notices and the text.

The name is an SPDX expression: [project].license (PEP 639), else an
unpacked sdist's License-Expression, else the license trove classifiers,
else a free-text license (a {text} table, PKG-INFO's License) written as
license ids, else the license whose full text a license file holds, else
"other". The text is that of the project's license files (the ones it
declares, and LICENSE*, COPYING* and NOTICE* at its top); where Debian ships
a license in /usr/share/common-licenses, a pointer stands in for its text
(Debian policy 12.5; lintian's copyright-file-contains-full-*-license).
The copyright notices are the "Copyright ..." lines of the license files
that are not a license's own text.
"""

from __future__ import annotations

import configparser
import inspect
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from microdeploy.config import declared_name
from microdeploy.pyproject import Pyproject, read_pkg_info

# An SPDX license expression, as PEP 639 writes one (GPL-3.0-or-later, MIT OR Apache-2.0).
SPDX_EXPRESSION = re.compile(r"[A-Za-z0-9.+-]+( (AND|OR|WITH) [A-Za-z0-9.+-]+)*")
# License ids without a version that a free-text license may be; any other id carries one (Apache-2.0).
UNVERSIONED_IDS = frozenset({"MIT", "ISC", "Zlib", "Unlicense", "0BSD", "WTFPL", "BSL-1.0"})
# The licenses in Debian's /usr/share/common-licenses, by SPDX id without -only/-or-later:
# the file, and the license's name in a sentence.
COMMON_LICENSES = {
    "Apache-2.0": ("Apache-2.0", "the Apache License, Version 2.0"),
    "GPL-2.0": ("GPL-2", "the GNU General Public License, version 2"),
    "GPL-3.0": ("GPL-3", "the GNU General Public License, version 3"),
    "LGPL-2.0": ("LGPL-2", "the GNU Library General Public License, version 2"),
    "LGPL-2.1": ("LGPL-2.1", "the GNU Lesser General Public License, version 2.1"),
    "LGPL-3.0": ("LGPL-3", "the GNU Lesser General Public License, version 3"),
    "GFDL-1.2": ("GFDL-1.2", "the GNU Free Documentation License, version 1.2"),
    "GFDL-1.3": ("GFDL-1.3", "the GNU Free Documentation License, version 1.3"),
    "MPL-1.1": ("MPL-1.1", "the Mozilla Public License, version 1.1"),
    "MPL-2.0": ("MPL-2.0", "the Mozilla Public License, version 2.0"),
    "CC0-1.0": ("CC0-1.0", "the Creative Commons CC0 1.0 Universal public domain dedication"),
}
LATER = ("-or-later", "+")
LATER_SENTENCE = " It may be used under that version or, at your option, any later version."
# The titles that open a license's own text, by SPDX id: a file holding one is that license, and the
# copyright lines after it are the license document's (the FSF's), not the project's.
TITLES = [(pattern.replace(" ", r"\s+"), spdx) for pattern, spdx in (
    (r"Apache License,? Version 2\.0, January 2004", "Apache-2.0"),
    (r"GNU GENERAL PUBLIC LICENSE Version 2, June 1991", "GPL-2.0"),
    (r"GNU GENERAL PUBLIC LICENSE Version 3, 29 June 2007", "GPL-3.0"),
    (r"GNU LIBRARY GENERAL PUBLIC LICENSE Version 2, June 1991", "LGPL-2.0"),
    (r"GNU LESSER GENERAL PUBLIC LICENSE Version 2\.1, February 1999", "LGPL-2.1"),
    (r"GNU LESSER GENERAL PUBLIC LICENSE Version 3, 29 June 2007", "LGPL-3.0"),
    (r"GNU AFFERO GENERAL PUBLIC LICENSE Version 3, 19 November 2007", "AGPL-3.0"),
    (r"GNU Free Documentation License Version 1\.2, November 2002", "GFDL-1.2"),
    (r"GNU Free Documentation License Version 1\.3, 3 November 2008", "GFDL-1.3"),
    (r"Mozilla Public License,? [Vv]ersion 2\.0", "MPL-2.0"),
)]
LICENSE_TITLES = [(re.compile(pattern), spdx) for pattern, spdx in TITLES]
# Trove classifiers that name one license, and its SPDX id.
CLASSIFIERS = {
    "MIT License": "MIT",
    "ISC License (ISCL)": "ISC",
    "Apache Software License": "Apache-2.0",
    "GNU General Public License v2 (GPLv2)": "GPL-2.0-only",
    "GNU General Public License v2 or later (GPLv2+)": "GPL-2.0-or-later",
    "GNU General Public License v3 (GPLv3)": "GPL-3.0-only",
    "GNU General Public License v3 or later (GPLv3+)": "GPL-3.0-or-later",
    "GNU Lesser General Public License v2 (LGPLv2)": "LGPL-2.0-only",
    "GNU Lesser General Public License v2 or later (LGPLv2+)": "LGPL-2.0-or-later",
    "GNU Lesser General Public License v3 (LGPLv3)": "LGPL-3.0-only",
    "GNU Lesser General Public License v3 or later (LGPLv3+)": "LGPL-3.0-or-later",
    "GNU Affero General Public License v3": "AGPL-3.0-only",
    "GNU Affero General Public License v3 or later (AGPLv3+)": "AGPL-3.0-or-later",
    "Mozilla Public License 2.0 (MPL 2.0)": "MPL-2.0",
    "Python Software Foundation License": "PSF-2.0",
    "The Unlicense (Unlicense)": "Unlicense",
    "zlib/libpng License": "Zlib",
    "Boost Software License 1.0 (BSL-1.0)": "BSL-1.0",
    "European Union Public Licence 1.2 (EUPL 1.2)": "EUPL-1.2",
    "CC0 1.0 Universal (CC0 1.0) Public Domain Dedication": "CC0-1.0",
}
# The license files a build backend ships by default (setuptools, hatchling), AUTHORS* aside: not a license.
DEFAULT_FILES = ("LICEN[CS]E*", "COPYING*", "NOTICE*")
NOT_LICENSES = re.compile(r"(AUTHORS|CONTRIBUTORS)", re.IGNORECASE)
MAX_FILE_BYTES = 256 * 1024
# A notice's line that goes on below it: it ends with a comma or a word that needs more, or the next line
# starts in lower case or with a URL.
GOES_ON = re.compile(r"(?:,|\b(?i:see|and|by|of|the|for|at))\n|\n(?:[a-z]|https?://)")
MAX_NOTICE_LINES = 3
# A copyright notice's line: "Copyright (c) 2010 Pallets", "(c) 2015 Ann" (a year next: not a license's item "(c)"),
# or the years first, as gunicorn's "2009-2026 (c) Benoît Chesneau".
NOTICE = re.compile(r"^[\s#*/-]*(?:Copyright\b\s*(?:\(c\)|©)?|(?:\(c\)|©)(?=\s*(?:19|20)\d\d\b)"
                    r"|(?=(?:19|20)\d\d\b[\d\s,-]*(?:\(c\)|©)))\s*(?P<notice>.*\b(?:19|20)\d\d\b.*)$", re.IGNORECASE)


@dataclass(frozen=True)
class LicenseFile:
    """One license file: its path in the project, its text, and the license whose own text it is."""

    name: str
    text: str
    license: str | None = None
    title_at: int = 0  # where that license's own text starts


@dataclass(frozen=True)
class StatedLicense:
    """What debian/copyright says of a project: its name, license, notices and authors."""

    name: str = "other"  # an SPDX expression
    notices: tuple[str, ...] = ()  # "2010 Pallets", from its license files
    text: tuple[str, ...] = ()  # the License paragraph's lines, plain; empty when the project has no license file
    authors: str = ""  # the authors the project names (project_authors), the holders when no notice says
    upstream_name: str = ""  # the project's own name (upstream_name); "": the package's


def script_tables() -> dict[str, Any]:
    """What debian/venv-copyright, which names the licenses of the venv's distributions, shares with this module."""
    return {"pointers": {base: common_license_pointer(base, False) for base in COMMON_LICENSES},
            "titles": TITLES, "notice": NOTICE.pattern, "later": LATER_SENTENCE, "expression": SPDX_EXPRESSION.pattern,
            "unversioned": sorted(UNVERSIONED_IDS), "classifiers": CLASSIFIERS,
            "metadata_person": inspect.getsource(metadata_person)}


def stated_license(pyproject: Pyproject) -> StatedLicense:
    """The license `pyproject`'s project states, its notices and its text."""
    files = [read_license_file(pyproject.directory, name) for name in license_file_names(pyproject)]
    found = [each for each in files if each is not None]
    name = license_name(pyproject) or from_texts(found) or "other"
    # The same notice in two files may differ by its full stop (httpbin's LICENSE.ISC and LICENSE.MIT).
    notices = unique((notice for each in found for notice in copyright_notices(each.text[:each.title_at])),
                     key=lambda notice: notice.rstrip(". "))
    return StatedLicense(name, tuple(notices), tuple(license_text(name, found)), project_authors(pyproject),
                         upstream_name(pyproject))


def upstream_name(pyproject: Pyproject) -> str:
    """The name the project gives itself ([project].name, else PKG-INFO's or setup.cfg's), as written:
    debian/copyright's Upstream-Name ("changedetection.io", not the package's changedetection-io); "" if none."""
    named = pyproject.project.get("name")
    if isinstance(named, str) and named.strip():
        return printable_line(named.strip())
    declared = declared_name(pyproject.directory)
    return printable_line(declared[0]) if declared else ""


def project_authors(pyproject: Pyproject) -> str:
    """Who holds the copyright of the project's files, as it names its authors: [project].authors, else an unpacked
    sdist's PKG-INFO (Author-email, else Author); "" when it names none. On one line, for debian/copyright."""
    named = []
    for author in pyproject.project.get("authors") or ():
        if isinstance(author, Mapping):
            name, address = str(author.get("name") or "").strip(), str(author.get("email") or "").strip()
            named.append(f"{name} <{address}>" if name and address else name or address)
    headers = read_pkg_info(pyproject.directory)
    if not any(named) and headers is not None:
        named = [metadata_person(headers.get("Author"), headers.get("Author-email"))]
    return printable_line(" ".join(", ".join(each for each in named if each).split()))


def metadata_person(name: object, email: object) -> str:
    """Who core metadata's Author and Author-email (or Maintainer and Maintainer-email) name, on one line.

    Author-email holds "Name <address>" when written from [project].authors,
    but only the address when setuptools writes both fields (author and
    author_email): then the name comes from the other field. "UNKNOWN" is
    old setuptools' word for none.
    """
    name, email = ("" if value is None or str(value).strip() == "UNKNOWN" else str(value).strip()
                   for value in (name, email))
    if name and email and "<" not in email:
        return f"{name} <{email}>" if "," not in email else f"{name}, {email}"
    return email or name


def printable_line(text: str) -> str:
    """`text` without what is not printable: a newline in it would start another field of debian/copyright."""
    return "".join(char for char in text if char.isprintable())


def license_name(pyproject: Pyproject) -> str | None:
    """The SPDX expression of the project's license from its metadata, or None."""
    headers = read_pkg_info(pyproject.directory)
    declared = pyproject.project.get("license")
    if isinstance(declared, str) and SPDX_EXPRESSION.fullmatch(declared.strip()):
        return declared.strip()
    expression = str(headers.get("License-Expression") or "").strip() if headers is not None else ""
    if SPDX_EXPRESSION.fullmatch(expression):
        return expression
    classifiers = [*(pyproject.project.get("classifiers") or ()),
                   *((headers.get_all("Classifier") or []) if headers is not None else ())]
    # One license classifier names the license; several may mean either (dual licensing) or all (bundled code).
    named = unique(text.split(" :: ")[-1] for text in map(str, classifiers) if text.startswith("License :: "))
    if len(named) == 1 and named[0] in CLASSIFIERS:
        return CLASSIFIERS[named[0]]
    free = [declared.get("text") if isinstance(declared, dict) else None,
            headers.get("License") if headers is not None else None]
    return next((expression for expression in map(as_expression, free) if expression), None)


def as_expression(text: object) -> str | None:
    """A free-text license written as SPDX ids ("MIT or ISC"), as an expression; None for prose ("MIT License")."""
    words = str(text or "").split()
    normal = " ".join(word.upper() if word.upper() in ("AND", "OR", "WITH") else word for word in words)
    if not SPDX_EXPRESSION.fullmatch(normal):
        return None
    ids = normal.replace(" AND ", " ").replace(" OR ", " ").replace(" WITH ", " ").split()
    return normal if all(each in UNVERSIONED_IDS or re.search(r"\d", each) for each in ids) else None


def from_texts(files: list[LicenseFile]) -> str | None:
    """The license whose own text a license file holds, by its Debian short name when Debian ships it."""
    for each in files:
        if each.license is not None:
            common = COMMON_LICENSES.get(each.license)
            return common[0] if common else each.license
    return None


def license_file_names(pyproject: Pyproject) -> list[str]:
    """The project's license files, relative to it: those it declares and those build backends ship by default."""
    project = pyproject.directory
    declared = pyproject.project.get("license")
    patterns: list[str] = []
    if isinstance(declared, dict) and isinstance(declared.get("file"), str):
        patterns.append(glob_escape(declared["file"]))
    listed = pyproject.project.get("license-files")
    if isinstance(listed, dict):  # hatchling before PEP 639: {paths = [...]} or {globs = [...]}
        patterns += [glob_escape(each) for each in listed.get("paths") or () if isinstance(each, str)]
        listed = listed.get("globs")
    tools = pyproject.tool("setuptools").get("license-files")
    patterns += [each for each in [*(listed or ()), *(tools or ())] if isinstance(each, str)]
    patterns += [glob_escape(each) for each in setup_cfg_license_files(project)]
    headers = read_pkg_info(project)
    patterns += [glob_escape(each) for each in ((headers.get_all("License-File") or []) if headers else ())]
    names: list[str] = []
    for pattern in [*patterns, *DEFAULT_FILES]:
        if not pattern.strip() or pattern.startswith("/") or ".." in Path(pattern).parts:
            continue  # nothing, or outside the project
        for path in sorted(project.glob(pattern)):
            name = path.relative_to(project).as_posix()
            if path.is_file() and not NOT_LICENSES.match(path.name) and name not in names:
                names.append(name)
    return names


def setup_cfg_license_files(project: Path) -> list[str]:
    """setup.cfg's [metadata] license_files (a list) and license_file."""
    setup_cfg = configparser.ConfigParser(interpolation=None)
    try:
        setup_cfg.read(project / "setup.cfg", encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError):
        return []
    text = setup_cfg.get("metadata", "license_files", fallback="") + "\n" + setup_cfg.get(
        "metadata", "license_file", fallback="")
    return [each.strip() for each in re.split(r"[,\n]", text) if each.strip()]


def glob_escape(name: str) -> str:
    """A file name as a glob that matches it alone."""
    return re.sub(r"([*?[])", r"[\1]", name)


def read_license_file(project: Path, name: str) -> LicenseFile | None:
    """A license file's text, and the license whose own text it holds; None for one too large or not text."""
    path = project / name
    if not path.resolve().is_relative_to(project.resolve()) or path.stat().st_size > MAX_FILE_BYTES:
        return None
    data = path.read_bytes()
    if b"\0" in data:
        return None
    text = data.decode("utf-8", errors="replace").removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    for title, spdx in LICENSE_TITLES:
        found = title.search(text)
        if found is not None:
            return LicenseFile(name, text, spdx, found.start())
    return LicenseFile(name, text, None, len(text))


def copyright_notices(text: str) -> Iterator[str]:
    """The copyright notices of a text: "Copyright (c) 2010 Pallets" gives "2010 Pallets"; one printable line each.

    A notice that goes on (moin's "... development team, see" and a URL below, FlaskBB's "See AUTHORS" and "for
    more details.") takes the lines it goes on to, up to MAX_NOTICE_LINES.
    """
    lines = text.splitlines()
    for at, line in enumerate(lines):
        found = NOTICE.match(line)
        if not found:
            continue
        words = found.group("notice").split()
        for following in lines[at + 1:at + MAX_NOTICE_LINES]:
            if not following.strip() or NOTICE.match(following) or not GOES_ON.search(" ".join(words) + "\n" +
                                                                                      following.strip()):
                break
            words += following.split()
        yield printable_line(" ".join(words))


def license_text(name: str, files: list[LicenseFile]) -> list[str]:
    """The License paragraph's lines: a pointer for each license Debian ships, and the other files' texts."""
    lines: list[str] = []
    shipped = sorted(each.license for each in files if each.license in COMMON_LICENSES)
    pointed: set[str] = set()
    for spdx in [*expression_ids(name), *shipped]:
        base, later = common_base(spdx)
        if base in COMMON_LICENSES and base not in pointed:
            pointed.add(base)
            lines += [*([""] if lines else []), common_license_pointer(base, later)]
    texts = [each for each in files if each.license not in COMMON_LICENSES]
    for each in texts:
        body = [line.rstrip() for line in each.text.splitlines()]
        while body and not body[0]:
            body.pop(0)
        while body and not body[-1]:
            body.pop()
        if body:
            # The name as printable text: a newline in it would start a field of debian/copyright.
            heading = [printable_line(f"{each.name}:"), ""] if len(texts) > 1 else []
            lines += [*([""] if lines else []), *heading, *body]
    return lines


def expression_ids(expression: str) -> list[str]:
    """The license ids of an SPDX expression, exceptions (WITH ...) left out."""
    words = re.sub(r" WITH \S+", "", expression).split()
    return [word for word in words if word not in ("AND", "OR")]


def common_base(spdx: str) -> tuple[str, bool]:
    """A license id without its -only, -or-later or +, and whether it said "or later"."""
    base = spdx.removesuffix("-only")
    later = next((suffix for suffix in LATER if base.endswith(suffix)), "")
    return base.removesuffix(later), bool(later)


def common_license_pointer(base: str, later: bool) -> str:
    """Where a Debian system has the text of license `base` (a COMMON_LICENSES key), in a sentence."""
    path, title = COMMON_LICENSES[base]
    sentence = f"On Debian systems, the complete text of {title} can be found in /usr/share/common-licenses/{path}."
    return sentence + (LATER_SENTENCE if later else "")


def unique(items: Iterable[str], key: Callable[[str], str] = str) -> list[str]:
    """`items` without repeats (the same `key`), in order."""
    kept: dict[str, str] = {}
    for item in items:
        kept.setdefault(key(item), item)
    return list(kept.values())
