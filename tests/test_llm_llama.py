"""The real llama.cpp backend with the test model (SmolLM2-135M from its PyPI package)."""

from __future__ import annotations

from typing import Literal

import pytest
from pydantic import BaseModel, Field

from medcoder.errors import MedcoderError
from medcoder.llm import ModelFileError, Option, load_llm

pytestmark = pytest.mark.slow


class Diagnosis(BaseModel):
    mention: str = Field(max_length=80)
    assertion: Literal["present", "absent", "possible", "historical", "family"]
    acute: bool


@pytest.fixture(scope="module")
def llm():
    model = load_llm("test", n_ctx=2048)
    yield model
    model.close()


def test_identity_and_capabilities(llm) -> None:
    assert llm.sha256.startswith("b179c952")
    assert llm.capabilities.logprobs and llm.capabilities.grammar
    assert llm.n_gpu_layers in (0, -1)


def test_structured_output_validates(llm) -> None:
    res = llm.chat([{"role": "system", "content": "Extract the diagnosis as JSON."},
                    {"role": "user", "content": "Note: acute asthma attack today."}], Diagnosis, max_tokens=80)
    assert isinstance(res.parsed, Diagnosis)
    assert Diagnosis.model_validate_json(res.text) == res.parsed
    s = res.record.stats
    assert s.prompt_tokens > 10 and s.completion_tokens > 0 and s.latency_s > 0
    assert s.model_sha256 == llm.sha256 and s.sampling["temperature"] == 0.0


def test_choose_returns_only_given_options(llm) -> None:
    options = [Option("CH4", "Endocrine, nutritional and metabolic diseases"),
               Option("CH9", "Diseases of the circulatory system"),
               Option("CH10", "Diseases of the respiratory system"),
               Option("CH19", "Injury, poisoning and certain other consequences of external causes")]
    res = llm.choose("Which chapter holds: type 2 diabetes mellitus?", options)
    assert {c.key for c in res.choices} == {o.key for o in options}
    assert sum(c.probability for c in res.choices) == pytest.approx(1.0, abs=1e-6)
    assert all(c.logprob is not None and c.logprob < 0 for c in res.choices)
    assert res.record.method == "logprobs"


def test_shared_prefix_is_reused(llm) -> None:
    context = "Clinical note: the patient has long-standing type 2 diabetes with poor control. " * 4
    first = llm.choose(context, [("A1", "diabetes"), ("B1", "asthma")])
    second = llm.choose(context, [("A2", "type 2 diabetes"), ("B2", "type 1 diabetes"), ("C2", "gestational")])
    assert second.record.stats.cached_tokens > 40
    assert second.record.stats.cached_tokens < second.record.stats.prompt_tokens
    assert first.record.stats.prompt_tokens > 40


def test_identical_prompt_is_deterministic(llm) -> None:
    msgs = [{"role": "user", "content": "Say hello."}]
    a = llm.chat(msgs, max_tokens=12)
    b = llm.chat(msgs, max_tokens=12)
    assert a.text == b.text and b.record.stats.cached_tokens == b.record.stats.prompt_tokens - 1


def test_prompt_longer_than_context_is_a_clear_error(llm) -> None:
    with pytest.raises(MedcoderError, match="does not fit the context"):
        llm.chat([{"role": "user", "content": "word " * 5000}])


def test_missing_and_corrupt_model_files(tmp_path) -> None:
    with pytest.raises(ModelFileError, match="not found: .*nope.gguf"):
        load_llm(str(tmp_path / "nope.gguf"))
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 1000)
    with pytest.raises(ModelFileError, match="broken.gguf"):
        load_llm(str(bad))


def test_fields_come_in_schema_order(llm) -> None:
    res = llm.chat([{"role": "user", "content": "Note: asthma. Extract the diagnosis as JSON."}], Diagnosis,
                   max_tokens=80)
    keys = list(__import__("json").loads(res.text))
    assert keys == ["mention", "assertion", "acute"]
