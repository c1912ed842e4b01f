"""`medcoder bench`: throughput and where the time goes, per model, on the same notes.

Orchestration overhead is wall time not spent inside model calls (graph, retrieval, audit,
checkpoints); prefix reuse is the share of prompt tokens served from llama.cpp's cached prefix.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

from medcoder.batch import BatchItem, iter_inputs
from medcoder.engine.workflow import load_workflow
from medcoder.errors import MedcoderError
from medcoder.knowledge.systems import DEFAULT_SYSTEM, system_class
from medcoder.progress import Progress

logger = logging.getLogger(__name__)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _default_notes() -> list[BatchItem]:
    """The sample notes in the source tree's `examples/` (an installed package has none: pass --notes)."""
    files = sorted(EXAMPLES.glob("*.txt")) if EXAMPLES.is_dir() else []
    if not files:
        raise MedcoderError("no sample notes found; give a folder or JSONL of notes with --notes")
    return [BatchItem(f.stem, f.read_text(encoding="utf-8")) for f in files]


def run_bench(
    notes: str | Path | None,
    models: tuple[str, ...],
    workflow: str | None = None,
    limit: int = 2,
    out_file: str | Path | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    workflow = workflow or system_class(DEFAULT_SYSTEM).default_workflow or DEFAULT_SYSTEM
    items = (list(iter_inputs(notes)) if notes else _default_notes())[:limit]
    result: dict[str, Any] = {"workflow": workflow, "notes": [i.id for i in items], "models": {}, "run": run_info()}
    total, done = len(items) * len(models), 0
    for name in models:
        per: list[dict[str, Any]] = []
        with load_workflow(workflow, model=name, audit=True) as wf:
            llm = next(iter(wf.llms.values()))
            for item in items:
                start = time.perf_counter()
                res = wf.run(item.text)
                wall = time.perf_counter() - start
                s = res.stats
                per.append(
                    {
                        "wall": wall,
                        "model_seconds": s.get("model_seconds", 0.0),
                        "calls": s.get("model_calls", 0),
                        "prompt": s.get("prompt_tokens", 0),
                        "cached": s.get("cached_tokens", 0),
                        "codes": len(res.codes),
                    }
                )
                done += 1
                if progress:
                    progress("notes", done, total)
            model_info = {"name": llm.name, "sha256": llm.sha256, "backend": llm.backend}
        wall = sum(p["wall"] for p in per)
        codes = sum(p["codes"] for p in per)
        prompt = sum(p["prompt"] for p in per)
        result["models"][name] = {
            **model_info,
            "notes": len(per),
            "codes": codes,
            "notes_per_minute": round(60 * len(per) / wall, 3) if wall else 0.0,
            "seconds_per_note": round(wall / max(len(per), 1), 2),
            "model_calls_per_code": round(sum(p["calls"] for p in per) / codes, 2) if codes else None,
            "prompt_tokens_per_note": round(prompt / max(len(per), 1), 1),
            "prefix_reuse": round(sum(p["cached"] for p in per) / prompt, 3) if prompt else 0.0,
            "orchestration_share": round(1 - sum(p["model_seconds"] for p in per) / wall, 3) if wall else 0.0,
        }
    if out_file:
        Path(out_file).write_text(json.dumps(result, indent=2) + "\n")
    return result


def run_info() -> dict[str, Any]:
    """What identifies a measurement: date, commit, machine (every result file carries it)."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).parent,
            check=False,
        ).stdout.strip()
    except OSError:
        commit = ""
    return {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "commit": commit,
        "machine": platform.machine(),
        "processor": platform.processor(),
        "python": platform.python_version(),
    }
