"""The state that flows through a coding workflow.

The state is a TypedDict of JSON values so LangGraph can checkpoint it to SQLite; each value is
the `to_state()` form of a typed record in `medcoder.records` (agents build the records, so a
misspelt field fails where it is made; `records.check_state` validates a whole state). Lists
that fan-out branches write to use additive reducers.
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
    sections: list[dict[str, Any]]  # records.Section
    entities: Annotated[list[dict[str, Any]], operator.add]  # records.Entity
    candidates: Annotated[dict[str, Any], merge_dicts]  # entity id -> [records.Candidate]
    proposals: Annotated[dict[str, Any], merge_dicts]  # entity id -> records.Proposal
    verdicts: Annotated[dict[str, Any], merge_dicts]  # entity id -> records.Verdict
    revisit: list[dict[str, Any]]  # records.Entity the critic sent back (feedback, avoid, round set)
    rounds: Annotated[int, operator.add]  # critic rounds taken
    errors: Annotated[list[dict[str, Any]], operator.add]  # {node, entity_id?, error}
    suggestions: list[dict[str, Any]]  # records.Suggestion: ranked codes below the threshold, for review
    result: dict[str, Any]
    visits: Annotated[dict[str, int], add_counts]  # node id -> times run (loop bounds)
