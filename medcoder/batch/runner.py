"""Code many notes into one JSONL file, safely: resumable after a kill, one line per note, bad notes recorded.

The main process is the only writer: each finished note is one appended, flushed and fsynced
line, so a kill loses at most the notes in flight, and a restart skips every id already in the
file (a half-written last line is cut off first). Each note runs under a run id derived from
the output file and the note, so a note killed half-way resumes from its LangGraph checkpoint.
Workers are local processes or Ray actors (`ray_engine.py`), each with its own model instance;
either way this process alone writes the file.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from medcoder import jsonl
from medcoder.batch.items import (
    ENGINES,
    NOTE_SUFFIXES,
    BatchItem,
    BatchSummary,
    RayOptions,
    code_item,
    iter_inputs,
    run_id_for,
    with_threads,
)
from medcoder.errors import MedcoderError, StorageError

__all__ = [
    "ENGINES",
    "NOTE_SUFFIXES",
    "BatchItem",
    "BatchSummary",
    "RayOptions",
    "SummaryListener",
    "code_item",
    "iter_inputs",
    "run_batch",
    "run_id_for",
    "with_threads",
]

logger = logging.getLogger(__name__)

# told the run's summary once at the start and again after each note is written (a progress line, a log);
# not `medcoder.progress.Progress`: a batch reports its counts, not one stage's done of total
SummaryListener = Callable[[BatchSummary], None]


def _done_ids(out: Path) -> set[str]:
    """Ids already written; a torn last line (a kill mid-write) is cut off first so the file stays valid JSONL."""
    jsonl.repair_tail(out)
    return {str(row["id"]) for row in jsonl.read_rows(out) if "id" in row}


# -- the worker side (runs in each worker process, or inline with one worker, or in a Ray actor) -------

_WORKFLOW: Any = None


def _init_worker(factory: Callable[[], Any]) -> None:
    global _WORKFLOW
    _WORKFLOW = factory if hasattr(factory, "run_or_result") else factory()


def _code_one(item: BatchItem, run_id: str) -> dict[str, Any]:
    return code_item(_WORKFLOW, item, run_id)


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
def output_writer(
    out: Path, summary: BatchSummary, progress: SummaryListener | None, written: set[str]
) -> Iterator[Callable[[dict[str, Any]], bool]]:
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
                raise StorageError(
                    f"cannot write to {out}: {exc.strerror or exc}; free space or fix the folder, "
                    "then run the same command again: finished notes are kept"
                ) from exc
            written.add(str(line["id"]))
            if line["ok"]:
                summary.done += 1
            else:
                summary.errors += 1
            if progress:
                progress(summary)
            return True

        yield write


def run_batch(
    factory: Callable[[], Any],
    items: Iterable[BatchItem],
    out: str | Path,
    workers: int = 1,
    progress: SummaryListener | None = None,
    engine: str = "local",
    ray: "RayOptions | None" = None,
) -> BatchSummary:
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
