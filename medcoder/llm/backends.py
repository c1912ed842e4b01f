"""The built-in model backends as loaders `(settings) -> LLM`, registered under `medcoder.llm_backends`.

A plugin backend is the same: a function taking `Settings` and returning an `LLM`; `load_llm`
looks the backend name up in the registry, so no caller knows which backends exist.
"""

from __future__ import annotations

from medcoder.errors import MedcoderError
from medcoder.llm.base import LLM
from medcoder.settings import Settings


def load_llama_cpp(settings: Settings) -> LLM:
    """A GGUF model in this process: `default`, `test`, or a path."""
    from medcoder.llm.llama_cpp_backend import LlamaCppLLM  # deferred: only the chosen backend loads
    from medcoder.llm.registry import resolve_model  # deferred: only the chosen backend loads

    name, path = resolve_model(settings.model)
    return LlamaCppLLM(
        path,
        name=name,
        n_ctx=settings.n_ctx,
        n_gpu_layers=settings.n_gpu_layers,
        n_threads=settings.n_threads,
        n_batch=settings.n_batch,
        seed=settings.seed,
        temperature=settings.temperature,
        max_tokens=settings.max_tokens,
    )


def load_http(settings: Settings) -> LLM:  # deferred: only the chosen backend is imported (llama.cpp is heavy)
    """An OpenAI-compatible server (llama.cpp's server, vLLM) at `base_url`."""
    from medcoder.llm.http_backend import HttpLLM  # deferred: only the chosen backend loads
    from medcoder.llm.registry import MODELS  # deferred: only the chosen backend loads

    if not settings.base_url:
        raise MedcoderError("the http backend needs base_url (MEDCODER_BASE_URL)")
    served = None if settings.model in MODELS or settings.model == "default" else settings.model
    llm = HttpLLM(
        settings.base_url,
        served,
        api_key=settings.api_key,
        seed=settings.seed,
        temperature=settings.temperature,
        max_tokens=settings.max_tokens,
    )
    spec = MODELS.get(llm.model)  # `medcoder serve-model` names the model it serves `default` or `test`
    if spec is not None and spec.path().is_file():
        from medcoder.llm.llama_cpp_backend import chat_template_of  # deferred: only when the file is here

        llm.chat_template = chat_template_of(spec.path()) or llm.chat_template
    return llm


def load_fake(settings: Settings) -> LLM:
    """The deterministic test model (no weights)."""
    from medcoder.llm.fake import FakeLLM  # deferred: only the chosen backend loads

    return FakeLLM()


def load_replay(settings: Settings) -> LLM:
    """Answers recorded earlier: `model` is a JSONL file of model calls (the model_call payloads of
    `medcoder audit export`)."""
    from pathlib import Path

    from medcoder.llm.replay import ReplayLLM  # deferred: only the chosen backend loads

    path = Path(settings.model).expanduser()
    if not path.is_file():
        raise MedcoderError(f"the replay backend reads recorded calls from a JSONL file; {path} does not exist")
    return ReplayLLM.from_jsonl(path)
