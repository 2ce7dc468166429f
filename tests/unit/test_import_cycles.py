"""microdeploy's modules import each other without cycles, also through imports inside functions."""

from __future__ import annotations

import ast
from pathlib import Path

import microdeploy

PACKAGE = Path(microdeploy.__file__).parent


def module_name(path: Path) -> str:
    """microdeploy.x.y for microdeploy/x/y.py (and for microdeploy/x/y/__init__.py)."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, known: set[str]) -> set[str]:
    """The microdeploy modules a module imports, wherever the import statement is, relative imports included."""
    # A relative import counts from the module's package: the package itself for an __init__.
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            found.add(module)
            found |= {f"{module}.{alias.name}" for alias in node.names}
    return {name for name in found if name in known}


def test_no_module_imports_itself_through_others() -> None:
    """Following the imports from any module never leads back to it (a package's __init__ counts as a module)."""
    paths = [path for path in PACKAGE.rglob("*.py") if "service_template" not in path.parts]
    known = {module_name(path) for path in paths}
    graph = {module_name(path): imported_modules(path, known) - {module_name(path)} for path in paths}
    # The graph holds the imports the check would follow: absolute ones, and the check package's relative ones.
    assert "microdeploy.errors" in graph["microdeploy.cli"]
    assert {"microdeploy.check.qa", "microdeploy.check.onhost"} <= graph["microdeploy.check"]
    cycles = []
    for start in sorted(graph):
        stack = [(start, [start])]
        seen = set()
        while stack:
            current, trail = stack.pop()
            for nxt in sorted(graph[current]):
                if nxt == start:
                    cycles.append(" -> ".join([*trail, start]))
                elif nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, [*trail, nxt]))
    assert not cycles, "import cycles:\n" + "\n".join(cycles)
