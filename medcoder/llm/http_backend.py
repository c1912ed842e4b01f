"""An OpenAI-compatible HTTP backend for a llama.cpp or vLLM server (chat completions).

Structured output goes through `response_format` with a JSON schema, which both servers
turn into a grammar. Servers do not expose next-token log-probabilities of our labels
reliably, so `choose` uses the grammar fallback. Uses only the standard library.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from typing import Any

from medcoder.errors import MedcoderError
from medcoder.llm.base import LLM, Capabilities, CallStats, Message

logger = logging.getLogger(__name__)


class HttpLLM(LLM):
    """A model served at `base_url` (for example http://127.0.0.1:8080/v1)."""

    backend = "http"
    capabilities = Capabilities(logprobs=False, grammar=True, prefix_cache=True)

    def __init__(self, base_url: str, model: str | None = None, *, api_key: str | None = None, timeout: float = 120.0,
                 seed: int = 0, temperature: float = 0.0, max_tokens: int = 512, sha256: str = "") -> None:
        super().__init__()
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
        req = urllib.request.Request(f"{self.base_url}{path}", data=data, method="POST" if data else "GET",
                                     headers={"Content-Type": "application/json",
                                              **({"Authorization": f"Bearer {self.api_key}"} if self.api_key else {})})
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

    def _chat(self, messages: list[Message], schema: dict[str, Any] | None, max_tokens: int | None,
              temperature: float | None) -> tuple[str, CallStats]:
        sampling = {"temperature": self.temperature if temperature is None else temperature, "seed": self.seed,
                    "max_tokens": max_tokens or self.max_tokens}
        payload: dict[str, Any] = {"model": self.model, "messages": messages, **sampling}
        if schema is not None:
            payload["response_format"] = {"type": "json_object", "schema": schema}
        out = self._request("/chat/completions", payload)
        text = out["choices"][0]["message"].get("content") or ""
        usage = out.get("usage") or {}
        cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0) or 0
        return text, CallStats(prompt_tokens=usage.get("prompt_tokens", 0), cached_tokens=cached,
                               completion_tokens=usage.get("completion_tokens", 0), sampling=sampling)
