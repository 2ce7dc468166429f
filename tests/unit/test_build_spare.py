"""The ready copy of a dependency layer: taken by one build at a time, made again after it."""

from __future__ import annotations

import fcntl
import functools
import os
import threading
from pathlib import Path

from microdeploy.build.fastpath import jobs, spare
from microdeploy.build.fastpath.installer import Beside
from tests.unit.test_build_cache import install_beside


def saved_layer(root: Path) -> Path:
    """A layer directory with a small saved venv (a module and the interpreter symlink)."""
    layer = root / "layers" / "k"
    (layer / "venv" / "lib").mkdir(parents=True)
    (layer / "venv" / "lib" / "module.py").write_text("x = 1\n")
    (layer / "venv" / "bin").mkdir()
    (layer / "venv" / "bin" / "python").symlink_to("/usr/bin/python3.11")
    return layer


def test_refill_copies_the_saved_layer_once(tmp_path: Path) -> None:
    """The ready copy has the layer's files and symlinks; a second refill leaves it alone; no layer, no copy."""
    assert not spare.refill(tmp_path / "layers" / "missing")
    layer = saved_layer(tmp_path)
    assert spare.refill(layer)
    ready = spare.ready_venv(layer)
    assert (ready / "lib" / "module.py").read_text() == "x = 1\n"
    assert os.readlink(ready / "bin" / "python") == "/usr/bin/python3.11"
    (ready / "lib" / "module.py").write_text("marked\n")
    assert not spare.refill(layer)
    assert (ready / "lib" / "module.py").read_text() == "marked\n"
    assert [p.name for p in (layer / spare.READY).iterdir()] == ["venv"], "no staging directory is left"


def test_a_claimed_copy_is_used_once_and_never_by_two_builds(tmp_path: Path) -> None:
    """Nothing ready: None. Ready: the copy, and whatever is left of it afterwards is gone. Held: None."""
    layer = saved_layer(tmp_path)
    near = tmp_path / "build"
    near.mkdir()
    with spare.claimed(layer, near) as ready:
        assert ready is None
    spare.refill(layer)
    with open(layer / "ready.lock", "a") as other_build:
        fcntl.flock(other_build, fcntl.LOCK_EX)
        with spare.claimed(layer, near) as ready:
            assert ready is None
        fcntl.flock(other_build, fcntl.LOCK_UN)
    with spare.claimed(layer, near) as ready:
        assert ready == spare.ready_venv(layer)
    assert not spare.ready_venv(layer).exists()
    assert (layer / "venv" / "lib" / "module.py").is_file(), "the saved layer itself is untouched"


def test_the_layer_copy_installs_into_the_ready_copy_then_moves_it(tmp_path: Path) -> None:
    """With a ready copy, uv installs at its fixed path, the copy is moved to DIR/venv; a new one is made only
    after the binary, when the build no longer needs both cores."""
    layer = saved_layer(tmp_path / "cache")
    spare.refill(layer)
    (spare.ready_venv(layer) / "taken").write_text("this copy\n")
    argv, _ = install_beside(tmp_path, layer, layer_has_dependencies=True)
    assert argv[argv.index("--python") + 1] == str(spare.ready_venv(layer) / "bin" / "python")
    assert (tmp_path / "copy" / "venv" / "lib" / "module.py").read_text() == "x = 1\n"
    assert (tmp_path / "copy" / "installed").read_text() == "orders_api-1.0-py3-none-any.whl"
    assert (tmp_path / "copy" / "venv" / "taken").is_file()
    assert not spare.ready_venv(layer).exists(), "not made again while the build runs"
    beside = Beside({}, (), later=(functools.partial(spare.refill, layer),))
    beside.after_binary()
    beside.join()
    assert (spare.ready_venv(layer) / "lib" / "module.py").is_file()
    assert not (spare.ready_venv(layer) / "taken").exists(), "the next build gets a fresh copy"


def test_after_the_binary_the_staging_tree_goes_and_the_layer_gets_its_ready_copy(tmp_path: Path) -> None:
    """Beside.after_binary removes the package's staging directory and refills the layer's ready copy."""
    layer = saved_layer(tmp_path)
    staged = tmp_path / "tree" / "debian" / "orders-api"
    (staged / "opt" / "venvs").mkdir(parents=True)
    beside = Beside({}, (), staged=staged, later=(functools.partial(spare.refill, layer),))
    beside.after_binary()
    beside.join()
    assert not staged.exists()
    assert (spare.ready_venv(layer) / "lib" / "module.py").is_file()


def test_idle_work_runs_at_the_lowest_priority_on_its_own_thread() -> None:
    """start_idle's work runs at nice 19 on its own thread; the caller keeps its own priority."""
    seen: list[int] = []

    def later() -> None:
        seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))

    before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    jobs.start_idle("later", later).join(timeout=10)
    assert seen == [19]
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == before
