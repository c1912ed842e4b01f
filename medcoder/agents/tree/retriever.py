"""Retriever agent: hybrid search for every codable entity at once, so the navigator starts its
walk at the retrieved codes, deep in the tree, instead of at the root.

It runs once after extraction (not per entity) because the dense ranker embeds all mentions in
one batch; the candidates go into the state (`candidates`, by entity id) and into the audit trail.
"""

from __future__ import annotations

import logging
from typing import Literal

from pydantic import Field

from medcoder.agents.base import AgentContext, AgentParams, NodeFn, register_agent
from medcoder.knowledge.retrieval import make_retriever
from medcoder.knowledge.systems import DEFAULT_SYSTEM, SystemName, system_class
from medcoder.records import Candidate, entity_query
from medcoder.state import CodingState, StateUpdate

logger = logging.getLogger(__name__)


class RetrieverParams(AgentParams):
    systems: list[SystemName] = [DEFAULT_SYSTEM]
    mode: Literal["workflow", "hybrid", "lexical", "dense"] = Field(
        "workflow", description="the workflow's knowledge.retriever, or a ranker of its own"
    )
    k: int = Field(12, ge=1, le=50, description="candidates kept per entity")
    code_assertions: list[str] = ["present"]


@register_agent("retriever", RetrieverParams)
def retriever(params: RetrieverParams, ctx: AgentContext) -> NodeFn:
    """Find candidate codes for every entity the navigator will code."""
    search = ctx.retriever if params.mode == "workflow" else make_retriever(params.mode, ctx.kb)

    def run(state: CodingState) -> StateUpdate:
        if search is None:
            return {}
        out: dict[str, list[Candidate]] = {}
        for system in params.systems:
            kind = system_class(system).entity_kind
            wanted = [
                e
                for e in state.entities
                if e.kind == kind and e.assertion in params.code_assertions and entity_query(e)
            ]
            if not wanted:
                continue
            queries = [entity_query(e) for e in wanted]
            results = search.search_many(queries, system, params.k)
            for entity, query, hits in zip(wanted, queries, results):
                out[entity.id] = [Candidate.model_validate(h.to_dict()) for h in hits]
                ctx.emit(
                    "tool",
                    {
                        "name": "retrieve",
                        "args": {"text": query, "system": system},
                        "entity": entity.id,
                        "result": [c.to_state() for c in out[entity.id]],
                    },
                )
        return {"candidates": out}

    return run
