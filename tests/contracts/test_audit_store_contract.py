"""One contract for every audit store (SQLite on disk, and in memory; a new backend joins STORES)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Callable

import pytest

from medcoder.audit.memory import MemoryAuditStore
from medcoder.audit.store import AuditError, AuditStore, SQLiteAuditStore

STORES: dict[str, Callable[[Path], AuditStore]] = {"sqlite": lambda tmp: SQLiteAuditStore(tmp / "audit.sqlite"),
                                                   "memory": lambda tmp: MemoryAuditStore()}
LONG = "You are a careful medical coder. " * 20  # a prompt long enough to be stored once, by address


@pytest.fixture(params=sorted(STORES))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> AuditStore:
    s = STORES[request.param](tmp_path)
    yield s
    s.close()


def _run(store: AuditStore, run_id: str = "r1", calls: int = 3) -> None:
    store.create_run(run_id, "wf", "name: wf", {"model": "fake"}, "the note text", True)
    store.append(run_id, "extract", "node_start", {"node": "extract"})
    for i in range(calls):
        store.append(run_id, "extract", "model_call", {"kind": "chat", "messages": [
            {"role": "system", "content": LONG}, {"role": "user", "content": f"question {i}"}],
            "schema": {"type": "object", "properties": {"a": {"type": "string"}}}, "text": "{}"})
    store.finish_run(run_id, "done", {"codes": []})


def test_a_run_reads_back_in_order_and_verifies(store: AuditStore) -> None:
    _run(store)
    info = store.run("r1")
    assert info.status == "done" and info.note == "the note text" and info.n_events == 5
    events = list(store.events("r1"))
    assert [e.seq for e in events] == list(range(5)) and events[0].kind == "run"
    assert events[2].payload["messages"][0]["content"] == LONG  # blobs come back whole
    assert events[2].payload["schema"]["properties"]["a"] == {"type": "string"}
    assert store.verify("r1").ok
    assert [r.run_id for r in store.runs()] == ["r1"]
    store.append("r1", "session", "session_decision", {"action": "accept", "code": "E11.9"})
    assert store.verify("r1").ok and store.run("r1").n_events == 6  # a finished run's new event is sealed in


def test_a_changed_event_is_named(store: AuditStore) -> None:
    """Change one stored event behind the store's back: `verify` names it."""
    _run(store)
    if isinstance(store, SQLiteAuditStore):
        store.close()
        with sqlite3.connect(store.path) as conn:
            conn.execute("UPDATE events SET payload = replace(payload, 'question 0', 'question 9') WHERE seq = 2")
    elif isinstance(store, MemoryAuditStore):
        ev = store._events["r1"][2]
        ev.payload_json = ev.payload_json.replace("question 0", "question 9")
    else:
        pytest.skip("no way to tamper with this store in a test")
    check = store.verify("r1")
    assert not check.ok and check.first_bad == 2 and "changed" in check.reason


def test_unknown_runs_are_clear_errors(store: AuditStore) -> None:
    with pytest.raises(AuditError, match="no run 'nope'"):
        store.run("nope")
    with pytest.raises(AuditError):
        store.append("nope", "n", "x", {})


def test_each_long_text_is_stored_once_and_still_verified(store: AuditStore, tmp_path: Path) -> None:
    _run(store, "r1")
    _run(store, "r2")
    size = store.size()
    if isinstance(store, MemoryAuditStore):  # keeps payloads whole (no blobs) and reports no size
        assert size == {} and list(store.events("r2"))[2].payload["messages"][0]["content"] == LONG
        return
    assert size["blobs"] == 2 and size["blob_bytes"] < 2 * len(LONG)  # one prompt text + one schema, for 6 calls
    if isinstance(store, SQLiteAuditStore):  # change the stored prompt: verify names the event that points at it
        store.close()
        with sqlite3.connect(store.path) as conn:
            conn.execute("UPDATE blobs SET text = replace(text, 'careful', 'careless')")
        check = store.verify("r2")
        assert not check.ok and "stored text" in check.reason and check.first_bad == 2


def test_a_workflow_records_into_the_store(store: AuditStore, tmp_path: Path) -> None:
    from tests.test_workflow_logic import NOTE, workflow

    wf, _ = workflow(checkpoint_path=tmp_path / "c.sqlite", audit=store)
    result = wf.run(NOTE, run_id="wf-1")
    info = store.run("wf-1")
    kinds = {e.kind for e in store.events("wf-1")}
    assert info.status == "done" and {c["code"] for c in info.result["codes"]} == {c.code for c in result.codes}
    assert {"run", "node_start", "node_end", "model_call", "entities", "result"} <= kinds
    assert store.verify("wf-1").ok
    wf.close()
