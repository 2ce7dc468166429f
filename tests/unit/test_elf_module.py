"""debian/elf.py, which cached-strip and venv-overrides read ELF files with: 32- and 64-bit objects that binutils'
`as` and `ld` make, their symbol tables before and after `strip`, and a LOAD segment moved off the page grid."""

from __future__ import annotations

import importlib.util
import struct
import subprocess
from pathlib import Path
from types import ModuleType

import pytest

from tests.debiandir import rendered_debian

PAGE = 4096
# (as, ld) options of each ELF class.
CLASSES = {32: (["--32"], ["-m", "elf_i386"]), 64: ([], ["-m", "elf_x86_64"])}


@pytest.fixture
def elf(tmp_path: Path) -> ModuleType:
    """debian/elf.py as rendered for orders-api, imported."""
    path = rendered_debian(tmp_path) / "elf.py"
    spec = importlib.util.spec_from_file_location("rendered_elf", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def linked(tmp_path: Path, bits: int, *ld: str) -> Path:
    """An object of `bits` that defines f, linked by ld with `ld`'s options."""
    as_options, ld_options = CLASSES[bits]
    source, obj, out = tmp_path / "f.s", tmp_path / f"f{bits}.o", tmp_path / f"out{bits}-{len(ld)}"
    source.write_text(".globl f\nf: ret\n")
    subprocess.run(["as", *as_options, "-o", str(obj), str(source)], check=True)
    subprocess.run(["ld", *ld_options, *ld, "-o", str(out), str(obj)], check=True)
    return out


def moved_load(path: Path, bits: int) -> None:
    """Move the first LOAD segment's address by 8 bytes, off its offset's place on the page grid (what bookworm's
    strip does to a library auditwheel's patchelf gave a segment)."""
    data = bytearray(path.read_bytes())
    wide = bits == 64
    (phoff,) = struct.unpack_from("<Q" if wide else "<I", data, 32 if wide else 28)
    entsize, count = struct.unpack_from("<HH", data, 54 if wide else 42)
    for index in range(count):
        at = phoff + index * entsize
        if struct.unpack_from("<I", data, at)[0] == 1:
            address_at, layout = (at + 16, "<Q") if wide else (at + 8, "<I")
            (address,) = struct.unpack_from(layout, data, address_at)
            struct.pack_into(layout, data, address_at, address + 8)
            break
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("bits", sorted(CLASSES))
def test_the_type_of_a_library_and_of_an_executable(elf: ModuleType, tmp_path: Path, bits: int) -> None:
    """A shared object is ET_DYN, an executable that is not position-independent ET_EXEC; other bytes are none."""
    library, program = linked(tmp_path, bits, "-shared"), linked(tmp_path, bits, "-e", "f", "-static")
    assert elf.elf_type(library.read_bytes()[:64]) == elf.ET_DYN
    assert elf.elf_type(program.read_bytes()[:64]) == elf.ET_EXEC
    assert elf.elf_type(b"#!/bin/sh\n") is None


@pytest.mark.parametrize("bits", sorted(CLASSES))
def test_a_symbol_table_is_there_until_strip_removes_it(elf: ModuleType, tmp_path: Path, bits: int) -> None:
    """file(1)'s "not stripped": ld's output has a symbol table, strip's has none; a text file has none."""
    library = linked(tmp_path, bits, "-shared")
    assert elf.has_symbol_table(str(library))
    subprocess.run(["strip", str(library)], check=True)
    assert not elf.has_symbol_table(str(library))
    (tmp_path / "text").write_text("not an ELF file, but longer than an ELF header is: " * 4)
    assert not elf.has_symbol_table(str(tmp_path / "text"))


@pytest.mark.parametrize("bits", sorted(CLASSES))
def test_a_load_segment_off_the_page_grid_is_unloadable(elf: ModuleType, tmp_path: Path, bits: int) -> None:
    """ld lays every LOAD segment on the page grid; one whose address moved by 8 bytes is unloadable."""
    library = linked(tmp_path, bits, "-shared")
    assert not elf.unloadable(str(library), PAGE)
    moved_load(library, bits)
    assert elf.unloadable(str(library), PAGE)


def test_needed_entries_and_search_paths_come_from_readelf(elf: ModuleType, tmp_path: Path) -> None:
    """The NEEDED entries and each RPATH/RUNPATH entry of a library linked against another, with a run path."""
    base = linked(tmp_path, 64, "-shared", "-soname", "libbase.so.1")
    (tmp_path / "libbase.so").symlink_to(base)
    source = tmp_path / "g.s"
    source.write_text(".globl g\ng: call f@PLT\nret\n")
    subprocess.run(["as", "-o", str(tmp_path / "g.o"), str(source)], check=True)
    user = tmp_path / "libuser.so"
    subprocess.run(["ld", "-shared", "--enable-new-dtags", "-rpath", "/usr/local/lib64:$ORIGIN/../libs",
                    "-o", str(user), str(tmp_path / "g.o"), "-L", str(tmp_path), "-lbase"], check=True)
    dynamic = elf.dynamic_section(str(user))
    assert elf.needed(dynamic) == ["libbase.so.1"]
    assert elf.search_paths(dynamic) == ["RUNPATH:/usr/local/lib64", "RUNPATH:$ORIGIN/../libs"]
