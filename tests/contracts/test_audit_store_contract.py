"""One contract for every audit store (SQLite on disk, and in memory; a new backend joins STORES)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Callable, Iterator

import pytest

from medcoder.audit.memory import MemoryAuditStore
from medcoder.audit.store import AuditStore, SQLiteAuditStore
from medcoder.testing import check_audit_store
from medcoder.testing.contracts import LONG, record_run

STORES: dict[str, Callable[[Path], AuditStore]] = {"sqlite": lambda tmp: SQLiteAuditStore(tmp / "audit.sqlite"),
                                                   "memory": lambda tmp: MemoryAuditStore()}


@pytest.fixture(params=sorted(STORES))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AuditStore]:
    s = STORES[request.param](tmp_path)
    yield s
    s.close()


def _run(store: AuditStore, run_id: str = "r1", calls: int = 3) -> None:
    record_run(store, run_id, calls)


@pytest.mark.parametrize("name", sorted(STORES))
def test_store_contract(name: str, tmp_path: Path) -> None:
    check_audit_store(lambda: STORES[name](tmp_path))


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
    assert info.result is not None and info.status == "done"
    assert {c["code"] for c in info.result["codes"]} == {c.code for c in result.codes}
    assert {"run", "node_start", "node_end", "model_call", "entities", "result"} <= kinds
    assert store.verify("wf-1").ok
    wf.close()
