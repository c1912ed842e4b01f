"""An OpenAI-compatible HTTP backend for a llama.cpp or vLLM server (chat completions).

Structured output goes through `response_format` with a JSON schema, which both servers
turn into a grammar. `choose` reads the log-probability of each option's label after the prompt
the way `score` reads continuations (a server's top-k next-token list may not hold every label),
so it ranks options exactly as the in-process backend does. `score` sends one completion request per
continuation with the shared context first (`echo` + `logprobs`: the server returns the
log-probability of every prompt token), concurrently, so a server with parallel slots and a
prefix cache evaluates the context once. Uses only the standard library (and jinja2, which
llama-cpp-python brings, to render the chat template the same way as in-process).
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Sequence

from medcoder.errors import MedcoderError
from medcoder.llm.base import LABELS, LLM, CallStats, Capabilities, Continuation, Message, ModelOutputError, Option

# ChatML, used by Qwen2.5 and SmolLM2; a server's own template (`chat_template=`) takes precedence
CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

logger = logging.getLogger(__name__)


class HttpLLM(LLM):
    """A model served at `base_url` (for example http://127.0.0.1:8080/v1)."""

    backend = "http"
    capabilities = Capabilities(logprobs=True, grammar=True, prefix_cache=True, batched_score=True)

    def __init__(
        self,
        base_url: str,
        model: str | None = None,
        *,
        api_key: str | None = None,
        timeout: float = 900.0,
        seed: int = 0,
        temperature: float = 0.0,
        max_tokens: int = 512,
        sha256: str = "",
        chat_template: str | None = None,
        parallel: int = 4,
    ) -> None:
        super().__init__()
        self.chat_template = chat_template or CHATML
        self.parallel = max(1, parallel)  # concurrent requests: match the server's slots
        if not base_url.startswith(("http://", "https://")):
            raise MedcoderError(f"not an http(s) URL: {base_url}")
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout
        self.seed, self.temperature, self.max_tokens = seed, temperature, max_tokens
        self.model = model or self._first_model()
        self.name = self.model
        self.sha256 = sha256  # a server does not tell its file's hash; the caller may

    def _request(self, path: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        data = json.dumps(payload).encode() if payload is not None else None
        req = urllib.request.Request(
            f"{self.base_url}{path}",
            data=data,
            method="POST" if data else "GET",
            headers={
                "Content-Type": "application/json",
                **({"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}),
            },
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            raise MedcoderError(f"{self.base_url}{path}: HTTP {exc.code}: {exc.read()[:300]!r}") from exc
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            raise MedcoderError(f"cannot reach model server {self.base_url}: {exc}") from exc

    def _first_model(self) -> str:
        models = self._request("/models").get("data", [])
        if not models:
            raise MedcoderError(f"{self.base_url} serves no model")
        return models[0]["id"]

    def _chat(
        self, messages: list[Message], schema: dict[str, Any] | None, max_tokens: int | None, temperature: float | None
    ) -> tuple[str, CallStats]:
        sampling = {
            "temperature": self.temperature if temperature is None else temperature,
            "seed": self.seed,
            "max_tokens": max_tokens or self.max_tokens,
        }
        # llama.cpp's python server penalises repeats (1.1) unless told not to; in-process decoding does not,
        # and a JSON answer repeats its keys: without this the same model answers differently over HTTP
        payload: dict[str, Any] = {"model": self.model, "messages": messages, **sampling, "repeat_penalty": 1.0}
        if schema is not None:
            payload["response_format"] = {"type": "json_object", "schema": schema}
        out = self._request("/chat/completions", payload)
        text = out["choices"][0]["message"].get("content") or ""
        usage = out.get("usage") or {}
        cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0) or 0
        return text, CallStats(
            prompt_tokens=usage.get("prompt_tokens", 0),
            cached_tokens=cached,
            completion_tokens=usage.get("completion_tokens", 0),
            sampling=sampling,
        )

    def render(self, messages: Sequence[Message]) -> str:
        """The chat prompt as text, ending where the assistant's answer begins (for raw completions)."""
        import jinja2

        env = jinja2.Environment(loader=jinja2.BaseLoader(), trim_blocks=True, lstrip_blocks=True)
        env.globals["raise_exception"] = lambda msg: (_ for _ in ()).throw(MedcoderError(msg))
        return env.from_string(self.chat_template).render(
            messages=list(messages), add_generation_prompt=True, bos_token="", eos_token=""
        )

    def _choose_logprobs(self, messages: list[Message], options: Sequence[Option]) -> tuple[list[float], CallStats]:
        """Each label's log-probability as the first answer token: one echo request per label, concurrently."""
        logprobs, stats = self._score(messages, [Continuation(LABELS[i]) for i in range(len(options))])
        stats.sampling = {"method": "next-token log-probabilities (echo)", "labels": len(options)}
        return logprobs, stats

    def _score(self, messages: list[Message], continuations: Sequence[Continuation]) -> tuple[list[float], CallStats]:
        context = self.render(messages)

        def one(c: Continuation) -> tuple[float, dict[str, Any]]:
            head = context + c.prompt
            out = self._request(
                "/completions",
                {
                    "model": self.model,
                    "prompt": head + c.text,
                    "max_tokens": 1,
                    "temperature": 0.0,
                    "echo": True,
                    "logprobs": 1,
                    "seed": self.seed,
                },
            )
            lp = out["choices"][0].get("logprobs") or {}
            tokens, values = lp.get("tokens") or [], lp.get("token_logprobs") or []
            if len(tokens) < 2 or len(tokens) != len(values):
                raise ModelOutputError(
                    f"{self.base_url}: the server returned no prompt log-probabilities "
                    "(llama.cpp's python server needs logits_all, the default)"
                )
            # the continuation ends the prompt: its tokens are the last prompt tokens (the very last
            # token was generated); offsets cannot be trusted, since servers drop special tokens from them
            picked, covered = [], ""
            for tok, v in zip(reversed(tokens[:-1]), reversed(values[:-1])):
                if v is None:
                    break
                picked.append(v)
                covered = tok + covered
                if len(covered) >= len(c.text):
                    break
            if not picked or len(covered) < len(c.text.strip()):
                raise ModelOutputError(f"{self.base_url}: no token of {c.text!r} was scored")
            return float(sum(picked)), out.get("usage") or {}

        with ThreadPoolExecutor(max_workers=self.parallel) as pool:
            answers = list(pool.map(one, continuations))
        usage = [u for _, u in answers]
        return [s for s, _ in answers], CallStats(
            prompt_tokens=sum(u.get("prompt_tokens", 0) for u in usage),
            cached_tokens=sum((u.get("prompt_tokens_details") or {}).get("cached_tokens", 0) or 0 for u in usage),
            sampling={"method": "echo log-probabilities", "continuations": len(continuations)},
        )
