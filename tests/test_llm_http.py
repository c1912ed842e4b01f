"""The OpenAI-compatible HTTP backend against a real llama-cpp-python server on loopback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from typing import Literal

import pytest
from pydantic import BaseModel

from medcoder.errors import MedcoderError
from medcoder.llm.http_backend import HttpLLM
from medcoder.llm.registry import resolve_model

pytestmark = pytest.mark.slow


class Answer(BaseModel):
    system: Literal["circulatory", "respiratory", "endocrine"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):  # type: ignore[no-untyped-def]
    pytest.importorskip("fastapi")
    _, path = resolve_model("test")
    port = _free_port()
    log = tmp_path_factory.mktemp("server") / "server.log"
    log_fh = open(log, "wb")  # a file, not a pipe: llama.cpp logs enough to fill a pipe and block
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(path), "--host", "127.0.0.1",
         "--port", str(port), "--n_ctx", "2048", "--model_alias", "smollm2"],
        stdout=log_fh, stderr=subprocess.STDOUT, env=os.environ)
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.time() + 90
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"server exited: {log.read_text(errors='replace')[-2000:]}")
        try:
            urllib.request.urlopen(f"{url}/models", timeout=1)
            break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("server did not start in 90 s")
    yield url
    proc.terminate()
    proc.wait(timeout=20)
    log_fh.close()


def test_structured_chat_over_http(server: str) -> None:
    llm = HttpLLM(server)
    assert llm.model == "smollm2"
    res = llm.chat([{"role": "user", "content": "Which organ system does asthma affect?"}], Answer, max_tokens=30)
    assert isinstance(res.parsed, Answer)
    assert res.record.stats.prompt_tokens > 0 and res.record.stats.backend == "http"


def test_choose_over_http_uses_the_grammar(server: str) -> None:
    llm = HttpLLM(server)
    res = llm.choose("Asthma is a disease of which system?",
                     [("CH9", "circulatory system"), ("CH10", "respiratory system")], k=1)
    assert res.record.method == "grammar"
    assert {c.key for c in res.choices} == {"CH9", "CH10"}
    assert sum(c.probability for c in res.choices) == pytest.approx(1.0)


def test_unreachable_server_is_a_clear_error() -> None:
    with pytest.raises(MedcoderError, match="cannot reach model server"):
        HttpLLM(f"http://127.0.0.1:{_free_port()}/v1", timeout=2)


def test_score_over_http_ranks_like_in_process(server):  # type: ignore[no-untyped-def]
    """`score` against the real server (echo + logprobs, concurrent requests) orders continuations as the
    in-process llama.cpp backend does, with the model's own chat template rendered the same way."""
    from medcoder.llm import load_llm

    local = load_llm("test")
    try:
        template = local.llm.metadata["tokenizer.chat_template"]
        remote = HttpLLM(server, "smollm2", chat_template=template, parallel=2)
        context = "Note: the patient has type 2 diabetes and hypertension. Judge each code."
        conts = [("Code: E11.9 type 2 diabetes\nDocumented:", " yes"), ("Code: E11.9 type 2 diabetes\nDocumented:", " no"),
                 ("Code: S82.0 fracture of patella\nDocumented:", " yes"), ("", " The note is about diabetes")]
        here = local.score(context, conts).logprobs
        there = remote.score(context, conts)
        assert there.record.kind == "score" and len(there.logprobs) == len(conts)
        assert sorted(range(len(conts)), key=lambda i: here[i]) == sorted(range(len(conts)), key=lambda i: there.logprobs[i])
        for a, b in zip(here, there.logprobs):
            assert a == pytest.approx(b, abs=0.5)
    finally:
        local.close()
