"""A deterministic stand-in model for testing graph logic: no weights, same answers every time.

`choose` prefers the option whose words overlap most with the last message (the note text
and the mention), which is enough to walk a tree sensibly in tests; `chat` answers with a
function the test supplies, so each test states exactly what "the model" says.
"""

from __future__ import annotations

import json
import math
from typing import Any, Callable, Sequence

from medcoder.llm.base import LLM, CallStats, Capabilities, Continuation, Message, Option
from medcoder.words import tokenize

Responder = Callable[[list[Message], dict[str, Any] | None], Any]
Chooser = Callable[[list[Message], Sequence[Option]], "str | None"]


class FakeLLM(LLM):
    """Deterministic: word overlap for `choose`, a scripted `responder` for `chat`."""

    backend = "fake"
    capabilities = Capabilities(logprobs=True, grammar=True, prefix_cache=False, batched_score=True)

    def __init__(self, responder: Responder | None = None, name: str = "fake", chooser: Chooser | None = None) -> None:
        super().__init__()
        self.responder = responder
        self.chooser = chooser  # may name the option to pick (key), or None for word overlap
        self.name = name
        self.sha256 = "0" * 64
        self.calls = 0

    def _chat(
        self, messages: list[Message], schema: dict[str, Any] | None, max_tokens: int | None, temperature: float | None
    ) -> tuple[str, CallStats]:
        self.calls += 1
        answer = self.responder(messages, schema) if self.responder else ("{}" if schema else "ok")
        text = answer if isinstance(answer, str) else json.dumps(answer)
        return text, CallStats(
            prompt_tokens=sum(len(m["content"].split()) for m in messages),
            completion_tokens=len(text.split()),
            sampling={"fake": True},
        )

    def _choose_logprobs(self, messages: list[Message], options: Sequence[Option]) -> tuple[list[float], CallStats]:
        self.calls += 1
        body = messages[-1]["content"].split("\n\nOptions:\n")[0]
        forced = self.chooser(messages, options) if self.chooser else None
        if forced is not None:
            return [0.0 if o.key == forced else -9.0 for o in options], CallStats(sampling={"fake": True})
        words = set(tokenize(body))
        scores = []
        for o in options:
            label = set(tokenize(o.label))
            overlap = len(words & label) / (len(label) ** 0.5 or 1.0)
            scores.append(3.0 * overlap)
        log_z = math.log(sum(math.exp(s) for s in scores) + 1.0)  # the +1: mass left for "not a label"
        return [s - log_z for s in scores], CallStats(prompt_tokens=len(body.split()), sampling={"fake": True})

    def _score(self, messages: list[Message], continuations: Sequence[Continuation]) -> tuple[list[float], CallStats]:
        """ " yes" is likely when the prompt's words occur in the context, " no" when they do not."""
        self.calls += 1
        words = set(tokenize(" ".join(m["content"] for m in messages)))
        out = []
        for c in continuations:
            asked = tokenize(c.prompt)
            share = len([w for w in asked if w in words]) / len(asked) if asked else 0.5
            p_yes = 1.0 / (1.0 + math.exp(-(6.0 * share - 3.0)))
            answer = c.text.strip().lower()  # "no" is a stopword to the tokenizer: compare the raw text
            if answer == "yes":
                out.append(math.log(p_yes))
            elif answer == "no":
                out.append(math.log(1.0 - p_yes))
            else:
                out.append(-2.0 * max(1, len(tokenize(c.text))) + share)
        return out, CallStats(
            prompt_tokens=len(words) + sum(len(c.prompt.split()) for c in continuations), sampling={"fake": True}
        )
