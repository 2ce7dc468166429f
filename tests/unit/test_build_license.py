"""debian/copyright's license: the name, notices and text a project states (build/release/license.py)."""

from __future__ import annotations

import os
from pathlib import Path

from microdeploy.build.debiandir.context import copyright_context
from microdeploy.build.release.license import StatedLicense, stated_license
from microdeploy.build.release.source import source_date_epoch
from microdeploy.process import Result
from microdeploy.pyproject import read_pyproject
from microdeploy.render import render_file
from microdeploy.resources import template_folder

MIT = """MIT License

Copyright (c) 2020-2024 Ann Example <ann@example.org>
Copyright (c) <year> <copyright holders>
 COPYRIGHT (C) 2019 Big Corp

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software.\r
"""
GPL2_TEXT = """                    GNU GENERAL PUBLIC LICENSE
                       Version 2, June 1991

 Copyright (C) 1989, 1991 Free Software Foundation, Inc.,
 51 Franklin Street, Fifth Floor, Boston, MA 02110-1301 USA
"""
AGPL_TEXT = """                    GNU AFFERO GENERAL PUBLIC LICENSE
                       Version 3, 19 November 2007

 Copyright (C) 2007 Free Software Foundation, Inc. <https://fsf.org/>
"""


def project(tmp_path: Path, pyproject: str, files: dict[str, str] | None = None) -> StatedLicense:
    """What debian/copyright says of a project with this [project] table's end, and these files."""
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "shop"\n' + pyproject)
    for name, text in (files or {}).items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return stated_license(read_pyproject(tmp_path))


def test_the_name_is_the_spdx_expression_the_project_or_its_sdist_states(tmp_path: Path) -> None:
    """[project].license, else PKG-INFO's License-Expression, else one license classifier, else a free-text license
    written as ids; words ("MIT License", pypiserver's "License") or a file alone give "other"."""
    assert project(tmp_path, 'license = "MIT OR Apache-2.0"\n').name == "MIT OR Apache-2.0"
    assert project(tmp_path, 'license = {file = "COPYING"}\n').name == "other"
    (tmp_path / "PKG-INFO").write_text("Metadata-Version: 2.4\nName: shop\nLicense-Expression: GPL-3.0-or-later\n")
    assert project(tmp_path, "").name == "GPL-3.0-or-later"
    (tmp_path / "PKG-INFO").write_text("Metadata-Version: 2.1\nName: shop\nLicense: GPL-2.0-or-later\n")
    assert project(tmp_path, "").name == "GPL-2.0-or-later"
    (tmp_path / "PKG-INFO").write_text("Metadata-Version: 2.1\nName: shop\nLicense: MIT License\n")
    assert project(tmp_path, "").name == "other"
    (tmp_path / "PKG-INFO").write_text("Metadata-Version: 2.1\nName: shop\nLicense: License\n")
    assert project(tmp_path, "").name == "other"
    (tmp_path / "PKG-INFO").write_text("Metadata-Version: 2.1\nName: shop\nLicense: MIT or ISC\n"
                                       "Classifier: License :: OSI Approved :: ISC License (ISCL)\n"
                                       "Classifier: License :: OSI Approved :: MIT License\n")
    assert project(tmp_path, "").name == "MIT OR ISC"  # two classifiers say neither "either" nor "all"
    (tmp_path / "PKG-INFO").unlink()
    one = 'classifiers = ["License :: OSI Approved :: GNU General Public License v3 or later (GPLv3+)"]\n'
    assert project(tmp_path, one).name == "GPL-3.0-or-later"
    unknown = 'classifiers = ["License :: OSI Approved :: BSD License"]\n'
    assert project(tmp_path, unknown).name == "other"


def test_a_license_debian_ships_is_a_pointer_to_common_licenses(tmp_path: Path) -> None:
    """A GPL project's full license text is replaced by /usr/share/common-licenses/GPL-2 (lintian's
    copyright-file-contains-full-gpl-license is an error); "or later" is said; the FSF's notice is not the
    project's; a text alone names the license by Debian's short name."""
    stated = project(tmp_path, 'license = "GPL-2.0-or-later"\n', {"LICENSE": GPL2_TEXT})
    assert stated.text == (
        "On Debian systems, the complete text of the GNU General Public License, version 2 can be found in "
        "/usr/share/common-licenses/GPL-2. It may be used under that version or, at your option, any later "
        "version.",
    )
    assert stated.notices == ()
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "shop"\n')
    assert stated_license(read_pyproject(tmp_path)).name == "GPL-2"
    (tmp_path / "LICENSE").unlink()
    assert project(tmp_path, 'license = "Apache-2.0"\n').text == (
        "On Debian systems, the complete text of the Apache License, Version 2.0 can be found in "
        "/usr/share/common-licenses/Apache-2.0.",
    )


def test_other_license_files_are_quoted_with_their_notices(tmp_path: Path) -> None:
    """An MIT text is quoted as written (CRs and the edges' blank lines gone); its dated notices are the copyright
    holders, the template's placeholder is not; AGPL is not in common-licenses, so its text is quoted, without the
    FSF's notice."""
    stated = project(tmp_path, 'license = {text = "MIT"}\n', {"LICENSE": f"\n\n{MIT}\n\n"})
    assert stated.name == "MIT"
    assert stated.notices == ("2020-2024 Ann Example <ann@example.org>", "2019 Big Corp")
    assert stated.text == ("MIT License", "", "Copyright (c) 2020-2024 Ann Example <ann@example.org>",
                           "Copyright (c) <year> <copyright holders>", " COPYRIGHT (C) 2019 Big Corp", "",
                           "Permission is hereby granted, free of charge, to any person obtaining a copy",
                           "of this software.")
    (tmp_path / "LICENSE").write_text("Copyright 2019 Bob.\n\n" + AGPL_TEXT)
    (tmp_path / "NOTICE").write_text("Copyright (c) 2019 Bob\n")
    stated = stated_license(read_pyproject(tmp_path))
    assert stated.notices == ("2019 Bob.",)  # once, though NOTICE has no full stop
    assert any("GNU AFFERO GENERAL PUBLIC LICENSE" in line for line in stated.text)


def test_the_license_files_are_those_declared_and_the_defaults(tmp_path: Path) -> None:
    """PEP 639's license-files, setuptools' and setup.cfg's, PKG-INFO's License-File and LICENSE*/COPYING*/NOTICE*
    at the top, each once, headed by its name (printable: a hostile name's newline would start a field) when there
    are several; AUTHORS, a binary file and a path outside the project are not licenses."""
    (tmp_path.parent / "outside").write_text("Copyright 2001 Mallory\n")
    (tmp_path / "setup.cfg").write_text("[metadata]\nlicense_files =\n    docs/terms.txt\n")
    stated = project(
        tmp_path,
        'license-files = ["LICENSES/*.txt", "AUTHORS", "../outside", "logo.png"]\n'
        '[tool.setuptools]\nlicense-files = ["docs/extra.txt"]\n',
        {"LICENSES/MIT.txt": "Copyright 2020 Ann\n", "AUTHORS": "Copyright 2021 Zed\n", "docs/terms.txt": "Terms.\n",
         "docs/extra.txt": "Extra.\n", "NOTICE": "Notice 2022.\n", "COPYING\nFiles: *.md": "Copying.\n"},
    )
    (tmp_path / "logo.png").write_bytes(b"\x89PNG\0\0")
    stated = stated_license(read_pyproject(tmp_path))
    headings = [line for line in stated.text if line.endswith(":")]
    assert headings == ["LICENSES/MIT.txt:", "docs/extra.txt:", "docs/terms.txt:", "COPYINGFiles: *.md:", "NOTICE:"]
    assert not [line for line in stated.text if "\n" in line]
    assert stated.notices == ("2020 Ann",)


def test_copyright_context_formats_dep5(tmp_path: Path) -> None:
    """Notices are the Copyright field's lines, else the authors or the maintainer alone (no year: none is known);
    the text's empty lines are " ."; without any text, a sentence says where the license is."""
    stated = StatedLicense("MIT", ("2020 Ann", "2021 Bob"), ("MIT License", "", "Permission."), authors="Carol",
                           upstream_name="Shop.io")
    context = copyright_context("shop", "Packager <p@example.org>", stated, "service")
    assert context["upstream_name"] == "Shop.io"
    assert context["copyright_holders"] == "2020 Ann\n 2021 Bob"
    assert context["license_text"] == " MIT License\n .\n Permission."
    bare = copyright_context("shop", "Packager <p@example.org>", StatedLicense(), "service")
    assert bare["copyright_holders"] == "Packager <p@example.org>"
    assert bare["license_text"] == " See the license of the upstream project."


def test_notices_without_the_word_copyright_are_notices(tmp_path: Path) -> None:
    """gunicorn's LICENSE (in every service's venv) puts the years first, "2009-2026 (c) Benoît Chesneau"; others
    write "(c) 2015 Ann". The license's own "(c)" items and years in its sentences are not notices."""
    stated = project(tmp_path, "", {
        "LICENSE": "2009-2026 (c) Benoît Chesneau <benoitc@gunicorn.org>\n"
                   "2009-2015 (c) Paul J. Davis <paul.joseph.davis@gmail.com>\n\n(c) 2015 Ann\n\n"
                   "Permission is hereby granted, free of charge, to any person\n"
                   "(c) the name of the author may not be used, as of 2019.\n"})
    assert stated.notices == ("2009-2026 (c) Benoît Chesneau <benoitc@gunicorn.org>",
                              "2009-2015 (c) Paul J. Davis <paul.joseph.davis@gmail.com>", "2015 Ann")


def test_a_notice_takes_the_lines_it_goes_on_to(tmp_path: Path) -> None:
    """moin's notice ends "see" with its URL below, FlaskBB's "See AUTHORS" with "for more details." below: each
    is one notice; Trac's "All rights reserved." and the license's first sentence are not part of theirs."""
    stated = project(tmp_path, "", {
        "LICENSE": "Copyright (c) 2006-2024 The MoinMoin development team, see\nhttps://moinmo.in/MoinCoreTeamGroup\n"
                   "\nCopyright (c) 2013-2018 by the FlaskBB Team  and contributors. See AUTHORS\nfor more details.\n"
                   "Copyright (C) 2003-2023 Edgewall Software\nAll rights reserved.\n\n"
                   "Copyright (c) 2020 Ann\nPermission is hereby granted, free of charge, to any person\n"})
    assert stated.notices == ("2006-2024 The MoinMoin development team, see https://moinmo.in/MoinCoreTeamGroup",
                              "2013-2018 by the FlaskBB Team and contributors. See AUTHORS for more details.",
                              "2003-2023 Edgewall Software", "2020 Ann")



def test_an_sdist_without_a_notice_states_no_year_of_its_build_date(tmp_path: Path) -> None:
    """A hatchling sdist (every file dated 2020-02-02, the build's SOURCE_DATE_EPOCH) whose license carries no
    notice: debian/copyright names its authors and no year, since nobody stated one."""
    sdist = tmp_path / "calendar-1.51"
    (sdist / "calendar").mkdir(parents=True)
    (sdist / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n\n'
        '[project]\nname = "calendar"\nversion = "1.51"\nlicense = {file = "LICENSE"}\n'
        'authors = [{name = "Nicco Kunzmann", email = "nicco@example.org"}]\n')
    (sdist / "PKG-INFO").write_text("Metadata-Version: 2.4\nName: calendar\nVersion: 1.51\n")
    (sdist / "LICENSE").write_text(GPL2_TEXT)  # the license's own notice, not the project's
    (sdist / "calendar" / "__init__.py").write_text("")
    hatchling_date = 1580601600  # 2020-02-02, hatchling's fixed time for the files of an sdist
    for path in sdist.rglob("*"):
        os.utime(path, (hatchling_date, hatchling_date))

    def not_git(argv: object, **_: object) -> Result:
        return Result(("git",), 128, "", "fatal: not a git repository")

    assert source_date_epoch(sdist, {}, not_git) == hatchling_date  # the date the build goes by
    stated = stated_license(read_pyproject(sdist))
    text = render_file(template_folder("debian_templates"), "copyright.j2",
                       copyright_context("calendar", "Packager <p@example.org>", stated, "service"))
    assert "\nCopyright: Nicco Kunzmann <nicco@example.org>\n" in text
    assert "2020" not in text
