"""One settings object for the runtime: model, GPU layers, context, threads, where to write.

Read, strongest first, from keyword arguments, `MEDCODER_*` environment variables, and a
TOML config file (`MEDCODER_CONFIG`, else `$MEDCODER_HOME/config.toml`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

from medcoder import paths


def config_file() -> Path:
    return paths.config_file()


class Settings(BaseSettings):
    """Runtime settings; every field is also `MEDCODER_<FIELD>` in the environment."""

    model_config = SettingsConfigDict(env_prefix="MEDCODER_", extra="forbid", validate_default=True)

    model: str = Field("default", description="model name (default, test) or a GGUF path")
    backend: str = Field("llama_cpp", description="llama_cpp, http or replay")
    base_url: str | None = Field(None, description="OpenAI-compatible server for the http backend")
    n_gpu_layers: int | None = Field(None, description="layers to offload; None: all when the build has GPU support")
    n_ctx: int = Field(4096, ge=256, description="context window in tokens")
    n_threads: int | None = Field(None, ge=1, description="CPU threads; None: llama.cpp's default")
    n_batch: int = Field(512, ge=1)
    seed: int = 0
    temperature: float = Field(0.0, ge=0.0)
    max_tokens: int = Field(512, ge=1)
    cache_dir: Path | None = Field(None, description="derived caches (graphs, vector index); default: the user cache")
    models_dir: Path | None = Field(None, description="assembled model files; default: the user cache")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file=config_file())

    def with_overrides(self, **changes: Any) -> "Settings":
        """A copy with the given fields changed (None values are ignored)."""
        return self.model_copy(update={k: v for k, v in changes.items() if v is not None})
