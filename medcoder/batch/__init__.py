"""Batch runs: many notes through one workflow, resumable, on a local worker pool or a Ray actor pool."""

from medcoder.batch.runner import BatchItem, BatchSummary, RayOptions, SummaryListener, iter_inputs, run_batch
from medcoder.batch.workflows import code_batch

__all__ = ["BatchItem", "BatchSummary", "RayOptions", "SummaryListener", "code_batch", "iter_inputs", "run_batch"]
