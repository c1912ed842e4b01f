"""Where things live: what the user creates in the home, what is derived in the shared user cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from medcoder import paths


@pytest.fixture()
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for var in ("MEDCODER_CACHE_DIR", "MEDCODER_MODELS_DIR", "MEDCODER_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.setenv("MEDCODER_HOME", str(tmp_path / "project-a"))
    return tmp_path


def test_a_new_home_shares_the_derived_caches(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache, models = paths.cache_dir(), paths.models_dir()
    assert clean_env / "xdg-cache" in cache.parents and not str(cache).startswith(str(paths.home()))
    monkeypatch.setenv("MEDCODER_HOME", str(clean_env / "project-b"))
    assert paths.cache_dir() == cache and paths.models_dir() == models  # nothing to rebuild
    assert paths.home() == clean_env / "project-b"


def test_config_toml_moves_the_caches(clean_env: Path) -> None:
    (paths.home() / "config.toml").write_text(f'cache_dir = "{clean_env / "c"}"\nmodels_dir = "{clean_env / "m"}"\n')
    assert paths.cache_dir() == clean_env / "c" and paths.models_dir() == clean_env / "m"
    from medcoder.settings import Settings

    assert Settings().cache_dir == clean_env / "c"  # the same keys are valid settings


def test_derived_data_from_an_older_home_is_moved_once(clean_env: Path) -> None:
    old = paths.home() / "cache"
    (old / "chroma").mkdir(parents=True)
    (old / "chroma" / "marker").write_text("built")
    new = paths.cache_dir()
    assert (new / "chroma" / "marker").read_text() == "built" and not old.exists()
