"""A restored dependency layer shares the files no build step writes with the cache by hard link, and only those."""

from __future__ import annotations

import errno
import logging
import os
import stat
from pathlib import Path

import pytest

from microdeploy.build.fastpath import jobs, layer
from microdeploy.build.fastpath.installer import Beside, Installer
from microdeploy.build.fastpath.layer import SHARED_MTIME_NS, Restored, is_shared, link_venv, mark_shared

SITE = Path("lib") / "python3.11" / "site-packages"
OLD_NS = 1_600_000_000 * 10**9


def write(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(mode)
    os.utime(path, ns=(OLD_NS, OLD_NS))


def saved_venv(root: Path) -> Path:
    """A venv as a layer saves it: modules, data, a script module, ELF and static libraries, RECORD, bin/,
    pyvenv.cfg."""
    venv = root / "venv"
    write(venv / SITE / "flask" / "app.py", b"x = 1\n", 0o664)
    write(venv / SITE / "flask" / "static" / "style.css", b"body {}\n", 0o600)
    write(venv / SITE / "tool" / "cli.py", b"#!/usr/bin/env python\nprint()\n", 0o644)
    write(venv / SITE / "tool" / "run.sh", b"echo hi\n", 0o755)
    write(venv / SITE / "lxml" / "etree.so", b"\x7fELF\x02\x01\x01", 0o644)
    write(venv / SITE / "numpy" / "lib" / "libnpymath.a", b"!<arch>\n/               0", 0o644)
    write(venv / SITE / "flask-3.0.dist-info" / "RECORD", b"flask/app.py,,\n", 0o644)
    write(venv / SITE / "flask-3.0.dist-info" / "METADATA", b"Name: flask\n", 0o644)
    write(venv / "bin" / "activate", b"VIRTUAL_ENV=/build\n", 0o644)
    write(venv / "pyvenv.cfg", b"home = /usr/bin\n", 0o644)
    (venv / "bin" / "python").symlink_to("/usr/bin/python3.11")
    (venv / "lib64").symlink_to("lib")
    return venv


SHARED = {SITE / "flask" / "app.py", SITE / "flask" / "static" / "style.css", SITE / "flask-3.0.dist-info" / "METADATA"}


def files(venv: Path) -> set[Path]:
    return {path.relative_to(venv) for path in venv.rglob("*") if path.is_file() and not path.is_symlink()}


def test_only_files_no_build_step_writes_are_marked_shared(tmp_path: Path) -> None:
    """Plain modules and data under lib/ get mode 0644 and the far mtime; scripts, ELF, archives, RECORD, bin/ keep
    theirs."""
    venv = saved_venv(tmp_path)
    mark_shared(venv)
    for relative in files(venv):
        status = os.lstat(venv / relative)
        assert is_shared(status) == (relative in SHARED), relative
        if relative not in SHARED:
            assert status.st_mtime_ns == OLD_NS, relative
    assert stat.S_IMODE(os.lstat(venv / SITE / "tool" / "run.sh").st_mode) == 0o755


def test_a_restore_links_the_shared_files_and_copies_the_rest(tmp_path: Path) -> None:
    """Shared files are the cache's inodes; every other file is a copy with the same bytes, mode and mtime."""
    venv = saved_venv(tmp_path / "layer")
    mark_shared(venv)
    restored = Restored()
    dest = tmp_path / "build" / "venv"
    dest.parent.mkdir()
    link_venv(venv, dest, restored)
    assert files(dest) == files(venv)
    for relative in files(venv):
        saved, copy = os.lstat(venv / relative), os.lstat(dest / relative)
        assert (saved.st_ino == copy.st_ino) == (relative in SHARED), relative
        assert (copy.st_mode, copy.st_mtime_ns) == (saved.st_mode, saved.st_mtime_ns), relative
        assert (dest / relative).read_bytes() == (venv / relative).read_bytes()
    assert os.readlink(dest / "bin" / "python") == "/usr/bin/python3.11"
    assert os.readlink(dest / "lib64") == "lib"
    assert sorted(restored.shared) == sorted(str(venv / relative) for relative in SHARED)
    assert restored.intact()


@pytest.mark.parametrize("spoil", ["write", "chmod", "touch"])
def test_a_step_that_changes_a_shared_file_is_noticed(tmp_path: Path, spoil: str) -> None:
    """Writing to, chmod-ing or touching a file through the build tree changes the cache's: not intact."""
    venv = saved_venv(tmp_path / "layer")
    mark_shared(venv)
    restored = Restored()
    link_venv(venv, tmp_path / "tree", restored)
    target = tmp_path / "tree" / SITE / "flask" / "app.py"
    if spoil == "write":
        target.write_bytes(b"x = 2\n")
    elif spoil == "chmod":
        target.chmod(0o755)
    else:
        os.utime(target)
    assert not restored.intact()


def test_deleting_from_the_tree_or_pruning_the_cache_keeps_it_intact(tmp_path: Path) -> None:
    """Unlinking a shared file in the tree (prune) leaves the cache's; a cache pruned meanwhile spoils nothing."""
    venv = saved_venv(tmp_path / "layer")
    mark_shared(venv)
    restored = Restored()
    link_venv(venv, tmp_path / "tree", restored)
    (tmp_path / "tree" / SITE / "flask" / "app.py").unlink()
    assert restored.intact() and is_shared(os.lstat(venv / SITE / "flask" / "app.py"))
    (venv / SITE / "flask" / "static" / "style.css").unlink()
    assert restored.intact()


def finished(tmp_path: Path, spoil: bool) -> tuple[Path, Beside]:
    cache_layer = tmp_path / "cache" / "layers" / "k"
    venv = saved_venv(cache_layer)
    mark_shared(venv)
    restored = Restored()
    link_venv(venv, tmp_path / "tree", restored)
    if spoil:
        (tmp_path / "tree" / SITE / "flask" / "app.py").write_bytes(b"spoiled\n")
    beside = Beside({}, layer=cache_layer, restored=restored)
    beside.finish()
    return cache_layer, beside


def test_the_layer_is_dropped_when_a_build_changed_a_shared_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """After such a build the layer is removed with a warning, so no later build restores the changed file."""
    with caplog.at_level(logging.WARNING):
        cache_layer, _ = finished(tmp_path / "spoiled", spoil=True)
    assert not cache_layer.exists()
    assert "the next build makes it again" in caplog.text
    kept, _ = finished(tmp_path / "clean", spoil=False)
    assert (kept / "venv" / SITE / "flask" / "app.py").read_bytes() == b"x = 1\n"


def copy_beside(tmp_path: Path, marked: bool = True, **options: object) -> tuple[Path, Restored]:
    cache_layer = tmp_path / "cache" / "layers" / "k"
    venv = saved_venv(cache_layer)
    if marked:
        mark_shared(venv)
    restored = Restored()
    installer = Installer("uv", uv="/opt/uv", cache_root=tmp_path / "cache", layer=cache_layer, **options)  # type: ignore[arg-type]
    job = installer.start_layer_copy(tmp_path / "copy", restored=restored)
    assert job is not None
    job.join(timeout=30)
    assert jobs.succeeded(tmp_path / "copy")
    return cache_layer / "venv", restored


def test_the_layer_copy_links_when_the_layer_holds_every_dependency(tmp_path: Path) -> None:
    """Static dependencies (nothing in the layer is upgraded in place): the copy beside the build links."""
    venv, restored = copy_beside(tmp_path, layer_has_dependencies=True)
    copy = tmp_path / "copy" / "venv" / SITE / "flask" / "app.py"
    assert os.lstat(copy).st_ino == os.lstat(venv / SITE / "flask" / "app.py").st_ino
    assert len(restored.shared) == len(SHARED)


def test_the_layer_copy_copies_when_the_project_install_resolves(tmp_path: Path) -> None:
    """Dependencies the layer key does not cover: uv may upgrade what the layer has, so nothing is shared."""
    venv, restored = copy_beside(tmp_path, layer_has_dependencies=False)
    copy = tmp_path / "copy" / "venv" / SITE / "flask" / "app.py"
    assert copy.read_bytes() == b"x = 1\n"
    assert os.lstat(copy).st_ino != os.lstat(venv / SITE / "flask" / "app.py").st_ino
    assert restored.shared == []


def test_the_layer_copy_copies_across_filesystems(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where a hard link cannot be made (EXDEV: the cache on another filesystem), the layer is copied whole."""

    def cross_device(source: str, target: str) -> None:
        raise OSError(errno.EXDEV, os.strerror(errno.EXDEV), source)

    monkeypatch.setattr(layer.os, "link", cross_device)
    venv, restored = copy_beside(tmp_path, layer_has_dependencies=True)
    copied = tmp_path / "copy" / "venv"
    assert files(copied) == files(venv)
    assert os.lstat(copied / SITE / "flask" / "app.py").st_ino != os.lstat(venv / SITE / "flask" / "app.py").st_ino
    assert restored.shared == [] and restored.intact()
    assert os.lstat(copied / SITE / "flask" / "app.py").st_mtime_ns == SHARED_MTIME_NS, "cp -a keeps the mark"


def test_a_first_build_moves_its_venv_into_the_cache_and_links_it_back(tmp_path: Path) -> None:
    """Saving with `restored`: the layer is the venv's own files, marked; the venv shares them, nothing copied twice."""
    venv = saved_venv(tmp_path / "build")
    inode = os.lstat(venv / SITE / "flask" / "app.py").st_ino
    restored = Restored()
    cache_layer = tmp_path / "cache" / "layers" / "k"
    layer.save_layer(venv, cache_layer, restored=restored)
    saved = cache_layer / "venv"
    assert files(saved) == files(venv)
    assert os.lstat(saved / SITE / "flask" / "app.py").st_ino == inode, "moved, not copied"
    for relative in files(saved):
        assert is_shared(os.lstat(saved / relative)) == (relative in SHARED), relative
        assert (os.lstat(venv / relative).st_ino == os.lstat(saved / relative).st_ino) == (relative in SHARED)
    assert len(restored.shared) == len(SHARED) and restored.intact()


def test_a_first_build_keeps_its_venv_when_another_build_saved_the_layer_first(tmp_path: Path) -> None:
    """The first writer wins: the venv is restored from the layer that is there, and that layer is unchanged."""
    cache_layer = tmp_path / "cache" / "layers" / "k"
    mark_shared(saved_venv(cache_layer))
    before = {relative: os.lstat(cache_layer / "venv" / relative).st_ino for relative in files(cache_layer / "venv")}
    venv = saved_venv(tmp_path / "build")
    restored = Restored()
    layer.save_layer(venv, cache_layer, restored=restored)
    assert {relative: os.lstat(cache_layer / "venv" / relative).st_ino
            for relative in files(cache_layer / "venv")} == before
    assert files(venv) == set(before)
    assert (venv / SITE / "flask" / "app.py").read_bytes() == b"x = 1\n"


def test_a_layer_saved_unmarked_is_copied_whole(tmp_path: Path) -> None:
    """A layer saved by debian/uv-pip or an older microdeploy shares nothing: the copy beside the build is cp's."""
    venv, restored = copy_beside(tmp_path, marked=False, layer_has_dependencies=True)
    copy = tmp_path / "copy" / "venv"
    assert files(copy) == files(venv)
    assert all(os.lstat(copy / relative).st_ino != os.lstat(venv / relative).st_ino for relative in files(venv))
    assert restored.shared == []
    assert not layer.is_marked(venv)
    mark_shared(venv)
    assert layer.is_marked(venv)
