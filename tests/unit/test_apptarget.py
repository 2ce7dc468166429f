"""The WSGI target: gunicorn's forms parsed with ast, literal arguments only, quoted wherever it is written."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from microdeploy.apptarget import AppTarget, AppTargetError, parse_app, systemd_quoted
from microdeploy.cli import main


@pytest.mark.parametrize(
    ("text", "target"),
    [
        ("shop.wsgi:app", AppTarget("shop.wsgi", "app")),
        ("shop:create_app()", AppTarget("shop", "create_app", True)),
        ("shop.app:create_app('production', debug=False)",
         AppTarget("shop.app", "create_app", True, ("production",), (("debug", False),))),
        ('shop:make(1, 2.5, None, x="a\'b")', AppTarget("shop", "make", True, (1, 2.5, None), (("x", "a'b"),))),
        ("fava.application:create_app(['/var/lib/fava/main.beancount'], load=True)",
         AppTarget("fava.application", "create_app", True, (["/var/lib/fava/main.beancount"],), (("load", True),))),
    ],
)
def test_gunicorns_forms_are_accepted(text: str, target: AppTarget) -> None:
    """module:name, module:factory() and factories with literal arguments parse; str() is canonical."""
    assert parse_app(text) == target
    assert parse_app(str(target)) == target


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("no-colon", "not 'module:name'"),
        ("shop app:app", "not 'module:name'"),
        ("shop:", "is not a name or a call"),
        ("shop:create_app(os.environ)", "argument 'os.environ' is not a literal"),
        ("shop:create_app(*args)", "*arguments are not literals"),
        ("shop:create_app(**kw)", "**arguments are not literals"),
        ("shop:create_app({1: x})", "argument '{1: x}' is not a literal"),
        ("shop:obj.attr", "not a name or a call of a name"),
        ("shop:f()()", "not a name or a call of a name"),
        ("shop:__import__('os').system('x')", "not a name or a call of a name"),
    ],
)
def test_anything_else_is_refused_with_the_reason(text: str, reason: str) -> None:
    """Non-literal arguments, attribute chains and bad module paths are refused, saying why."""
    with pytest.raises(AppTargetError, match=None) as caught:
        parse_app(text)
    assert reason in str(caught.value)


def test_systemd_quoting_keeps_specifiers_variables_and_escapes_literal() -> None:
    """%, $, quotes and backslashes reach gunicorn as written."""
    assert systemd_quoted("""m:f('50%', "$HOME", 'a\\\\b')""") == '''"m:f('50%%', \\"$$HOME\\", 'a\\\\\\\\b')"'''


@pytest.mark.parametrize("app", ["shop:create_app(open('x'))", "shop:", "shop"])
def test_build_with_a_bad_app_exits_2_and_writes_nothing(tmp_path: Path, app: str) -> None:
    """`build --app` with a value gunicorn would not take: exit 2, a message naming it, no dist/."""
    project = tmp_path / "shop"
    (project / "shop").mkdir(parents=True)
    (project / "shop" / "__init__.py").write_text("def create_app(name=None):\n    pass\n")
    (project / "pyproject.toml").write_text('[project]\nname = "shop"\nversion = "1.0"\n')
    result = CliRunner().invoke(main, ["build", str(project), "--app", app])
    assert result.exit_code == 2, result.output
    assert f"invalid app {app!r} (from --app)" in result.output
    assert not (project / "dist").exists()
    assert sorted(path.name for path in project.iterdir()) == ["pyproject.toml", "shop"]


def test_rendered_unit_and_shell_word_quote_a_factory_with_arguments(tmp_path: Path) -> None:
    """The canonical target survives the unit's and the shell's quoting unchanged."""
    from microdeploy.build.debiandir.context import BuildFacts, debian_context
    from microdeploy.build.release.license import StatedLicense
    from microdeploy.config import validate

    app = """shop:create_app("it's 100% $real")"""
    config = validate({"name": ("shop", "test"), "app": (app, "--app")})
    facts = BuildFacts(upstream="1.0", version="1.0-1", python_minor="3.11", distribution="bookworm", epoch=0,
                       license=StatedLicense("MIT"))
    context = debian_context(config, facts)
    assert config.app == """shop:create_app("it's 100% $real")"""
    assert shlex.split(context["app_shell_word"]) == [config.app]
    assert context["app_exec_word"] == '''"shop:create_app(\\"it's 100%% $$real\\")"'''
