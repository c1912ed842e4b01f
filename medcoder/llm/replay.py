"""Answer from a recorded run, with no model loaded: for audits, regression tests and replays.

Each request is looked up by its digest (`request_key`); a request the record does not hold
is an error that says so, never a guess.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Sequence

from medcoder.errors import MedcoderError
from medcoder.llm.base import (
    LLM,
    CallRecord,
    CallStats,
    Capabilities,
    ChatResult,
    Choice,
    ChooseResult,
    Continuation,
    Message,
    ModelOutputError,
    Option,
    ScoreResult,
    T,
    as_continuations,
    as_messages,
    choice_messages,
    request_key,
    validate_output,
)


class ReplayMissError(MedcoderError):
    """The replayed run never made this request."""


def _record_from_dict(d: dict[str, Any]) -> CallRecord:
    d = dict(d)
    d["stats"] = CallStats(**d["stats"])
    return CallRecord(**d)


class ReplayLLM(LLM):
    """Serves the answers of recorded `CallRecord`s, in order for repeated identical requests."""

    backend = "replay"
    capabilities = Capabilities(logprobs=True, grammar=True, prefix_cache=False, batched_score=True)

    def __init__(self, records: Iterable[CallRecord | dict[str, Any]]) -> None:
        super().__init__()
        self._by_key: dict[str, list[CallRecord]] = {}
        for r in records:
            rec = r if isinstance(r, CallRecord) else _record_from_dict(r)
            self._by_key.setdefault(rec.request_key, []).append(rec)
            self.name = self.name or rec.stats.model
            self.sha256 = self.sha256 or rec.stats.model_sha256
        self._served: dict[str, int] = {}

    @classmethod
    def from_jsonl(cls, path: str | Path) -> "ReplayLLM":
        with open(path, encoding="utf-8") as fh:
            return cls(json.loads(line) for line in fh if line.strip())

    def _take(self, key: str, what: str) -> CallRecord:
        recs = self._by_key.get(key)
        if not recs:
            raise ReplayMissError(f"replay: the recorded run never made this {what} request (key {key[:12]})")
        i = self._served.get(key, 0)
        self._served[key] = i + 1
        return recs[min(i, len(recs) - 1)]

    def chat(
        self,
        messages: Sequence[Message],
        schema: type[T] | None = None,
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> ChatResult[T]:
        msgs = [dict(m) for m in messages]
        key = request_key("chat", msgs, schema=schema.model_json_schema() if schema is not None else None)
        rec = self._take(key, "chat")
        self._notify(rec)
        if rec.error:  # the recorded call failed; so does its replay, the same way
            raise ModelOutputError(rec.error, rec.text)
        parsed = validate_output(rec.text, schema) if schema is not None else None
        return ChatResult(rec.text, parsed, rec)

    def choose(
        self,
        context: str | Sequence[Message],
        options: Sequence[Option | tuple[str, str]],
        k: int = 1,
        instruction: str | None = None,
    ) -> ChooseResult:
        opts = [o if isinstance(o, Option) else Option(*o) for o in options]
        if len(opts) > self.max_options:
            return self._choose_in_rounds(context, opts, k, instruction)
        key = request_key("choose", choice_messages(context, opts, instruction), opts, k=k)
        rec = self._take(key, "choose")
        self._notify(rec)
        return ChooseResult([Choice(**c) for c in rec.choices or []], rec)

    def score(
        self, context: str | Sequence[Message], continuations: Sequence[Continuation | str | tuple[str, str]]
    ) -> ScoreResult:
        conts = as_continuations(continuations)
        key = request_key("score", as_messages(context), continuations=conts)
        if not conts:
            return super().score(context, conts)
        rec = self._take(key, "score")
        self._notify(rec)
        if rec.error:
            raise ModelOutputError(rec.error)
        return ScoreResult(list(rec.scores or []), rec)

    def _chat(self, *args: Any) -> tuple[str, CallStats]:  # pragma: no cover - chat() is overridden
        raise ReplayMissError("replay has no model to generate with")
