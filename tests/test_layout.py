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


def _imports(deferred: bool = False) -> tuple[dict[str, set[str]], list[tuple[str, int, str]]]:
    """Imports between medcoder modules (module-level, or with `deferred` those inside functions too), and
    where the imports made inside functions are."""
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
                if not in_func or deferred:
                    top[name].update(t for t in targets if t in mods and t != name)

        visit(ast.parse(path.read_text()), False)
    return top, inner


def test_no_import_cycles() -> None:
    """Not even through an import deferred into a function: a deferred import hides a circle, it does not
    remove it."""
    graph, _ = _imports(deferred=True)
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


# The layer table, written once: which package (or top-level module) may import which. Read from the top:
# cli and web drive sessions, evaluation and batch; those drive the engine; the engine runs agents; agents
# use the ranking library; everything stands on knowledge, llm and audit, and on the shared modules.
SHARED = {"errors", "faults", "paths", "storage", "jsonl", "notetext", "words", "plugins", "settings", "privacy",
          "injection", "records", "result", "cues", "state", "progress"}
LAYERS: dict[str, set[str]] = {
    "__main__": {"cli"},
    "__init__": {"engine", "result"},
    "cli": {"web", "session", "evaluation", "batch", "engine", "ranking", "visit", "tools", "knowledge", "llm",
            "audit", "doctor"},
    "web": {"session", "evaluation", "engine", "tools", "knowledge", "llm", "audit"},
    "session": {"engine", "tools", "knowledge", "audit"},
    "evaluation": {"batch", "engine", "ranking", "visit", "knowledge", "llm", "audit"},
    "batch": set(),  # drives any workflow through its recipe: never the engine's modules
    "doctor": {"knowledge", "llm", "audit"},
    "engine": {"agents", "knowledge", "llm", "audit"},
    "agents": {"ranking", "visit", "knowledge", "llm"},
    "ranking": {"visit", "knowledge", "llm", "audit"},  # the library: no agent, engine or evaluation module
    # the visit-note package: how a visit is read (header sections, parts, conversation, the spans searched) and
    # coded (the ICD-10-CM guideline rules, the Alphabetic Index phrase reader, the assessed-problem coder, the
    # conventions, the visit features); its rules work on a `visit.rules.VisitCode`, never on the ranker's types
    "visit": {"knowledge"},
    "tools": {"visit", "knowledge"},  # `kb read` reads a phrase through the Index (`visit.index_phrase`)
    "knowledge": set(),
    "llm": set(),
    "audit": set(),
    "result": {"knowledge"},
    "testing": {"agents", "audit", "knowledge", "llm"},  # the contract suites plugin authors import
}


def _part(module: str) -> str:
    """The package (or top-level module) a module belongs to: `medcoder.ranking.coder` -> `ranking`."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _all_imports() -> dict[str, set[str]]:
    """Every import between medcoder's packages, at module level or deferred inside a function (a deferred
    import is still a dependency); imports only for type checking are left out."""
    out: dict[str, set[str]] = defaultdict(set)
    for name, path in _modules().items():
        src = _part(name) if name != "medcoder" else "__init__"

        def visit(node: ast.AST) -> None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.dump(child.test):
                    continue
                targets: list[str] = []
                if isinstance(child, ast.ImportFrom) and (child.module or "").startswith("medcoder"):
                    targets = ([f"medcoder.{a.name}" for a in child.names] if child.module == "medcoder"
                               else [child.module or ""])
                elif isinstance(child, ast.Import):
                    targets = [a.name for a in child.names if a.name.startswith("medcoder.")]
                out[src].update(t for t in map(_part, targets) if t != src)
                visit(child)

        visit(ast.parse(path.read_text()))
    return out


def crossings(imports: dict[str, set[str]]) -> list[tuple[str, str]]:
    """Imports the layer table does not allow."""
    bad = []
    for src, targets in sorted(imports.items()):
        allowed = LAYERS.get(src, set()) | SHARED if src not in SHARED else SHARED | LAYERS.get(src, set())
        bad += [(src, t) for t in sorted(targets) if t not in allowed]
    return bad


def test_every_package_is_in_the_layer_table() -> None:
    parts = {_part(m) if m != "medcoder" else "__init__" for m in _modules()}
    assert parts - set(LAYERS) - SHARED == set()


def test_layers_do_not_cross() -> None:
    assert crossings(_all_imports()) == []


def test_a_planted_crossing_is_caught() -> None:
    imports = _all_imports()
    imports["ranking"].add("agents")  # the library reaching up into the node that uses it
    imports["engine"].add("batch")
    assert crossings(imports) == [("engine", "batch"), ("ranking", "agents")]


def test_outer_layers_read_no_private_attribute() -> None:
    """Evaluation, batch, the CLI and the web read what the SDK offers, never `wf._retriever`."""
    found = []
    for name, path in _modules().items():
        if _part(name) not in ("evaluation", "batch", "cli", "web"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
                    and isinstance(node.value, ast.Name) and node.value.id not in ("self", "cls")):
                found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.value.id}.{node.attr}")
    assert found == []


def test_no_module_is_past_600_lines() -> None:
    long = {str(p.relative_to(PACKAGE.parent)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 600}
    assert long == {}


# The comparison path (issue 37): the model walking the tree (navigator, critic, term and retriever agents, the
# `*-tree` workflows), kept in `agents.tree` and `engine/builtin/comparison/` to compare against the ranker. What codes
# today imports nothing from it; only the evaluation strategies that exist to compare may name it.
COMPARISON = "medcoder.agents.tree"
COMPARISON_USERS = {"medcoder.evaluation.strategies"}


def comparison_importers(sources: dict[str, str]) -> list[str]:
    """`module:line` of every import of the comparison path from outside it (deferred or for type checking too)."""
    found = []
    for name, text in sorted(sources.items()):
        if name == COMPARISON or name.startswith(COMPARISON + ".") or name in COMPARISON_USERS:
            continue
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ImportFrom) and node.module:
                targets = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            if any(t == COMPARISON or t.startswith(COMPARISON + ".") for t in targets):
                found.append(f"{name}:{node.lineno}")
    return found


def comparison_agents() -> set[str]:
    """The agent kinds whose entry point lies in the comparison path."""
    import tomllib  # deferred: only these tests read pyproject.toml

    project = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["project"]
    points = project["entry-points"]["medcoder.agents"]
    return {kind for kind, ref in points.items() if ref.startswith(COMPARISON + ".")}


def current_workflow_files() -> list[Path]:
    """The workflows that code today: the built-ins and their copies in workflows/, outside `comparison/`."""
    return sorted([*(PACKAGE / "engine" / "builtin").glob("*.yaml"), *(PACKAGE.parent / "workflows").glob("*.yaml")])


def test_the_current_path_imports_nothing_from_the_comparison_path() -> None:
    sources = {name: path.read_text() for name, path in _modules().items()}
    assert comparison_importers(sources) == []
    planted = {**sources, "medcoder.agents.ranker": sources["medcoder.agents.ranker"]
               + "\nfrom medcoder.agents.tree.critic import critic\n",
               "medcoder.engine.x": "def f():\n    from medcoder.agents import tree\n"}
    assert [w.split(":")[0] for w in comparison_importers(planted)] == ["medcoder.agents.ranker", "medcoder.engine.x"]


def test_no_current_workflow_uses_a_comparison_agent() -> None:
    import yaml  # deferred: only this test reads workflow files

    kinds = comparison_agents()
    assert {"navigator", "critic", "term", "retriever"} <= kinds
    assert current_workflow_files()
    used = {f"{p.relative_to(PACKAGE.parent)}: {n['agent']}" for p in current_workflow_files()
            for n in yaml.safe_load(p.read_text())["nodes"] if n["agent"] in kinds}
    assert used == set()
    comparison = [*(PACKAGE / "engine" / "builtin" / "comparison").glob("*.yaml")]
    assert comparison and all({n["agent"] for n in yaml.safe_load(p.read_text())["nodes"]} & kinds
                              for p in comparison), "a comparison workflow that walks no tree belongs with the others"
