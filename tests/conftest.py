"""Shared fixtures: one MEDCODER_HOME per test session (audit stores, checkpoints) so runs never touch the user's."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session", autouse=True)
def medcoder_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from medcoder import paths

    # keep seeing the models the set-up assembled, but write everything else somewhere fresh
    os.environ.setdefault("MEDCODER_MODELS_DIR", str(paths.models_dir()))
    # and the caches (graphs, the vector index): they are keyed by their inputs, so sharing is safe
    os.environ.setdefault("MEDCODER_CACHE_DIR", str(paths.cache_dir()))
    home = Path(os.environ.get("MEDCODER_TEST_HOME") or tmp_path_factory.mktemp("medcoder-home"))
    os.environ["MEDCODER_HOME"] = str(home)
    return home


@pytest.fixture(scope="session")
def icd(medcoder_home: Path):  # type: ignore[no-untyped-def]
    from medcoder.knowledge import load_icd10cm

    return load_icd10cm()


@pytest.fixture(scope="session")
def atc(medcoder_home: Path):  # type: ignore[no-untyped-def]
    from medcoder.knowledge import load_atc

    return load_atc()


@pytest.fixture(scope="session")
def kb(medcoder_home: Path):  # type: ignore[no-untyped-def]
    from medcoder.knowledge import default_kb

    return default_kb()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


@pytest.fixture(scope="session")
def llama_server(medcoder_home: Path) -> Iterator[str]:
    """A real `python -m llama_cpp.server` with the test model on 127.0.0.1 (one slot of `medcoder serve-model`,
    served as `smollm2`), for the HTTP backend's tests."""
    pytest.importorskip("fastapi")
    from medcoder.llm.serving import ModelServer, ServeOptions

    with ModelServer(ServeOptions(model="test", slots=1, port=0, n_ctx=2048, alias="smollm2")) as server:
        yield server.url


@pytest.fixture(scope="session")
def local_reference(tmp_path_factory: pytest.TempPathFactory, medcoder_home: Path) -> tuple[Path, dict[str, Any]]:
    """The 12 batch notes coded once by the local engine in this process (`full`, test model): what the Ray
    engine and the served model must reproduce."""
    from medcoder.engine.workflow import load_workflow
    from tests.batch_notes import codes_by_id, write_notes

    tmp = tmp_path_factory.mktemp("reference")
    write_notes(tmp / "notes")
    with load_workflow("full", model="test", checkpoint_path=tmp / "c.sqlite") as wf:
        summary = wf.run_batch(tmp / "notes", tmp / "local.jsonl")
    assert (summary.done, summary.errors) == (11, 1)
    return tmp / "notes", codes_by_id(tmp / "local.jsonl")


@pytest.fixture(scope="session")
def web_workspace(tmp_path_factory: pytest.TempPathFactory, medcoder_home: Path) -> Iterator[Any]:
    """The web workspace over `full` with the test model (real llama.cpp, ChromaDB, audit store), with its
    own worklist; shared by the API and browser tests."""
    pytest.importorskip("fastapi")
    from medcoder.web import Workspace
    from medcoder.web.worklist import Worklist

    ws = Workspace("full", model="test", worklist=Worklist(tmp_path_factory.mktemp("web") / "workspace.sqlite"))
    yield ws
    ws.close()


@pytest.fixture(scope="session")
def nomodel_workspace(tmp_path_factory: pytest.TempPathFactory, medcoder_home: Path) -> Iterator[Any]:
    """A web workspace over `icd10cm-nomodel` (ranked, no model: a note codes in about a second)."""
    pytest.importorskip("fastapi")
    from medcoder.web import Workspace
    from medcoder.web.worklist import Worklist

    ws = Workspace("icd10cm-nomodel", worklist=Worklist(tmp_path_factory.mktemp("web") / "workspace.sqlite"))
    yield ws
    ws.close()
