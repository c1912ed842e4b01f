"""Datasets, metrics, and the eval and bench runners."""
