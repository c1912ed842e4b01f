"""The review loop as a LangGraph graph that waits for the coder with `interrupt()`.

Each coder decision resumes the graph with `Command(resume=turn)`; the graph applies it and
interrupts again. The checkpointer holds the state after every decision, so a session resumes by
its id in another process, exactly where it was.
"""

from __future__ import annotations

import operator
import time
from typing import Annotated, Any

from langgraph.graph import END, START, StateGraph
from langgraph.types import interrupt
from pydantic import BaseModel, ConfigDict

from medcoder.knowledge.systems import DEFAULT_SYSTEM
from medcoder.records import CoderAction, CodeStatus, ReviewRow, to_json


class ReviewState(BaseModel):
    """A review's checkpointed state: the rows, the coder's decisions (JSON, as the audit trail keeps them)."""

    model_config = ConfigDict(extra="forbid")

    session_id: str = ""
    codes: list[ReviewRow] = []
    decisions: Annotated[list[dict[str, Any]], operator.add] = []
    done: bool = False


def apply_decision(codes: list[ReviewRow], turn: dict[str, Any]) -> list[ReviewRow]:
    """The rows after one (already validated) decision; the input is not changed."""
    out = [c.model_copy() for c in codes]
    action, code = turn["action"], turn.get("code", "")
    by_code = {(c.system, c.code): c for c in out}
    system = turn.get("system", DEFAULT_SYSTEM)
    if action in (CoderAction.ACCEPT, CoderAction.REJECT):
        c = by_code[(system, code)]
        c.status = CodeStatus.ACCEPTED if action == CoderAction.ACCEPT else CodeStatus.REJECTED
        c.reason = turn.get("reason", "")
    elif action == CoderAction.ADD:
        entry = by_code.get((system, code))
        if entry is None:
            row = ReviewRow(
                code=code,
                system=system,
                label=turn.get("label", ""),
                status=CodeStatus.ACCEPTED,
                reason=turn.get("reason", ""),
                origin="coder",
                evidence=turn.get("evidence", ""),
            )
            out.append(row)
        else:
            entry.status, entry.reason = CodeStatus.ACCEPTED, turn.get("reason", "")
    elif action == CoderAction.REPLACE:
        old = by_code[(system, turn["old"])]
        old.status = CodeStatus.REJECTED
        old.reason = f"replaced by {code}" + (f": {turn['reason']}" if turn.get("reason") else "")
        return apply_decision(out, {**turn, "action": CoderAction.ADD.value, "reason": f"replaces {turn['old']}"})
    return out


def _review(state: ReviewState) -> dict[str, Any]:
    turn = interrupt({"codes": to_json(state.codes)})
    if turn.get("action") == "done":
        return {"done": True, "decisions": [{**turn, "ts": time.time()}]}
    return {"codes": apply_decision(state.codes, turn), "decisions": [{**turn, "ts": time.time()}], "done": False}


def _next(state: ReviewState) -> str:
    return END if state.done else "review"


def build_review_graph(checkpointer: Any) -> Any:
    """The review loop, compiled on the coding workflow's checkpointer."""
    g = StateGraph(ReviewState)
    g.add_node("review", _review)
    g.add_edge(START, "review")
    g.add_conditional_edges("review", _next, ["review", END])
    return g.compile(checkpointer=checkpointer)
