"""The review loop as a LangGraph graph that waits for the coder with `interrupt()`.

Each coder decision resumes the graph with `Command(resume=turn)`; the graph applies it and
interrupts again. The checkpointer holds the state after every decision, so a session resumes by
its id in another process, exactly where it was.
"""

from __future__ import annotations

import operator
import time
from typing import Annotated, Any, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.types import interrupt

from medcoder.knowledge.systems import DEFAULT_SYSTEM
from medcoder.records import CoderAction, CodeStatus

_ACCEPTED, _REJECTED = CodeStatus.ACCEPTED.value, CodeStatus.REJECTED.value


class ReviewState(TypedDict, total=False):
    session_id: str
    codes: list[dict[str, Any]]  # {code, system, label, confidence, status, reason, origin}
    decisions: Annotated[list[dict[str, Any]], operator.add]
    done: bool


def apply_decision(codes: list[dict[str, Any]], turn: dict[str, Any]) -> list[dict[str, Any]]:
    """The code list after one (already validated) decision; the input is not changed."""
    out = [dict(c) for c in codes]
    action, code = turn["action"], turn.get("code", "")
    by_code = {(c["system"], c["code"]): c for c in out}
    system = turn.get("system", DEFAULT_SYSTEM)
    if action in (CoderAction.ACCEPT, CoderAction.REJECT):
        c = by_code[(system, code)]
        c["status"] = _ACCEPTED if action == CoderAction.ACCEPT else _REJECTED
        c["reason"] = turn.get("reason", "")
    elif action == CoderAction.ADD:
        entry = by_code.get((system, code))
        if entry is None:
            out.append(
                {
                    "code": code,
                    "system": system,
                    "label": turn.get("label", ""),
                    "confidence": 1.0,
                    "status": _ACCEPTED,
                    "reason": turn.get("reason", ""),
                    "origin": "coder",
                    "evidence": turn.get("evidence", ""),
                }
            )
        else:
            entry["status"], entry["reason"] = _ACCEPTED, turn.get("reason", "")
    elif action == CoderAction.REPLACE:
        old = by_code[(system, turn["old"])]
        old["status"], old["reason"] = (
            _REJECTED,
            f"replaced by {code}" + (f": {turn['reason']}" if turn.get("reason") else ""),
        )
        return apply_decision(out, {**turn, "action": CoderAction.ADD.value, "reason": f"replaces {turn['old']}"})
    return out


def _review(state: ReviewState) -> dict[str, Any]:
    turn = interrupt({"codes": state.get("codes", [])})
    if turn.get("action") == "done":
        return {"done": True, "decisions": [{**turn, "ts": time.time()}]}
    return {
        "codes": apply_decision(state.get("codes", []), turn),
        "decisions": [{**turn, "ts": time.time()}],
        "done": False,
    }


def _next(state: ReviewState) -> str:
    return END if state.get("done") else "review"


def build_review_graph(checkpointer: Any) -> Any:
    g = StateGraph(ReviewState)
    g.add_node("review", _review)
    g.add_edge(START, "review")
    g.add_conditional_edges("review", _next, ["review", END])
    return g.compile(checkpointer=checkpointer)
