"""The audit store: every run's note (or its digest), workflow, settings and an ordered,
hash-chained list of events. One interface (`AuditStore`); SQLite with WAL and explicit
schema migrations is the implementation that ships.

Each event's hash covers its own content and the hash of the event before it, and the run
keeps the hash of its last event, so a changed, inserted or deleted event is detected.

Long texts in model calls (the instructions and the note, repeated in every prompt of a run)
are stored once, content-addressed: the event holds `{"$blob": sha256}` in their place, the
hash chain covers that reference, and `verify` checks every blob against its address, so the
chain stays exact while a 100,000-note batch stops storing each note tens of times.
"""

from __future__ import annotations

import abc
import hashlib
import json
import logging
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from medcoder import faults, paths, storage
from medcoder.errors import MedcoderError

logger = logging.getLogger(__name__)

GENESIS = "0" * 64
BLOB_MIN_CHARS = 200  # strings at least this long in a model call are stored once, by their sha256
_BLOB, _BLOB_JSON = "$blob", "$blob_json"


class AuditError(MedcoderError):
    """An audit store problem: a missing run, an unreadable store."""


@dataclass
class Event:
    run_id: str
    seq: int
    ts: float
    node: str
    kind: str
    payload: dict[str, Any]
    prev_hash: str
    hash: str
    payload_json: str = ""  # the stored text, which is what the hash covers
    bad_blobs: list[str] = field(default_factory=list)  # blob references whose text is missing or changed

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "seq": self.seq,
            "ts": self.ts,
            "node": self.node,
            "kind": self.kind,
            "payload": self.payload,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


@dataclass
class RunInfo:
    run_id: str
    created: float
    workflow: str
    spec_hash: str
    status: str
    note_digest: str
    note: str | None = None
    spec_text: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    result: dict[str, Any] | None = None
    head_hash: str | None = None
    n_events: int = 0
    finished: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass
class Verification:
    run_id: str
    ok: bool
    events: int
    first_bad: int | None = None
    reason: str = ""


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def event_hash(prev_hash: str, run_id: str, seq: int, ts: float, node: str, kind: str, payload_json: str) -> str:
    body = canonical([prev_hash, run_id, seq, repr(ts), node, kind, payload_json])
    return hashlib.sha256(body.encode()).hexdigest()


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class AuditStore(abc.ABC):
    """Where runs and their events live; the workflow writes, auditors read and verify."""

    @abc.abstractmethod
    def create_run(
        self, run_id: str, workflow: str, spec_text: str, settings: dict[str, Any], note: str, store_note: bool = True
    ) -> None: ...

    @abc.abstractmethod
    def append(self, run_id: str, node: str, kind: str, payload: dict[str, Any]) -> Event: ...

    @abc.abstractmethod
    def finish_run(self, run_id: str, status: str, result: dict[str, Any] | None) -> None: ...

    @abc.abstractmethod
    def run(self, run_id: str) -> RunInfo: ...

    @abc.abstractmethod
    def runs(self, limit: int = 50) -> list[RunInfo]: ...

    @abc.abstractmethod
    def events(self, run_id: str) -> Iterator[Event]: ...

    def close(self) -> None:
        """Release the store's connections (a no-op where there are none)."""

    def size(self) -> dict[str, int]:
        """What the store holds, in counts and bytes (backends that can tell)."""
        return {}

    def verify(self, run_id: str) -> Verification:
        """Recompute the chain: every hash, every link, no gap in the sequence, the recorded head."""
        info = self.run(run_id)
        prev, n, expected_seq = GENESIS, 0, 0
        for ev in self.events(run_id):
            n += 1
            if ev.seq != expected_seq:
                bad = expected_seq if ev.seq > expected_seq else ev.seq
                return Verification(run_id, False, n, bad, f"event {bad} is missing or out of order (found {ev.seq})")
            if ev.prev_hash != prev:
                return Verification(run_id, False, n, ev.seq, f"event {ev.seq} does not link to the event before it")
            recomputed = event_hash(
                prev, ev.run_id, ev.seq, ev.ts, ev.node, ev.kind, ev.payload_json or canonical(ev.payload)
            )
            if recomputed != ev.hash:
                return Verification(run_id, False, n, ev.seq, f"event {ev.seq} ({ev.kind}) was changed")
            if ev.bad_blobs:
                return Verification(
                    run_id,
                    False,
                    n,
                    ev.seq,
                    f"event {ev.seq} ({ev.kind}): the stored text "
                    f"{ev.bad_blobs[0][:12]} it points at was changed or removed",
                )
            prev, expected_seq = ev.hash, expected_seq + 1
        first = next(iter(self.events(run_id)), None)
        if first is not None and first.kind == "run":
            claims = first.payload
            if claims.get("note_digest") != info.note_digest or (
                info.note is not None and sha256_text(info.note) != info.note_digest
            ):
                return Verification(run_id, False, n, 0, "the stored note does not match the note the run began with")
            if claims.get("spec_hash") != info.spec_hash or sha256_text(info.spec_text) != info.spec_hash:
                return Verification(
                    run_id, False, n, 0, "the stored workflow does not match the one the run began with"
                )
        if info.head_hash is not None and info.head_hash != prev:
            return Verification(
                run_id,
                False,
                n,
                expected_seq,
                f"events after {expected_seq - 1} were deleted (the run's last hash does not match)",
            )
        if info.head_hash is not None and info.n_events != n:
            return Verification(run_id, False, n, n, f"the run recorded {info.n_events} events, found {n}")
        return Verification(run_id, True, n)


_MIGRATIONS: list[str] = [
    # 1: runs and hash-chained events
    """
    CREATE TABLE runs (
        run_id TEXT PRIMARY KEY, created REAL NOT NULL, workflow TEXT NOT NULL, spec_text TEXT NOT NULL,
        spec_hash TEXT NOT NULL, settings TEXT NOT NULL, note TEXT, note_digest TEXT NOT NULL,
        status TEXT NOT NULL, result TEXT, head_hash TEXT, n_events INTEGER NOT NULL DEFAULT 0, finished REAL
    );
    CREATE TABLE events (
        run_id TEXT NOT NULL REFERENCES runs(run_id), seq INTEGER NOT NULL, ts REAL NOT NULL,
        node TEXT NOT NULL, kind TEXT NOT NULL, payload TEXT NOT NULL, prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL, PRIMARY KEY (run_id, seq)
    );
    CREATE INDEX events_kind ON events(run_id, kind);
    """,
    # 2: the chain head kept per run while it is written (so concurrent writers never race on it)
    "ALTER TABLE runs ADD COLUMN tail_hash TEXT; ALTER TABLE runs ADD COLUMN tail_seq INTEGER NOT NULL DEFAULT -1;",
    # 3: long prompt texts stored once, addressed by their sha256 (events point at them)
    "CREATE TABLE blobs (hash TEXT PRIMARY KEY, text TEXT NOT NULL);",
]


def _compact(payload: dict[str, Any], blobs: dict[str, str]) -> dict[str, Any]:
    """A model call's payload with long texts replaced by blob references (collected into `blobs`)."""

    def walk(value: Any, key: str = "") -> Any:
        if key == "schema" and isinstance(value, dict):  # the same JSON schema rides on every chat call
            text = canonical(value)
            h = sha256_text(text)
            blobs[h] = text
            return {_BLOB_JSON: h}
        if isinstance(value, str) and len(value) >= BLOB_MIN_CHARS:
            h = sha256_text(value)
            blobs[h] = value
            return {_BLOB: h}
        if isinstance(value, dict):
            return {k: walk(v, k) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        return value

    return walk(payload)


def _expand(value: Any, read: Any, bad: list[str]) -> Any:
    """The payload with blob references replaced by their texts; `read(hash)` gives a blob's text only when
    it matches its address, and `bad` collects the references it could not give."""
    if isinstance(value, dict):
        if len(value) == 1 and (_BLOB in value or _BLOB_JSON in value):
            h = str(value.get(_BLOB) or value.get(_BLOB_JSON))
            text = read(h)
            if text is None:
                bad.append(h)
                return {"unreadable_blob": h}
            return json.loads(text) if _BLOB_JSON in value else text
        return {k: _expand(v, read, bad) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, read, bad) for v in value]
    return value


class SQLiteAuditStore(AuditStore):
    """SQLite in WAL mode; safe for several processes writing different runs at once."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path else paths.home() / "audit.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()  # one connection, shared by the workflow's worker threads
        self._connection: sqlite3.Connection | None = None
        self._migrate()

    def _conn(self) -> sqlite3.Connection:
        if self._connection is None:
            conn = storage.connect(
                self.path, "audit store", timeout=30.0, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA busy_timeout=30000")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._connection = conn
        return self._connection

    @storage.guarded("audit store")
    def _migrate(self) -> None:
        with self._lock:
            storage.migrate(self._conn(), _MIGRATIONS, f"audit store {self.path}")

    @property
    @storage.guarded("audit store")
    def schema_version(self) -> int:
        return self._conn().execute("SELECT version FROM schema_version").fetchone()[0]

    @storage.guarded("audit store")
    def create_run(
        self, run_id: str, workflow: str, spec_text: str, settings: dict[str, Any], note: str, store_note: bool = True
    ) -> None:
        with self._lock:
            conn = self._conn()
            conn.execute("BEGIN IMMEDIATE")  # the run row and its opening event land together or not at all
            try:
                cur = conn.execute(
                    "INSERT OR IGNORE INTO runs (run_id, created, workflow, spec_text, spec_hash, settings, note, "
                    "note_digest, status, tail_hash, tail_seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'running', ?, -1)",
                    (
                        run_id,
                        time.time(),
                        workflow,
                        spec_text,
                        sha256_text(spec_text),
                        canonical(settings),
                        note if store_note else None,
                        sha256_text(note),
                        GENESIS,
                    ),
                )
                if cur.rowcount:  # the chain opens with what the run row claims, so the row is covered too
                    self._append(
                        run_id,
                        "",
                        "run",
                        {
                            "workflow": workflow,
                            "spec_hash": sha256_text(spec_text),
                            "note_digest": sha256_text(note),
                            "settings": settings,
                        },
                        in_transaction=True,
                    )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    @storage.guarded("audit store")
    def append(self, run_id: str, node: str, kind: str, payload: dict[str, Any]) -> Event:
        with self._lock:
            return self._append(run_id, node, kind, payload)

    def _append(
        self, run_id: str, node: str, kind: str, payload: dict[str, Any], in_transaction: bool = False
    ) -> Event:
        conn = self._conn()
        payload = json.loads(canonical(payload))  # what readers get back is what was stored
        blobs: dict[str, str] = {}
        stored = _compact(payload, blobs) if kind == "model_call" else payload
        payload_json = canonical(stored)  # what is hashed
        if not in_transaction:
            conn.execute("BEGIN IMMEDIATE")
        try:
            if blobs:
                conn.executemany("INSERT OR IGNORE INTO blobs (hash, text) VALUES (?, ?)", blobs.items())
            row = conn.execute("SELECT tail_hash, tail_seq FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            if row is None:
                raise AuditError(f"no run {run_id} in {self.path}")
            prev, seq = row[0] or GENESIS, row[1] + 1
            ts = time.time()
            h = event_hash(prev, run_id, seq, ts, node, kind, payload_json)
            conn.execute(
                "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (run_id, seq, ts, node, kind, payload_json, prev, h),
            )
            faults.point("audit_append")  # a kill here, inside the transaction, must leave no trace
            # a finished run that gets more events (a review session's turns) is sealed again at its new head
            conn.execute(
                "UPDATE runs SET tail_hash = ?, tail_seq = ?, head_hash = CASE WHEN head_hash IS NULL "
                "THEN NULL ELSE ? END, n_events = CASE WHEN head_hash IS NULL THEN n_events ELSE ? END "
                "WHERE run_id = ?",
                (h, seq, h, seq + 1, run_id),
            )
            if not in_transaction:
                conn.execute("COMMIT")
        except Exception:
            if not in_transaction:  # the caller's transaction rolls back in the caller
                conn.execute("ROLLBACK")
            raise
        return Event(run_id, seq, ts, node, kind, payload, prev, h, payload_json)

    @storage.guarded("audit store")
    def finish_run(self, run_id: str, status: str, result: dict[str, Any] | None) -> None:
        with self._lock:
            conn = self._conn()
            conn.execute(
                "UPDATE runs SET status = ?, result = ?, finished = ?, head_hash = tail_hash, n_events = tail_seq + 1"
                " WHERE run_id = ?",
                (status, canonical(result) if result is not None else None, time.time(), run_id),
            )
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def _info(self, row: sqlite3.Row | tuple[Any, ...]) -> RunInfo:
        (
            run_id,
            created,
            workflow,
            spec_text,
            spec_hash,
            settings,
            note,
            note_digest,
            status,
            result,
            head_hash,
            n_events,
            finished,
        ) = row[:13]
        return RunInfo(
            run_id,
            created,
            workflow,
            spec_hash,
            status,
            note_digest,
            note,
            spec_text,
            json.loads(settings),
            json.loads(result) if result else None,
            head_hash,
            n_events,
            finished,
        )

    _COLUMNS = (
        "run_id, created, workflow, spec_text, spec_hash, settings, note, note_digest, status, result, "
        "head_hash, n_events, finished"
    )

    @storage.guarded("audit store")
    def run(self, run_id: str) -> RunInfo:
        row = self._conn().execute(f"SELECT {self._COLUMNS} FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            matches = (
                self._conn().execute("SELECT run_id FROM runs WHERE run_id LIKE ? LIMIT 2", (run_id + "%",)).fetchall()
            )
            if len(matches) == 1:
                return self.run(matches[0][0])
            raise AuditError(f"no run {run_id!r} in {self.path}")
        return self._info(row)

    @storage.guarded("audit store")
    def runs(self, limit: int = 50) -> list[RunInfo]:
        rows = self._conn().execute(f"SELECT {self._COLUMNS} FROM runs ORDER BY created DESC LIMIT ?", (limit,))
        return [self._info(r) for r in rows.fetchall()]

    def events(self, run_id: str) -> Iterator[Event]:
        run_id = self.run(run_id).run_id
        with storage.guard(self.path, "audit store"):
            fetched = (
                self._conn()
                .execute(
                    "SELECT run_id, seq, ts, node, kind, payload, prev_hash, hash FROM events "
                    "WHERE run_id = ? ORDER BY seq",
                    (run_id,),
                )
                .fetchall()
            )
        verified: dict[str, str | None] = {}  # a run's calls share their prompt blobs: read and hash each once

        def read(h: str) -> str | None:
            if h not in verified:
                with storage.guard(self.path, "audit store"):
                    row = self._conn().execute("SELECT text FROM blobs WHERE hash = ?", (h,)).fetchone()
                verified[h] = row[0] if row and sha256_text(row[0]) == h else None
            return verified[h]

        for r in fetched:
            try:
                payload = json.loads(r[5])
            except ValueError:  # a damaged record still reads; verify() names it
                payload = {"unreadable": r[5]}
            bad: list[str] = []
            if _BLOB in r[5] or _BLOB_JSON in r[5]:
                payload = _expand(payload, read, bad)
            yield Event(r[0], r[1], r[2], r[3], r[4], payload, r[6], r[7], r[5], bad)

    def size(self) -> dict[str, int]:
        """Bytes held: event payloads, blob texts, notes (what the audit benchmark and the contract tests read)."""
        conn = self._conn()
        one = lambda sql: conn.execute(sql).fetchone()[0] or 0  # noqa: E731
        return {
            "runs": one("SELECT COUNT(*) FROM runs"),
            "events": one("SELECT COUNT(*) FROM events"),
            "event_bytes": one("SELECT SUM(LENGTH(payload)) FROM events"),
            "blobs": one("SELECT COUNT(*) FROM blobs"),
            "blob_bytes": one("SELECT SUM(LENGTH(text)) FROM blobs"),
            "note_bytes": one("SELECT SUM(LENGTH(note)) FROM runs"),
            "file_bytes": self.path.stat().st_size if self.path.exists() else 0,
        }

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None
