"""Helpers every benchmark shares: where results go and what identifies a run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from medcoder.evaluation.bench import run_info

RESULTS = Path(__file__).resolve().parent / "results"


def write_result(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / name
    path.write_text(json.dumps({"run": run_info(), **data}, indent=2) + "\n")
    return path
