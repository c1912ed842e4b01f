"""The workflow YAML as pydantic models, and a loader whose errors name the file, line and field.

A workflow lists its models, the code systems it uses, its nodes (a built-in agent or an
importable `module:callable`, with parameters checked by the agent's own model and optional
prompt overrides) and its edges (conditions, fan-out over a list in the state, loop bounds).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from medcoder import plugins
from medcoder.errors import MedcoderError

START, END = "START", "END"
_BUILTIN_DIR = Path(__file__).resolve().parent / "builtin"
# the comparison path's workflows (the model walking the tree, `agents.tree`), kept apart in `builtin/comparison/`
COMPARISON_DIR = "comparison"
COMPARISON = tuple(sorted(p.stem for p in (_BUILTIN_DIR / COMPARISON_DIR).glob("*.yaml")))
# the workflows shipped in the package, by file name (the current ones first, then the comparison ones, as
# `--help` lists them); a comparison workflow is named like any other (`-w icd10cm-tree`)
BUILTIN = (
    *sorted((p.stem for p in _BUILTIN_DIR.glob("*.yaml")), key=lambda n: (n.count("-"), n)),
    *COMPARISON,
)


class WorkflowError(MedcoderError):
    """A workflow that cannot be used; says which file, line and field."""

    def __init__(self, message: str, source: str = "<workflow>", line: int | None = None, field: str = "") -> None:
        self.source, self.line, self.field = source, line, field
        where = f"{source}:{line}" if line else source
        super().__init__(f"{where}: {field + ': ' if field else ''}{message}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelRef(_Strict):
    """One model the workflow's agents may name."""

    model: str = Field("default", description="default, test, fake, a GGUF path, or a served model name")
    backend: Literal["llama_cpp", "http"] | None = None
    base_url: str | None = None
    n_ctx: int | None = Field(None, ge=256)
    n_gpu_layers: int | None = None
    temperature: float | None = Field(None, ge=0)
    seed: int | None = None


class KnowledgeSpec(_Strict):
    systems: list[str] = Field([plugins.DEFAULT_SYSTEM], description="code systems the workflow uses (installed ones)")

    @field_validator("systems")
    @classmethod
    def _installed(cls, value: list[str]) -> list[str]:
        # deferred: reading a spec must not load the knowledge layer
        from medcoder.knowledge.systems import system_class

        for name in value:
            system_class(name)  # an UnknownSystemError (a ValueError) names the installed ones
        return value

    retriever: Literal["hybrid", "lexical", "dense", "none"] = Field(
        "hybrid", description="entry points for the navigator: BM25 + vectors + Alphabetic Index, one of them, or none"
    )


class NodeSpec(_Strict):
    id: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    agent: str
    params: dict[str, Any] = {}
    prompts: dict[str, str] = {}


class EdgeSpec(_Strict):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    source: str = Field(alias="from")
    to: str
    fan_out: str | None = Field(None, description="send one branch per item of this state list")
    where: dict[str, Any] = Field({}, description="only items whose keys have these values")
    when: str | None = Field(
        None,
        description="take the edge only when this state key is non-empty; "
        "'otherwise' when no other edge from the node is taken",
    )
    max_loops: int | None = Field(None, ge=0, description="bound for an edge that closes a cycle")


class WorkflowSpec(_Strict):
    name: str
    description: str = ""
    version: int = 1
    models: dict[str, ModelRef] = {"default": ModelRef.model_validate({})}
    knowledge: KnowledgeSpec = KnowledgeSpec.model_validate({})
    max_note_chars: int = Field(200_000, ge=1)
    nodes: list[NodeSpec] = Field(min_length=1)
    edges: list[EdgeSpec] = Field(min_length=1)


def _line_of(root: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """The 1-based line of the YAML node at `loc` (the deepest one that exists)."""
    node, line = root, (root.start_mark.line + 1 if root is not None else None)
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            match = next(((k, v) for k, v in node.value if k.value == key), None)
            if match is None:
                break
            line = match[0].start_mark.line + 1
            node = match[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
            line = node.start_mark.line + 1
        else:
            break
    return line


def _field(loc: tuple[Any, ...]) -> str:
    out = ""
    for key in loc:
        out += f"[{key}]" if isinstance(key, int) else (f".{key}" if out else str(key))
    return out


def _check_graph(spec: WorkflowSpec) -> list[tuple[tuple[Any, ...], str]]:
    """Cross-field checks: unknown agents and parameters, dangling edges, unbounded cycles."""

    problems: list[tuple[tuple[Any, ...], str]] = []
    ids = [n.id for n in spec.nodes]
    for i, node in enumerate(spec.nodes):
        if node.id in (START, END) or ids.count(node.id) > 1:
            problems.append((("nodes", i, "id"), f"node id {node.id!r} is reserved or used twice"))
        try:
            from medcoder.agents import resolve_agent  # deferred: `medcoder --help` must not load the agents

            agent = resolve_agent(node.agent)
        except MedcoderError as exc:
            problems.append((("nodes", i, "agent"), str(exc)))
            continue
        try:
            params = agent.params.model_validate(node.params)
        except ValidationError as exc:
            for err in exc.errors():
                problems.append((("nodes", i, "params", *err["loc"]), f"{err['msg']} (agent {node.agent})"))
            params = None
        needed = (
            params.models_needed()
            if params is not None and hasattr(params, "models_needed")
            else [node.params.get("model", "default")]
        )
        for model in needed:
            if isinstance(model, str) and model not in spec.models:
                problems.append((("nodes", i, "params", "model"), f"no model named {model!r} in models"))
    import networkx as nx  # deferred: CLI start-up

    graph = nx.DiGraph()
    for j, edge in enumerate(spec.edges):
        for key, end in (("from", edge.source), ("to", edge.to)):
            if end not in ids and end not in (START, END):
                problems.append((("edges", j, key), f"edge to a missing node {end!r} (nodes: {', '.join(ids)})"))
        if edge.source == END or edge.to == START:
            problems.append((("edges", j), "edges cannot leave END or enter START"))
        graph.add_edge(edge.source, edge.to, index=j)
    if not any(e.source == START for e in spec.edges):
        problems.append((("edges",), "no edge from START"))
    for cycle in nx.simple_cycles(graph):
        pairs = list(zip(cycle, cycle[1:] + cycle[:1]))
        if not any(spec.edges[graph.edges[a, b]["index"]].max_loops is not None for a, b in pairs):
            order = {n: i for i, n in enumerate(ids)}
            back = max(pairs, key=lambda ab: order.get(ab[0], -1) - order.get(ab[1], -1))  # the edge that goes back
            j = graph.edges[back]["index"]
            start = cycle.index(back[1])
            cycle = cycle[start:] + cycle[:start]
            problems.append(
                (("edges", j), f"cycle {' -> '.join(cycle + cycle[:1])} has no bound: give one of its edges max_loops")
            )
    return problems


def parse_spec(text: str, source: str = "<workflow>") -> WorkflowSpec:
    """Parse and check workflow YAML; the first problem is raised as a `WorkflowError`."""
    try:
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise WorkflowError(
            f"not valid YAML: {getattr(exc, 'problem', exc)}", source, mark.line + 1 if mark else None
        ) from exc
    if not isinstance(data, dict):
        raise WorkflowError("a workflow is a YAML mapping with name, nodes and edges", source, 1)
    try:
        spec = WorkflowSpec.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(err["loc"])
        raise WorkflowError(err["msg"], source, _line_of(root, loc), _field(loc)) from None
    problems = _check_graph(spec)
    if problems:
        loc, message = problems[0]
        raise WorkflowError(message, source, _line_of(root, loc), _field(loc))
    return spec


def builtin_relpath(name: str) -> str:
    """A built-in workflow's file under `builtin/` (and under `workflows/`, its copy): `comparison/NAME.yaml` for
    the comparison path's workflows, `NAME.yaml` for the others."""
    return f"{COMPARISON_DIR}/{name}.yaml" if name in COMPARISON else f"{name}.yaml"


def builtin_path(name: str) -> Path:
    return Path(str(resources.files("medcoder.engine") / "builtin" / builtin_relpath(name)))


def load_spec(name_or_path: str | Path) -> tuple[WorkflowSpec, str]:
    """A built-in workflow by name, or a YAML file; returns the spec and its source text."""
    ref = str(name_or_path)
    path = builtin_path(ref) if ref in BUILTIN else Path(ref).expanduser()
    if not path.is_file():
        raise WorkflowError(f"no such workflow file (built-in: {', '.join(BUILTIN)})", ref)
    text = path.read_text(encoding="utf-8")
    return parse_spec(text, str(path)), text


def code_nodes(spec: WorkflowSpec) -> list[NodeSpec]:
    """The nodes that name a Python callable (`module:callable`) instead of an installed agent: a YAML with
    them is code, like a plugin, and runs whatever that callable does."""
    return [n for n in spec.nodes if ":" in n.agent]


def require_code_allowed(spec: WorkflowSpec, allow_code: bool) -> None:
    """A server or a batch runs only installed agents unless it was started with --allow-code."""
    nodes = code_nodes(spec)
    if nodes and not allow_code:
        named = ", ".join(f"{n.id}: {n.agent}" for n in nodes)
        raise WorkflowError(
            f"workflow {spec.name} runs Python code ({named}); a server or batch runs only "
            "installed agents unless started with --allow-code"
        )


def code_identity(ref: str) -> dict[str, str]:
    """Which code a `module:callable` node ran, for the audit trail: the module's file and its sha256."""
    import hashlib
    import importlib.util

    module = ref.partition(":")[0]
    try:
        found = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        found = None
    origin = found.origin if found and found.origin and found.origin not in ("built-in", "frozen") else ""
    digest = hashlib.sha256(Path(origin).read_bytes()).hexdigest() if origin and Path(origin).is_file() else ""
    return {"agent": ref, "module": module, "file": origin or (found.origin if found else "") or "", "sha256": digest}
