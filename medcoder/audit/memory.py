"""An audit store held in memory: the same contract as SQLite, for tests, notebooks and throwaway runs.

The hash chain and `verify` are the interface's own, so a run recorded here verifies exactly as one
on disk; nothing survives the process (use `SQLiteAuditStore` for anything an auditor will read).
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any, Iterator

from medcoder.audit.store import (
    GENESIS,
    AuditError,
    AuditStore,
    Event,
    RunInfo,
    canonical,
    event_hash,
    sha256_text,
)


class MemoryAuditStore(AuditStore):
    """Runs and events in dictionaries, chained and verified like the SQLite store."""

    def __init__(self) -> None:
        self._runs: dict[str, RunInfo] = {}
        self._events: dict[str, list[Event]] = {}
        self._lock = threading.RLock()
        self.path = ":memory:"

    def create_run(
        self, run_id: str, workflow: str, spec_text: str, settings: dict[str, Any], note: str, store_note: bool = True
    ) -> None:
        with self._lock:
            if run_id in self._runs:
                return
            self._runs[run_id] = RunInfo(
                run_id,
                time.time(),
                workflow,
                sha256_text(spec_text),
                "running",
                sha256_text(note),
                note if store_note else None,
                spec_text,
                json.loads(canonical(settings)),
            )
            self._events[run_id] = []
            self.append(
                run_id,
                "",
                "run",
                {
                    "workflow": workflow,
                    "spec_hash": sha256_text(spec_text),
                    "note_digest": sha256_text(note),
                    "settings": settings,
                },
            )

    def append(self, run_id: str, node: str, kind: str, payload: dict[str, Any]) -> Event:
        with self._lock:
            events = self._events.get(run_id)
            if events is None:
                raise AuditError(f"no run {run_id} in memory")
            payload_json = canonical(payload)
            prev = events[-1].hash if events else GENESIS
            seq, ts = len(events), time.time()
            ev = Event(
                run_id,
                seq,
                ts,
                node,
                kind,
                json.loads(payload_json),
                prev,
                event_hash(prev, run_id, seq, ts, node, kind, payload_json),
                payload_json,
            )
            events.append(ev)
            info = self._runs[run_id]
            if info.head_hash is not None:  # a finished run that gets more events is sealed again
                info.head_hash, info.n_events = ev.hash, seq + 1
            return ev

    def finish_run(self, run_id: str, status: str, result: dict[str, Any] | None) -> None:
        with self._lock:
            info = self.run(run_id)
            events = self._events[info.run_id]
            info.status, info.finished = status, time.time()
            info.result = json.loads(canonical(result)) if result is not None else None
            info.head_hash, info.n_events = (events[-1].hash if events else GENESIS), len(events)

    def run(self, run_id: str) -> RunInfo:
        if run_id in self._runs:
            return self._runs[run_id]
        matches = [r for r in self._runs if r.startswith(run_id)]
        if len(matches) == 1:
            return self._runs[matches[0]]
        raise AuditError(f"no run {run_id!r} in memory")

    def runs(self, limit: int = 50) -> list[RunInfo]:
        return sorted(self._runs.values(), key=lambda r: -r.created)[:limit]

    def events(self, run_id: str) -> Iterator[Event]:
        yield from list(self._events[self.run(run_id).run_id])

    def size(self) -> dict[str, int]:
        return {}  # no blobs here: payloads are kept whole
