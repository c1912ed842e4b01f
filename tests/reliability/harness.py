"""What the reliability suite and `benchmarks/reliability.py` share: faults injected on purpose, and the
figures each one yields (faults, inputs, clear errors, results lost or duplicated, tampering detected).

The tests call these with small sizes; the benchmark calls them with the long ones.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[2]
NOTE_TEMPLATE = ("Assessment: type 2 diabetes mellitus and essential hypertension, note {i}. "
                 "Plan: metformin 500 mg twice daily and lisinopril 10 mg daily.")


@dataclass
class Figures:
    """What one fault campaign counted."""

    faults: int = 0            # kills or faults that actually happened
    inputs: int = 0            # inputs tried
    unclear: list[str] = field(default_factory=list)  # what did not (a traceback, a crash)
    lost: int = 0
    duplicated: int = 0
    invalid_lines: int = 0
    chains: int = 0
    chains_ok: int = 0
    detected: int = 0
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["unclear"] = d["unclear"][:10]
        return d


def env_for(home: Path, fault: str | None = None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDCODER_")
           or k in ("MEDCODER_CACHE_DIR", "MEDCODER_MODELS_DIR")}
    env.update({"MEDCODER_HOME": str(home), "PYTHONUNBUFFERED": "1", **extra})
    if fault:
        env["MEDCODER_FAULT"] = fault
    return env


def medcoder(args: list[str], home: Path, fault: str | None = None, timeout: float = 600,
             preexec: Callable[[], None] | None = None, stdin: bytes | None = None,
             **extra: str) -> subprocess.CompletedProcess[bytes]:
    """Run the real CLI in a fresh process (what a user runs, and what a kill can hit)."""
    return subprocess.run([sys.executable, "-m", "medcoder", *args], env=env_for(home, fault, **extra),
                          capture_output=True, timeout=timeout, preexec_fn=preexec, input=stdin, cwd=str(ROOT))


def one_clear_line(proc: subprocess.CompletedProcess[bytes]) -> bool:
    """A failure a user can read: a non-zero exit, stderr ending in one `error:` line, no traceback."""
    err = proc.stderr.decode("utf-8", "replace")
    return proc.returncode != 0 and "Traceback" not in err and bool(err.strip()) and (
        err.strip().splitlines()[-1].startswith(("error:", "Error:", "Usage:", "interrupted")))


def write_notes(folder: Path, n: int) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (folder / f"n{i:03d}.txt").write_text(NOTE_TEMPLATE.format(i=i))
    return [f"n{i:03d}" for i in range(n)]


def check_output(out: Path, ids: list[str], figures: Figures) -> None:
    """Every note exactly once, every line valid JSON."""
    seen: Counter[str] = Counter()
    for line in out.read_text(encoding="utf-8").splitlines():
        try:
            seen[json.loads(line)["id"]] += 1
        except (ValueError, KeyError):
            figures.invalid_lines += 1
    figures.lost += sum(1 for i in ids if seen[i] == 0)
    figures.duplicated += sum(n - 1 for n in seen.values() if n > 1)


def verify_runs(audit_path: Path, figures: Figures, finished_only: bool = True) -> None:
    from medcoder.audit.store import SQLiteAuditStore

    store = SQLiteAuditStore(audit_path)
    try:
        for run in store.runs(limit=100_000):
            if finished_only and run.status != "done":
                continue
            figures.chains += 1
            figures.chains_ok += store.verify(run.run_id).ok
    finally:
        store.close()


# -- 1. crashes ------------------------------------------------------------------------------------------

BATCH_POINTS = ("model_call", "batch_append", "audit_append")


def crash_batch(tmp: Path, seed: int, kills: int, notes: int = 6, workflow: str = "full-tree") -> Figures:
    """Kill `medcoder batch` at `kills` seeded moments (a model call, an output append, an audit write),
    restarting it each time, then check the output and the audit trail. The default workflow is one that calls
    the model for every note (`full` codes drugs with no model call), so a kill can land in a model call."""
    rng = random.Random(seed)
    home, out = tmp / "home", tmp / "out.jsonl"
    ids = write_notes(tmp / "notes", notes)
    fig, started = Figures(inputs=notes), time.perf_counter()
    per_note = {"model_call": 3, "batch_append": 1, "audit_append": 25}
    args = ["batch", str(tmp / "notes"), "--out", str(out), "-w", workflow, "-m", "fake"]
    attempts = 0
    while fig.faults < kills and attempts < 4 * kills:
        attempts += 1
        point = (BATCH_POINTS[fig.faults % len(BATCH_POINTS)] if fig.faults < len(BATCH_POINTS)
                 else rng.choice(BATCH_POINTS))
        nth = rng.randint(1, max(1, per_note[point] * 2))
        proc = medcoder(args, home, fault=f"{point}:{nth}")
        if proc.returncode == -signal.SIGKILL:
            fig.faults += 1
            fig.extra.setdefault("killed_at", []).append(f"{point}:{nth}")
        elif proc.returncode != 0:
            fig.unclear.append(proc.stderr.decode()[-300:])
        if proc.returncode == 0 and out.exists():  # all done before the fault: start over on a new output
            check_output(out, ids, fig)
            out.rename(tmp / f"done-{attempts}.jsonl")
    final = medcoder(args, home)
    if final.returncode != 0:
        fig.unclear.append(final.stderr.decode()[-300:])
    check_output(out, ids, fig)
    verify_runs(home / "audit.sqlite", fig)
    fig.seconds = round(time.perf_counter() - started, 1)
    return fig


def crash_eval(tmp: Path, dataset: Path, kills: int, limit: int = 6) -> Figures:
    """Kill `medcoder eval` while it appends scored items; the resumed run's metrics equal an uninterrupted run's."""
    home = tmp / "home"
    fig, started = Figures(inputs=limit), time.perf_counter()
    base = ["eval", "-d", str(dataset), "-m", "fake", "-n", str(limit), "--json"]
    clean = medcoder(base + ["--out", str(tmp / "clean")], home)
    assert clean.returncode == 0, clean.stderr.decode()[-800:]
    for k in range(kills):
        proc = medcoder(base + ["--out", str(tmp / "killed")], home, fault=f"eval_append:{k % limit + 1}")
        fig.faults += proc.returncode == -signal.SIGKILL
    resumed = medcoder(base + ["--out", str(tmp / "killed")], home)
    assert resumed.returncode == 0, resumed.stderr.decode()[-800:]
    a = json.loads((tmp / "clean" / "eval.json").read_text())["metrics"]
    b = json.loads((tmp / "killed" / "eval.json").read_text())["metrics"]
    fig.extra["same_metrics"] = _quality(a) == _quality(b)  # timings differ run to run; scores must not
    items = next((tmp / "killed").glob("items-*.jsonl"))
    ids = [json.loads(line)["id"] for line in items.read_text().splitlines()]
    fig.duplicated = len(ids) - len(set(ids))
    fig.lost = limit - len(set(ids))
    fig.seconds = round(time.perf_counter() - started, 1)
    return fig


def _quality(metrics: Any) -> Any:
    """Metrics without the wall-clock ones."""
    if isinstance(metrics, dict):
        return {k: _quality(v) for k, v in metrics.items() if k not in ("seconds", "cost_per_item")}
    return metrics


_SESSION_SCRIPT = """
import sys
from medcoder.session import Session
sid, note = sys.argv[1], sys.argv[2]
try:
    s = Session.open(sid, workflow="full", model="fake")
except Exception:
    s = Session.start(note, workflow="full", model="fake", session_id=sid)
for c in s.codes("proposed"):
    s.accept(c.code)
if not s.done:
    s.finish()
s.close()
"""


def crash_session(tmp: Path, kills: int) -> Figures:
    """Kill a review session between a decision's checkpoint and its audit event, reopen it: every decision is
    in the review and in the audit trail exactly once, and the chain verifies."""
    from medcoder.audit.store import SQLiteAuditStore

    home = tmp / "home"
    fig, started = Figures(inputs=1), time.perf_counter()
    note = NOTE_TEMPLATE.format(i=0)
    for k in range(kills):
        proc = subprocess.run([sys.executable, "-c", _SESSION_SCRIPT, "s-crash", note],
                              env=env_for(home, f"session_decision:{k + 1}"), capture_output=True, timeout=600)
        fig.faults += proc.returncode == -signal.SIGKILL
    done = subprocess.run([sys.executable, "-c", _SESSION_SCRIPT, "s-crash", note], env=env_for(home),
                          capture_output=True, timeout=600)
    if done.returncode != 0:
        fig.unclear.append(done.stderr.decode()[-400:])
    store = SQLiteAuditStore(home / "audit.sqlite")
    events = [e for e in store.events("s-crash") if e.kind == "session_decision"]
    turns = Counter((e.payload["action"], e.payload.get("code")) for e in events)
    fig.duplicated = sum(n - 1 for n in turns.values() if n > 1)
    fig.extra["decisions_audited"] = len(events)
    fig.extra["recovered"] = sum(bool(e.payload.get("recovered")) for e in events)
    fig.chains, fig.chains_ok = 1, int(store.verify("s-crash").ok)
    store.close()
    fig.seconds = round(time.perf_counter() - started, 1)
    return fig


# -- 2. concurrency -----------------------------------------------------------------------------------------

def _writer(path: str, name: str, seconds: float, queue: Any) -> None:
    from medcoder.audit.store import SQLiteAuditStore
    from medcoder.errors import MedcoderError

    store, errors, runs, n = SQLiteAuditStore(path), [], 0, 0
    end = time.time() + seconds
    while time.time() < end:
        run = f"{name}-{runs}"
        try:
            store.create_run(run, "w", "spec", {}, f"note {run}")
            for i in range(20):
                store.append(run, "node", "step", {"i": i, "text": "x" * (i * 40)})
                n += 1
            store.finish_run(run, "done", {"codes": []})
            runs += 1
        except MedcoderError as exc:  # what a user would see
            errors.append(str(exc))
    store.close()
    queue.put((name, runs, n, errors))


def concurrent_writers(path: Path, procs: int, seconds: float) -> Figures:
    """`procs` processes write runs to one audit store for `seconds`: nothing locked reaches a user, every chain
    verifies."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    workers = [ctx.Process(target=_writer, args=(str(path), f"p{i}", seconds, queue)) for i in range(procs)]
    started = time.perf_counter()
    for w in workers:
        w.start()
    results = [queue.get(timeout=seconds + 120) for _ in workers]
    for w in workers:
        w.join(30)
    fig = Figures(faults=0, inputs=sum(r[2] for r in results))
    errs = [e for r in results for e in r[3]]
    fig.unclear = errs
    fig.extra = {"runs": sum(r[1] for r in results), "events": fig.inputs,
                 "locked_errors": sum("locked" in e for e in errs)}
    verify_runs(path, fig)
    fig.seconds = round(time.perf_counter() - started, 1)
    return fig


# -- 7. tampering ---------------------------------------------------------------------------------------------

def _edit(path: Path, sql: str, args: tuple[Any, ...] = ()) -> None:
    conn = sqlite3.connect(path)
    conn.execute(sql, args)
    conn.commit()
    conn.close()


def _insert_copy(path: Path, run: str, seq: int) -> None:
    """Shift the events from `seq` on up by one and put a copy of event `seq` in the gap."""
    _edit(path, "UPDATE events SET seq = seq + 1000000 WHERE run_id = ? AND seq >= ?; ", (run, seq))
    _edit(path, "UPDATE events SET seq = seq - 1000000 + 1 WHERE run_id = ? AND seq >= 1000000", (run,))
    _edit(path, "INSERT INTO events SELECT run_id, ?, ts, node, kind, payload, prev_hash, hash FROM events "
          "WHERE run_id = ? AND seq = ?", (seq, run, seq + 1))


TAMPERINGS: dict[str, Callable[[Path, str, int, int], None]] = {
    "change": lambda p, run, seq, n: _edit(p, "UPDATE events SET payload = json_set(payload, '$.tampered', 1) "
                                              "WHERE run_id = ? AND seq = ?", (run, seq)),
    "change_ts": lambda p, run, seq, n: _edit(p, "UPDATE events SET ts = ts + 1 WHERE run_id = ? AND seq = ?",
                                              (run, seq)),
    "change_kind": lambda p, run, seq, n: _edit(p, "UPDATE events SET kind = 'x' WHERE run_id = ? AND seq = ?",
                                                (run, seq)),
    "delete": lambda p, run, seq, n: _edit(p, "DELETE FROM events WHERE run_id = ? AND seq = ?", (run, seq)),
    "insert": lambda p, run, seq, n: _insert_copy(p, run, seq),
    "reorder": lambda p, run, seq, n: _swap(p, run, seq, (seq + 1) % n),
    "truncate": lambda p, run, seq, n: _edit(p, "DELETE FROM events WHERE run_id = ? AND seq >= ?", (run, seq)),
    "change_head": lambda p, run, seq, n: _edit(p, "UPDATE runs SET head_hash = ? WHERE run_id = ?", ("0" * 64, run)),
    "move_between_runs": lambda p, run, seq, n: _edit(p, "UPDATE events SET run_id = ? WHERE run_id = ? AND seq = ?",
                                                      (run + "-moved", run, seq)),
    "change_note": lambda p, run, seq, n: _edit(p, "UPDATE runs SET note = note || ' edited' WHERE run_id = ?", (run,)),
    "change_blob": lambda p, run, seq, n: _edit(p, "UPDATE blobs SET text = text || ' ' WHERE rowid = "
                                                   "(SELECT MIN(rowid) FROM blobs)"),
}


def _swap(path: Path, run: str, a: int, b: int) -> None:
    conn = sqlite3.connect(path)
    conn.execute("UPDATE events SET seq = -1 WHERE run_id = ? AND seq = ?", (run, a))
    conn.execute("UPDATE events SET seq = ? WHERE run_id = ? AND seq = ?", (a, run, b))
    conn.execute("UPDATE events SET seq = ? WHERE run_id = ? AND seq = -1", (b, run))
    conn.commit()
    conn.close()


def tamper_campaign(pristine: Path, run_id: str, tmp: Path, positions: int) -> Figures:
    """Every tampering kind at `positions` event positions on a copy of a verified store: each detected, with the
    first bad event named."""
    import shutil

    from medcoder.audit.store import SQLiteAuditStore

    store = SQLiteAuditStore(pristine)
    n = store.run(run_id).n_events
    store.close()
    fig = Figures()
    rng = random.Random(7)
    seqs = sorted(rng.sample(range(n), min(positions, n)))
    for name, tamper in TAMPERINGS.items():
        for seq in seqs if name not in ("change_head", "change_note", "change_blob") else [0]:
            copy = tmp / f"t-{name}-{seq}.sqlite"
            shutil.copy(pristine, copy)
            tamper(copy, run_id, seq, n)
            fig.faults += 1
            s = SQLiteAuditStore(copy)
            v = s.verify(run_id)
            s.close()
            copy.unlink()
            if not v.ok and v.first_bad is not None and v.reason:
                fig.detected += 1
            else:
                fig.unclear.append(f"{name}@{seq}: {v}")
    return fig
