"""Settings from env and config file; the model registry and `medcoder models` commands."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from pydantic import ValidationError

from medcoder.cli import main
from medcoder.llm.registry import MODELS, ModelFileError, resolve_model
from medcoder.settings import Settings


def test_settings_env_beats_file(tmp_path, monkeypatch) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text('model = "test"\nn_ctx = 1024\nn_threads = 2\n')
    monkeypatch.setenv("MEDCODER_CONFIG", str(cfg))
    monkeypatch.setenv("MEDCODER_N_CTX", "3000")
    s = Settings()
    assert (s.model, s.n_ctx, s.n_threads) == ("test", 3000, 2)
    assert Settings(n_ctx=512).n_ctx == 512


def test_settings_reject_unknown_keys(tmp_path, monkeypatch) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text('modle = "test"\n')
    monkeypatch.setenv("MEDCODER_CONFIG", str(cfg))
    with pytest.raises(ValidationError, match="modle"):
        Settings()


def test_resolve_names_paths_and_env(tmp_path, monkeypatch) -> None:
    assert resolve_model("test")[1].name == MODELS["test"].filename
    gguf = tmp_path / "mine.gguf"
    gguf.write_bytes(b"GGUF")
    assert resolve_model(str(gguf)) == ("mine.gguf", gguf)
    monkeypatch.setenv("MEDCODER_MODEL", str(gguf))
    assert resolve_model(None)[1] == gguf
    with pytest.raises(ModelFileError, match="not found"):
        resolve_model(str(tmp_path / "missing.gguf"))


def test_models_list_and_verify() -> None:
    out = CliRunner().invoke(main, ["models", "list", "--json"])
    data = {m["name"]: m for m in json.loads(out.stdout)}
    assert set(data) == {"default", "test"} and data["test"]["present"]
    ok = CliRunner().invoke(main, ["models", "verify", "test", "--json"])
    assert ok.exit_code == 0 and json.loads(ok.stdout)[0]["sha256"] == MODELS["test"].sha256


def test_verify_fails_with_the_reason(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MEDCODER_MODELS_DIR", str(tmp_path / "models"))  # no assembled default model here
    res = CliRunner().invoke(main, ["models", "verify", "default"])
    assert res.exit_code == 1 and "missing" in res.stdout and str(tmp_path) in res.stdout
    (tmp_path / "models").mkdir(exist_ok=True)
    (tmp_path / "models" / MODELS["default"].filename).write_bytes(b"GGUF truncated")
    res = CliRunner().invoke(main, ["models", "verify", "default"])
    assert res.exit_code == 1 and "size" in res.stdout


def test_verify_after_setup() -> None:
    """The README's set-up assembles the default model; verify must pass (skipped where it did not run)."""
    if not MODELS["default"].path().is_file():
        pytest.skip("default model not assembled in this MEDCODER_HOME")
    res = CliRunner().invoke(main, ["models", "verify"])
    assert res.exit_code == 0, res.stdout
