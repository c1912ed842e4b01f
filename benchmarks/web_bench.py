"""How the web workspace holds up as its worklist grows: the worklist page, the worklist search, the review
page and a decision, timed on the server (Server-Timing) through FastAPI's test client, for worklists of
growing size coded with the no-model workflow (the pages' cost does not depend on the model).

    python benchmarks/web_bench.py [--sizes 10 50 200] [--repeats 5]   # -> benchmarks/results/web.json
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._common import write_result  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CONDITIONS = ["essential hypertension", "type 2 diabetes mellitus", "gout of the right knee", "asthma",
              "atrial fibrillation", "chronic kidney disease stage 3", "hyperlipidemia", "major depressive disorder",
              "osteoarthritis of the left hip", "community acquired pneumonia"]


def _note(i: int) -> str:
    a, b = CONDITIONS[i % len(CONDITIONS)], CONDITIONS[(i * 3 + 1) % len(CONDITIONS)]
    return (f"Visit {i}. Assessment: {a}; also {b}. Plan: continue current medications, follow up in "
            f"{2 + i % 6} weeks.")


def _timed(call: Any, repeats: int) -> dict[str, float]:
    server, wall = [], []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        r = call()
        wall.append((time.perf_counter() - start) * 1000)
        server.append(float(r.headers["server-timing"].split("dur=")[1]))
        assert r.status_code < 400, r.status_code
    return {"server_ms": round(statistics.median(server[1:]), 1), "wall_ms": round(statistics.median(wall[1:]), 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10, 50, 200])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    os.environ.setdefault("MEDCODER_HOME", tempfile.mkdtemp(prefix="medcoder-web-bench-"))
    from fastapi.testclient import TestClient

    from medcoder.web import Decision, Workspace
    from medcoder.web.app import create_app

    ws = Workspace("icd10cm-nomodel")
    client = TestClient(create_app(ws), base_url="http://127.0.0.1")
    rows, coded, code_seconds = [], 0, 0.0
    for size in sorted(args.sizes):
        start = time.perf_counter()
        ids = [ws.submit(_note(i), f"note {i}").id for i in range(coded, size)]
        for n, item_id in enumerate(ids, start=1):
            assert ws.coder.wait(item_id).state == "ready"
            if n % 25 == 0 or n == len(ids):
                print(f"  coded {coded + n}/{size}", file=sys.stderr)
        code_seconds += time.perf_counter() - start
        coded = size
        target = ids[-1] if ids else ws.items()[0]["id"]
        view = ws.review(target)
        row = {"items": size,
               "worklist_page": _timed(lambda: client.get("/"), args.repeats),
               "worklist_api": _timed(lambda: client.get("/api/items"), args.repeats),
               "worklist_search": _timed(lambda: client.post("/api/items/search", json={"q": "gout"}),
                                         args.repeats),
               "review_page": _timed(lambda: client.get(f"/sessions/{target}"), args.repeats)}
        code = view["codes"][0]["code"]
        start = time.perf_counter()
        ws.decide(target, Decision("accept", code, version=view["version"]))
        row["decision_ms"] = round((time.perf_counter() - start) * 1000, 1)
        rows.append(row)
        print(f"{size:5d} items: worklist {row['worklist_page']['server_ms']} ms, search "
              f"{row['worklist_search']['server_ms']} ms, review {row['review_page']['server_ms']} ms, decision "
              f"{row['decision_ms']} ms", file=sys.stderr)
    ws.close()
    path = write_result("web.json", {"workflow": "icd10cm-nomodel", "repeats": args.repeats,
                                     "notes_per_second_coding": round(coded / code_seconds, 2), "rows": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
