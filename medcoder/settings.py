"""One settings object for the runtime: model, GPU layers, context, threads, where to write.

Read, strongest first, from keyword arguments, `MEDCODER_*` environment variables, and a
TOML config file (`MEDCODER_CONFIG`, else `$MEDCODER_HOME/config.toml`).
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

from medcoder import paths
from medcoder.errors import ConfigError


def config_file() -> Path:
    return paths.config_file()


class Settings(BaseSettings):
    """Runtime settings; every field is also `MEDCODER_<FIELD>` in the environment."""

    model_config = SettingsConfigDict(env_prefix="MEDCODER_", extra="forbid", validate_default=True)

    model: str = Field("default", description="model name (default, test) or a GGUF path")
    backend: str = Field("llama_cpp", description="llama_cpp, http or replay")
    base_url: str | None = Field(None, description="OpenAI-compatible server for the http backend")
    api_key: str | None = Field(None, description="Bearer token the http backend sends (a keyed server)")
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


def load_settings(**values: Any) -> Settings:
    """Settings from keywords, environment and config file; a bad value or file is one `ConfigError` line."""
    path = config_file()
    try:
        return Settings(**values)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc}); fix that line or remove the file") from exc
    except ValidationError as exc:
        raise _config_error(exc, path, values) from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror or exc})") from exc


def check_config() -> None:
    """Raise `ConfigError` when the config file or a `MEDCODER_*` variable is wrong (every command checks first)."""
    load_settings()


def _config_error(exc: ValidationError, path: Path, values: dict[str, Any]) -> ConfigError:
    """Name where the first bad field came from (keyword, variable, or file and line) and what would fix it."""
    err = exc.errors()[0]
    field = str(err["loc"][0]) if err["loc"] else "?"
    fields = list(Settings.model_fields)
    if err["type"] == "extra_forbidden":
        near = difflib.get_close_matches(field, fields, n=1)
        problem = f"unknown setting {field!r}" + (f" (did you mean {near[0]!r}?)" if near else "")
        fix = f"known settings: {', '.join(fields)}"
    else:
        problem = f"{field} = {err.get('input')!r}: {err['msg']}"
        fix = (Settings.model_fields[field].description or "") if field in Settings.model_fields else ""
    if field in values:
        where = f"argument {field}"
    elif f"MEDCODER_{field.upper()}" in os.environ:
        where = f"environment variable MEDCODER_{field.upper()}"
    else:
        where = f"{path}{_line_of(path, field)}"
    return ConfigError(f"{where}: {problem}" + (f"; {fix}" if fix else ""))


def _line_of(path: Path, key: str) -> str:
    """`:N` for the line of the config file that sets `key`, when it can be found."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    pattern = re.compile(rf"^\s*[\"']?{re.escape(key)}[\"']?\s*=")
    return next((f":{n}" for n, line in enumerate(lines, start=1) if pattern.match(line)), "")
