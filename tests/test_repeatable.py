"""Same note, same codes: two fresh processes, started at once (under each other's load) with different hash
seeds, give identical candidates, feature rows, probabilities and accepted codes through the real stack."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

_CODE = r"""
import hashlib, json, sys
from pathlib import Path
from medcoder.knowledge import default_kb
from medcoder.knowledge.retrieval import HybridRetriever
from medcoder.ranking.coder import RankedCoder
from medcoder.ranking.folders import ranker_folder

kb = default_kb()
coder = RankedCoder.from_folder(ranker_folder("icd10cm"), kb, HybridRetriever(kb))
out = {}
for path in sys.argv[1:]:
    text = Path(path).read_text()
    cands = coder.candidates(text)
    ranked = coder.rank(cands, note=text)
    rows = json.dumps([cands.codes, [[float(x) for x in r] for r in cands.features]])
    out[Path(path).name] = {"candidates": len(cands.codes), "rows": hashlib.sha256(rows.encode()).hexdigest(),
                            "ranked": [[r.code, r.probability] for r in ranked],
                            "accepted": [r.code for r in ranked if r.accepted]}
print(json.dumps(out))
"""


@pytest.mark.slow
def test_two_processes_code_the_same_notes_identically(shared_data: Path, medcoder_home: Path) -> None:
    notes = sorted((shared_data / "codiesp" / "dev").rglob("*.txt"))[:6]
    assert notes
    procs = [subprocess.Popen([sys.executable, "-c", _CODE, *map(str, notes)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONHASHSEED": seed})
             for seed in ("1", "2")]
    outs = []
    try:
        for p in procs:
            stdout, stderr = p.communicate(timeout=900)
            assert p.returncode == 0, stderr[-2000:]
            outs.append(json.loads(stdout.strip().splitlines()[-1]))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    first, second = outs
    assert set(first) == {n.name for n in notes}
    assert all(first[n]["candidates"] > 50 for n in first)  # a real candidate table, not an empty one
    assert first == second
