"""Several writers at once: processes on one audit store, two index builds, one Workflow on many threads."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.reliability import harness

pytestmark = pytest.mark.slow

_BUILD = """
import json, sys, time, logging
from pathlib import Path
logging.basicConfig(level=logging.INFO)
from medcoder.knowledge import KnowledgeBase, register_system
from medcoder.knowledge.dense import DenseIndex
from tests.toy_system import ToyFindings
register_system(ToyFindings)
t = time.perf_counter()
index = DenseIndex(KnowledgeBase(), ToyFindings.system, root=Path(sys.argv[1]))
info = index.build()
hits = index.search("cough", k=1)
print(json.dumps({"key": info["key"], "seconds": round(time.perf_counter() - t, 2), "hit": hits[0].code}))
"""


def test_four_processes_share_one_audit_store_without_a_locked_error(tmp_path: Path) -> None:
    fig = harness.concurrent_writers(tmp_path / "audit.sqlite", procs=4, seconds=8)
    assert fig.unclear == [], fig.unclear[:3]
    assert fig.extra["runs"] >= 8 and fig.chains == fig.extra["runs"] and fig.chains_ok == fig.chains


def test_two_index_builds_at_once_one_builds_the_other_waits_and_uses_it(tmp_path: Path) -> None:
    root = tmp_path / "chroma"
    procs = [subprocess.Popen([sys.executable, "-c", _BUILD, str(root)], cwd=harness.ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=harness.env_for(tmp_path / "home")) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1].decode()[-500:] for o in outs]
    results = [json.loads(o[0].decode().strip().splitlines()[-1]) for o in outs]
    assert results[0]["key"] == results[1]["key"] and all(r["hit"] for r in results)
    built = sum(b"dense index:" in o[1] and b"built" in o[1] for o in outs)
    assert built == 1, [o[1].decode()[-300:] for o in outs]  # exactly one process embedded the texts
    assert len([p for p in root.iterdir() if p.is_dir()]) == 1

# one Workflow on several threads:
# tests/test_plugins_and_threads.py::test_one_workflow_codes_several_notes_at_once_from_threads


def test_threads_opening_one_search_index_at_once_neither_fail_nor_rebuild_it(tmp_path: Path) -> None:
    """Found by this suite: 8 threads coding their first notes at once opened the Chroma store together, took it
    for damaged and rebuilt the ICD-10-CM index under each other (401 s instead of 1)."""
    import threading

    from chromadb.api.client import SharedSystemClient

    from medcoder.knowledge import KnowledgeBase, register_system
    from medcoder.knowledge.dense import DenseIndex
    from tests.toy_system import ToyFindings

    register_system(ToyFindings)
    built = DenseIndex(KnowledgeBase(), ToyFindings.system, root=tmp_path / "chroma").build()
    marker = (Path(built["path"]) / "medcoder-index.json").read_text()
    for _ in range(5):  # the race is timing-dependent: open a fresh client from 16 threads, five times
        SharedSystemClient.clear_system_cache()
        fresh = DenseIndex(KnowledgeBase(), ToyFindings.system, root=tmp_path / "chroma")
        hits: list[str] = []
        errors: list[BaseException] = []

        def search(index: DenseIndex = fresh) -> None:
            try:
                hits.append(index.search("cough", k=1)[0].code)
            except BaseException as exc:  # noqa: BLE001 - collected and asserted below
                errors.append(exc)

        threads = [threading.Thread(target=search) for _ in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert errors == [] and len(hits) == 16
        assert (Path(built["path"]) / "medcoder-index.json").read_text() == marker  # not rebuilt
