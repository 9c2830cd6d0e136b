"""The layout rules, checked on the code's own imports (top-level and deferred; ``if TYPE_CHECKING`` blocks
are annotations, not imports): no import circle, no probe module importing another probe module, probes in
their family's package,."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from gapdiag.probes.registry import registered_probes

PACKAGE = Path(__file__).resolve().parents[1] / "gapdiag"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(name: str) -> set[str]:
    """gapdiag modules that module ``name`` imports, wherever in the module the import statement is."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("gapdiag"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("gapdiag"):
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    out.add(sub if sub in MODULES else target)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return {m for m in out if m in MODULES and m != name}


GRAPH = {name: _imports(name) for name in MODULES}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in graph:
        if v not in index:
            strong(v)
    return found


def test_no_import_circle():
    assert _cycles(GRAPH) == []


def test_the_cycle_finder_finds_a_planted_circle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]


def test_no_probe_module_imports_another_probe_module():
    probe_modules = {
        cls.__module__ for cls in registered_probes().values() if cls.__module__.startswith("gapdiag.")
    }
    offenders = {m: sorted(GRAPH[m] & probe_modules) for m in probe_modules if GRAPH[m] & probe_modules}
    assert not offenders, offenders


def test_probes_live_in_their_family_package():
    for name, cls in registered_probes().items():
        if cls.__module__.startswith("gapdiag."):
            assert cls.__module__ == f"gapdiag.probes.{cls.family}.{name}", (name, cls.__module__)


def test_the_core_never_imports_a_probe_family():
    core = [m for m in MODULES if not m.startswith("gapdiag.probes")]
    families = ("gapdiag.probes.leakage", "gapdiag.probes.embedding", "gapdiag.probes.protocol")
    offenders = {m: sorted(i for i in GRAPH[m] if i.startswith(families)) for m in core}
    assert not {m: v for m, v in offenders.items() if v}


# Issue 8's limits: a module a newcomer can read in one sitting, a function that fits on a screen. A
# docstring (a public function's parameters and shapes) does not count against its function.
MAX_MODULE_LINES = 700
MAX_FUNCTION_LINES = 80


def _code_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines from ``def`` to the function's end, less its docstring."""
    length = node.end_lineno - node.lineno + 1
    if ast.get_docstring(node, clean=False) is not None:
        doc = node.body[0]
        length -= doc.end_lineno - doc.lineno + 1
    return length


@pytest.mark.parametrize("name", sorted(MODULES))
def test_size_limits(name):
    source = MODULES[name].read_text(encoding="utf-8")
    n_lines = source.count("\n")
    assert n_lines <= MAX_MODULE_LINES, f"{name} has {n_lines} lines: split it by responsibility"
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = _code_lines(node)
            assert length <= MAX_FUNCTION_LINES, f"{name}.{node.name} has {length} lines of code"
