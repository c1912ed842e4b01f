"""The code's shape: no import cycles between medcoder's modules, every import inside a function says why,
and the layers do not cross (audit stores and reads, model backends know no code system)."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "medcoder"


def _modules() -> dict[str, Path]:
    out = {}
    for p in PACKAGE.rglob("*.py"):
        name = ".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = p
    return out


def _imports() -> tuple[dict[str, set[str]], list[tuple[str, int, str]]]:
    """Module-level imports between medcoder modules, and the imports made inside functions."""
    mods = _modules()
    top: dict[str, set[str]] = defaultdict(set)
    inner: list[tuple[str, int, str]] = []
    for name, path in mods.items():
        lines = path.read_text().splitlines()

        def visit(node: ast.AST, in_func: bool) -> None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.dump(child.test):
                    continue
                if isinstance(child, ast.ImportFrom) and (child.module or "").startswith("medcoder"):
                    subs = [f"{child.module}.{a.name}" for a in child.names]
                    targets = [t for t in subs if t in mods] or [child.module or ""]
                elif isinstance(child, ast.Import) and any(a.name.startswith("medcoder") for a in child.names):
                    targets = [a.name for a in child.names]
                else:
                    visit(child, in_func or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)))
                    continue
                if in_func:
                    here, above = lines[child.lineno - 1], lines[child.lineno - 2]
                    inner.append((f"{path.relative_to(PACKAGE.parent)}:{child.lineno}", child.lineno,
                                  here + "\n" + above))
                else:
                    top[name].update(t for t in targets if t in mods and t != name)

        visit(ast.parse(path.read_text()), False)
    return top, inner


def test_no_import_cycles() -> None:
    graph, _ = _imports()
    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def dfs(u: str) -> None:
        state[u] = 1
        stack.append(u)
        for v in sorted(graph.get(u, ())):
            if state.get(v) == 1:
                cycles.append(stack[stack.index(v):] + [v])
            elif v not in state:
                dfs(v)
        stack.pop()
        state[u] = 2

    for m in sorted(_modules()):
        if m not in state:
            dfs(m)
    assert cycles == [], "\n".join(" -> ".join(c) for c in cycles)


def test_every_import_inside_a_function_says_why() -> None:
    _, inner = _imports()
    silent = [where for where, _, text in inner if "deferred" not in text and "lazy" not in text]
    assert silent == [], silent


def test_layers_do_not_cross() -> None:
    graph, _ = _imports()
    backends = [m for m in graph if m.startswith("medcoder.llm")]
    assert not [(m, t) for m in backends for t in graph[m] if t.startswith(("medcoder.knowledge", "medcoder.agents"))]
    audit = [m for m in graph if m.startswith("medcoder.audit")]
    assert not [(m, t) for m in audit for t in graph[m] if t.startswith(("medcoder.engine", "medcoder.agents"))]
    evaluation = [m for m in graph if m.startswith("medcoder.evaluation")]
    assert not [(m, t) for m in evaluation for t in graph[m]
                if t in ("medcoder.agents.navigator", "medcoder.agents.retriever")]


def test_no_module_is_past_600_lines() -> None:
    long = {str(p.relative_to(PACKAGE.parent)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 600}
    assert long == {}
