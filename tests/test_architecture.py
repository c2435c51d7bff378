"""The package's shape: no import circles, one declaration per format, small signatures."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "edgeport"


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Every edgeport module ``name`` imports at run time, at any level (functions included).
    Imports under ``if TYPE_CHECKING:`` never run and are left out."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def resolve(base: str) -> str | None:
        while base and base not in known:
            base = base.rpartition(".")[0]
        return base or None

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("edgeport"):
                    found.add(resolve(alias.name) or alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package
                for _ in range(node.level - 1):
                    base = base.rpartition(".")[0]
                base = f"{base}.{node.module}" if node.module else base
            elif node.module and node.module.startswith("edgeport"):
                base = node.module
            else:
                base = None
            if base is not None:
                for alias in node.names:  # `from . import x` imports the submodule x when it is one
                    sub = f"{base}.{alias.name}"
                    found.add(sub if sub in known else (resolve(base) or base))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    found.discard(name)
    return found


def import_graph() -> dict[str, set[str]]:
    mods = _modules()
    known = set(mods)
    graph = {}
    for name, path in mods.items():
        deps = set()
        for dep in _imports(name, path, known):
            deps.add(dep)
            # importing a.b.c runs a and a.b first: those parents are edges too, except the
            # module's own parent packages, which are already running when it is imported
            parts = dep.split(".")
            for i in range(1, len(parts)):
                d = ".".join(parts[:i])
                if d in known and not name.startswith(d + "."):
                    deps.add(d)
        graph[name] = deps
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def strong(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    import sys

    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            strong(v)
    return out


def test_no_import_circles():
    cycles = find_cycles(import_graph())
    assert cycles == [], "import circles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_the_checker_sees_a_circle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycles(graph) == [["a", "b", "c"]]


def test_no_format_tests_outside_the_format_records():
    hits = [f"{p.relative_to(PACKAGE.parent)}:{i}" for p in PACKAGE.rglob("*.py")
            for i, line in enumerate(p.read_text().splitlines(), 1)
            if 'format == "' in line or "format == '" in line]
    assert hits == []


def test_no_function_takes_more_than_eight_parameters():
    wide = []
    for p in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                a = node.args
                params = [*a.posonlyargs, *a.args, *a.kwonlyargs]
                params = [x for x in params if x.arg not in ("self", "cls")]
                if len(params) > 8:
                    wide.append(f"{p.relative_to(PACKAGE.parent)}:{node.lineno} {node.name} ({len(params)})")
    assert wide == []


def test_public_names_are_not_shadowed_by_submodules():
    """``import edgeport.x`` sets the attribute ``edgeport.x`` to the module: a public name
    spelled like a submodule (``conversion_cache`` once was) then stops being the function."""
    import importlib
    import pkgutil
    import types

    import edgeport

    for info in pkgutil.walk_packages(edgeport.__path__, "edgeport."):
        if ".sample_models." in info.name or info.name.endswith("__main__"):
            continue
        importlib.import_module(info.name)
    shadowed = [n for n in edgeport.__all__ if isinstance(getattr(edgeport, n), types.ModuleType)]
    assert shadowed == []
