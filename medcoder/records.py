"""The typed records a coding run passes between agents: sections, entities, candidates, proposals, verdicts,
suggestions, errors and the result.

They are what the workflow state (`engine.state.CodingState`) holds and what agents read by attribute; a
checkpoint stores each as its `to_state()` JSON, which `Model.model_validate` reads back (so a run
checkpointed by one version is read by the next). Agents build records instead of loose dicts: a misspelt
field is an error where it is made, not a missing key three nodes later. `CodingResult` is built from the
same records, with `Span` as the one evidence type.
"""

from __future__ import annotations

from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Assertion = str  # present | absent | possible | historical | family | conditional ...
Decision = Literal["accept", "reject", "revise"]  # the critic's verdict on a proposal


class CoderAction(str, Enum):
    """What a coder does to a code in review: the one vocabulary of review sessions, the chat, the web
    workspace and the audit trail (their JSON holds the values)."""

    ACCEPT = "accept"
    REJECT = "reject"
    ADD = "add"
    REPLACE = "replace"


class CodeStatus(str, Enum):
    """Where a code stands in review: proposed by medcoder, then accepted or rejected by the coder."""

    PROPOSED = "proposed"
    ACCEPTED = "accepted"
    REJECTED = "rejected"


CODER_ACTIONS = tuple(a.value for a in CoderAction)
CODE_STATUSES = tuple(s.value for s in CodeStatus)


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")

    def to_state(self) -> dict[str, Any]:
        """The JSON form kept in the run's state and checkpoints."""
        return self.model_dump(mode="json", exclude_none=True)


class Span(_Record):
    """A stretch of the note, by character offsets, with its text."""

    start: int = Field(ge=0)
    end: int = Field(ge=0)
    text: str


class Section(_Record):
    id: str = ""
    name: str
    title: str = ""
    start: int = Field(ge=0)
    end: int = Field(ge=0)
    header_start: int | None = None  # where the header line begins (the body starts at `start`)
    confidence: float | None = None


class Entity(_Record):
    """A codable mention the extractor found, with its evidence offsets and assertion."""

    id: str
    kind: str  # the entity kind a code system codes (CodeSystem.entity_kind): diagnosis, medication ...
    mention: str
    start: int = Field(ge=0)
    end: int = Field(ge=0)
    text: str = ""
    section: str = ""
    section_name: str = ""
    assertion: Assertion = "present"
    model_assertion: str | None = None
    assertion_rule: str | None = None
    laterality: str | None = None
    acuity: str | None = None
    type: str | None = None
    episode: str | None = None
    # set when the critic sends the entity back to be coded again
    feedback: str | None = None
    avoid: list[str] | None = None
    round: int | None = None


class Candidate(_Record):
    """A code retrieval offers for an entity, with the rankers that found it (`dense#2`)."""

    code: str
    label: str = ""
    score: float
    sources: list[str] = []


class Proposal(_Record):
    """The code an agent proposes for an entity (or, for the ranker, for the note), and how it got there."""

    entity_id: str
    code: str
    system: str
    label: str
    confidence: float = Field(ge=0, le=1)
    path: list[str] = []
    steps: list[dict[str, Any]] = []
    entry_points: list[str] | None = None
    round: int | None = None
    evidence: list[Span] | None = None
    sources: list[str] | None = None
    features: dict[str, float | None] | None = None
    ranker_probability: float | None = None
    decision: str | None = None  # what decided a ranked code (`ranking.decisions.DECISIONS`)


class Verdict(_Record):
    """What the critic (or the ranker's threshold) decided about a proposal, and why."""

    code: str
    system: str
    decision: Decision
    reasons: list[str] = []
    reminders: list[str] | None = None
    support: float | None = None
    tried: list[str] | None = None


class NodeError(_Record):
    """A step that failed for one section or entity while the run went on."""

    node: str
    error: str
    entity_id: str | None = None
    section: str | None = None
    salvaged: int | None = None  # entities read from a cut-off answer


class Suggestion(_Record):
    """A ranked code below the acceptance threshold, kept for a reviewer."""

    code: str
    system: str
    label: str
    confidence: float
    path: list[str] = []
    evidence: list[Span] = []
    sources: list[str] = []
    features: dict[str, float | None] = {}
    ranker_probability: float | None = None
    reason: str | None = None  # why a rule set it aside (a guideline, a drug's status), when one did
    decision: str | None = None


class Ranking(_Record):
    """Why a ranked code scored what it did: the sources that found it, its features and their weights."""

    sources: list[str] = []
    features: dict[str, float | None] = {}
    ranker_probability: float | None = None
    contributions: list[Any] = []
    decision: str | None = None  # a visit note's final decision: its probability is that decision's calibration


class CodedItem(_Record):
    """One code of the result: where it came from (evidence, entities, tree path) and why it stands."""

    code: str
    system: str
    label: str
    confidence: float
    evidence: list[Span] = []
    entity_ids: list[str] = []
    path: list[str] = []
    steps: list[dict[str, Any]] = []  # the navigator's choices or the ranker's contributions (JSON, for `why`)
    verdict: Verdict
    mention: str = ""
    ranking: Ranking | None = None


class Rejection(_Record):
    """A proposal the critic or a rule turned down, with its verdict."""

    code: str
    system: str
    entity_id: str
    verdict: Verdict


class RunResult(_Record):
    """What `finalize` makes of a run: accepted codes best first, the rejected, the suggestions for review."""

    codes: list[CodedItem] = []
    rejected: list[Rejection] = []
    suggestions: list[Suggestion] = []


class ReviewRow(_Record):
    """One code in a review: what medcoder proposed (or the coder added) and where the coder stands on it; the
    session, the chat, the web workspace and its API all show these rows."""

    code: str
    system: str
    label: str = ""
    confidence: float = 1.0
    status: CodeStatus = CodeStatus.PROPOSED
    reason: str = ""
    origin: Literal["medcoder", "coder"] = "medcoder"
    evidence: str = ""  # what the coder cited when adding the code


def auto_acceptable(probability: float, features: dict[str, Any], threshold: float | None, min_direct: int) -> bool:
    """The auto-accept policy: a ranked code may be accepted unseen at or above `threshold` when it was found as
    itself (not only through a parent code) by at least `min_direct` searches."""
    return threshold is not None and probability >= threshold and (features.get("direct") or 0) >= min_direct


def entity_query(entity: Entity) -> str:
    """What an entity is searched by: its mention, plus its type where the extractor gave one."""
    return " ".join(x for x in (entity.mention, entity.type or "") if x and x != "none").strip()


def to_json(value: Any) -> Any:
    """`value` with every record replaced by its JSON form (for checkpoints, audit events and exports)."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_none=True)
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    return value


RECORDS: dict[str, type[_Record]] = {
    "sections": Section,
    "entities": Entity,
    "candidates": Candidate,
    "proposals": Proposal,
    "verdicts": Verdict,
    "suggestions": Suggestion,
}


def check_state(state: Any) -> list[str]:
    """Problems with a run's state (a `CodingState` or its JSON) against the records: its JSON form is
    read back record by record (empty when every one validates)."""
    state = to_json(state)
    problems: list[str] = []

    def check(key: str, value: Any) -> None:
        try:
            RECORDS[key].model_validate(value)
        except ValueError as exc:
            problems.append(f"{key}: {exc}".splitlines()[0] + " " + str(exc).splitlines()[-1].strip())

    for key in ("sections", "entities", "suggestions"):
        for value in state.get(key) or []:
            check(key, value)
    for key in ("proposals", "verdicts"):
        for value in (state.get(key) or {}).values():
            check(key, value)
    for hits in (state.get("candidates") or {}).values():
        for value in hits:
            check("candidates", value)
    return problems
