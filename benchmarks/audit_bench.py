"""Audit overhead: the same runs with and without the audit store, and the store's size per note,
with long prompt texts stored once by address (as shipped) and inline in every event (as before).

Run: python benchmarks/audit_bench.py [--models fake test] [--runs 5]
Writes benchmarks/results/audit.json. With the fake model a run is almost all orchestration
(the worst case for the store's share); with a real model the share is what a user sees.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import write_result  # noqa: E402

from medcoder import load_workflow  # noqa: E402
from medcoder.audit import store as store_module  # noqa: E402
from medcoder.audit.store import SQLiteAuditStore  # noqa: E402
from medcoder.llm import FakeLLM, load_llm  # noqa: E402
from tests.test_workflow_logic import NOTE, agree, extractor  # noqa: E402

SHIPPED_BLOB_MIN = store_module.BLOB_MIN_CHARS
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "aci_bench_D2N069.txt"


def _time_runs(llm, note: str, runs: int, audit: bool, tmp: str, inline: bool = False  # type: ignore[no-untyped-def]
               ) -> tuple[list[float], int, int]:
    store_module.BLOB_MIN_CHARS = 10**12 if inline else SHIPPED_BLOB_MIN
    audit_path = f"{tmp}/audit-{audit}-{inline}.sqlite"
    store = SQLiteAuditStore(audit_path) if audit else None
    wf = load_workflow("full", llms={"default": llm}, checkpoint_path=f"{tmp}/c-{audit}.sqlite", audit=store or None)
    times = []
    for i in range(runs):
        t = time.perf_counter()
        # a different note each run (as in a batch): only what notes really share is stored once
        wf.run(f"Visit {i}.\n{note}", run_id=f"{audit}-{i}-{time.time_ns()}")
        times.append(time.perf_counter() - t)
    events = 0
    size = 0
    if store is not None:
        events = store._conn().execute("SELECT count(*) FROM events").fetchone()[0]
        store._conn().execute("PRAGMA wal_checkpoint(TRUNCATE)")
        store._conn().execute("VACUUM")
        size = Path(audit_path).stat().st_size
    wf.close()
    return times, events, size


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="+", default=["fake", "test"])
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    out = {}
    for name in args.models:
        if name == "fake":
            llm, note = FakeLLM(extractor, chooser=agree), NOTE
        else:
            llm, note = load_llm(name), EXAMPLE.read_text()
        with tempfile.TemporaryDirectory() as tmp:
            _time_runs(llm, note, 1, False, tmp)  # warm caches and the model's prefix
            off, _, _ = _time_runs(llm, note, args.runs, False, tmp)
            on, events, size = _time_runs(llm, note, args.runs, True, tmp)
            _, _, inline_size = _time_runs(llm, note, args.runs, True, tmp, inline=True)
        m_off, m_on = statistics.median(off), statistics.median(on)
        out[name] = {"runs": args.runs, "note_chars": len(note), "seconds_without_audit": round(m_off, 4),
                     "seconds_with_audit": round(m_on, 4), "overhead_share": round((m_on - m_off) / m_on, 4),
                     "events_per_note": events // args.runs, "store_bytes_per_note": size // args.runs,
                     "store_bytes_per_note_inline": inline_size // args.runs,
                     "size_ratio_inline_to_blobs": round(inline_size / max(size, 1), 2)}
        print(json.dumps({name: out[name]}), flush=True)
    path = write_result("audit.json", {"models": out})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
