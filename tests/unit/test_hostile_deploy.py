"""Hostile values for `microdeploy deploy`: refused before any host is contacted (exit 2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.hostile import TEXT_OK, assert_refused, cases, ids, invoke, tree

FLAGS = {
    "NAME": ("orders-api", ()),
    "--version": ("1.4.0-1", ()),
    "--hosts": ("web1.example.org", ()),
    "--batch": ("1", ()),
    "--user": ("deploy", ()),
    "--port": ("8000", ()),
    "--health-path": ("/health", ()),
    "--max-failures": ("0", ()),
    "--health-timeout": ("60", ()),
    "--connect-timeout": ("10", ()),
    # Shell commands run on the hosts: quotes and `${...}` are shell, control characters are not.
    "--drain": ("systemctl stop haproxy", (*TEXT_OK, "dpkg")),
    "--undrain": ("systemctl start haproxy", (*TEXT_OK, "dpkg")),
    "--apt-source": ("/etc/apt/sources.list.d/orders-api.sources", ()),
}
CASES = cases(FLAGS)


@pytest.mark.parametrize(("flag", "kind", "value"), CASES, ids=ids(CASES))
def test_every_option_refuses_hostile_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flag: str, kind: str,
                                             value: str) -> None:
    """Exit 2 with one message; --dry-run never connects, and the hosts file and directory stay as they were."""
    monkeypatch.chdir(tmp_path)
    options = {"--version": "1.4.0-1", "--hosts": "web1.example.org", "--port": "8000", "--health-path": "/health"}
    name = value if flag == "NAME" else "orders-api"
    if flag != "NAME":
        options[flag] = value
    before = tree(tmp_path)
    result = invoke(["deploy", name, "--dry-run", *(item for pair in options.items() for item in pair)])
    assert_refused(result, before, tree(tmp_path))
