"""Where medcoder keeps what it writes: one home, movable with MEDCODER_HOME."""

from __future__ import annotations

import gc
import hashlib
import logging
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any, Callable

import platformdirs

logger = logging.getLogger(__name__)


def home() -> Path:
    """Root of everything medcoder writes (audit store, checkpoints, caches)."""
    env = os.environ.get("MEDCODER_HOME")
    path = Path(env).expanduser() if env else Path(platformdirs.user_data_dir("medcoder", appauthor=False))
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_dir() -> Path:
    """Caches of built graphs and indexes; `MEDCODER_CACHE_DIR` moves them on their own."""
    env = os.environ.get("MEDCODER_CACHE_DIR")
    path = Path(env).expanduser() if env else home() / "cache"
    path.mkdir(parents=True, exist_ok=True)
    return path


def models_dir() -> Path:
    """Assembled model files; `MEDCODER_MODELS_DIR` moves them on their own."""
    env = os.environ.get("MEDCODER_MODELS_DIR")
    path = Path(env).expanduser() if env else home() / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


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
