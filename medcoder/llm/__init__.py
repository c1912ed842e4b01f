"""Model backends behind one interface: llama.cpp in-process, OpenAI-compatible HTTP, replay, fake."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medcoder import plugins
from medcoder.errors import MedcoderError
from medcoder.llm.base import (
    LLM,
    CallRecord,
    CallStats,
    Capabilities,
    ChatResult,
    Choice,
    ChooseResult,
    ModelOutputError,
    Option,
)
from medcoder.llm.fake import FakeLLM
from medcoder.llm.registry import MODELS, ModelFileError, list_models, resolve_model, verify_model
from medcoder.llm.replay import ReplayLLM, ReplayMissError
from medcoder.settings import Settings, load_settings

__all__ = [
    "LLM",
    "MODELS",
    "Capabilities",
    "CallRecord",
    "CallStats",
    "ChatResult",
    "Choice",
    "ChooseResult",
    "FakeLLM",
    "ModelFileError",
    "ModelOutputError",
    "Option",
    "ReplayLLM",
    "ReplayMissError",
    "list_models",
    "load_llm",
    "resolve_model",
    "verify_model",
]


def load_llm(model: str | Path | None = None, settings: Settings | None = None, **overrides: Any) -> LLM:
    """A model from settings: `model` is `default`, `test`, `fake`, a GGUF path, or a served model name.

    The backend is looked up by `settings.backend` in the `medcoder.llm_backends` entry points
    (llama_cpp, http, replay, fake, or a plugin's); `overrides` change settings fields.
    """
    settings = (settings or load_settings()).with_overrides(
        model=str(model) if model is not None else None, **overrides
    )
    backend = "fake" if settings.model == "fake" else settings.backend
    try:
        loader = plugins.llm_backends.get(backend)
    except plugins.PluginError as exc:
        raise MedcoderError(
            f"unknown backend {backend!r}; installed: {', '.join(plugins.llm_backends.names())}"
        ) from exc
    return loader(settings)
