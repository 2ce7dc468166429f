"""A key rotation staged beside the repository's own key, and settled against the served key (microdeploy.rotation)."""

from __future__ import annotations

from pathlib import Path

from microdeploy.generations import Layout
from microdeploy.rotation import (
    REPLACES,
    retired_keyrings,
    settle_rotation,
    stage_own_key,
    stage_retired_keyring,
)
from microdeploy.signing import SigningKey
from tests.unit.test_repo import COLONS, FPR, FakeRunner, ok

OLD = "1" * 40
NEW = FPR


def tree(path: Path) -> dict[str, str]:
    """The files under `path` (relative name -> text), to compare directories by content."""
    return {str(p.relative_to(path)): p.read_text() for p in sorted(path.rglob("*")) if p.is_file()}


def staged_rotation(tmp_path: Path, *, marker: bool = True) -> Layout:
    """A repository whose own home holds OLD and that staged a rotation to NEW (home and retired keyring)."""
    layout = Layout(tmp_path / "repo")
    layout.gnupghome.mkdir(parents=True)
    (layout.gnupghome / "pubring.kbx").write_text("old key\n")
    staged = layout.state / "gnupg.new"
    staged.mkdir()
    (staged / "pubring.kbx").write_text("new key\n")
    if marker:
        (staged / REPLACES).write_text(f"{OLD}\n")
    layout.retired_keys.mkdir()
    (layout.retired_keys / f"{OLD}.gpg.new").write_text("keyring hosts have\n")
    return layout


def agents_stopped(runner: FakeRunner) -> list[str]:
    """The GnuPG homes whose gpg-agent the runner was asked to stop, in order."""
    return [env["GNUPGHOME"] for argv, env in runner.calls if argv[:1] == ["gpgconf"] and env is not None]


def test_stage_own_key_makes_the_new_key_beside_the_own_home_with_the_key_it_replaces(tmp_path: Path) -> None:
    """The new key is made in state/gnupg.new (0700), which names OLD; state/gnupg is not touched."""
    layout = Layout(tmp_path / "repo")
    layout.gnupghome.mkdir(parents=True)
    runner = FakeRunner({("gpg", "--batch", "--with-colons"): ok(COLONS)})
    key = stage_own_key(layout, OLD, runner)
    staged = layout.state / "gnupg.new"
    assert key == SigningKey(NEW, staged, created=True)
    assert (staged / REPLACES).read_text() == f"{OLD}\n" and staged.stat().st_mode & 0o777 == 0o700
    assert runner.calls[0][1] == {"GNUPGHOME": str(staged)}
    assert list(layout.gnupghome.iterdir()) == []


def test_the_staged_keyring_of_the_old_key_is_exported_before_a_kept_one(tmp_path: Path) -> None:
    """retired_keyrings takes this publish's staged OLD.gpg.new, and kept FPR.gpg files of earlier rotations."""
    layout = Layout(tmp_path / "repo")
    served = tmp_path / "served.gpg"
    served.write_text("keyring hosts have\n")
    layout.retired_keys.mkdir(parents=True)
    (layout.retired_keys / f"{OLD}.gpg").write_text("an older copy\n")
    (layout.retired_keys / f"{'2' * 40}.gpg").write_text("an earlier key\n")
    stage_retired_keyring(layout, OLD, served)
    assert retired_keyrings(layout, [OLD, "2" * 40, "3" * 40]) == [
        layout.retired_keys / f"{OLD}.gpg.new", layout.retired_keys / f"{'2' * 40}.gpg"]


def test_settle_with_the_old_key_served_removes_the_rotation_and_keeps_the_own_key(tmp_path: Path) -> None:
    """The served repository still signed with OLD: the staged home and keyring go, state/gnupg stays as it was."""
    layout = staged_rotation(tmp_path)
    inode = layout.gnupghome.stat().st_ino
    runner = FakeRunner()
    settle_rotation(layout, OLD, runner)
    assert sorted(p.name for p in layout.state.iterdir()) == ["gnupg", "retired-keys"]
    assert list(layout.retired_keys.iterdir()) == []
    assert layout.gnupghome.stat().st_ino == inode and tree(layout.gnupghome) == {"pubring.kbx": "old key\n"}
    assert agents_stopped(runner) == [str(layout.state / "gnupg.new")]


def test_settle_with_the_new_key_served_makes_it_the_own_key(tmp_path: Path) -> None:
    """The served repository signed with NEW: state/gnupg moves to gnupg.retired-OLD, the staged home takes its
    place (without its marker), and OLD's keyring is kept; both agents are stopped before the renames."""
    layout = staged_rotation(tmp_path)
    runner = FakeRunner()
    settle_rotation(layout, NEW, runner)
    assert sorted(p.name for p in layout.state.iterdir()) == ["gnupg", f"gnupg.retired-{OLD}", "retired-keys"]
    assert tree(layout.gnupghome) == {"pubring.kbx": "new key\n"}
    assert tree(layout.state / f"gnupg.retired-{OLD}") == {"pubring.kbx": "old key\n"}
    assert tree(layout.retired_keys) == {f"{OLD}.gpg": "keyring hosts have\n"}
    assert agents_stopped(runner) == [str(layout.state / "gnupg.new"), str(layout.gnupghome)]


def test_settle_finishes_a_rotation_killed_between_its_renames(tmp_path: Path) -> None:
    """state/gnupg already moved aside when the publish was killed: the staged home becomes it, the old one stays."""
    layout = staged_rotation(tmp_path)
    settle_rotation(layout, NEW, FakeRunner())
    layout.gnupghome.rename(layout.state / "gnupg.new")  # back to the moment between the two renames
    (layout.state / "gnupg.new" / REPLACES).write_text(f"{OLD}\n")
    settle_rotation(layout, NEW, FakeRunner())
    assert sorted(p.name for p in layout.state.iterdir()) == ["gnupg", f"gnupg.retired-{OLD}", "retired-keys"]
    assert tree(layout.gnupghome) == {"pubring.kbx": "new key\n"}
    assert tree(layout.state / f"gnupg.retired-{OLD}") == {"pubring.kbx": "old key\n"}


def test_a_staged_home_that_names_no_key_is_removed_whatever_is_served(tmp_path: Path) -> None:
    """A home staged without its marker (killed before it was written) never signed anything: it is removed."""
    layout = staged_rotation(tmp_path, marker=False)
    settle_rotation(layout, NEW, FakeRunner())
    assert not (layout.state / "gnupg.new").exists()
    assert tree(layout.gnupghome) == {"pubring.kbx": "old key\n"}


def test_settle_without_a_rotation_runs_nothing(tmp_path: Path) -> None:
    """Nothing staged (every publish but a rotating one): no gpg, nothing moved, kept keyrings untouched."""
    layout = Layout(tmp_path / "repo")
    layout.retired_keys.mkdir(parents=True)
    (layout.retired_keys / f"{OLD}.gpg").write_text("kept\n")
    runner = FakeRunner()
    settle_rotation(layout, NEW, runner)
    assert runner.calls == [] and tree(layout.retired_keys) == {f"{OLD}.gpg": "kept\n"}
