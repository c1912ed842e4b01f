"""Twelve short notes for the batch engines' tests, and how to read a batch output's codes for comparing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

CONDITIONS = ["asthma exacerbation", "type 2 diabetes mellitus", "essential hypertension", "gout of the right knee",
              "community acquired pneumonia", "chronic kidney disease stage 3", "atrial fibrillation",
              "major depressive disorder", "iron deficiency anemia", "migraine without aura", "hypothyroidism"]
DRUGS = ["salbutamol", "metformin", "lisinopril", "allopurinol", "amoxicillin", "furosemide", "apixaban",
         "sertraline", "ferrous sulfate", "sumatriptan", "levothyroxine"]


def write_notes(folder: Path) -> list[str]:
    """12 notes: 11 with a condition and a drug, and one empty note (an error line in every engine)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, (cond, drug) in enumerate(zip(CONDITIONS, DRUGS)):
        (folder / f"n{i:02d}.txt").write_text(f"Assessment: {cond}.\nPlan: continue {drug} daily; review in 4 weeks.\n")
    (folder / "n11.txt").write_text("")
    return [f"n{i:02d}" for i in range(12)]


def codes_by_id(out: Path) -> dict[str, Any]:
    """{id: sorted (system, code) pairs, or the error type}; fails if a note was written twice."""
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == len({r["id"] for r in rows}), "a note written twice"
    return {r["id"]: sorted((c["system"], c["code"]) for c in r["result"]["codes"]) if r["ok"] else r["error_type"]
            for r in rows}
