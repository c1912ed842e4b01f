"""The state a coding run's agents read and write: typed records, with reducers for fan-out branches.

`CodingState` is the pydantic schema LangGraph runs a workflow with (`engine/compiler.py`): every node
receives one and reads records by attribute (`state.entities[0].mention`). Fields that fan-out branches
write to have reducers. Checkpoints hold its JSON (`engine/state.py`); `migrate_state` brings the JSON of
an older version's state up to the records before it is validated.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict

from pydantic import BaseModel, ConfigDict, model_validator

from medcoder.records import Candidate, Entity, NodeError, Proposal, RunResult, Section, Suggestion, Verdict

STATE_VERSION = 2  # 1: the dict state (before typed records); 2: records


def merge_dicts(left: dict[str, Any] | None, right: dict[str, Any] | None) -> dict[str, Any]:
    """Reducer for dicts written by parallel branches: later keys win."""
    return {**(left or {}), **(right or {})}


def add_counts(left: dict[str, int] | None, right: dict[str, int] | None) -> dict[str, int]:
    """Reducer for per-node visit counters."""
    out = dict(left or {})
    for key, n in (right or {}).items():
        out[key] = out.get(key, 0) + n
    return out


def migrate_state(values: dict[str, Any]) -> dict[str, Any]:
    """An older version's state JSON in the current shape (the records then read it)."""
    if values.get("version", 1) >= STATE_VERSION:
        return values
    out = dict(values)
    result = out.get("result")
    if isinstance(result, dict):  # v1 gave a code whose entity was gone evidence without offsets
        codes = []
        for code in result.get("codes") or []:
            spans = [e for e in code.get("evidence") or [] if e.get("start") is not None]
            codes.append({**code, "evidence": spans})
        out["result"] = {**result, "codes": codes}
    out["version"] = STATE_VERSION
    return out


class CodingState(BaseModel):
    """Everything a run knows: the note, what each agent found, and the run's bookkeeping."""

    model_config = ConfigDict(extra="forbid")

    version: int = STATE_VERSION
    run_id: str = ""
    note: str = ""
    sections: list[Section] = []
    entities: Annotated[list[Entity], operator.add] = []
    candidates: Annotated[dict[str, list[Candidate]], merge_dicts] = {}  # entity id -> retrieval hits
    proposals: Annotated[dict[str, Proposal], merge_dicts] = {}  # entity id -> the code proposed for it
    verdicts: Annotated[dict[str, Verdict], merge_dicts] = {}  # entity id -> the critic's verdict
    revisit: list[Entity] = []  # entities the critic sent back (feedback, avoid, round set)
    rounds: Annotated[int, operator.add] = 0  # critic rounds taken
    errors: Annotated[list[NodeError], operator.add] = []
    suggestions: list[Suggestion] = []  # ranked codes below the threshold, for review
    result: RunResult | None = None
    visits: Annotated[dict[str, int], add_counts] = {}  # node id -> times run (loop bounds)
    item: Section | Entity | None = None  # what a fan-out branch works on (one section, one entity)

    @model_validator(mode="before")
    @classmethod
    def _migrate(cls, values: Any) -> Any:
        return migrate_state(values) if isinstance(values, dict) else values

    def entity(self, entity_id: str) -> Entity:
        """The extracted entity with this id."""
        return next(e for e in self.entities if e.id == entity_id)

    # agents written for the dict state of version 1 read `state["note"]`, `state.get("entities")`
    def __getitem__(self, key: str) -> Any:
        if key not in type(self).model_fields:
            raise KeyError(key)
        return getattr(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        value = getattr(self, key, None) if key in type(self).model_fields else None
        return default if value is None else value


def as_state(value: CodingState | dict[str, Any] | None) -> CodingState:
    """A node's input as a `CodingState`: a fan-out payload read back from an older checkpoint is JSON."""
    if isinstance(value, CodingState):
        return value
    return CodingState.model_validate(value or {})


class StateUpdate(TypedDict, total=False):
    """What a node returns: the fields it sets, as records (reducer fields are added to, not replaced)."""

    sections: list[Section]
    entities: list[Entity]
    candidates: dict[str, list[Candidate]]
    proposals: dict[str, Proposal]
    verdicts: dict[str, Verdict]
    revisit: list[Entity]
    rounds: int
    errors: list[NodeError]
    suggestions: list[Suggestion]
    result: RunResult
    visits: dict[str, int]
