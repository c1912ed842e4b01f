"""Code many notes into one JSONL file, safely: resumable after a kill, one line per note, bad notes recorded.

The main process is the only writer: each finished note is one appended, flushed and fsynced
line, so a kill loses at most the notes in flight, and a restart skips every id already in the
file (a half-written last line is cut off first). Each note runs under a run id derived from
the output file and the note, so a note killed half-way resumes from its LangGraph checkpoint.
Workers are local processes or Ray actors (`ray_engine.py`), each with its own model instance;
either way this process alone writes the file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import multiprocessing
import os
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from medcoder import jsonl
from medcoder.errors import MedcoderError, StorageError
from medcoder.notetext import NoteError

logger = logging.getLogger(__name__)

Progress = Callable[["BatchSummary"], None]
ENGINES = ("local", "ray")


@dataclass(frozen=True)
class RayOptions:
    """Where and how wide a Ray batch runs: `address` None starts a private local Ray; "auto" joins the
    cluster this machine belongs to; "ray://host:10001" a remote one. One workflow and model per actor."""

    address: str | None = None
    actors: int = 2
    gpus_per_actor: float = 0.0
    cpus_per_actor: float = 1.0


@dataclass(slots=True)
class BatchItem:
    """One note of a batch: its id and raw content (bytes from a file: the workflow checks them)."""

    id: str
    text: str | bytes


@dataclass
class BatchSummary:
    total: int
    skipped: int = 0  # already in the output file from an earlier run
    done: int = 0
    errors: int = 0
    started: float = field(default_factory=time.time)
    out: str = ""

    @property
    def finished(self) -> int:
        return self.done + self.errors

    def to_dict(self) -> dict[str, Any]:
        elapsed = time.time() - self.started
        return {"total": self.total, "skipped": self.skipped, "coded": self.done, "errors": self.errors,
                "seconds": round(elapsed, 1), "notes_per_minute": round(60 * self.finished / elapsed, 2) if elapsed else 0,
                "out": self.out}


NOTE_SUFFIXES = (".txt",)


def iter_inputs(path: str | Path, suffixes: Sequence[str] = NOTE_SUFFIXES) -> Iterator[BatchItem]:
    """A folder of note files with one of `suffixes` (id = file name without suffix; a README.md beside
    the notes is not a note unless ".md" is asked for) or a JSONL of `{id, text}`."""
    p = Path(path)
    if p.is_dir():
        wanted = {s.lower() if s.startswith(".") else "." + s.lower() for s in suffixes}
        every = sorted(f for f in p.iterdir() if f.is_file() and not f.name.startswith("."))
        files = [f for f in every if f.suffix.lower() in wanted]
        if not files:
            others = sorted({f.suffix or "(no suffix)" for f in every})
            hint = f" (it holds {len(every)} other files: {', '.join(others)}; ask for them with --suffix)" \
                if every else ""
            raise MedcoderError(f"{p}: no {' or '.join(sorted(wanted))} note files in this folder{hint}")
        for f in files:
            yield BatchItem(f.stem, f.read_bytes())
    elif p.is_file():
        with open(p, encoding="utf-8", errors="replace") as fh:
            for n, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                    yield BatchItem(str(obj["id"]), obj["text"] if isinstance(obj["text"], str) else str(obj["text"]))
                except (ValueError, KeyError, TypeError) as exc:
                    yield BatchItem(f"{p.name}:{n}", "")  # recorded as an error line, the batch goes on
                    logger.warning("%s:%d: not an {id, text} JSON line (%s)", p, n, exc)
    else:
        raise MedcoderError(f"batch input not found: {p}")


def _done_ids(out: Path) -> set[str]:
    """Ids already written; a torn last line (a kill mid-write) is cut off first so the file stays valid JSONL."""
    jsonl.repair_tail(out)
    return {str(row["id"]) for row in jsonl.read_rows(out) if "id" in row}


def run_id_for(out: Path, item: BatchItem) -> str:
    data = item.text.encode() if isinstance(item.text, str) else item.text
    return "b" + hashlib.sha256(f"{out.resolve()}|{item.id}|".encode() + data).hexdigest()[:15]


# -- the worker side (runs in each worker process, or inline with one worker, or in a Ray actor) -------

_WORKFLOW: Any = None


def _init_worker(factory: Callable[[], Any]) -> None:
    global _WORKFLOW
    _WORKFLOW = factory if hasattr(factory, "run_or_result") else factory()


def _code_one(item: BatchItem, run_id: str) -> dict[str, Any]:
    return code_item(_WORKFLOW, item, run_id)


def code_item(workflow: Any, item: BatchItem, run_id: str) -> dict[str, Any]:
    """Code one note into its output line; any failure becomes an error line with its reason, never a crash
    of the batch (storage errors excepted: they stop it, so the note is retried when space is back)."""
    start = time.perf_counter()
    try:
        result = workflow.run_or_result(item.text, run_id)
        return {"id": item.id, "ok": True, "run_id": run_id, "result": result.to_dict(),
                "seconds": round(time.perf_counter() - start, 3)}
    except NoteError as exc:
        return {"id": item.id, "ok": False, "run_id": run_id, "error": str(exc), "error_type": "bad_note"}
    except StorageError:  # not this note's fault: stop the batch, so the note is retried when space is back
        raise
    except Exception as exc:  # noqa: BLE001 - the batch records it and goes on
        logger.exception("note %s failed", item.id)
        return {"id": item.id, "ok": False, "run_id": run_id, "error": f"{type(exc).__name__}: {exc}",
                "error_type": "failed", "seconds": round(time.perf_counter() - start, 3)}


# -- the writer side (the calling process only) -------------------------------------------------------

def plan(items: Iterable[BatchItem], out: Path) -> tuple[list[BatchItem], BatchSummary, set[str]]:
    """The notes still to code (ids not yet in `out`, first of each id), a summary counting the rest, and the
    ids already written."""
    done = _done_ids(out)
    todo: list[BatchItem] = []
    seen: set[str] = set()
    all_items = list(items)
    for item in all_items:
        if item.id in done or item.id in seen:
            continue
        seen.add(item.id)
        todo.append(item)
    return todo, BatchSummary(total=len(all_items), skipped=len(all_items) - len(todo), out=str(out)), done


@contextmanager
def output_writer(out: Path, summary: BatchSummary, progress: Progress | None,
                  written: set[str]) -> Iterator[Callable[[dict[str, Any]], bool]]:
    """The one writer of `out`: appends each line once (a line whose id is already written is dropped and
    `False` returned, so an engine that retries work cannot duplicate a note), counts it, reports progress.
    `written` is the set of ids already in `out` (from `plan`); it grows as lines are written."""
    with open(out, "ab", buffering=0) as fh:
        def write(line: dict[str, Any]) -> bool:
            if str(line["id"]) in written:
                logger.warning("note %s came back twice (a retried batch); written once", line["id"])
                return False
            try:
                jsonl.append_row(fh, line, fault="batch_append")
            except OSError as exc:
                raise StorageError(f"cannot write to {out}: {exc.strerror or exc}; free space or fix the folder, "
                                   "then run the same command again: finished notes are kept") from exc
            written.add(str(line["id"]))
            if line["ok"]:
                summary.done += 1
            else:
                summary.errors += 1
            if progress:
                progress(summary)
            return True

        yield write


def with_threads(factory: Callable[[], Any], threads: int) -> Callable[[], Any]:
    """The recipe with llama.cpp's CPU threads set to `threads`, unless the settings already say: N workers
    that each start one thread per core spin against each other (2 workers on 2 cores were slower than 1)."""
    settings = getattr(factory, "settings", None)
    if isinstance(settings, dict) and not settings.get("n_threads"):
        return dataclasses.replace(factory, settings={**settings, "n_threads": max(1, threads)})  # type: ignore[type-var]
    return factory


def run_batch(factory: Callable[[], Any], items: Iterable[BatchItem], out: str | Path,
              workers: int = 1, progress: Progress | None = None, engine: str = "local",
              ray: "RayOptions | None" = None) -> BatchSummary:
    """Code every item not already in `out`. `factory` is a Workflow (used as is, one local worker) or a
    picklable callable that makes one (`WorkflowRecipe`), called once in each worker process or Ray actor.
    `engine="ray"` spreads the notes over a Ray actor pool (`ray` options); the output contract is the same."""
    if engine not in ENGINES:
        raise MedcoderError(f"unknown batch engine {engine!r}; use one of {', '.join(ENGINES)}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    todo, summary, done = plan(items, out)
    if progress:
        progress(summary)
    with output_writer(out, summary, progress, done) as write:
        if engine == "ray":
            from medcoder.batch.ray_engine import run_on_ray  # lazy: Ray takes seconds to import

            run_on_ray(factory, todo, out, write, ray or RayOptions())
        elif workers <= 1:
            _init_worker(factory)
            try:
                for item in todo:
                    write(_code_one(item, run_id_for(out, item)))
            finally:
                _close_worker(factory)
        else:
            ctx = multiprocessing.get_context("spawn")
            factory = with_threads(factory, (os.cpu_count() or 1) // workers)
            with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=(factory,)) as pool:
                pending: set[Future[dict[str, Any]]] = set()
                for item in todo:  # keep 2 notes per worker in flight, no more: a kill loses little
                    pending.add(pool.submit(_code_one, item, run_id_for(out, item)))
                    if len(pending) >= 2 * workers:
                        finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                        for f in finished:
                            write(f.result())
                for f in pending:
                    write(f.result())
    return summary


def _close_worker(factory: Any) -> None:
    """Close a workflow this module made; one the caller passed in stays theirs."""
    global _WORKFLOW
    if _WORKFLOW is not None and _WORKFLOW is not factory:
        _WORKFLOW.close()
    _WORKFLOW = None
