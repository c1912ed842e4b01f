"""Batch runs: many notes through one workflow, resumable, with a local worker pool."""

from medcoder.batch.runner import BatchItem, BatchSummary, iter_inputs, run_batch

__all__ = ["BatchItem", "BatchSummary", "iter_inputs", "run_batch"]
