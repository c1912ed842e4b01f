"""A workflow's batch: the batch layer drives the engine, never the reverse.

Any object with a picklable `recipe` (a callable that builds a copy of it in a worker) and `run` can be
batched; `medcoder.engine.Workflow` is one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from medcoder.batch.runner import BatchItem, BatchSummary, RayOptions, SummaryListener, iter_inputs, run_batch


def code_batch(
    workflow: Any,
    inputs: str | Path | Iterable[BatchItem],
    out: str | Path,
    workers: int = 1,
    progress: SummaryListener | None = None,
    *,
    engine: str = "local",
    ray: RayOptions | None = None,
) -> BatchSummary:
    """Code a folder of notes, a JSONL of {id, text}, or BatchItems into a JSONL file; resumable.

    With `workers` > 1, each worker process loads its own copy of the workflow and its models; with
    `engine="ray"`, each actor of a Ray actor pool does (`ray=RayOptions(address, actors, ...)`)."""
    items = iter_inputs(inputs) if isinstance(inputs, (str, Path)) else inputs
    factory: Any = workflow if workers <= 1 and engine == "local" else workflow.recipe
    return run_batch(factory, items, out, workers=workers, progress=progress, engine=engine, ray=ray)
