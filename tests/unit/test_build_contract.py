"""The names the build's Python side and the debian/ scripts share come from one module (fastpath/contract.py)."""

from __future__ import annotations

import json
from pathlib import Path

from microdeploy.build.fastpath import contract
from microdeploy.build.fastpath.installer import Installer
from microdeploy.resources import template_folder
from tests.unit.test_build_templates import render, render_rules

SHARED = [
    contract.UV_VAR, contract.LAYER_VAR, contract.LAYER_COPY_VAR, contract.PROJECT_WHEEL_VAR,
    contract.SHLIBDEPS_CACHE_VAR, contract.ELF_CACHE_VAR,
]


def test_no_template_spells_out_a_shared_name() -> None:
    """The templates take every variable and file name of the contract from the rendering context."""
    # VENV_DIR ("venv") is also the standard module make-venv runs: too common a word to look for.
    tools = [contract.PIP_TOOL, contract.PLAIN_PIP_TOOL]
    quoted = [f'"{name}"' for name in [contract.STATUS_FILE, contract.INSTALLED_FILE, *tools]]
    for template in sorted(template_folder("debian_templates").glob("*.j2")):
        text = template.read_text(encoding="utf-8")
        for name in [*SHARED, *quoted, *(f"--pip-tool {tool}" for tool in tools)]:
            assert name not in text, f"{template.name} spells out {name}"


def test_the_scripts_get_the_contract_rendered_in(tmp_path: Path) -> None:
    """make-venv, uv-pip, plain-pip, finalize-venv, cached-shlibdeps and rules carry the contract's values; rules,
    make-venv and finalize-venv name the installer's pip tool (uv's, or the venv's own pip's)."""
    debian = render(tmp_path)  # dh-virtualenv's pip
    scripts = {name: (debian / name).read_text() for name in
               ("make-venv", "uv-pip", "plain-pip", "finalize-venv", "cached-shlibdeps", "rules")}
    with_uv = {"rules": render_rules(tmp_path / "uv", "uv")}
    with_uv.update({name: (tmp_path / "uv" / "debian" / name).read_text() for name in ("make-venv", "finalize-venv")})
    assert f'LAYER_COPY_VAR = "{contract.LAYER_COPY_VAR}"' in scripts["make-venv"]
    assert f'STATUS_FILE = "{contract.STATUS_FILE}"' in scripts["uv-pip"]
    assert f"PROJECT_ALONE = {json.dumps(list(contract.PROJECT_ALONE))}" in scripts["uv-pip"]
    for name in ("uv-pip", "plain-pip", "make-venv", "finalize-venv"):
        assert f'INERT_SUFFIX = "{contract.INERT_SUFFIX}"' in scripts[name], name
    for name in ("uv-pip", "plain-pip", "make-venv"):
        assert contract.script_names()["MAKE_PTH_INERT"] in scripts[name], name
    assert f'SHLIBDEPS_CACHE_VAR = "{contract.SHLIBDEPS_CACHE_VAR}"' in scripts["cached-shlibdeps"]
    for rendered, tool in ((with_uv, contract.PIP_TOOL), (scripts, contract.PLAIN_PIP_TOOL)):
        assert f"--python $(CURDIR)/debian/make-venv --pip-tool {tool} " in rendered["rules"]
        assert f'PIP_TOOL = "{tool}"' in rendered["make-venv"]
        assert f'PIP_TOOL = "{tool}"' in rendered["finalize-venv"]
        assert (debian / tool).is_file(), "the pip tool make-venv installs is rendered under its name"
    assert f'PIP_TOOL = "{contract.PLAIN_PIP_TOOL}"' in scripts["plain-pip"]


def test_the_build_environment_uses_only_contract_names(tmp_path: Path) -> None:
    """Every variable the installer sets for dpkg-buildpackage is one the contract defines."""
    installer = Installer("uv", uv="/opt/uv", cache_root=tmp_path, layer=tmp_path / "layers" / "k")
    names = set(installer.environment(tmp_path / "wheel", tmp_path / "copy"))
    assert names == {*SHARED, contract.UV_CACHE_VAR, *contract.UV_INSTALL_SETTINGS}
