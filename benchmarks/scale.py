"""Notes per minute for each way of spreading a batch: local workers, Ray actors, workers sharing one served model.

    python benchmarks/scale.py                  # test model on 6 CodiEsp dev notes and 4 two-line notes, default on 2
    python benchmarks/scale.py --only test      # just the test model (about 6 min on 2 cores)
    python benchmarks/scale.py --table          # the README table from benchmarks/results/scale.json

Every configuration of a model codes the same notes with the `full` workflow from nothing (a fresh MEDCODER_HOME, so no
checkpoint answers for it), in this process through the SDK, timed from the call to the last line; a Ray
configuration includes starting its private local Ray and its actors. Ray's per-note overhead is the
wall-clock difference between one Ray actor and one local worker on the same notes, divided by the notes,
after taking off Ray's start-up (time to the first line less that note's own coding time).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import RESULTS, write_result  # noqa: E402

CODIESP_DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "codiesp" / "dev" / "text_files_en"
RESULT = "scale.json"
PROGRESS = RESULTS / "scale.progress.jsonl"
TABLE_MARK = "<!-- scale-table -->"
logger = logging.getLogger("benchmarks.scale")


def _notes(n: int, short: bool) -> list[Any]:
    """The first `n` CodiEsp dev notes in name order, or (`short`, for the slow default model) the first `n`
    two-line notes of the batch tests (one condition, one drug each)."""
    from medcoder.batch import BatchItem

    if short:
        from tests.batch_notes import CONDITIONS, DRUGS

        return [BatchItem(f"short{i:02d}", f"Assessment: {c}.\nPlan: continue {d} daily; review in 4 weeks.\n")
                for i, (c, d) in enumerate(list(zip(CONDITIONS, DRUGS))[:n])]
    files = sorted(CODIESP_DEV.glob("*.txt"))
    if not files:
        raise SystemExit(f"{CODIESP_DEV}: no notes (the benchmark reads ../shared/data)")
    return [BatchItem(f.stem, f.read_text(encoding="utf-8")) for f in files[:n]]


LOCAL = [{"engine": "local", "workers": 1}, {"engine": "local", "workers": 2}]
RAY = [{"engine": "ray", "actors": 1}, {"engine": "ray", "actors": 2}]
SERVER = [{"engine": "server", "slots": 2, "workers": 1}, {"engine": "server", "slots": 2, "workers": 2}]
# (model, notes): what runs on them. The served rows use the short notes: over HTTP on 2 CPU cores a CodiEsp
# note with the test model took minutes (see the closing note of issue 16), the default model longer still.
PLAN: list[tuple[str, str, list[dict[str, Any]]]] = [
    ("test", "codiesp", LOCAL + RAY),
    ("test", "short", LOCAL[:1] + SERVER),
    ("default", "short", LOCAL + RAY[1:] + SERVER),
]


def _key(c: dict[str, Any]) -> str:
    return json.dumps(c, sort_keys=True)


def _run(config: dict[str, Any], items: list[Any], served_url: str | None) -> dict[str, Any]:
    """Code `items` once under `config` in a fresh home; the measured row."""
    from medcoder.batch import RayOptions, code_batch
    from medcoder.engine.workflow import load_workflow
    from medcoder.settings import load_settings

    with tempfile.TemporaryDirectory(prefix="mc-scale-") as tmp:
        os.environ["MEDCODER_HOME"] = str(Path(tmp) / "home")
        out = Path(tmp) / "out.jsonl"
        first_line: list[float] = []
        start = time.perf_counter()

        def progress(s: Any) -> None:
            if s.finished and not first_line:
                first_line.append(time.perf_counter() - start)

        if config["engine"] == "server":
            settings = load_settings(backend="http", base_url=served_url)
            wf = load_workflow("full", settings=settings)
        else:
            wf = load_workflow("full", model=config["model"])
        with wf:
            # the machine's cores shared out between the actors, as the local engine shares them between workers
            cpus = max(1, (os.cpu_count() or 1) // config.get("actors", 1))
            ray = RayOptions(actors=config["actors"], cpus_per_actor=cpus) if config["engine"] == "ray" else None
            summary = code_batch(wf, items, out, workers=config.get("workers", 1), progress=progress,
                                 engine="ray" if ray else "local", ray=ray)
        wall = time.perf_counter() - start
        rows = [json.loads(line) for line in out.read_text().splitlines()]
    coding = [r.get("seconds", 0.0) for r in rows]
    first_note = next((r.get("seconds", 0.0) for r in rows), 0.0)
    return {**config, "notes": len(items), "coded": summary.done, "errors": summary.errors,
            "seconds": round(wall, 1), "notes_per_minute": round(60 * len(items) / wall, 2),
            "sum_note_seconds": round(sum(coding), 1), "time_to_first_line_s": round(first_line[0], 1),
            "startup_s": round(max(0.0, first_line[0] - first_note), 1),
            "codes": {r["id"]: sorted(c["code"] for c in r["result"]["codes"]) if r["ok"] else r.get("error_type")
                      for r in rows}}


def _measure(model: str, notes: str, n: int, configs: list[dict[str, Any]], done: dict[str, dict[str, Any]]) -> None:
    from medcoder.llm.serving import ModelServer, ServeOptions

    items = _notes(n, short=notes == "short")
    server: ModelServer | None = None
    try:
        for c in configs:
            config = {"model": model, "set": notes, **c}
            if _key(config) in done:
                continue
            url = None
            if config["engine"] == "server":
                if server is None:
                    server = ModelServer(ServeOptions(model=model, slots=config["slots"], port=0))
                    server.start()
                url = server.url
            logger.warning("measuring %s on %d notes", config, len(items))
            row = _run(config, items, url)
            logger.warning("  %.1f notes/min (%.0f s)", row["notes_per_minute"], row["seconds"])
            done[_key(config)] = row
            with open(PROGRESS, "a", encoding="utf-8") as fh:  # a long run resumes where it stopped
                fh.write(json.dumps(row) + "\n")
    finally:
        if server is not None:
            server.stop()


def _summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    by = {(r["model"], r["set"], r["engine"], r.get("workers"), r.get("actors")): r for r in rows}
    out: dict[str, Any] = {}
    for model, notes in sorted({(r["model"], r["set"]) for r in rows}):
        local1, ray1 = by.get((model, notes, "local", 1, None)), by.get((model, notes, "ray", None, 1))
        if local1 and ray1:
            steady = (ray1["seconds"] - ray1["startup_s"]) - (local1["seconds"] - local1["startup_s"])
            out[f"ray_overhead_{model}_{notes}"] = {"startup_s": round(ray1["startup_s"] - local1["startup_s"], 1),
                                                    "per_note_s": round(steady / ray1["notes"], 2)}
        reference = (local1 or {}).get("codes")
        out[f"same_codes_{model}_{notes}"] = {_tag(r): r["codes"] == reference
                                              for r in rows if (r["model"], r["set"]) == (model, notes)}
    return out


def _tag(r: dict[str, Any]) -> str:
    return f"{r['engine']}-{r.get('workers') or r.get('actors')}"


def table(data: dict[str, Any]) -> str:
    lines = ["| model | notes | how | notes/min | wall s | start-up s | same codes as 1 local worker |",
             "|---|---|---|---|---|---|---|"]
    for r in data["rows"]:
        how = {"local": f"local, {r.get('workers')} worker(s)", "ray": f"Ray, {r.get('actors')} actor(s)",
               "server": f"{r.get('workers')} worker(s) → 1 server, {r.get('slots')} slots"}[r["engine"]]
        notes = f"{r['notes']} {'CodiEsp dev' if r['set'] == 'codiesp' else 'two-line'}"
        agrees = data["summary"][f"same_codes_{r['model']}_{r['set']}"].get(_tag(r))
        lines.append(f"| {r['model']} | {notes} | {how} | {r['notes_per_minute']} | {r['seconds']} | "
                     f"{r['startup_s']} | {'yes' if agrees else 'no'} |")
    for key, o in data["summary"].items():
        if key.startswith("ray_overhead_"):
            lines.append(f"\nRay's overhead ({key[len('ray_overhead_'):].replace('_', ', ')} notes; 1 actor vs 1 local "
                         f"worker, 2 threads each): {o['startup_s']} s more start-up per batch, "
                         f"{o['per_note_s']} s per note after it.")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", choices=["test", "default"], help="one model only")
    ap.add_argument("--test-notes", type=int, default=6)
    ap.add_argument("--short-notes", type=int, default=4, help="two-line notes for the test model's served rows")
    ap.add_argument("--default-notes", type=int, default=2, help="two-line notes for the default model")
    ap.add_argument("--table", action="store_true", help="print the README table from the results file")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    if args.table:
        print(table(json.loads((RESULTS / RESULT).read_text())))
        return
    done: dict[str, dict[str, Any]] = {}
    if PROGRESS.exists():
        for line in PROGRESS.read_text().splitlines():
            row = json.loads(line)
            row.setdefault("set", "codiesp")
            done[_key({k: row[k] for k in ("model", "set", "engine", "workers", "actors", "slots") if k in row})] = row
    sizes = {("test", "codiesp"): args.test_notes, ("test", "short"): args.short_notes,
             ("default", "short"): args.default_notes}
    for model, notes, configs in PLAN:
        if args.only in (None, model):
            _measure(model, notes, sizes[(model, notes)], configs, done)
    rows = list(done.values())
    from medcoder.llm.llama_cpp_backend import gpu_available

    path = write_result(RESULT, {"workflow": "full", "cpus": os.cpu_count(), "gpu": gpu_available(), "rows": rows,
                                 "summary": _summarise(rows)})
    print(table(json.loads(path.read_text())))
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()
