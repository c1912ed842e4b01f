"""Compile a `WorkflowSpec` into a LangGraph `StateGraph` with a SQLite checkpointer.

Plain edges become graph edges; edges with conditions or fan-out become one router per
source node that returns node names and `Send`s (one branch per item of a state list, the state
with `item` set). A node that closes a cycle is bounded by its edge's `max_loops`, counted in `visits`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from typing import Any, Callable

from langgraph.graph import END, START, StateGraph
from langgraph.types import Send

from medcoder.agents import AgentContext, resolve_agent
from medcoder.agents.base import NodeFn
from medcoder.engine.spec import END as SPEC_END
from medcoder.engine.spec import START as SPEC_START
from medcoder.engine.spec import EdgeSpec, WorkflowSpec
from medcoder.engine.state import CodingState, StateUpdate, as_state
from medcoder.records import to_json

logger = logging.getLogger(__name__)

_ENDPOINTS = {SPEC_START: START, SPEC_END: END}


def digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _wrap(node_id: str, fn: NodeFn, ctx: AgentContext) -> Callable[..., Any]:
    """Run a node with start/end events, its input digest, its timing and a visit count."""

    def run(given: CodingState | dict[str, Any]) -> StateUpdate:
        state = as_state(given)
        ctx.emit(
            "node_start",
            {
                "node": node_id,
                "input_digest": digest(state.model_dump(mode="json", exclude={"visits"}, exclude_none=True)),
                "item": getattr(state.item, "id", None),
            },
        )
        start = time.perf_counter()
        try:
            update = fn(state) or {}
        except Exception as exc:
            ctx.emit("node_error", {"node": node_id, "error": f"{type(exc).__name__}: {exc}"})
            raise
        ctx.emit(
            "node_end",
            {
                "node": node_id,
                "seconds": round(time.perf_counter() - start, 4),
                "output": to_json(update),
            },
        )
        return {**update, "visits": {node_id: 1}}

    run.__name__ = node_id
    return run


def _items(state: CodingState, edge: EdgeSpec) -> list[Any]:
    items = getattr(state, edge.fan_out or "", None) or []
    return [i for i in items if all(getattr(i, k, None) == v for k, v in edge.where.items())]


def _router(source: str, edges: list[EdgeSpec]) -> Callable[[CodingState], list[Any]]:
    regular = [e for e in edges if e.when != "otherwise"]
    fallback = [e for e in edges if e.when == "otherwise"]

    def route(state: CodingState) -> list[Any]:
        visits = state.visits.get(source, 0)
        out: list[Any] = []
        payload = state.model_copy(update={"visits": {}, "item": None})
        for edge in regular:
            if edge.max_loops is not None and visits > edge.max_loops:
                continue
            if edge.when and not getattr(state, edge.when, None):
                continue
            target = _ENDPOINTS.get(edge.to, edge.to)
            if edge.fan_out:
                items = _items(state, edge)
                if edge.when and not items:
                    continue
                # an empty list still runs the target once (item None), so the join after it happens
                out += [Send(target, payload.model_copy(update={"item": item})) for item in (items or [None])]
            else:
                out.append(target)
        if not out:
            out = [_ENDPOINTS.get(e.to, e.to) for e in fallback] or [END]
        return out

    return route


def build_graph(spec: WorkflowSpec, ctx_for: Callable[[str], AgentContext]) -> StateGraph[CodingState]:
    """The uncompiled graph; `ctx_for(node_id)` gives each node its context."""
    graph = StateGraph(CodingState)
    for node in spec.nodes:
        agent = resolve_agent(node.agent)
        params = agent.params.model_validate(node.params)
        ctx = ctx_for(node.id)
        if node.prompts:
            ctx.prompts = {**ctx.prompts, **node.prompts}
        graph.add_node(node.id, _wrap(node.id, agent.factory(params, ctx), ctx))
    by_source: dict[str, list[EdgeSpec]] = {}
    for edge in spec.edges:
        by_source.setdefault(edge.source, []).append(edge)
    for source, edges in by_source.items():
        src = _ENDPOINTS.get(source, source)
        simple = len(edges) == 1 and not edges[0].fan_out and not edges[0].when and edges[0].max_loops is None
        if simple:
            graph.add_edge(src, _ENDPOINTS.get(edges[0].to, edges[0].to))
        else:
            ends = {_ENDPOINTS.get(e.to, e.to) for e in edges}
            if not any(e.when == "otherwise" for e in edges) and all(e.when for e in edges):
                ends.add(END)  # nothing may match: the run ends there
            graph.add_conditional_edges(src, _router(source, edges), sorted(ends))
    return graph
