"""Knowledge-layer speed: cold build, warm load, children(), path(), lexical search, peak memory.

Run: python benchmarks/kb_bench.py   (writes benchmarks/results/kb.json)
Cold and warm loads run in fresh subprocesses with their own MEDCODER_HOME, so neither
sees the other's in-process cache.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result  # noqa: E402

_LOAD = """
import json, resource, time
t = time.perf_counter()
from medcoder.knowledge import load_icd10cm
onto = load_icd10cm()
print(json.dumps({"seconds": time.perf_counter() - t,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _load_in_subprocess(home: str) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", _LOAD], capture_output=True, text=True, check=True,
                         env={**os.environ, "MEDCODER_HOME": home})
    return json.loads(out.stdout.strip().splitlines()[-1])


def _per_call_us(fn, args: list, repeat: int = 5) -> float:  # type: ignore[no-untyped-def]
    best = []
    for _ in range(repeat):
        t = time.perf_counter()
        for a in args:
            fn(a)
        best.append((time.perf_counter() - t) / len(args) * 1e6)
    return min(best)


def main() -> None:
    with tempfile.TemporaryDirectory() as home:
        cold = _load_in_subprocess(home)
        warm = [_load_in_subprocess(home) for _ in range(3)]
        os.environ["MEDCODER_HOME"] = home
        from medcoder.knowledge import load_icd10cm

        onto = load_icd10cm()
        codes = [n.code for n in onto.iter_nodes() if not n.billable][:20000]
        leaves = [n.code for n in onto.iter_nodes() if n.billable][::7][:20000]
        children_us = _per_call_us(onto.children, codes)
        path_us = _per_call_us(onto.path, leaves)
        t = time.perf_counter()
        onto.search("warm up")
        lexical_load_s = time.perf_counter() - t
        queries = ["type 2 diabetes with hyperglycemia", "acute myocardial infarction", "pneumonia",
                   "fracture of the left femur", "chronic kidney disease stage 3", "major depressive disorder"]
        lat = []
        for q in queries * 5:
            t = time.perf_counter()
            onto.search(q, k=10)
            lat.append((time.perf_counter() - t) * 1000)
    result = {
        "nodes": len(onto),
        "cold_build_s": round(cold["seconds"], 3),
        "cold_peak_rss_mb": round(cold["peak_rss_mb"], 1),
        "warm_load_s": round(statistics.median(w["seconds"] for w in warm), 3),
        "warm_peak_rss_mb": round(statistics.median(w["peak_rss_mb"] for w in warm), 1),
        "children_us": round(children_us, 2),
        "path_us": round(path_us, 2),
        "lexical_index_load_s": round(lexical_load_s, 3),
        "lexical_search_ms_median": round(statistics.median(lat), 2),
        "lexical_search_ms_p95": round(sorted(lat)[int(len(lat) * 0.95) - 1], 2),
        "targets": {"warm_load_s": "< 1", "children_us": "< 20"},
    }
    path = write_result("kb.json", result)
    print(json.dumps(result, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
