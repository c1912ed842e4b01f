"""The state that flows through a coding workflow, and the typed records inside it.

The state is a TypedDict of plain JSON-ready values so LangGraph can checkpoint it to
SQLite; lists that fan-out branches write to use additive reducers.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict


def merge_dicts(left: dict[str, Any] | None, right: dict[str, Any] | None) -> dict[str, Any]:
    """Reducer for dicts written by parallel branches: later keys win."""
    return {**(left or {}), **(right or {})}


def add_counts(left: dict[str, int] | None, right: dict[str, int] | None) -> dict[str, int]:
    """Reducer for per-node visit counters."""
    out = dict(left or {})
    for key, n in (right or {}).items():
        out[key] = out.get(key, 0) + n
    return out


class CodingState(TypedDict, total=False):
    """Everything a run knows: the note, what each agent found, and the run's bookkeeping."""

    run_id: str
    note: str
    sections: list[dict[str, Any]]          # {id, name, start, end}
    entities: Annotated[list[dict[str, Any]], operator.add]    # {id, kind, mention, start, end, assertion, ...}
    candidates: Annotated[dict[str, Any], merge_dicts]         # entity id -> [{code, score, sources}]
    proposals: Annotated[dict[str, Any], merge_dicts]          # entity id -> {code, system, path, confidence}
    verdicts: Annotated[dict[str, Any], merge_dicts]           # entity id -> {decision, reasons, ...}
    revisit: list[dict[str, Any]]           # entities the critic sent back: {entity_id, reason}
    rounds: Annotated[int, operator.add]    # critic rounds taken
    errors: Annotated[list[dict[str, Any]], operator.add]      # {node, entity_id?, error}
    suggestions: list[dict[str, Any]]     # ranked codes below the threshold, kept for review
    result: dict[str, Any]
    visits: Annotated[dict[str, int], add_counts]              # node id -> times run (loop bounds)
