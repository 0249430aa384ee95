"""adapter's modules import each other one way: no cycles, and configuration below everything else."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "adapter"


def module_names() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Every adapter module this one imports: at the top, inside functions, or for type checking only.

    `from package import module` counts as importing the module, not the package's __init__ (whose
    own imports are its own edges); a package's ancestors, imported implicitly, do not count.
    """
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
    return {target for target in found if target in modules and target != name}


def import_graph() -> dict[str, set[str]]:
    modules = module_names()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        for target in graph[todo.pop()] - seen:
            seen.add(target)
            todo.append(target)
    return seen


def test_the_graph_is_read_from_the_sources():
    graph = import_graph()
    # A few edges that must be there, so an empty or broken graph cannot pass the tests below.
    assert "adapter.config" in graph["adapter.providers.base"]
    assert "adapter.providers.statuspage.transport" in graph["adapter.providers.statuspage.components"]
    assert "adapter.store.db" in graph["adapter.store"]
    assert "adapter.providers" in graph["adapter.engine.notify"]


def test_cycles_are_found():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [["a", "b", "c"]]


def test_no_module_of_adapter_imports_itself_through_others():
    assert cycles(import_graph()) == []


def test_configuration_imports_no_provider_engine_store_or_web_module():
    graph = import_graph()
    for module in ("adapter.config", "adapter.catalog"):
        below = reachable(graph, module)
        assert not {m for m in below if m.startswith(("adapter.providers", "adapter.engine"))}, module
        assert not {m for m in below if m.startswith(("adapter.store", "adapter.web"))}, module


LAYERS_ABOVE_PROVIDERS = (
    "adapter.web",
    "adapter.engine",
    "adapter.store",
    "adapter.rendering",
    "adapter.dispatch",
)


def test_providers_are_the_bottom_layer():
    """web → engine → store/rendering → providers: a provider sends what it is given."""
    graph = import_graph()
    for module in (m for m in graph if m.startswith("adapter.providers")):
        above = {m for m in reachable(graph, module) if m.startswith(LAYERS_ABOVE_PROVIDERS)}
        assert not above, f"{module} imports {sorted(above)}"
