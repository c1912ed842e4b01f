"""Where medcoder keeps what it writes.

Two places: the home (`MEDCODER_HOME`) holds what the user creates (audit store, checkpoints,
sessions, learned rankers); the user cache holds what is derived from installed packages (the
vector index, graph caches, the assembled default model), shared by every home and keyed by
its inputs, so a new home per project rebuilds nothing.
"""

from __future__ import annotations

import gc
import hashlib
import logging
import os
import pickle
import shutil
import tempfile
import tomllib
from pathlib import Path
from typing import Any, Callable

import platformdirs

from medcoder import storage

logger = logging.getLogger(__name__)


def home() -> Path:
    """Root of what the user creates: audit store, checkpoints, sessions, config, learned rankers.

    Point `MEDCODER_HOME` at a folder per project; nothing derived lives here, so a new home
    costs no rebuild.
    """
    env = os.environ.get("MEDCODER_HOME")
    path = Path(env).expanduser() if env else Path(platformdirs.user_data_dir("medcoder", appauthor=False))
    try:
        return storage.private_dir(path)  # owner-only: it holds notes, audit trails and checkpoints
    except OSError as exc:
        raise storage.storage_error(path, "MEDCODER_HOME", exc) from exc


def config_file() -> Path:
    """The TOML settings file: `MEDCODER_CONFIG`, else `$MEDCODER_HOME/config.toml`."""
    env = os.environ.get("MEDCODER_CONFIG")
    return Path(env).expanduser() if env else home() / "config.toml"


def _configured(key: str) -> str | None:
    """A path setting from the config file, read directly (settings need paths, not the other way round)."""
    path = config_file()
    if not path.is_file():
        return None
    try:
        with open(path, "rb") as fh:
            value = tomllib.load(fh).get(key)
    except (OSError, tomllib.TOMLDecodeError):
        return None  # Settings reports a broken config file with its line; paths just use the default
    return str(value) if value else None


def _derived_root() -> Path:
    """Where what is derived from installed packages lives: shared by every home, keyed by its inputs."""
    return Path(platformdirs.user_cache_dir("medcoder", appauthor=False))


def _adopt(old: Path, new: Path) -> None:
    """Move a folder from where an older medcoder kept it (inside the home) to its new place, once."""
    if new.exists() or not old.is_dir() or not any(old.iterdir()):
        return
    try:
        new.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(old), str(new))
        logger.info("moved %s to %s (derived data now lives outside MEDCODER_HOME)", old, new)
    except OSError as exc:
        logger.warning("could not move %s to %s (%s); it will be rebuilt there", old, new, exc)


def _derived_dir(kind: str, env: str) -> Path:
    """A folder of derived data: `env`, the config key `<kind>_dir`, else `<user cache>/<kind>`."""
    chosen = os.environ.get(env) or _configured(f"{kind}_dir")
    if chosen:
        path = Path(chosen).expanduser()
    else:
        path = _derived_root() / kind
        _adopt(home() / kind, path)
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_dir() -> Path:
    """Caches of built graphs and indexes: `MEDCODER_CACHE_DIR`, `cache_dir` in config.toml, else the user cache."""
    return _derived_dir("cache", "MEDCODER_CACHE_DIR")


def models_dir() -> Path:
    """Assembled model files: `MEDCODER_MODELS_DIR`, `models_dir` in config.toml, else the user cache."""
    return _derived_dir("models", "MEDCODER_MODELS_DIR")


def file_digest(path: Path, algo: str = "sha256") -> str:
    h = hashlib.new(algo)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def cached_pickle(name: str, key: str, build: Callable[[], Any]) -> Any:
    """Load `name` from the cache when its key matches, else build it and store it atomically.

    A corrupt or stale cache file is rebuilt, never trusted.
    """
    path = cache_dir() / f"{name}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.pkl"
    if path.exists():
        gc.disable()  # unpickling ~10^5 small objects is 2x faster without the cycle collector
        try:
            with open(path, "rb") as fh:
                return pickle.load(fh)
        except Exception as exc:  # corrupt cache: rebuild below
            logger.warning("cache %s unreadable (%s); rebuilding", path, exc)
        finally:
            gc.enable()
    value = build()
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            pickle.dump(value, fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
    except OSError as exc:
        logger.warning("could not write cache %s: %s", path, exc)
        Path(tmp).unlink(missing_ok=True)
    return value
