"""The audit trail: a hash-chained record of every step of every run, and the tools to read it.

It only stores and reads; replaying a run is the engine's job (`medcoder.engine.replay`)."""

from __future__ import annotations

from pathlib import Path

from medcoder.audit.store import AuditError, AuditStore, Event, RunInfo, SQLiteAuditStore, Verification

__all__ = ["AuditError", "AuditStore", "Event", "RunInfo", "SQLiteAuditStore", "Verification", "open"]


def open(path: str | Path | None = None) -> SQLiteAuditStore:  # noqa: A001 - medcoder.audit.open(path) reads well
    """The audit store at `path` (default: `$MEDCODER_HOME/audit.sqlite`)."""
    return SQLiteAuditStore(path)
