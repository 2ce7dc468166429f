"""debian/venv-overrides for the tags lintian gives the venv's scripts, web libraries, ELF files and gzip data:
one override per path that carries the tag, as lintian decides it (this machine's lintian and its tables), and no
blanket override in the static file.

The ELF files are made with binutils' `as` and `ld` (what dh_strip needs anyway), so their NEEDED entries are
real ones that readelf reads.
"""

from __future__ import annotations

import gzip
import os
import re
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from tests.debiandir import rendered_debian

VENV = "opt/venvs/orders-api"
SITE = f"{VENV}/lib/python3.11/site-packages"


@pytest.fixture
def debian(tmp_path: Path) -> Path:
    """debian/ rendered for orders-api, in tmp_path/tree."""
    return rendered_debian(tmp_path)


def overrides_of(debian: Path, package: Path, env: dict[str, str] | None = None) -> list[str]:
    """The override lines venv-overrides writes for `package` (its comments left out)."""
    subprocess.run([sys.executable, "-IS", str(debian / "venv-overrides"), str(package), "orders-api"],
                   env=env, check=True)
    written = package / "usr/share/lintian/overrides/orders-api"
    text = written.read_text() if written.exists() else ""
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def put(path: Path, content: bytes | str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    path.chmod(mode)


def test_static_overrides_are_package_level_only(debian: Path) -> None:
    """The static file overrides only the package-level tags: no override has a wildcard pointer (a blanket over
    the venv's lib/ or the whole venv); what the venv's files carry comes from venv-overrides, per path."""
    lines = [line for line in (debian / "orders-api.lintian-overrides").read_text().splitlines()
             if line and not line.startswith("#")]
    assert lines == ["orders-api: dir-or-file-in-opt", "orders-api: initial-upload-closes-no-bugs"]
    assert not [line for line in lines if re.search(r"\[[^]]*\*[^]]*\]|\s\*(\s|$)", line)]


def test_scripts_get_the_tags_lintian_gives_them(debian: Path, tmp_path: Path) -> None:
    """A module with a "#!" line to the venv's python and no executable bit is not executable and has an unusual
    interpreter (bin/python is a symbolic link, not a program the package ships); the venv's console scripts
    only the latter. Not: a "#!python" editor hint outside bin/, an interpreter lintian knows (sh, env python3)
    when executable, nor one the package ships as an executable file."""
    package = tmp_path / "pkg"
    python = f"#!/{VENV}/bin/python\n"
    (package / VENV / "bin").mkdir(parents=True)
    (package / VENV / "bin" / "python").symlink_to("/usr/bin/python3")
    put(package / VENV / "bin" / "gunicorn", python + "import gunicorn\n", 0o755)
    put(package / VENV / "bin" / "helper", "#!/usr/bin/env python3\n", 0o755)
    put(package / VENV / "bin" / "interp", b"\x7fELF\x02\x01\x01" + b"\0" * 64, 0o755)
    put(package / VENV / "bin" / "tool", f"#!/{VENV}/bin/interp -x\n", 0o755)
    put(package / SITE / "requests" / "certs.py", python + "import certifi\n")
    put(package / SITE / "hint.py", "#!python\n")
    put(package / SITE / "build.sh", "#!/bin/sh\nexit 0\n")
    put(package / SITE / "setup.py.in", "#!@PYTHON@\n")
    put(package / SITE / "ok.sh", "#!/bin/sh\n", 0o755)
    assert overrides_of(debian, package) == [
        f"orders-api: script-not-executable [{SITE}/build.sh]",
        f"orders-api: script-not-executable [{SITE}/requests/certs.py]",
        f"orders-api: unusual-interpreter /{VENV}/bin/python [{VENV}/bin/gunicorn]",
        f"orders-api: unusual-interpreter /{VENV}/bin/python [{SITE}/requests/certs.py]",
    ]


def test_web_libraries_get_the_package_lintian_asks_for(debian: Path, tmp_path: Path) -> None:
    """Paths that lintian's own table (read from its Embedded check) matches name the package it asks to use;
    Bootstrap's only with its content check; Doxygen's jQuery and an app's own script are left alone."""
    package = tmp_path / "pkg"
    static = package / SITE / "app" / "static"
    put(static / "js" / "jquery-3.6.0.min.js", "/*! jQuery v3.6.0 */\n")
    put(static / "js" / "jquery.form.js", "(function(){})();\n")
    put(static / "css" / "normalize.css", "html{line-height:1.15}\n")
    put(static / "js" / "bootstrap.min.js", "var Carousel = function () {};\n")
    put(static / "css" / "bootstrap.min.css", ".btn{display:inline-block}\n")
    put(static / "js" / "app.js", "console.log('hi');\n")
    put(static / "api" / "jquery.js", "/*! jQuery */\n")
    put(static / "api" / "doxygen.css", "body{}\n")
    assert overrides_of(debian, package) == [
        f"orders-api: embedded-javascript-library please use libjs-normalize [{SITE}/app/static/css/normalize.css]",
        f"orders-api: embedded-javascript-library please use libjs-bootstrap [{SITE}/app/static/js/bootstrap.min.js]",
        f"orders-api: embedded-javascript-library please use libjs-jquery [{SITE}/app/static/js/jquery-3.6.0.min.js]",
        f"orders-api: embedded-javascript-library please use libjs-jquery-form [{SITE}/app/static/js/jquery.form.js]",
    ]


def shared_objects(work: Path) -> dict[str, Path]:
    """Shared objects made by binutils: none needing anything, one needing libpython only, one libc too."""
    work.mkdir()
    empty = work / "empty.o"
    subprocess.run(["as", "-o", str(empty), "/dev/null"], check=True)
    made = {}
    for name, soname in (("libpython", "libpython3.11.so.1.0"), ("libc", "libc.so.6")):
        made[name] = work / f"{name}.so"
        subprocess.run(["ld", "-shared", "-soname", soname, "-o", str(made[name]), str(empty)], check=True)
    for name, needs in (("bare", []), ("no-libc", ["libpython"]), ("with-libc", ["libpython", "libc"])):
        made[name] = work / f"{name}.so"
        subprocess.run(["ld", "-shared", "-o", str(made[name]), str(empty), "--no-as-needed",
                        *[str(made[each]) for each in needs]], check=True)
    # As dh_strip leaves them.
    subprocess.run(["strip", "--strip-unneeded", *map(str, made.values())], check=True)
    return made


def test_shared_objects_get_the_prerequisite_tags_lintian_gives_them(debian: Path, tmp_path: Path) -> None:
    """An extension module that needs no library lacks prerequisites; one that needs libpython but not libc is not
    linked against libc (wherever it is in the venv); one that needs libc, a module named libc*, a relocatable
    object, and the NEEDED entries remembered by the ELF file's bytes at the next build."""
    made = shared_objects(tmp_path / "elf")
    package = tmp_path / "pkg"
    put(package / SITE / "numpy" / "_core" / "_simd.cpython-311-x86_64-linux-gnu.so", made["bare"].read_bytes())
    put(package / SITE / "PIL" / "_imaging.cpython-311-x86_64-linux-gnu.so", made["no-libc"].read_bytes())
    put(package / VENV / "lib" / "helper.so", made["no-libc"].read_bytes())
    put(package / SITE / "PIL" / "_webp.cpython-311-x86_64-linux-gnu.so", made["with-libc"].read_bytes())
    put(package / SITE / "compat" / "libc-shim.so", made["no-libc"].read_bytes())
    put(package / SITE / "compat" / "empty.o", (tmp_path / "elf" / "empty.o").read_bytes())
    # One that cached-strip gave its bytes back (strip would have left it unloadable): its symbol table is there.
    subprocess.run(["ld", "-shared", "-o", str(tmp_path / "elf" / "openblas.so"), str(tmp_path / "elf" / "empty.o"),
                    "--no-as-needed", str(made["libc"])], check=True)
    put(package / SITE / "numpy.libs" / "libscipy_openblas64_.so", (tmp_path / "elf" / "openblas.so").read_bytes())
    env = {**os.environ, "MICRODEPLOY_ELF_CACHE": str(tmp_path / "cache")}
    expected = [
        f"orders-api: library-not-linked-against-libc [{VENV}/lib/helper.so]",
        f"orders-api: library-not-linked-against-libc [{SITE}/PIL/_imaging.cpython-311-x86_64-linux-gnu.so]",
        f"orders-api: shared-library-lacks-prerequisites [{SITE}/numpy/_core/_simd.cpython-311-x86_64-linux-gnu.so]",
        f"orders-api: unstripped-binary-or-object [{SITE}/numpy.libs/libscipy_openblas64_.so]",
    ]
    assert overrides_of(debian, package, env) == expected
    (package / "usr").rename(tmp_path / "first-usr")
    no_readelf = tmp_path / "bin"
    put(no_readelf / "readelf", "#!/bin/sh\nexit 7\n", 0o755)
    assert overrides_of(debian, package, {**env, "PATH": f"{no_readelf}:{os.environ['PATH']}"}) == expected


def test_gzip_data_compressed_after_the_changelog_carries_its_time(debian: Path, tmp_path: Path) -> None:
    """gzip data whose header time is later than the installed changelog's latest entry gets the override with
    that time, as lintian prints it; earlier data and data without a time get none."""
    package = tmp_path / "pkg"
    changelog = (debian / "changelog").read_bytes()
    put(package / "usr/share/doc/orders-api/changelog.Debian.gz", gzip.compress(changelog, mtime=0))
    put(package / SITE / "botocore" / "data" / "s3" / "service-2.json.gz", gzip.compress(b"{}", mtime=1767225601))
    put(package / SITE / "botocore" / "data" / "old.json.gz", gzip.compress(b"{}", mtime=1767225600))
    put(package / SITE / "dateutil" / "zoneinfo.tar.gz", gzip.compress(b"tar", mtime=0))
    assert overrides_of(debian, package) == [
        f"orders-api: package-contains-timestamped-gzip 2026-01-01T00:00:01 "
        f"[{SITE}/botocore/data/s3/service-2.json.gz]",
    ]


def test_a_file_named_gz_that_gzip_does_not_read_is_broken_gz_as_gzip_test_says(debian: Path, tmp_path: Path) -> None:
    """joblib's test pickles are zlib data under a .gz name: `gzip --test` fails them, so lintian says broken-gz.
    So it does for a truncated member and for junk after one; not for whole members (two of them, or with the
    trailing zeros gzip takes: asked of gzip itself), or for a name not ending in .gz. The verdicts are
    remembered by the files' bytes and gzip's version for the next build, which asks gzip nothing."""
    package = tmp_path / "pkg"
    data = package / SITE / "joblib" / "test" / "data"
    whole = gzip.compress(b"pickle" * 1000, mtime=0)
    put(data / "compressed_pickle_py27_np17.gz", zlib.compress(b"pickle" * 1000))
    put(data / "truncated.gz", whole[:-6])
    put(data / "junk-after.GZ", whole + b"junk\n")
    put(data / "two-members.gz", whole + gzip.compress(b"more", mtime=0))
    put(data / "zero-padded.gz", whole + b"\0" * 8)
    put(data / "pickle.pkl.gzip", zlib.compress(b"pickle"))  # not a .gz name
    expected = [
        f"orders-api: broken-gz [{SITE}/joblib/test/data/{name}]"
        for name in ("compressed_pickle_py27_np17.gz", "junk-after.GZ", "truncated.gz")
    ]
    env = {**os.environ, "MICRODEPLOY_ELF_CACHE": str(tmp_path / "cache")}
    assert overrides_of(debian, package, env) == expected
    (package / "usr").rename(tmp_path / "first-usr")
    passing_gzip = tmp_path / "bin"
    put(passing_gzip / "gzip", "#!/bin/sh\nexit 0\n", 0o755)
    assert overrides_of(debian, package, {**env, "PATH": f"{passing_gzip}:{os.environ['PATH']}"}) == expected
    # Another gzip (by its package's version) is asked again.
    (package / "usr").rename(tmp_path / "second-usr")
    put(passing_gzip / "dpkg-query", "#!/bin/sh\necho 1.99-1\n", 0o755)
    assert overrides_of(debian, package, {**env, "PATH": f"{passing_gzip}:{os.environ['PATH']}"}) == []
    for name in ("compressed_pickle_py27_np17.gz", "junk-after.GZ", "truncated.gz"):
        assert subprocess.run(["gzip", "--test", str(data / name)], capture_output=True).returncode != 0
    for name in ("two-members.gz", "zero-padded.gz"):
        assert subprocess.run(["gzip", "--test", str(data / name)], capture_output=True).returncode == 0


def test_a_wheels_static_program_gets_the_static_and_embedded_library_tags_lintian_gives_it(
    debian: Path, tmp_path: Path
) -> None:
    """pypandoc-binary's pandoc: an executable linked statically (ET_EXEC, no NEEDED entry) is a
    statically-linked-binary, and a library whose strings it holds is embedded in it although its name is no
    library's. Not: one that needs libc (lintian's hardening check has it: not position-independent), one named
    *-static, nor a position-independent one (ET_DYN)."""
    work = tmp_path / "elf"
    made = shared_objects(work)
    source = work / "zlib.s"
    source.write_text('.section .rodata\n.ascii "deflate 1.2.13 Copyright 1995-2022 Jean-loup Gailly and Mark Adler"\n')
    with_zlib = work / "with-zlib.o"
    subprocess.run(["as", "-o", str(with_zlib), str(source)], check=True)
    programs = {"static": [], "dynamic": ["--no-as-needed", str(made["libc"]),
                                         "-dynamic-linker", "/lib64/ld-linux-x86-64.so.2"]}
    for kind, options in programs.items():
        # No _start: ld warns and links all the same; nothing here ever runs.
        subprocess.run(["ld", "-e", "0", "-o", str(work / kind), str(with_zlib), *options], check=True)
    package = tmp_path / "pkg"
    put(package / SITE / "pypandoc" / "files" / "pandoc", (work / "static").read_bytes(), 0o755)
    put(package / SITE / "tool" / "bin" / "helper", (work / "dynamic").read_bytes(), 0o755)
    put(package / SITE / "tool" / "bin" / "busybox-static", (work / "static").read_bytes(), 0o755)
    put(package / SITE / "tool" / "bin" / "pie", made["with-libc"].read_bytes(), 0o755)
    assert overrides_of(debian, package) == [
        f"orders-api: embedded-library zlib [{SITE}/pypandoc/files/pandoc]",
        f"orders-api: embedded-library zlib [{SITE}/tool/bin/busybox-static]",
        f"orders-api: embedded-library zlib [{SITE}/tool/bin/helper]",
        f"orders-api: hardening-no-pie [{SITE}/tool/bin/helper]",
        f"orders-api: statically-linked-binary [{SITE}/pypandoc/files/pandoc]",
    ]


def hardening_variants(work: Path) -> dict[str, Path]:
    """ELF files that need libc, linked by binutils with and without RELRO and as executables (ET_EXEC) or shared
    objects, and two that need nothing (a shared object, a static program), by name."""
    made = shared_objects(work)
    interpreter = ["-dynamic-linker", "/lib64/ld-linux-x86-64.so.2"]
    links = {
        "exec": ["--no-as-needed", str(made["libc"]), *interpreter],
        "exec-norelro": ["-z", "norelro", "--no-as-needed", str(made["libc"]), *interpreter],
        "shared-norelro": ["-shared", "-z", "norelro", "--no-as-needed", str(made["libc"])],
        "shared": ["-shared", "-z", "relro", "--no-as-needed", str(made["libc"])],
        "shared-bare": ["-shared", "-z", "norelro"],
        "static": [],
    }
    for name, options in links.items():
        # No _start: ld warns and links all the same; nothing here ever runs.
        subprocess.run(["ld", "-e", "0", "-o", str(work / name), str(work / "empty.o"), *options], check=True,
                       capture_output=True)
    return {name: work / name for name in links}


@pytest.mark.parametrize(("architecture", "tags"), [
    ("amd64", {"exec": ["hardening-no-pie"], "exec-norelro": ["hardening-no-pie", "hardening-no-relro"],
               "shared-norelro": ["hardening-no-relro"]}),
    ("hppa", {}),  # lintian recommends neither pie nor relro there
])
def test_elf_files_linked_without_hardening_get_the_tags_lintian_gives_them(
    debian: Path, tmp_path: Path, architecture: str, tags: dict[str, list[str]]
) -> None:
    """apsw's sqlite tools: a program that needs libc, linked as a position-dependent executable (ET_EXEC), is
    hardening-no-pie; an ELF file that needs a library and has no GNU_RELRO segment is hardening-no-relro; both
    where lintian's table recommends pie and relro for the package's architecture. Not: a position-independent
    object with RELRO, a static program (statically-linked-binary's), nor a shared object that needs nothing."""
    package = tmp_path / "pkg"
    for name, path in hardening_variants(tmp_path / "elf").items():
        put(package / SITE / "apsw" / "sqlite_extra_binaries" / name, path.read_bytes(), 0o755)
    found = [line for line in overrides_of(debian, package, {**os.environ, "DEB_HOST_ARCH": architecture})
             if "hardening" in line]
    assert found == [f"orders-api: {tag} [{SITE}/apsw/sqlite_extra_binaries/{name}]"
                     for name, named in sorted(tags.items()) for tag in named]


def test_library_search_paths_of_the_wheels_build_machine_get_the_tags_lintian_gives_them(
    debian: Path, tmp_path: Path
) -> None:
    """shapely 2.2.0's _geos module keeps RUNPATH /usr/local/lib64 from its wheel's build: an absolute entry is a
    custom-library-search-path (as lintian writes it: canonical, with its section), a relative one a
    relative-library-search-path; $ORIGIN's entries and the folders lintian keeps for the package's own
    libraries are not, and the entries are remembered by the ELF file's bytes at the next build."""
    work = tmp_path / "elf"
    work.mkdir()
    empty = work / "empty.o"
    subprocess.run(["as", "-o", str(empty), "/dev/null"], check=True)
    made = {}
    for name, options in {
        "geos": ["--enable-new-dtags", "-rpath", "//usr//local/lib64/"],
        "mixed": ["--disable-new-dtags", "-rpath", "$ORIGIN/../shapely.libs:lib:/usr/lib/orders-api/private"],
        "origin": ["--enable-new-dtags", "-rpath", "${ORIGIN}/../numpy.libs"],
    }.items():
        made[name] = work / f"{name}.so"
        subprocess.run(["ld", "-shared", "-o", str(made[name]), str(empty), *options], check=True)
    package = tmp_path / "pkg"
    put(package / SITE / "shapely" / "_geos.cpython-311-x86_64-linux-gnu.so", made["geos"].read_bytes())
    put(package / SITE / "tool" / "_mixed.cpython-311-x86_64-linux-gnu.so", made["mixed"].read_bytes())
    put(package / SITE / "numpy" / "_core.cpython-311-x86_64-linux-gnu.so", made["origin"].read_bytes())
    env = {**os.environ, "MICRODEPLOY_ELF_CACHE": str(tmp_path / "cache")}
    expected = [
        f"orders-api: custom-library-search-path RUNPATH /usr/local/lib64 "
        f"[{SITE}/shapely/_geos.cpython-311-x86_64-linux-gnu.so]",
        f"orders-api: relative-library-search-path RPATH lib [{SITE}/tool/_mixed.cpython-311-x86_64-linux-gnu.so]",
    ]
    lines = [line for line in overrides_of(debian, package, env) if "search-path" in line]
    assert lines == expected
    (package / "usr").rename(tmp_path / "first-usr")
    no_readelf = tmp_path / "bin"
    put(no_readelf / "readelf", "#!/bin/sh\nexit 7\n", 0o755)
    env = {**env, "PATH": f"{no_readelf}:{os.environ['PATH']}"}
    assert [line for line in overrides_of(debian, package, env) if "search-path" in line] == expected


def test_files_that_start_like_shell_scripts_and_fail_the_shells_syntax_check_get_the_tag_lintian_gives_them(
    debian: Path, tmp_path: Path
) -> None:
    """oslo.config's bash completion template starts with "#!/bin/bash" and holds Python's {placeholders}: bash -n
    refuses it, executable or not, as dash -n refuses an array in a "#!/bin/sh" script, also through env. Not: a
    script the shell reads, the array under bash, a script that re-executes itself with another program within
    its first lines (directly, or through a variable and `exec true`), nor another shell's. What lintian 2.116
    says of these files, each."""
    files = {
        "bash-completion.template": ("#!/bin/bash completion for {scriptname}\n\n_{scriptname}(){{\n    local cur\n"
                                     "    COMPREPLY=()\n}}\ncomplete -F _{scriptname} {scriptname}\n"),
        "array.sh": "#!/bin/sh\na=(1 2)\n",
        "broken": '#!/bin/sh\nif __name__ == "__main__":\n    main()\n',
        "env-broken": "#!/usr/bin/env bash\nfi\n",
        "ok.sh": "#!/bin/sh\necho hi\n",
        "array.bash": "#!/bin/bash\na=(1 2)\n",
        "polyglot": '#!/bin/sh\nexec python3 "$0" "$@"\nif __name__ == "__main__":\n    main()\n',
        "background": "#!/bin/sh\nprog=$0;\nfoo $prog $@ &\nexec true\nif x\n",
        "zsh": "#!/bin/zsh\nfi\n",
    }
    package = tmp_path / "pkg"
    for name, text in files.items():
        put(package / SITE / "tool" / name, text, 0o755 if name == "broken" else 0o644)
    found = [line for line in overrides_of(debian, package) if "syntax" in line]
    assert found == [f"orders-api: shell-script-fails-syntax-check [{SITE}/tool/{name}]"
                     for name in ("array.sh", "bash-completion.template", "broken", "env-broken")]
