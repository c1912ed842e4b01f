"""The model interface without weights: choice ranking, grammar fallback, rounds, observers, replay."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel

from medcoder.llm import CallRecord, FakeLLM, ModelOutputError, Option, ReplayLLM, ReplayMissError
from medcoder.llm.base import Capabilities, request_key

OPTIONS = [Option("CH4", "Endocrine, nutritional and metabolic diseases"),
           Option("CH9", "Diseases of the circulatory system"),
           Option("CH10", "Diseases of the respiratory system")]


class Dx(BaseModel):
    mention: str
    present: bool


def test_choose_ranks_every_option_with_probabilities() -> None:
    llm = FakeLLM()
    res = llm.choose("Mention: chronic disease of the respiratory system", OPTIONS)
    assert {c.key for c in res.choices} == {"CH4", "CH9", "CH10"}
    assert res.best.key == "CH10"
    assert sum(c.probability for c in res.choices) == pytest.approx(1.0)
    assert res.record.method == "logprobs" and res.record.text == "C"
    assert res.record.label_mass is not None and 0 < res.record.label_mass <= 1


def test_options_must_be_distinct_and_present() -> None:
    from medcoder.errors import MedcoderError

    with pytest.raises(MedcoderError):
        FakeLLM().choose("x", [])
    with pytest.raises(MedcoderError):
        FakeLLM().choose("x", [("A", "a"), ("A", "b")])


def test_more_options_than_labels_go_in_rounds() -> None:
    llm = FakeLLM()
    options = [Option(f"K{i}", f"label number {i} thing") for i in range(60)] + [Option("WIN", "kidney stone")]
    res = llm.choose("patient with a kidney stone", options)
    assert res.best.key == "WIN"
    assert len(res.choices) == 61 and {c.key for c in res.choices} == {o.key for o in options}
    assert sum(c.probability for c in res.choices) == pytest.approx(1.0)


class _NoLogprobs(FakeLLM):
    capabilities = Capabilities(logprobs=False, grammar=True)

    def __init__(self) -> None:
        super().__init__(responder=self._answer)

    @staticmethod
    def _answer(messages: list[dict[str, str]], schema: dict[str, Any] | None) -> str:
        assert schema is not None
        return json.dumps({"answer": schema["properties"]["answer"]["enum"][-1]})


def test_grammar_fallback_without_logprobs() -> None:
    res = _NoLogprobs().choose("anything", OPTIONS, k=2)
    assert res.record.method == "grammar"
    assert [c.key for c in res.choices[:2]] == ["CH10", "CH9"]  # sampled twice without replacement
    assert res.choices[0].probability == 1.0


def test_chat_validates_against_schema() -> None:
    good = FakeLLM(lambda m, s: {"mention": "asthma", "present": True})
    assert good.chat([{"role": "user", "content": "x"}], Dx).parsed == Dx(mention="asthma", present=True)
    junk = FakeLLM(lambda m, s: "not json at all")
    with pytest.raises(ModelOutputError, match="does not match Dx"):
        junk.chat([{"role": "user", "content": "x"}], Dx)


def test_observers_see_every_call_and_can_be_removed() -> None:
    llm = FakeLLM(lambda m, s: "hello")
    seen: list[CallRecord] = []
    remove = llm.observe(seen.append)
    llm.chat([{"role": "user", "content": "hi"}])
    llm.choose("x", OPTIONS)
    remove()
    llm.chat([{"role": "user", "content": "hi"}])
    assert [r.kind for r in seen] == ["chat", "choose"]
    assert seen[0].stats.model == "fake" and seen[0].stats.model_sha256 == "0" * 64


def test_a_failing_observer_does_not_break_the_call() -> None:
    llm = FakeLLM(lambda m, s: "hello")
    def broken(record: CallRecord) -> None:
        raise ZeroDivisionError("an observer's own bug")

    llm.observe(broken)
    assert llm.chat([{"role": "user", "content": "hi"}]).text == "hello"


def test_replay_reproduces_and_rejects_unrecorded(tmp_path) -> None:
    llm = FakeLLM(lambda m, s: {"mention": "asthma", "present": True})
    records: list[CallRecord] = []
    llm.observe(records.append)
    msgs = [{"role": "user", "content": "note text"}]
    original = llm.chat(msgs, Dx)
    chosen = llm.choose("respiratory", OPTIONS)
    path = tmp_path / "run.jsonl"
    path.write_text("\n".join(json.dumps(r.to_dict()) for r in records))
    replay = ReplayLLM.from_jsonl(path)
    assert replay.chat(msgs, Dx).parsed == original.parsed
    again = replay.choose("respiratory", OPTIONS)
    assert [c.key for c in again.choices] == [c.key for c in chosen.choices]
    with pytest.raises(ReplayMissError, match="never made this chat request"):
        replay.chat([{"role": "user", "content": "a different note"}], Dx)
    with pytest.raises(ReplayMissError):
        replay.choose("respiratory", OPTIONS[:2])


def test_request_key_depends_on_everything_asked() -> None:
    m = [{"role": "user", "content": "x"}]
    assert request_key("chat", m) == request_key("chat", [dict(m[0])])
    assert request_key("chat", m) != request_key("chat", m, schema={"type": "object"})
    assert request_key("choose", m, OPTIONS) != request_key("choose", m, OPTIONS[:2])


def test_failed_calls_are_recorded_and_replay_fails_the_same_way() -> None:
    llm = FakeLLM(lambda m, s: "not json")
    seen: list[CallRecord] = []
    llm.observe(seen.append)
    msgs = [{"role": "user", "content": "x"}]
    with pytest.raises(ModelOutputError):
        llm.chat(msgs, Dx)
    assert len(seen) == 1 and seen[0].error and seen[0].text == "not json"
    replay = ReplayLLM(seen)
    with pytest.raises(ModelOutputError, match="does not match Dx"):
        replay.chat(msgs, Dx)
