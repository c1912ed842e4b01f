"""One contract for every model backend, run the same way over each: fake, replay, in-process llama.cpp
and HTTP against a real `llama_cpp.server` on 127.0.0.1 (the last two with the real test model)."""

from __future__ import annotations

from typing import Any, Iterator, Literal

import pytest
from pydantic import BaseModel

from medcoder.agents import BoundLLM
from medcoder.llm import LLM, CallRecord, FakeLLM, ReplayLLM, load_llm
from medcoder.llm.base import Continuation


class Answer(BaseModel):
    system: Literal["circulatory", "respiratory", "endocrine"]


CHAT = [{"role": "user", "content": "Which body system does type 2 diabetes belong to? Answer in JSON."}]
CONTEXT = "Note: the patient has type 2 diabetes and hypertension. She denies chest pain."
OPTIONS = [("E11.9", "Type 2 diabetes mellitus"), ("I10", "Essential hypertension"), ("S82.0", "Fracture of patella")]
CONTS = [Continuation(" yes", "Code: E11.9 type 2 diabetes\nDocumented:"),
         Continuation(" no", "Code: E11.9 type 2 diabetes\nDocumented:"),
         Continuation(" yes", "Code: S82.0 fracture of patella\nDocumented:")]


def _scenario(llm: Any) -> dict[str, Any]:
    """The calls every backend must answer: structured chat, choose, score, judge."""
    chat = llm.chat(CHAT, Answer, max_tokens=40)
    choose = llm.choose(CONTEXT + "\nWhich code is documented?", OPTIONS)
    score = llm.score(CONTEXT, CONTS)
    judge = llm.judge(CONTEXT, ["Is E11.9 documented?", "Is S82.0 documented?"])
    return {"chat": chat, "choose": choose, "score": score, "judge": judge}


def _fake() -> FakeLLM:
    return FakeLLM(lambda messages, schema: {"system": "endocrine"} if schema else "endocrine")


def _replay() -> ReplayLLM:
    recorded: list[CallRecord] = []
    fake = _fake()
    fake.observe(recorded.append)
    _scenario(fake)
    return ReplayLLM([r.to_dict() for r in recorded])


@pytest.fixture(scope="module", params=["fake", "replay", pytest.param("llama_cpp", marks=pytest.mark.slow),
                                        pytest.param("http", marks=pytest.mark.slow)])
def backend(request: pytest.FixtureRequest) -> Iterator[LLM]:
    if request.param == "fake":
        llm: LLM = _fake()
    elif request.param == "replay":
        llm = _replay()
    elif request.param == "llama_cpp":
        llm = load_llm("test")
    else:
        from medcoder.llm.http_backend import HttpLLM

        server = request.getfixturevalue("llama_server")
        local = load_llm("test")
        template = local.llm.metadata["tokenizer.chat_template"]
        local.close()
        llm = HttpLLM(server, "smollm2", chat_template=template, parallel=2)
    yield llm
    llm.close()


def test_identity(backend: LLM) -> None:
    assert isinstance(backend.name, str) and isinstance(backend.sha256, str) and backend.backend
    assert backend.max_options >= 3


def test_the_same_calls_answer_the_same_shapes(backend: LLM) -> None:
    seen: list[CallRecord] = []
    stop = backend.observe(seen.append)
    try:
        out = _scenario(backend)
    finally:
        stop()
    chat = out["chat"]
    assert isinstance(chat.parsed, Answer) and chat.record.kind == "chat" and chat.record.parsed is not None
    choose = out["choose"]
    assert sorted(c.key for c in choose.choices) == sorted(k for k, _ in OPTIONS)
    assert all(0 <= c.probability <= 1 for c in choose.choices)
    assert sum(c.probability for c in choose.choices) == pytest.approx(1.0, abs=0.02)
    assert choose.record.kind == "choose"
    score = out["score"]
    assert len(score.logprobs) == len(CONTS) and all(x <= 1e-6 for x in score.logprobs)
    assert score.record.kind == "score" and len(score.record.continuations) == len(CONTS)
    judge = out["judge"]
    assert len(judge.log_odds) == 2 and all(0 <= p <= 1 for p in judge.p_yes)
    # every call is recorded once, with who answered it
    assert [r.kind for r in seen] == ["chat", "choose", "score", "score"]
    assert all(r.stats.model == backend.name and r.stats.backend for r in seen)  # replay: the recorded backend


def test_empty_score_is_empty_and_costs_nothing(backend: LLM) -> None:
    res = backend.score(CONTEXT, [])
    assert res.logprobs == [] and res.record.scores == []


def test_a_node_bound_handle_credits_every_call_to_its_node(backend: LLM) -> None:
    credited: list[tuple[str, str]] = []
    bound = BoundLLM(backend, "verify", lambda node, record: credited.append((node, record.kind)))
    _scenario(bound)
    assert credited == [("verify", "chat"), ("verify", "choose"), ("verify", "score"), ("verify", "score")]
    assert bound.name == backend.name and bound.capabilities == backend.capabilities
