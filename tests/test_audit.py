"""The audit store: hash chain, tamper detection, migrations, concurrent writers, report, replay."""

from __future__ import annotations

import json
import multiprocessing as mp
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from medcoder import audit, load_workflow
from medcoder.audit.store import _MIGRATIONS, SQLiteAuditStore
from medcoder.cli import main
from medcoder.engine.replay import replay_run
from medcoder.llm import FakeLLM
from tests.test_workflow_logic import NOTE, agree, extractor


@pytest.fixture()
def coded(tmp_path):
    """A store holding one real run of the full workflow (fake model)."""
    store = SQLiteAuditStore(tmp_path / "audit.sqlite")
    wf = load_workflow("full-tree", llms={"default": FakeLLM(extractor, chooser=agree)},
                       checkpoint_path=tmp_path / "c.sqlite", audit=store)
    result = wf.run(NOTE, run_id="run-a")
    wf.close()
    return tmp_path / "audit.sqlite", result


def _tamper(path: Path, sql: str) -> None:
    """Change the store behind the audit trail's back, as an attacker with the file would."""
    conn = sqlite3.connect(path)
    conn.execute(sql)
    conn.commit()
    conn.close()


def _cli(*args: str) -> tuple[int, str, str]:
    res = CliRunner().invoke(main, list(args))
    return res.exit_code, res.stdout, res.stderr


def test_every_step_is_recorded(coded) -> None:
    path, result = coded
    store = audit.open(path)
    info = store.run("run-a")
    assert info.status == "done" and info.note == NOTE and info.spec_text.startswith("# The wave-1 full workflow")
    kinds = [e.kind for e in store.events("run-a")]
    assert kinds[0] == "run"
    expected = ("node_start", "node_end", "model_call", "sections", "entities", "proposal", "critic", "result", "tool")
    for kind in expected:
        assert kind in kinds, kind
    call = next(e for e in store.events("run-a") if e.kind == "model_call" and e.payload["kind"] == "choose")
    for key in ("messages", "options", "choices", "stats", "request_key"):
        assert key in call.payload
    for key in ("prompt_tokens", "cached_tokens", "completion_tokens", "latency_s", "model_sha256", "sampling"):
        assert key in call.payload["stats"]
    assert info.result is not None and [c["code"] for c in info.result["codes"]] == [c.code for c in result.codes]
    assert store.verify("run-a").ok


def test_changed_event_is_named(coded) -> None:
    path, _ = coded
    conn = sqlite3.connect(path)
    seq = conn.execute("SELECT min(seq) FROM events WHERE run_id = 'run-a' AND payload LIKE '%hypertension%'"
                       ).fetchone()[0]
    conn.close()
    _tamper(path, f"UPDATE events SET payload = replace(payload, 'hypertension', 'hypotension') WHERE seq = {seq}")
    code, out, err = _cli("audit", "verify", "run-a", "--store", str(path))
    assert code == 1 and f"event {seq}" in err and "changed" in err


def test_deleted_and_inserted_events_are_detected(coded, tmp_path) -> None:
    path, _ = coded
    copy = tmp_path / "copy.sqlite"
    copy.write_bytes(path.read_bytes())
    _tamper(path, "DELETE FROM events WHERE seq = 7")
    v = audit.open(path).verify("run-a")
    assert not v.ok and v.first_bad == 7
    conn = sqlite3.connect(copy)
    last = conn.execute("SELECT max(seq) FROM events").fetchone()[0]
    conn.execute("DELETE FROM events WHERE seq = ?", (last,))  # truncation: every remaining link is fine
    conn.commit()
    conn.close()
    v = audit.open(copy).verify("run-a")
    assert not v.ok and "deleted" in v.reason
    _tamper(copy, "INSERT INTO events SELECT run_id, seq + 1000, ts, node, kind, payload, prev_hash, hash "
                  "FROM events WHERE seq = 3")  # an event slipped in after the last one
    v = audit.open(copy).verify("run-a")
    assert not v.ok


def test_one_byte_changed_in_the_file(coded) -> None:
    path, _ = coded
    audit.open(path).close()
    data = bytearray(path.read_bytes())
    at = data.find(b'"input_digest":"')  # only node_start events hold this
    assert at > 0
    at += len(b'"input_digest":"')
    data[at] = ord("0") if data[at] != ord("0") else ord("1")
    path.write_bytes(bytes(data))
    v = audit.open(path).verify("run-a")
    assert not v.ok and v.first_bad is not None


def test_concurrent_writers(tmp_path) -> None:
    path = tmp_path / "shared.sqlite"
    SQLiteAuditStore(path).close()
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_write_run, args=(str(path), f"p{i}", str(tmp_path))) for i in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    store = audit.open(path)
    assert {r.run_id for r in store.runs()} == {"p0", "p1"}
    for run in ("p0", "p1"):
        v = store.verify(run)
        assert v.ok and v.events > 20


def _write_run(path: str, run_id: str, tmp: str) -> None:
    wf = load_workflow("full-tree", llms={"default": FakeLLM(extractor, chooser=agree)},
                       checkpoint_path=f"{tmp}/{run_id}.sqlite", audit=SQLiteAuditStore(path))
    wf.run(NOTE, run_id=run_id)
    wf.close()


def test_migrations_bring_an_old_store_up_to_date(tmp_path) -> None:
    path = tmp_path / "old.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript("CREATE TABLE schema_version (version INTEGER NOT NULL); INSERT INTO schema_version VALUES (1);"
                       + _MIGRATIONS[0])
    conn.close()
    store = SQLiteAuditStore(path)
    assert store.schema_version == len(_MIGRATIONS)
    cols = {r[1] for r in store._conn().execute("PRAGMA table_info(runs)")}
    assert {"tail_hash", "tail_seq"} <= cols
    assert store._conn().execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_digest_only_runs(tmp_path) -> None:
    store = SQLiteAuditStore(tmp_path / "a.sqlite")
    wf = load_workflow("icd10cm-tree", llms={"default": FakeLLM(extractor, chooser=agree)},
                       checkpoint_path=tmp_path / "c.sqlite", audit=store, store_note=False)
    wf.run(NOTE, run_id="d1")
    info = store.run("d1")
    assert info.note is None and len(info.note_digest) == 64
    with pytest.raises(audit.AuditError, match="digest"):
        replay_run(store, "d1")


def test_replay_reproduces_without_a_model(coded, monkeypatch) -> None:
    import medcoder.llm as llm_pkg

    monkeypatch.setattr(llm_pkg, "load_llm", lambda *a, **k: pytest.fail("replay must not load a model"))
    path, result = coded
    code, out, _ = _cli("audit", "replay", "run-a", "--store", str(path), "--json")
    rep = json.loads(out)
    assert code == 0 and rep["match"] and rep["replayed"] == sorted(f"{c.system}:{c.code}" for c in result.codes)


def test_cli_list_show_export_report(coded, tmp_path) -> None:
    path, result = coded
    code, out, _ = _cli("audit", "list", "--store", str(path), "--json")
    assert code == 0 and json.loads(out)[0]["run_id"] == "run-a"
    code, out, _ = _cli("audit", "show", "run-a", "--store", str(path))
    assert code == 0 and "proposal" in out and "choose ->" in out
    export = tmp_path / "run.jsonl"
    assert _cli("audit", "export", "run-a", "--jsonl", "--store", str(path), "-o", str(export))[0] == 0
    lines = [json.loads(x) for x in export.read_text().splitlines()]
    assert lines[0]["run"]["run_id"] == "run-a" and [x["seq"] for x in lines[1:]] == list(range(len(lines) - 1))
    html_path = tmp_path / "r.html"
    assert _cli("audit", "report", "run-a", "--html", "--store", str(path), "-o", str(html_path))[0] == 0
    page = html_path.read_text()
    first = result.codes[0]
    assert f"{first.code} {first.label}" in page and "<mark" in page and "hash chain intact" in page
    assert "<script" not in page and "http" not in page.split("</style>")[0]


def test_unknown_run_is_one_line(tmp_path) -> None:
    code, _, err = _cli("audit", "show", "nope", "--store", str(tmp_path / "x.sqlite"))
    assert code == 1 and err.startswith("error: no run 'nope'")


def test_changed_note_is_detected(coded) -> None:
    path, _ = coded
    _tamper(path, "UPDATE runs SET note = replace(note, 'asthma', 'asthmas')")
    v = audit.open(path).verify("run-a")
    assert not v.ok and v.first_bad == 0 and "note" in v.reason
