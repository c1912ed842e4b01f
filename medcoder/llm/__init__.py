"""Model backends behind one interface: llama.cpp in-process, OpenAI-compatible HTTP, replay, fake."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medcoder.errors import MedcoderError
from medcoder.llm.base import (
    LLM, Capabilities, CallRecord, CallStats, ChatResult, Choice, ChooseResult, ModelOutputError, Option,
)
from medcoder.llm.fake import FakeLLM
from medcoder.llm.registry import MODELS, ModelFileError, list_models, resolve_model, verify_model
from medcoder.llm.replay import ReplayLLM, ReplayMissError
from medcoder.settings import Settings

__all__ = [
    "LLM", "MODELS", "Capabilities", "CallRecord", "CallStats", "ChatResult", "Choice", "ChooseResult", "FakeLLM",
    "ModelFileError", "ModelOutputError", "Option", "ReplayLLM", "ReplayMissError", "list_models", "load_llm",
    "resolve_model", "verify_model",
]


def load_llm(model: str | Path | None = None, settings: Settings | None = None, **overrides: Any) -> LLM:
    """A model from settings: `model` is `default`, `test`, `fake`, a GGUF path, or a served model name.

    The backend comes from `settings.backend` (llama_cpp, http); `overrides` change settings fields.
    """
    settings = (settings or Settings()).with_overrides(model=str(model) if model is not None else None, **overrides)
    if settings.model == "fake":
        return FakeLLM()
    if settings.backend == "http":
        from medcoder.llm.http_backend import HttpLLM

        if not settings.base_url:
            raise MedcoderError("the http backend needs base_url (MEDCODER_BASE_URL)")
        served = None if settings.model in MODELS or settings.model == "default" else settings.model
        return HttpLLM(settings.base_url, served, seed=settings.seed, temperature=settings.temperature,
                       max_tokens=settings.max_tokens)
    if settings.backend != "llama_cpp":
        raise MedcoderError(f"unknown backend {settings.backend!r}: llama_cpp or http (replay takes a recorded run)")
    from medcoder.llm.llama_cpp_backend import LlamaCppLLM

    name, path = resolve_model(settings.model)
    return LlamaCppLLM(path, name=name, n_ctx=settings.n_ctx, n_gpu_layers=settings.n_gpu_layers,
                       n_threads=settings.n_threads, n_batch=settings.n_batch, seed=settings.seed,
                       temperature=settings.temperature, max_tokens=settings.max_tokens)
