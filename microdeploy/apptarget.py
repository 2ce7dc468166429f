"""The WSGI target (`app`): what gunicorn and Flask's FLASK_APP accept, parsed once, rendered quoted.

`module:name`, `module:factory()` and a factory called with literal
arguments, `module:factory("production", debug=False)`. Arguments are
parsed with `ast` and must be Python literals (strings, numbers, booleans,
None): gunicorn and Flask evaluate them the same way. The target is kept in
one canonical spelling, rendered with repr() of each argument, so every
place it is written (the unit's ExecStart, N-run's FLASK_APP) quotes the
same text.
"""

from __future__ import annotations

import ast
import re
import shlex
from dataclasses import dataclass

MODULE_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
# What ast.literal_eval returns: scalars and containers of them.
Literal = object


class AppTargetError(ValueError):
    """Why a string is not a WSGI target."""


@dataclass(frozen=True)
class AppTarget:
    """module:attribute, optionally called with literal arguments."""

    module: str
    attribute: str
    called: bool = False
    args: tuple[Literal, ...] = ()
    kwargs: tuple[tuple[str, Literal], ...] = ()

    def __str__(self) -> str:
        if not self.called:
            return f"{self.module}:{self.attribute}"
        arguments = [repr(arg) for arg in self.args] + [f"{key}={value!r}" for key, value in self.kwargs]
        return f"{self.module}:{self.attribute}({', '.join(arguments)})"


def parse_app(text: str) -> AppTarget:
    """Parse `module:name`, `module:factory()` or `module:factory(literal, key=literal)`."""
    module, colon, rest = text.partition(":")
    if not colon or not MODULE_RE.fullmatch(module):
        raise AppTargetError("it is not 'module:name' with a dotted module path")
    try:
        expression = ast.parse(rest.strip(), mode="eval").body
    except SyntaxError:
        raise AppTargetError(f"{rest!r} is not a name or a call") from None
    if isinstance(expression, ast.Name):
        return AppTarget(module, expression.id)
    if not isinstance(expression, ast.Call) or not isinstance(expression.func, ast.Name):
        raise AppTargetError(f"{rest!r} is not a name or a call of a name")
    args = tuple(_literal(node) for node in expression.args)
    kwargs = []
    for keyword in expression.keywords:
        if keyword.arg is None:
            raise AppTargetError("**arguments are not literals")
        kwargs.append((keyword.arg, _literal(keyword.value)))
    return AppTarget(module, expression.func.id, True, args, tuple(kwargs))


def _literal(node: ast.expr) -> Literal:
    if isinstance(node, ast.Starred):
        raise AppTargetError("*arguments are not literals")
    try:
        value = ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise AppTargetError(f"argument {ast.unparse(node)!r} is not a literal") from None
    return value


def systemd_quoted(word: str) -> str:
    """One word of a unit file's command line or setting, quoted: no specifier, variable or escape expands."""
    escaped = word.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%").replace("$", "$$")
    return f'"{escaped}"'


def shell_quoted(word: str) -> str:
    """One word of a POSIX shell script, quoted."""
    return shlex.quote(word)
