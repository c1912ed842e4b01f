"""How long-running work says how far it has got: one callback shape for every piece that takes a while.

Learning a ranker (memory folds, retrieval, ranker folds, the verifier), learning the drug ranker, re-learning
a site's ranker, evaluating strategies on a dataset, the drug evaluation, the speed bench and building the dense
index all take a `progress: Progress | None` and call it as work finishes. A stage is a short name of the step
under way ("notes", "embedding", "ranker folds"); `done` of `total` units of that stage are finished. A caller
that shows one bar per stage opens a new bar when the stage changes (the CLI's printers do).

A batch run's per-note summary is a different thing: `medcoder.batch.runner.SummaryListener`.
"""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    """A progress report: `done` of `total` units of `stage` are finished.

    Positional-only, so any function of (str, int, int) fits whatever its parameters are called.
    """

    def __call__(self, stage: str, done: int, total: int, /) -> None: ...
