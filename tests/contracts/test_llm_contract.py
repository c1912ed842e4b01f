"""One contract for every model backend, run the same way over each: fake, replay, in-process llama.cpp
and HTTP against a real `llama_cpp.server` on 127.0.0.1 (the last two with the real test model)."""

from __future__ import annotations

from typing import Iterator

import pytest

from medcoder.llm import LLM, CallRecord, FakeLLM, ReplayLLM, load_llm
from medcoder.testing import check_llm_backend
from medcoder.testing.contracts import llm_scenario


def _fake() -> FakeLLM:
    return FakeLLM(lambda messages, schema: {"system": "endocrine"} if schema else "endocrine")


def _replay() -> ReplayLLM:
    recorded: list[CallRecord] = []
    fake = _fake()
    fake.observe(recorded.append)
    llm_scenario(fake)
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
        from medcoder.llm.llama_cpp_backend import LlamaCppLLM

        local = load_llm("test")
        assert isinstance(local, LlamaCppLLM)
        template = local.llm.metadata["tokenizer.chat_template"]
        local.close()
        llm = HttpLLM(server, "smollm2", chat_template=template, parallel=2)
    yield llm
    llm.close()


def test_backend_contract(backend: LLM) -> None:
    check_llm_backend(backend)


def test_the_contract_catches_a_backend_that_forgets_to_record() -> None:
    class Silent(FakeLLM):
        def observe(self, fn):
            return lambda: None

    with pytest.raises(AssertionError, match="each call recorded once"):
        check_llm_backend(Silent(lambda messages, schema: {"system": "endocrine"} if schema else "endocrine"))
