"""The four contracts: model backend, audit store, retriever, code system (see `medcoder.testing`)."""

from __future__ import annotations

import math
import re
from typing import Any, Callable, Literal

from pydantic import BaseModel

from medcoder.errors import MedcoderError
from medcoder.knowledge.retrieval import Retriever, SearchFilter
from medcoder.llm.base import LLM, CallRecord, Continuation


def _raises(exc: type[BaseException], pattern: str, fn: Callable[[], object]) -> None:
    """`fn()` must raise `exc` with a message matching `pattern`."""
    try:
        fn()
    except exc as caught:
        assert re.search(pattern, str(caught)), f"{exc.__name__} said {caught!r}, expected /{pattern}/"
        return
    raise AssertionError(f"expected {exc.__name__} /{pattern}/, nothing was raised")


# -- model backends ---------------------------------------------------------------------------------------


class Answer(BaseModel):
    """The structured answer the chat call asks for."""

    system: Literal["circulatory", "respiratory", "endocrine"]


CHAT = [{"role": "user", "content": "Which body system does type 2 diabetes belong to? Answer in JSON."}]
CONTEXT = "Note: the patient has type 2 diabetes and hypertension. She denies chest pain."
OPTIONS = [("E11.9", "Type 2 diabetes mellitus"), ("I10", "Essential hypertension"), ("S82.0", "Fracture of patella")]
CONTINUATIONS = [
    Continuation(" yes", "Code: E11.9 type 2 diabetes\nDocumented:"),
    Continuation(" no", "Code: E11.9 type 2 diabetes\nDocumented:"),
    Continuation(" yes", "Code: S82.0 fracture of patella\nDocumented:"),
]


def llm_scenario(llm: Any) -> dict[str, Any]:
    """The calls every backend must answer: structured chat, choose, score, judge (a replay backend can be
    recorded from this)."""
    return {
        "chat": llm.chat(CHAT, Answer, max_tokens=40),
        "choose": llm.choose(CONTEXT + "\nWhich code is documented?", OPTIONS),
        "score": llm.score(CONTEXT, CONTINUATIONS),
        "judge": llm.judge(CONTEXT, ["Is E11.9 documented?", "Is S82.0 documented?"]),
    }


def check_llm_backend(llm: LLM) -> None:
    """Identity, the four calls and their shapes, each call recorded once with who answered it, an empty score
    that costs nothing, and a node-bound handle that credits every call to its node."""
    from medcoder.agents import BoundLLM  # deferred: only this check needs the agents' handle

    assert isinstance(llm.name, str) and isinstance(llm.sha256, str) and llm.backend, "identity"
    assert llm.max_options >= 3, "max_options"
    seen: list[CallRecord] = []
    stop = llm.observe(seen.append)
    try:
        out = llm_scenario(llm)
    finally:
        stop()
    chat = out["chat"]
    assert isinstance(chat.parsed, Answer) and chat.record.kind == "chat" and chat.record.parsed is not None
    choose = out["choose"]
    assert sorted(c.key for c in choose.choices) == sorted(k for k, _ in OPTIONS), "choose keys"
    assert all(0 <= c.probability <= 1 for c in choose.choices)
    assert math.isclose(sum(c.probability for c in choose.choices), 1.0, abs_tol=0.02), "choose sums to 1"
    assert choose.record.kind == "choose"
    score = out["score"]
    assert len(score.logprobs) == len(CONTINUATIONS) and all(x <= 1e-6 for x in score.logprobs), "log-probs"
    assert score.record.kind == "score" and len(score.record.continuations) == len(CONTINUATIONS)
    judge = out["judge"]
    assert len(judge.log_odds) == 2 and all(0 <= p <= 1 for p in judge.p_yes), "judge"
    assert [r.kind for r in seen] == ["chat", "choose", "score", "score"], "each call recorded once"
    assert all(r.stats.model == llm.name and r.stats.backend for r in seen), "who answered"
    empty = llm.score(CONTEXT, [])
    assert empty.logprobs == [] and empty.record.scores == [], "an empty score is empty"
    credited: list[tuple[str, str]] = []
    bound = BoundLLM(llm, "verify", lambda node, record: credited.append((node, record.kind)))
    llm_scenario(bound)
    assert credited == [("verify", "chat"), ("verify", "choose"), ("verify", "score"), ("verify", "score")]
    assert bound.name == llm.name and bound.capabilities == llm.capabilities


# -- audit stores -----------------------------------------------------------------------------------------

LONG = "You are a careful medical coder. " * 20  # a prompt long enough to be stored once, by address


def record_run(store: Any, run_id: str = "r1", calls: int = 3) -> None:
    """A finished run of one node and `calls` model calls, as the engine writes it."""
    store.create_run(run_id, "wf", "name: wf", {"model": "fake"}, "the note text", True)
    store.append(run_id, "extract", "node_start", {"node": "extract"})
    for i in range(calls):
        messages = [{"role": "system", "content": LONG}, {"role": "user", "content": f"question {i}"}]
        schema = {"type": "object", "properties": {"a": {"type": "string"}}}
        store.append(
            run_id, "extract", "model_call", {"kind": "chat", "messages": messages, "schema": schema, "text": "{}"}
        )
    store.finish_run(run_id, "done", {"codes": []})


def check_audit_store(make_store: Callable[[], Any]) -> None:
    """A run reads back whole and in order, verifies, seals in a later event; unknown runs are clear errors.
    `make_store()` gives a new, empty store; it is closed at the end."""
    from medcoder.audit.store import AuditError  # deferred: the audit layer loads only for this check

    store = make_store()
    try:
        record_run(store)
        info = store.run("r1")
        assert info.status == "done" and info.note == "the note text" and info.n_events == 5, "run info"
        events = list(store.events("r1"))
        assert [e.seq for e in events] == list(range(5)) and events[0].kind == "run", "events in order"
        assert events[2].payload["messages"][0]["content"] == LONG, "long texts come back whole"
        assert events[2].payload["schema"]["properties"]["a"] == {"type": "string"}
        assert store.verify("r1").ok, "a fresh run verifies"
        assert [r.run_id for r in store.runs()] == ["r1"]
        store.append("r1", "session", "session_decision", {"action": "accept", "code": "E11.9"})
        assert store.verify("r1").ok and store.run("r1").n_events == 6, "a finished run's new event is sealed in"
        _raises(AuditError, "no run 'nope'", lambda: store.run("nope"))
        _raises(AuditError, "", lambda: store.append("nope", "n", "x", {}))
    finally:
        store.close()


# -- retrievers -------------------------------------------------------------------------------------------


def check_retriever(retriever: Retriever, onto: Any, queries: list[str]) -> None:
    """Top-k lists of existing codes, labelled and sourced, best first; `search` and `candidates` agree with
    `search_many`; the billable filter holds; an empty text is a clear error. `onto` is the code system."""
    system = type(onto).system
    lists = retriever.search_many(queries, system, k=5)
    assert len(lists) == len(queries) and all(0 < len(hits) <= 5 for hits in lists), "one list per text"
    for hits in lists:
        assert all(h.code in onto and h.label == onto.label(h.code) and h.sources for h in hits), "hits"
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True), "best first"
    first = [h.code for h in lists[0]]
    assert [h.code for h in retriever.search(queries[0], system, k=5)] == first, "search = search_many"
    assert [h.code for h in retriever.candidates(queries[0], system, k=5)] == first, "candidates = search"
    billable = retriever.search(queries[0], system, k=5, filt=SearchFilter(billable_only=True))
    assert all(onto.node(h.code).billable for h in billable), "billable filter"
    _raises(MedcoderError, "empty search text", lambda: retriever.search_many(["  "], system))


# -- code systems -----------------------------------------------------------------------------------------


def check_code_system(system: Any, sample: tuple[str, str, str]) -> None:
    """What every caller relies on. `sample` is (a billable code, the same code as a user might type it,
    words that find it), e.g. ("E11.9", "e119", "diabetes")."""
    from medcoder.knowledge import guess_system  # deferred: the registry, once the system is registered
    from medcoder.knowledge.ontology import IndexDoc  # deferred: beside the registry it reads

    cls = type(system)
    code, typed, words = sample
    assert cls.system and cls.title and cls.entity_kind and cls.prompt_name and cls.fhir_uri, "identity"
    assert isinstance(cls.capabilities, frozenset)
    assert cls.looks_like(code) and guess_system(code) == cls.system, "looks_like and the registry"
    assert system.resolve(typed) == code and code in system and "ZZZ.not.a.code" not in system, "resolve"
    node = system.node(code)
    assert node.billable and system.path(code)[-1].code == code, "path"
    assert system.path(code)[0].parent in (None, "ROOT")
    assert system.top_level(code) == system.path(code)[0].code
    assert system.find_top_level(system.top_level(code)) == system.top_level(code)
    parent = system.parent(code)
    assert parent is not None and code in {c.code for c in system.children(parent.code)}, "parent and children"
    assert system.is_ancestor(parent.code, code) and not system.is_ancestor(code, parent.code)
    assert isinstance(system.option_label(node), str) and system.index_kind(node)
    assert any(h.code == code for h in system.search(words, k=20)) or system.search(words, k=20), "search"
    assert all(h.code in system for h in system.term_hits(words)), "term hits name codes that exist"
    docs = [d for _, d in zip(range(200), system.index_docs())]
    assert docs and all(isinstance(d, IndexDoc) and d.code in system and d.text for d in docs), "index docs"
    assert isinstance(system.notes(code), dict) and isinstance(system.reminders(code), list)
    assert isinstance(system.seventh_characters(code), dict)
    assert isinstance(system.excludes1_conflicts([code]), list)
    assert system.nearest(code + "9") in (code, None) or system.nearest(code + "9") in system
