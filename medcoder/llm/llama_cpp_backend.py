"""In-process llama.cpp through llama-cpp-python: GGUF models on the CPU or offloaded to a GPU.

Prompts are tokenised here so that the longest prefix shared with the previous call is
kept in the KV cache and only the tail is evaluated; `choose` reads the next-token
log-probabilities of single-token option labels after one forward pass.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import io
import json
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from medcoder.errors import MedcoderError
from medcoder.llm.base import LABELS, LLM, CallStats, Capabilities, Continuation, Message, ModelOutputError, Option
from medcoder.llm.registry import ModelFileError, model_sha256

logger = logging.getLogger(__name__)


def gpu_available() -> bool:
    import llama_cpp

    return bool(llama_cpp.llama_supports_gpu_offload())


def _load_quietly(construct: Callable[[], Any], path: Path) -> Any:
    """Build a `Llama` with its load log captured into our debug log instead of the terminal.

    `verbose=False` would silence llama.cpp by redirecting file descriptors 1 and 2, and on a
    CUDA build (seen on an H200) that segfaults during load; capturing Python's stderr and
    then lowering llama-cpp-python's log level is safe everywhere.
    """
    from llama_cpp._logger import set_verbose

    buf = io.StringIO()
    try:
        with contextlib.redirect_stderr(buf):
            llm = construct()
    except (ValueError, RuntimeError) as exc:
        raise ModelFileError(
            f"cannot load model {path}: {exc}; it is not a complete GGUF file: copy or download "
            "it again (`medcoder doctor` checks the named models)"
        ) from exc
    finally:
        set_verbose(False)
        logger.debug("llama.cpp load log for %s:\n%s", path, buf.getvalue()[-4000:])
    llm.verbose = False
    return llm


@functools.lru_cache(maxsize=8)
def chat_template_of(path: Path) -> str | None:
    """The chat template a GGUF file carries, read with its vocabulary only (no weights): a client of a server
    that serves this file renders prompts exactly as the server and the in-process backend do."""
    from llama_cpp import Llama

    llm = _load_quietly(lambda: Llama(model_path=str(path), vocab_only=True, verbose=True), path)
    try:
        return llm.metadata.get("tokenizer.chat_template")
    finally:
        llm.close()


def _enable_parallel_sequences(llm: Any, n_seq_max: int) -> int:
    """Recreate the model's context with a unified KV cache shared by up to `n_seq_max` sequences.

    llama-cpp-python's `Llama` makes a one-sequence context; `score` needs many sequences over one
    copied prefix. With a unified cache all sequences share the same `n_ctx` cells.
    """
    import llama_cpp
    from llama_cpp import _internals

    n_seq_max = max(1, min(n_seq_max, int(llama_cpp.llama_max_parallel_sequences())))
    if n_seq_max == 1:
        return 1
    params = llm.context_params
    params.n_seq_max = n_seq_max
    params.kv_unified = True
    old = llm._ctx
    llm._ctx = llm._stack.enter_context(
        contextlib.closing(_internals.LlamaContext(model=llm._model, params=params, verbose=False))
    )
    old.close()
    llm.n_tokens = 0
    return n_seq_max


@dataclass(slots=True)
class _Job:
    """One sequence to decode: its tokens, the positions whose logits are read, and what they score.

    `targets` holds (continuation index, [(position, token)]) where position -1 means the
    context's last logits; continuations that share a prompt and end in one token share a job.
    """

    tokens: list[int]
    read_at: set[int] = field(default_factory=set)
    targets: list[tuple[int, list[tuple[int, int]]]] = field(default_factory=list)


def _plan_jobs(tails: list[tuple[list[int], list[int]]]) -> list[_Job]:
    """Group continuations into sequences: single-token texts after the same prompt share one."""
    jobs: list[_Job] = []
    shared: dict[tuple[int, ...], _Job] = {}
    for index, (prompt, text) in enumerate(tails):
        if not text:
            raise ModelOutputError(f"score: continuation {index} has no tokens to score")
        if len(text) == 1 and tuple(prompt) in shared:
            job = shared[tuple(prompt)]
        else:
            job = _Job(list(prompt) + text[:-1])
            jobs.append(job)
            if len(text) == 1:
                shared[tuple(prompt)] = job
        reads = [(len(prompt) - 1 + k, tok) for k, tok in enumerate(text)]
        job.read_at.update(pos for pos, _ in reads if pos >= 0)
        job.targets.append((index, reads))
    return jobs


def _pack(jobs: list[_Job], n_batch: int, max_seqs: int, free_cells: int) -> list[list[_Job]]:
    """Split jobs into batches within the batch size, the sequence limit and the free KV cells."""
    batches: list[list[_Job]] = []
    current: list[_Job] = []
    used = 0
    for job in jobs:
        size = len(job.tokens)
        if size > n_batch:
            raise ModelOutputError(f"score: a continuation of {size} tokens exceeds the batch size of {n_batch} tokens")
        if current and (used + size > min(n_batch, free_cells) or len(current) >= max_seqs):
            batches.append(current)
            current, used = [], 0
        current.append(job)
        used += size
    if current:
        batches.append(current)
    return batches


class LlamaCppLLM(LLM):
    """A GGUF model loaded in this process."""

    backend = "llama_cpp"
    capabilities = Capabilities(logprobs=True, grammar=True, prefix_cache=True, batched_score=True)

    def __init__(
        self,
        path: str | Path,
        *,
        name: str | None = None,
        n_ctx: int = 4096,
        n_gpu_layers: int | None = None,
        n_threads: int | None = None,
        n_batch: int = 512,
        seed: int = 0,
        temperature: float = 0.0,
        max_tokens: int = 512,
        n_seq_max: int = 64,
    ) -> None:
        super().__init__()
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        path = Path(path)
        if not path.is_file():
            raise ModelFileError(f"model file not found: {path}")
        self.path = path
        self.name = name or path.name
        self.sha256 = model_sha256(path)
        self.n_gpu_layers = (-1 if gpu_available() else 0) if n_gpu_layers is None else n_gpu_layers
        self.seed, self.temperature, self.max_tokens = seed, temperature, max_tokens
        n_threads = n_threads or os.cpu_count() or 1  # llama-cpp-python's default halves it for generation
        self.llm = _load_quietly(
            lambda: Llama(
                model_path=str(path),
                n_ctx=n_ctx,
                n_gpu_layers=self.n_gpu_layers,
                n_threads=n_threads,
                n_batch=n_batch,
                seed=seed,
                verbose=True,
            ),
            path,
        )
        self.n_seq_max = _enable_parallel_sequences(self.llm, n_seq_max)
        self.n_ctx = self.llm.n_ctx()
        self.n_batch = self.llm.n_batch
        template = self.llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise ModelFileError(f"{path} has no chat template; medcoder needs an instruct model")
        eos = self.llm._model.token_get_text(self.llm.token_eos())
        bos = self.llm._model.token_get_text(self.llm.token_bos()) if self.llm.token_bos() >= 0 else ""
        self._formatter = Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos)
        self._eos_text = eos
        self._label_ids = [self._single_token(label) for label in LABELS]
        self._grammars: dict[str, Any] = {}
        self._lock = threading.Lock()  # one sequence at a time per instance

    # -- prompts ------------------------------------------------------------------------
    def _single_token(self, label: str) -> int:
        ids = self.llm.tokenize(label.encode(), add_bos=False, special=False)
        if len(ids) != 1:
            raise ModelFileError(f"{self.path}: option label {label!r} is not a single token")
        return ids[0]

    def prompt_tokens(self, messages: Sequence[Message]) -> list[int]:
        prompt = self._formatter(messages=list(messages)).prompt  # type: ignore[arg-type]
        tokens = self.llm.tokenize(prompt.encode(), add_bos=True, special=True)
        if len(tokens) >= self.n_ctx:
            raise MedcoderError(f"prompt of {len(tokens)} tokens does not fit the context of {self.n_ctx} tokens")
        return tokens

    def _reuse_prefix(self, tokens: list[int]) -> int:
        """Keep the longest cached prefix shared with `tokens`; return how many tokens that saves."""
        llm = self.llm
        common = 0
        for a, b in zip(llm.input_ids[: llm.n_tokens], tokens):
            if a != b:
                break
            common += 1
        reuse = min(common, len(tokens) - 1)  # at least one token is evaluated to refresh the logits
        llm._ctx.kv_cache_seq_rm(-1, reuse, -1)
        llm.n_tokens = reuse
        return reuse

    def _sampling(self, temperature: float | None, max_tokens: int | None) -> dict[str, Any]:
        return {
            "temperature": self.temperature if temperature is None else temperature,
            "seed": self.seed,
            "max_tokens": max_tokens or self.max_tokens,
            "top_k": 1 if not (temperature or self.temperature) else 40,
        }

    def _grammar(self, schema: dict[str, Any]) -> Any:
        from llama_cpp import LlamaGrammar

        key = json.dumps(schema, sort_keys=True)
        if key not in self._grammars:
            # the schema's own property order, not the sorted key: the model writes fields in this
            # order, and deciding "assertion" before "mention" makes it guess
            self._grammars[key] = LlamaGrammar.from_json_schema(json.dumps(schema), verbose=False)
        return self._grammars[key]

    # -- the backend ----------------------------------------------------------------------
    def _chat(
        self, messages: list[Message], schema: dict[str, Any] | None, max_tokens: int | None, temperature: float | None
    ) -> tuple[str, CallStats]:
        sampling = self._sampling(temperature, max_tokens)
        with self._lock:
            tokens = self.prompt_tokens(messages)
            reused = self._reuse_prefix(tokens)
            room = self.n_ctx - len(tokens)
            out = self.llm.create_completion(
                prompt=tokens,
                max_tokens=min(sampling["max_tokens"], room),
                temperature=sampling["temperature"],
                top_k=sampling["top_k"],
                seed=self.seed,
                grammar=self._grammar(schema) if schema else None,
                stop=[self._eos_text] if self._eos_text else None,
            )
        choice = out["choices"][0]
        text = choice["text"]
        usage = out.get("usage", {})
        stats = CallStats(
            prompt_tokens=len(tokens),
            cached_tokens=reused,
            completion_tokens=usage.get("completion_tokens", 0),
            sampling=sampling,
        )
        if schema is not None and choice.get("finish_reason") == "length":
            raise ModelOutputError(
                f"structured output cut off at {sampling['max_tokens']} tokens: {text[:120]!r}", text, stats
            )
        return text, stats

    def _choose_logprobs(self, messages: list[Message], options: Sequence[Option]) -> tuple[list[float], CallStats]:
        with self._lock:
            tokens = self.prompt_tokens(messages)
            reused = self._reuse_prefix(tokens)
            self.llm.eval(tokens[reused:])
            row = self._logprobs_at(-1)
        logprobs = [float(row[i]) for i in self._label_ids[: len(options)]]
        return logprobs, CallStats(
            prompt_tokens=len(tokens),
            cached_tokens=reused,
            completion_tokens=0,
            sampling={"method": "next-token log-probabilities", "labels": len(options)},
        )

    def _logprobs_at(self, batch_index: int) -> np.ndarray:
        """Log-softmax of the logits the last decode produced at `batch_index` (-1: its last token)."""
        import llama_cpp

        ptr = llama_cpp.llama_get_logits_ith(self.llm._ctx.ctx, batch_index)
        logits = np.ctypeslib.as_array(
            ctypes.cast(ptr, ctypes.POINTER(ctypes.c_float)), shape=(self.llm.n_vocab(),)
        ).astype(np.float64)
        top = logits.max()
        return logits - (top + np.log(np.exp(logits - top).sum()))

    def _tail_tokens(self, text: str) -> list[int]:
        return self.llm.tokenize(text.encode(), add_bos=False, special=False) if text else []

    def _score(self, messages: list[Message], continuations: Sequence[Continuation]) -> tuple[list[float], CallStats]:
        """Evaluate the context once (keeping it cached as sequence 0), then decode every continuation's
        tail as its own sequence over copies of the context's KV cells, many sequences per batch."""
        with self._lock:
            ctx_tokens = self.prompt_tokens(messages)
            tails = [(self._tail_tokens(c.prompt), self._tail_tokens(c.text)) for c in continuations]
            jobs = _plan_jobs(tails)
            longest = max(len(j.tokens) for j in jobs)
            if len(ctx_tokens) + longest > self.n_ctx:
                raise ModelOutputError(
                    f"score: context of {len(ctx_tokens)} tokens + a continuation of {longest} tokens does not fit "
                    f"the model's context window of {self.n_ctx} tokens",
                    stats=CallStats(prompt_tokens=len(ctx_tokens)),
                )
            reused = self._reuse_prefix(ctx_tokens)
            self.llm.eval(ctx_tokens[reused:])
            last = self._logprobs_at(-1)
            n_ctx_tokens = len(ctx_tokens)
            scores = [0.0] * len(continuations)
            evaluated = 0
            for batch in _pack(jobs, self.n_batch, self.n_seq_max - 1, self.n_ctx - n_ctx_tokens):
                evaluated += sum(len(j.tokens) for j in batch)
                self._decode_jobs(batch, n_ctx_tokens, last, scores)
        stats = CallStats(
            prompt_tokens=n_ctx_tokens + evaluated,
            cached_tokens=reused,
            completion_tokens=0,
            sampling={
                "method": "continuation log-probabilities",
                "continuations": len(continuations),
                "sequences": len(jobs),
                # what asking each continuation as its own prompt would hold: the tokens the
                # shared context and the shared yes/no sequences did not evaluate again
                "tokens_as_separate_prompts": sum(n_ctx_tokens + len(p) + len(t) - 1 for p, t in tails),
            },
        )
        return scores, stats

    def _decode_jobs(self, jobs: list["_Job"], n_past: int, last: np.ndarray, scores: list[float]) -> None:
        """Decode one batch of jobs, each in its own sequence copied from the context (sequence 0)."""
        ctx = self.llm._ctx
        batch = self.llm._batch
        batch.reset()
        wanted: list[tuple[_Job, int, int]] = []  # job, its relative position, index in the batch
        b = batch.batch
        for seq, job in enumerate(jobs, start=1):
            if not job.tokens:
                continue
            ctx.kv_cache_seq_cp(0, seq, 0, n_past)
            for i, tok in enumerate(job.tokens):
                j = b.n_tokens
                b.token[j], b.pos[j], b.n_seq_id[j] = tok, n_past + i, 1
                b.seq_id[j][0] = seq
                b.logits[j] = i in job.read_at
                if i in job.read_at:
                    wanted.append((job, i, j))
                b.n_tokens += 1
        try:
            if b.n_tokens:
                ctx.decode(batch)
            rows = {(id(job), i): self._logprobs_at(j) for job, i, j in wanted}
            for job in jobs:
                for target, reads in job.targets:
                    total = 0.0
                    for pos, tok in reads:
                        row = last if pos < 0 else rows[(id(job), pos)]
                        total += float(row[tok])
                    scores[target] = total
        finally:
            for seq in range(1, len(jobs) + 1):
                ctx.kv_cache_seq_rm(seq, -1, -1)
            batch.reset()

    def close(self) -> None:
        llm = getattr(self, "llm", None)
        if llm is not None:
            llm.close()
            self.llm = None
