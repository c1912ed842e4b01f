"""Shared fixtures: one MEDCODER_HOME per test session (audit stores, checkpoints) so runs never touch the user's."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
_MARK = "MEDCODER_TEST_SESSION"  # every process the suite starts inherits it; none may outlive the run


def pytest_sessionstart(session: pytest.Session) -> None:
    os.environ[_MARK] = f"{os.getpid()}-{time.time_ns()}"


def _left_running(mark: str) -> list[tuple[int, str]]:
    """Live processes (not this one, not zombies) that carry this run's mark: (pid, command line)."""
    out = []
    for proc in Path("/proc").glob("[0-9]*"):
        pid = int(proc.name)
        if pid == os.getpid():
            continue
        try:
            if f"{_MARK}={mark}".encode() not in (proc / "environ").read_bytes().split(b"\0"):
                continue
            if (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if "multiprocessing.resource_tracker" in cmd or "multiprocessing.forkserver" in cmd:
                continue  # the interpreter's own helpers: they end with this process
            out.append((pid, cmd[:160]))
        except OSError:
            continue
    return out


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """The run fails if a process it started is still running 30 s after the last test (then it is killed)."""
    mark = os.environ.get(_MARK)
    if not mark or not Path("/proc/self/environ").exists():
        return
    deadline = time.monotonic() + 30
    left = _left_running(mark)
    while left and time.monotonic() < deadline:  # a server given SIGTERM by its fixture may take a moment
        time.sleep(1)
        left = _left_running(mark)
    if left:
        import signal

        lines = "\n".join(f"  {pid}: {cmd}" for pid, cmd in left)
        session.config.get_terminal_writer().line(f"processes the test run started are still running:\n{lines}",
                                                  red=True)
        for pid, _ in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


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
def icd(medcoder_home: Path):
    from medcoder.knowledge import load_icd10cm

    return load_icd10cm()


@pytest.fixture(scope="session")
def atc(medcoder_home: Path):
    from medcoder.knowledge import load_atc

    return load_atc()


@pytest.fixture(scope="session")
def kb(medcoder_home: Path):
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
    from medcoder.batch import code_batch
    from medcoder.engine.workflow import load_workflow
    from tests.batch_notes import codes_by_id, write_notes

    tmp = tmp_path_factory.mktemp("reference")
    write_notes(tmp / "notes")
    with load_workflow("full", model="test", checkpoint_path=tmp / "c.sqlite") as wf:
        summary = code_batch(wf, tmp / "notes", tmp / "local.jsonl")
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
