"""`LLM.score`: many continuations over one shared context, in one batched call, on the real test model."""

from __future__ import annotations

import pytest

from medcoder.llm import FakeLLM, ReplayLLM, load_llm
from medcoder.llm.base import Continuation, ModelOutputError

CONTEXT = "Note: The patient has type 2 diabetes and hypertension. She denies chest pain.\nJudge each code."
CONTS = [Continuation(" yes", f"Code: {c}\nDocumented:") for c in
         ("E11.9 Type 2 diabetes mellitus", "I10 Essential hypertension", "R07.9 Chest pain, unspecified")]
CONTS += [Continuation(" no", "Code: I10 Essential hypertension\nDocumented:"), Continuation(" the note says so")]


def _reference(llm, cont: Continuation) -> float:
    """One sequence, evaluated token by token from a cleared cache: the plain way to score."""
    lm = llm.llm
    tokens = llm.prompt_tokens([{"role": "user", "content": CONTEXT}]) + llm._tail_tokens(cont.prompt)
    lm._ctx.kv_cache_seq_rm(-1, 0, -1)
    lm.n_tokens = 0
    lm.eval(tokens)
    total = 0.0
    for tok in llm._tail_tokens(cont.text):
        total += float(llm._logprobs_at(-1)[tok])
        lm.eval([tok])
    return total


@pytest.fixture(scope="module")
def test_llm():
    llm = load_llm("test")
    yield llm
    llm.close()


@pytest.mark.slow
def test_batched_score_matches_separate_evaluations(test_llm):
    batched = test_llm.score(CONTEXT, CONTS)
    assert batched.record.kind == "score" and len(batched.record.scores) == len(CONTS)
    singles = [test_llm.score(CONTEXT, [c]).logprobs[0] for c in CONTS]
    reference = [_reference(test_llm, c) for c in CONTS]
    # single-token answers read the same logits whatever the batch: equal to 1e-3
    for i in (0, 1, 3):
        assert batched.logprobs[i] == pytest.approx(reference[i], abs=1e-3)
    # llama.cpp picks other matmul kernels for other batch shapes, and other ones again on another CPU
    # (llama.cpp is built -DGGML_NATIVE): multi-token scores agree to within 2% (seen: 0.27 nat on a 5-token
    # continuation scoring -38.7 nats), and never enough to reorder continuations that differ by more
    for b, s, r in zip(batched.logprobs, singles, reference):
        tol = max(0.25, 0.02 * abs(r))
        assert b == pytest.approx(r, abs=tol) and s == pytest.approx(r, abs=tol)
    apart = [(i, j) for i in range(len(CONTS)) for j in range(len(CONTS)) if reference[i] > reference[j] + 1.0]
    assert apart and all(batched.logprobs[i] > batched.logprobs[j] for i, j in apart)
    stats = batched.record.stats
    assert stats.prompt_tokens > 0
    # asked one by one, every continuation would carry the whole context: the batch evaluates it once
    ctx = len(test_llm.prompt_tokens([{"role": "user", "content": CONTEXT}]))
    assert stats.sampling["tokens_as_separate_prompts"] >= len(CONTS) * ctx > stats.prompt_tokens


@pytest.mark.slow
def test_more_sequences_than_the_limit_split_into_batches(test_llm):
    conts = [Continuation(" yes", f"Code {i}: item number {i}\nDocumented:") for i in range(test_llm.n_seq_max + 7)]
    many = test_llm.score(CONTEXT, conts).logprobs
    assert len(many) == len(conts)
    few = test_llm.score(CONTEXT, conts[:3]).logprobs
    assert many[:3] == pytest.approx(few, abs=0.25)
    assert test_llm.score(CONTEXT, []).logprobs == []


@pytest.mark.slow
def test_continuation_that_does_not_fit_is_a_clear_error(test_llm):
    huge = Continuation(" yes", "word " * (test_llm.n_ctx + 10))
    with pytest.raises(ModelOutputError, match="does not fit"):
        test_llm.score(CONTEXT, [huge])


@pytest.mark.slow
def test_judge_and_replay_reproduce_scores_without_a_model(test_llm):
    records = []
    stop = test_llm.observe(records.append)
    judged = test_llm.judge(CONTEXT, ["Code: E11.9 Type 2 diabetes\nDocumented:", "Code: J45 Asthma\nDocumented:"])
    stop()
    assert len(judged.log_odds) == 2 and all(0 < p < 1 for p in judged.p_yes)
    replay = ReplayLLM([r.to_dict() for r in records])
    again = replay.judge(CONTEXT, ["Code: E11.9 Type 2 diabetes\nDocumented:", "Code: J45 Asthma\nDocumented:"])
    assert again.log_odds == pytest.approx(judged.log_odds, abs=1e-5)


def test_fake_score_is_deterministic_and_reads_the_context():
    fake = FakeLLM()
    a = fake.judge("The patient has asthma.", ["Code: asthma\nDocumented:", "Code: fracture\nDocumented:"])
    b = fake.judge("The patient has asthma.", ["Code: asthma\nDocumented:", "Code: fracture\nDocumented:"])
    assert a.log_odds == b.log_odds and a.log_odds[0] > a.log_odds[1]
