"""Reliability figures: faults injected, inputs tried, errors that were clear one-liners, results lost or
duplicated, tampering detected; the long versions of `tests/reliability/`.

    python benchmarks/reliability.py                 # everything but the default-model injection run
    python benchmarks/reliability.py --only injection # hostile corpus, default model, guard on and off
    python benchmarks/reliability.py --table         # print the README table from the results file

Writes benchmarks/results/reliability.json (sections merge, so parts can be rerun alone).
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import RESULTS, write_result  # noqa: E402
from tests.reliability import fuzz, harness  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
OUT = "reliability.json"
logger = logging.getLogger("reliability")


def _tmp() -> Path:
    return Path(tempfile.mkdtemp(prefix="medcoder-reliability-"))


def crashes() -> dict[str, Any]:
    out = {}
    for seed in (15, 16):
        out[f"batch_seed{seed}"] = harness.crash_batch(_tmp(), seed=seed, kills=10, notes=8).to_dict()
    out["session"] = harness.crash_session(_tmp(), kills=4).to_dict()
    out["eval"] = harness.crash_eval(_tmp(), SHARED / "dpd-sample", kills=4, limit=8).to_dict()  # real DPD rows
    return out


def concurrency() -> dict[str, Any]:
    return {"audit_4_processes_60s": harness.concurrent_writers(_tmp() / "audit.sqlite", procs=4, seconds=60).to_dict()}


class _Outcomes:
    """A pytest plugin that keeps each test's outcome (the storage-fault tests are the campaign)."""

    def __init__(self) -> None:
        self.results: dict[str, str] = {}

    def pytest_runtest_logreport(self, report: Any) -> None:
        if report.when == "call" or report.outcome != "passed":
            self.results[report.nodeid.split("::")[-1]] = report.outcome


def storage() -> dict[str, Any]:
    import pytest

    plugin = _Outcomes()
    pytest.main(["-q", "-p", "no:cacheprovider", str(ROOT / "tests" / "reliability" / "test_storage.py")],
                plugins=[plugin])
    passed = sum(v == "passed" for v in plugin.results.values())
    return {"faults": len(plugin.results), "clear_errors_and_nothing_lost": passed, "tests": plugin.results}


def fuzzing(scale: int = 10) -> dict[str, Any]:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    fuzz.COUNTS.clear()
    failures: dict[str, str] = {}

    def run(name: str, examples: int, strategy: Any, check: Callable[..., bool]) -> None:
        def prop(value: Any) -> None:
            assert check(*value) if isinstance(value, tuple) else check(value)

        test = settings(max_examples=examples, deadline=None, database=None,
                        suppress_health_check=list(HealthCheck))(given(strategy)(prop))
        try:
            test()
        except Exception as exc:  # noqa: BLE001 - a falsified property is a finding
            failures[name] = f"{type(exc).__name__}: {str(exc)[:300]}"

    run("config", 200 * scale, fuzz.config_texts, fuzz.check_config_text)
    run("env", 200 * scale, fuzz.env_pairs.map(lambda p: (p,)), fuzz.check_env)
    run("notes", 300 * scale, st.binary(max_size=4000), fuzz.check_note_bytes)
    for data in fuzz.special_notes().values():
        fuzz.check_note_bytes(data)
    yaml = fuzz.builtin_yaml()
    run("workflow", 200 * scale, st.tuples(st.sampled_from(sorted(yaml)), st.integers(0, 10**9)),
        lambda name, seed: fuzz.check_workflow_yaml(fuzz.mutate(yaml[name], seed)))
    run("batch", 100 * scale, fuzz.jsonl_lines, fuzz.check_batch_lines)
    run("dataset", 60 * scale, st.tuples(st.sampled_from(["d.jsonl", "d.tsv", "d.csv"]), st.binary(max_size=400)),
        fuzz.check_dataset)
    run("cli", 20 * scale, fuzz.cli_args, fuzz.check_cli)
    return {"inputs": dict(fuzz.COUNTS), "total": sum(fuzz.COUNTS.values()), "falsified": failures}


def tampering() -> dict[str, Any]:
    from medcoder.audit.store import SQLiteAuditStore
    from medcoder.engine.workflow import load_workflow

    tmp = _tmp()
    with load_workflow("full", model="fake", audit=SQLiteAuditStore(tmp / "a.sqlite"),
                       checkpoint_path=tmp / "c.sqlite") as wf:
        wf.run(harness.NOTE_TEMPLATE.format(i=1), run_id="r1")
    return harness.tamper_campaign(tmp / "a.sqlite", "r1", tmp, positions=12).to_dict()


def injection(workflow: str = "full", model: str = "default", off_sample: int | None = None) -> dict[str, Any]:
    """The hostile corpus through the default workflow and model, guard on and off (what the guard prevents).

    Each note's outcome is appended to `reliability_injection.progress.jsonl` as it finishes, so a stopped run
    resumes; the summary counts what is there and says how many notes each setting covered. `off_sample`: run
    the guard-off comparison on that many notes only (a seeded sample, said in the results)."""
    from medcoder import injection as guard
    from medcoder import jsonl
    from medcoder.engine.workflow import load_workflow
    from tests.reliability.test_injection import CORPUS, injected_codes_in

    progress = RESULTS / "reliability_injection.progress.jsonl"
    jsonl.repair_tail(progress)
    done = {(r["guard"], r["id"]) for r in jsonl.read_rows(progress) if r.get("workflow") == workflow}
    for on in (True, False):
        guard.set_enabled(on)
        corpus = CORPUS if on or not off_sample else random.Random(0).sample(CORPUS, off_sample)
        todo = [r for r in corpus if (on, r["id"]) not in done]
        if not todo:
            continue
        with load_workflow(workflow, model=model, audit=False, checkpoint_path=_tmp() / "c.sqlite") as wf, \
                open(progress, "ab", buffering=0) as fh:
            for row in todo:
                started = time.perf_counter()
                codes = [c.code for c in wf.run(row["text"]).codes]
                bad = injected_codes_in(codes, row)
                jsonl.append_row(fh, {"guard": on, "id": row["id"], "workflow": workflow, "model": model,
                                      "technique": row["technique"], "codes": codes, "leaked": bad,
                                      "seconds": round(time.perf_counter() - started, 1)})
                logger.info("guard %s: %s %s %s", on, row["id"], codes, bad or "")
    guard.set_enabled(True)
    rows = [r for r in jsonl.read_rows(progress) if r.get("workflow") == workflow]
    out: dict[str, Any] = {"notes": len(CORPUS), "workflow": workflow, "model": model}
    for on in (True, False):
        mine = [r for r in rows if r["guard"] is on]
        out["guard_on" if on else "guard_off"] = {
            "notes_run": len(mine), "leaked_notes": sum(bool(r["leaked"]) for r in mine),
            "leaks": {r["id"]: {"technique": r["technique"], "codes": r["leaked"]} for r in mine if r["leaked"]},
            "seconds_per_note": round(sum(r["seconds"] for r in mine) / max(1, len(mine)), 1)}
    return out


SECTIONS: dict[str, Callable[[], dict[str, Any]]] = {
    "crashes": crashes, "concurrency": concurrency, "storage": storage, "fuzzing": fuzzing, "tampering": tampering,
    "injection": injection,
}


def _row(*cells: Any) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def table(data: dict[str, Any]) -> str:
    """The README table: one row per campaign."""
    rows = [_row("campaign", "faults injected", "inputs tried", "failures that were not one clear line", "results lost",
                 "results duplicated", "chains verified / tampering detected"), "|---|---|---|---|---|---|---|"]
    for name, f in data.get("crashes", {}).items():
        same = (f", metrics equal to an uninterrupted run: {f['extra']['same_metrics']}"
                if "same_metrics" in f["extra"] else "")
        rows.append(_row(f"SIGKILL: {name}", f["faults"], f"{f['inputs']} notes", len(f["unclear"]), f["lost"],
                         f["duplicated"], f"{f['chains_ok']}/{f['chains']} verify{same}"))
    for name, f in data.get("concurrency", {}).items():
        rows.append(_row(f"concurrency: {name}", "-", f"{f['extra']['events']} events in {f['extra']['runs']} runs",
                         f"{len(f['unclear'])} ({f['extra']['locked_errors']} 'locked')", 0, 0,
                         f"{f['chains_ok']}/{f['chains']} verify"))
    if s := data.get("storage"):
        rows.append(_row("storage faults (disk full, read-only home, truncated databases, GGUF and index, "
                         "wrong sha256)",
                         s["faults"], "-", s["faults"] - s["clear_errors_and_nothing_lost"], 0, 0, "-"))
    if z := data.get("fuzzing"):
        rows.append(_row(f"fuzzing ({', '.join(f'{k}: {v}' for k, v in z['inputs'].items())})", "-", z["total"],
                         len(z["falsified"]), "-", "-", "-"))
    if t := data.get("tampering"):
        rows.append(_row("tampering (change, insert, delete, reorder, truncate, head, move, note, blob)", t["faults"],
                         "-", "-", "-", "-", f"{t['detected']}/{t['faults']} detected, first bad event named"))
    if i := data.get("injection"):
        on, off = i["guard_on"], i["guard_off"]
        rows.append(_row(f"prompt injection: hostile notes, {i['model']} model, `{i['workflow']}` workflow", i["notes"],
                         f"{on['notes_run']} (guard off: {off['notes_run']})", "-", "-", "-",
                         f"notes with an injected code in the output: guard on {on['leaked_notes']}/{on['notes_run']}, "
                         f"guard off {off['leaked_notes']}/{off['notes_run']}"))
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="crashes,concurrency,storage,fuzzing,tampering",
                    help="comma-separated sections: " + ", ".join(SECTIONS))
    ap.add_argument("--off-sample", type=int, default=None,
                    help="injection: run the guard-off comparison on a seeded sample of this many notes")
    ap.add_argument("--table", action="store_true", help="print the README table from the results file and stop")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    path = RESULTS / OUT
    data = json.loads(path.read_text()) if path.exists() else {}
    data.pop("run", None)
    if args.table:
        print(table(data))
        return
    for name in args.only.split(","):
        started = time.perf_counter()
        logger.info("section %s ...", name)
        section = injection(off_sample=args.off_sample) if name == "injection" else SECTIONS[name]()
        data = json.loads(path.read_text()) if path.exists() else {}  # another run may have written meanwhile
        data.pop("run", None)
        data[name], data[name + "_seconds"] = section, round(time.perf_counter() - started, 1)
        write_result(OUT, data)
        logger.info("section %s done in %.0f s", name, data[name + "_seconds"])
    print(table(data))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
