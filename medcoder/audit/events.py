"""The catalogue of audit events and the one renderer every reader uses.

A run's record is a list of events, each of a kind listed here with what its payload holds and
how it reads as one line of the run's story. `medcoder audit show`, the HTML report and
`Session.why` all read events through `describe`, `tally` and `mentions`, so a new kind is
added in one place. Kinds a plugin agent emits that are not listed still render (as JSON).
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Protocol

# the engine's own kinds
RUN = "run"  # the store's first event of a run: what the run row claims, so the chain covers it
NODE_START, NODE_END, NODE_ERROR = "node_start", "node_end", "node_error"
MODEL_CALL, TOOL, ERROR = "model_call", "tool", "error"
# what agents report
SECTIONS, ENTITIES, DROPPED, PROPOSAL, CRITIC, RANKED, RESULT = (
    "sections",
    "entities",
    "dropped",
    "proposal",
    "critic",
    "ranked",
    "result",
)
LAYOUT = "layout"  # how the note's layout was read: visit, case report or conversation, and the problems it states
GUIDELINES = "guidelines"  # the outpatient guideline rules the ranker applied to its codes
DRUGS_RANKED = "drugs_ranked"  # the drug ranker's mentions, their status, and the ATC codes it kept or suggested
# what a review session records (`session_<turn>`)
SUSPECT_TEXT = "suspect_text"  # text in the note that instructs instead of describing (blanked for agents)
NOTE_READ = "note_read"  # how the note's bytes were read (encoding) and its size
SESSION_PREFIX = "session_"
DECISION = "session_decision"


class EventLike(Protocol):
    seq: int
    node: str
    kind: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class EventKind:
    """One kind of event: what it means, and how its payload reads as a line."""

    kind: str
    meaning: str
    line: Callable[[dict[str, Any]], str]
    codes: Callable[[dict[str, Any]], Iterable[str]] = field(default=lambda p: ())


def _model_call(p: dict[str, Any]) -> str:
    s = p.get("stats", {})
    kind = p.get("kind", "")
    if kind == "choose" and p.get("choices"):
        what = f"choose -> {p['choices'][0]['key']} (p={p['choices'][0]['probability']:.2f})"
    elif kind == "score":
        what = f"score {len(p.get('continuations') or [])} continuations"
    else:
        what = f"{kind} -> {str(p.get('text', ''))[:60]!r}"
    if p.get("error"):
        what += f" FAILED: {str(p['error'])[:80]}"
    return (
        f"{what}; {s.get('prompt_tokens', 0)} prompt tokens ({s.get('cached_tokens', 0)} reused), "
        f"{s.get('latency_s', 0.0):.2f}s"
    )


def _session(p: dict[str, Any], turn: str = "") -> str:
    action = p.get("action") or p.get("command") or turn
    if turn == "start" and isinstance(p.get("codes"), list):
        return f"review opened on {len(p['codes'])} proposed codes: {', '.join(p['codes'][:8])}".rstrip(": ")
    if turn == "export":
        return f"exported {', '.join(p.get('codes', [])) or 'no codes'} as {p.get('format', '?')}"
    code = p.get("code") or p.get("old") or ""
    reason = f" ({p['reason']})" if p.get("reason") else ""
    return f"{action} {code}{reason}".strip() or json.dumps(p, default=str)[:120]


CATALOGUE: dict[str, EventKind] = {
    e.kind: e
    for e in (
        EventKind(
            RUN,
            "the run opened: its workflow, the digests of its spec and note, its settings (the chain's first event)",
            lambda p: (
                f"workflow {p.get('workflow')}, spec {str(p.get('spec_hash', ''))[:12]}, "
                f"note {str(p.get('note_digest', ''))[:12]}"
            ),
        ),
        EventKind(
            NODE_START,
            "a node began, with the digest of its input",
            lambda p: f"input {p.get('input_digest', '')}" + (f", item {p['item']}" if p.get("item") else ""),
        ),
        EventKind(
            NODE_END,
            "a node finished: its time and what it wrote",
            lambda p: (
                f"{p.get('seconds', 0):.2f}s, wrote "
                f"{', '.join(k for k in p.get('output', {}) if k != 'visits') or 'nothing'}"
            ),
        ),
        EventKind(NODE_ERROR, "a node raised; the run stops there and can be resumed", lambda p: str(p.get("error"))),
        EventKind(MODEL_CALL, "one model call: prompt, answer, tokens, cache reuse, latency", _model_call),
        EventKind(
            TOOL,
            "a knowledge tool the node called, with its arguments and result",
            lambda p: (
                f"{p.get('name')}({json.dumps(p.get('args', {}), default=str)[:80]}) -> "
                f"{len(p.get('result') or [])} results"
            ),
            lambda p: [str(h.get("code")) for h in p.get("result") or [] if isinstance(h, dict)][:5],
        ),
        EventKind(
            ERROR, "an error a node recovered from (recorded, the run goes on)", lambda p: str(p.get("error", ""))[:160]
        ),
        EventKind(
            NOTE_READ,
            "how the note was read: its encoding (UTF-8, UTF-16 with a byte-order mark ...) and size",
            lambda p: f"read as {p.get('encoding')}, {p.get('chars', 0):,} characters",
        ),
        EventKind(
            SUSPECT_TEXT,
            "spans of the note the agents did not read: instructions, markup, hidden or written codes",
            lambda p: "; ".join(f"{s['start']}-{s['end']} {s['reason']}" for s in p.get("spans", [])),
        ),
        EventKind(
            SECTIONS,
            "the note's sections and how they were found",
            lambda p: f"{p.get('method')}: " + ", ".join(s["name"] for s in p.get("sections", [])),
        ),
        EventKind(
            LAYOUT,
            "how the note was read: visit note, case report or conversation, how each sentence's visit part was "
            "found, the problems stated, and the model's problem list when it was asked",
            lambda p: (
                f"{p.get('kind')} (P(visit) {p.get('visit_probability', 0):.2f}); parts by "
                + ", ".join(f"{k} {v}" for k, v in (p.get("sentences_by_source") or {}).items())
                + (f"; problems: {', '.join(p['problems'][:6])}" if p.get("problems") else "")
                + (f"; model listed: {', '.join(p['model_problems'][:6])}" if p.get("model_problems") else "")
            ),
        ),
        EventKind(
            ENTITIES,
            "mentions extracted, with their assertion",
            lambda p: (
                ", ".join(f"{e['mention']} ({e.get('assertion', 'present')})" for e in p.get("entities", [])) or "none"
            ),
        ),
        EventKind(DROPPED, "a mention dropped, and why", lambda p: f"{p.get('mention')}: {p.get('reason')}"),
        EventKind(
            PROPOSAL,
            "a code proposed for an entity and the path walked to it",
            lambda p: (
                f"{p['entity_id']} -> {p['code']} (confidence {p['confidence']:.2f}) via "
                f"{' > '.join(p.get('path', []))}"
            ),
            lambda p: [p["code"]],
        ),
        EventKind(
            CRITIC,
            "the critic's verdicts and what it sent back",
            lambda p: (
                "; ".join(f"{k}: {v['code']} {v['decision']}" for k, v in p.get("verdicts", {}).items())
                or "nothing new"
            ),
            lambda p: [v["code"] for v in p.get("verdicts", {}).values()],
        ),
        EventKind(
            RANKED,
            "the ranker's candidates, verifier use and what passed the threshold",
            lambda p: (
                f"{p.get('candidates')} candidates, {p.get('accepted')} accepted, "
                f"{p.get('suggestions')} suggestions; top "
                + ", ".join(f"{t['code']} {t['p']:.2f}" for t in p.get("top", [])[:5])
            ),
            lambda p: [t["code"] for t in p.get("top", [])],
        ),
        EventKind(
            GUIDELINES,
            "the outpatient guideline rules applied to the ranked codes (a symptom set aside for its diagnosis, a code "
            "made more specific, an uncertain diagnosis not coded ...), each with its reason and whether it was kept",
            lambda p: (
                "; ".join(
                    f"{a['code']} {a['rule']}"
                    + (f" from {a['from']}" if a.get("from") else "")
                    + (" (accepted)" if a.get("accepted") else "")
                    + (f": {str(a['reason'])[:60]}" if a.get("reason") else "")
                    for a in p.get("applied", [])
                )
                or "no rule applied"
            ),
            lambda p: [c for a in p.get("applied", []) for c in (a.get("code"), a.get("from")) if c],
        ),
        EventKind(
            DRUGS_RANKED,
            "the drug ranker's reading: each drug mention with its status (taking, stopped, allergy ...), route and "
            "section, the ATC codes with their probabilities, which were accepted, and the threshold",
            lambda p: (
                f"{len(p.get('mentions', []))} drug mentions, "
                f"{sum(1 for c in p.get('codes', []) if c.get('accepted'))} accepted at {p.get('threshold', 0):.2f}; "
                + (", ".join(f"{c['code']} {c['p']:.2f}" for c in p.get("codes", [])[:5]) or "no codes")
            ),
            lambda p: [c["code"] for c in p.get("codes", [])],
        ),
        EventKind(
            RESULT,
            "the codes the run returns",
            lambda p: ", ".join(c["code"] for c in p.get("codes", [])) or "no codes",
            lambda p: [c["code"] for c in p.get("codes", [])],
        ),
        EventKind(
            DECISION,
            "a reviewer's decision: accept, reject, add or replace, with the reason",
            _session,
            lambda p: [c for c in (p.get("code"), p.get("old")) if c],
        ),
    )
}


def kind_of(kind: str) -> EventKind | None:
    """The catalogue entry of a kind (session turns share one renderer)."""
    if kind in CATALOGUE:
        return CATALOGUE[kind]
    if kind.startswith(SESSION_PREFIX):
        turn = kind[len(SESSION_PREFIX) :]
        return EventKind(
            kind, "a review-session turn", lambda p: _session(p, turn), lambda p: [c for c in (p.get("code"),) if c]
        )
    return None


def sentence(ev: EventLike) -> str:
    """What an event says, as words (unknown kinds and odd payloads: their payload as JSON)."""
    entry = kind_of(ev.kind)
    try:
        return entry.line(ev.payload) if entry else json.dumps(ev.payload, default=str)[:120]
    except (KeyError, TypeError, ValueError, IndexError):  # an old or odd payload still prints
        return json.dumps(ev.payload, default=str)[:120]


def describe(ev: EventLike) -> str:
    """One line of the run's story for an event: sequence, node, kind and what it says."""
    return f"{ev.seq:4d} {ev.node or '-':10s} {ev.kind:11s} {sentence(ev)}"


def mentions(ev: EventLike, code: str) -> bool:
    """Whether an event is about `code` (what `Session.why` links to)."""
    entry = kind_of(ev.kind)
    if entry is None:
        return False
    try:
        return code in set(entry.codes(ev.payload))
    except (KeyError, TypeError, AttributeError):
        return False


@dataclass
class Tally:
    """A run's totals from its events: time per node, model calls and tokens, entities found."""

    node_seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    calls: int = 0
    prompt: int = 0
    cached: int = 0
    completion: int = 0
    model_seconds: float = 0.0
    entities: list[dict[str, Any]] = field(default_factory=list)

    def tokens(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "prompt": self.prompt,
            "cached": self.cached,
            "completion": self.completion,
            "model_seconds": self.model_seconds,
        }


def tally(events: Iterable[EventLike]) -> Tally:
    out = Tally()
    for ev in events:
        if ev.kind == NODE_END:
            out.node_seconds[ev.node] += ev.payload.get("seconds", 0.0)
        elif ev.kind == MODEL_CALL:
            s = ev.payload.get("stats", {})
            out.calls += 1
            out.prompt += s.get("prompt_tokens", 0)
            out.cached += s.get("cached_tokens", 0)
            out.completion += s.get("completion_tokens", 0)
            out.model_seconds += s.get("latency_s", 0.0)
        elif ev.kind == ENTITIES:
            out.entities += ev.payload.get("entities", [])
    return out
