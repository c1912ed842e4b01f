"""Term agent: the whole input is one mention (a drug product's ingredients, a problem-list line).

For short texts that need no extraction: it hands the navigator or retriever one entity of the
kind its code system codes, spanning the whole text.
"""

from __future__ import annotations

from medcoder.agents.base import AgentContext, AgentParams, NodeFn, register_agent
from medcoder.knowledge.systems import DEFAULT_SYSTEM, SystemName, system_class
from medcoder.records import Entity
from medcoder.state import CodingState, StateUpdate


class TermParams(AgentParams):
    system: SystemName = DEFAULT_SYSTEM


@register_agent("term", TermParams)
def term(params: TermParams, ctx: AgentContext) -> NodeFn:
    """Make the whole (short) text one entity of the system's kind."""
    kind = system_class(params.system).entity_kind

    def run(state: CodingState) -> StateUpdate:
        text = state.note
        lo = len(text) - len(text.lstrip())
        mention = text.strip()
        entity = Entity(id="e0", kind=kind, mention=mention, start=lo, end=lo + len(mention), text=mention)
        ctx.emit("entities", {"entities": [{"id": "e0", "kind": kind, "mention": mention}]})
        return {"entities": [entity]}

    return run
