"""The OpenAI-compatible HTTP backend against a real llama-cpp-python server on loopback."""

from __future__ import annotations

from typing import Literal

import pytest
from pydantic import BaseModel

from medcoder.errors import MedcoderError
from medcoder.llm.http_backend import HttpLLM
from medcoder.llm.serving import free_port

pytestmark = pytest.mark.slow


class Answer(BaseModel):
    system: Literal["circulatory", "respiratory", "endocrine"]


@pytest.fixture(scope="module")
def server(llama_server: str) -> str:
    return llama_server


def test_structured_chat_over_http(server: str) -> None:
    llm = HttpLLM(server)
    assert llm.model == "smollm2"
    res = llm.chat([{"role": "user", "content": "Which organ system does asthma affect?"}], Answer, max_tokens=30)
    assert isinstance(res.parsed, Answer)
    assert res.record.stats.prompt_tokens > 0 and res.record.stats.backend == "http"


def test_choose_over_http_reads_label_logprobs_like_in_process(server: str) -> None:
    """Each option's label log-probability over HTTP (echo) equals the in-process one: same ranking, same numbers."""
    from medcoder.llm import load_llm
    from medcoder.llm.llama_cpp_backend import LlamaCppLLM

    local = load_llm("test")
    assert isinstance(local, LlamaCppLLM)
    try:
        remote = HttpLLM(server, chat_template=local.llm.metadata["tokenizer.chat_template"])
        options = [("CH9", "circulatory system"), ("CH10", "respiratory system"), ("CH4", "endocrine system")]
        there = remote.choose("Asthma is a disease of which system?", options, k=1)
        here = local.choose("Asthma is a disease of which system?", options, k=1)
    finally:
        local.close()
    assert there.record.method == "logprobs"
    assert [c.key for c in there.choices] == [c.key for c in here.choices]
    for a, b in zip(there.choices, here.choices):
        assert a.probability == pytest.approx(b.probability, abs=1e-3)
    assert sum(c.probability for c in there.choices) == pytest.approx(1.0)


def test_unreachable_server_is_a_clear_error() -> None:
    with pytest.raises(MedcoderError, match="cannot reach model server"):
        HttpLLM(f"http://127.0.0.1:{free_port()}/v1", timeout=2)


def test_score_over_http_ranks_like_in_process(server):
    """`score` against the real server (echo + logprobs, concurrent requests) orders continuations as the
    in-process llama.cpp backend does, with the model's own chat template rendered the same way."""
    from medcoder.llm import load_llm

    local = load_llm("test")
    try:
        template = local.llm.metadata["tokenizer.chat_template"]
        remote = HttpLLM(server, "smollm2", chat_template=template, parallel=2)
        context = "Note: the patient has type 2 diabetes and hypertension. Judge each code."
        conts = [("Code: E11.9 type 2 diabetes\nDocumented:", " yes"),
                 ("Code: E11.9 type 2 diabetes\nDocumented:", " no"),
                 ("Code: S82.0 fracture of patella\nDocumented:", " yes"), ("", " The note is about diabetes")]
        here = local.score(context, conts).logprobs
        there = remote.score(context, conts)
        assert there.record.kind == "score" and len(there.logprobs) == len(conts)
        order = sorted(range(len(conts)), key=lambda i: here[i])
        assert order == sorted(range(len(conts)), key=lambda i: there.logprobs[i])
        for a, b in zip(here, there.logprobs):
            assert a == pytest.approx(b, abs=0.5)
    finally:
        local.close()
