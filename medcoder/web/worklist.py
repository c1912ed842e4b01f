"""The workspace's worklist: which notes it holds, where each came from and whether its coding finished.

One SQLite file under the home (`workspace.sqlite`). It keeps no note text once coding has begun:
a pasted note waits in `pending` only until the coding run's first checkpoint holds it, so a
server killed between the paste and the first step still codes the note when it starts again.
Review status (to review, in progress, done) is not kept here: it is read from the session.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from medcoder import paths, storage

QUEUED, CODING, READY, FAILED = "queued", "coding", "ready", "failed"

_MIGRATIONS = [
    # 1: one row per note in the worklist
    """
    CREATE TABLE items (
        id TEXT PRIMARY KEY, created REAL NOT NULL, source TEXT NOT NULL, title TEXT NOT NULL,
        state TEXT NOT NULL, error TEXT NOT NULL DEFAULT '', pending TEXT, chars INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX items_created ON items(created);
    """,
]


@dataclass
class WorkItem:
    """One note in the worklist; `id` is its coding run's id and its review session's id."""

    id: str
    created: float
    source: str  # paste | upload | batch:<file>
    title: str
    state: str  # queued | coding | ready | failed
    error: str = ""
    chars: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Worklist:
    """The items table, safe to share between the server's threads."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path else paths.home() / "workspace.sqlite"
        self._lock = threading.RLock()
        with storage.guard(self.path, "workspace"):
            self._conn = storage.connect(
                self.path, "workspace", isolation_level=None, check_same_thread=False, timeout=30.0
            )
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA secure_delete=ON")  # a pending note, once cleared, is overwritten
            storage.migrate(self._conn, _MIGRATIONS, f"workspace {self.path}")

    _COLUMNS = "id, created, source, title, state, error, chars"

    def _item(self, row: sqlite3.Row | tuple[Any, ...]) -> WorkItem:
        return WorkItem(*row)

    @storage.guarded("workspace")
    def add(
        self,
        item_id: str,
        source: str,
        title: str,
        state: str,
        pending: str | None = None,
        chars: int = 0,
        error: str = "",
    ) -> WorkItem:
        """Add an item (an id already there is left as it is and returned)."""
        with self._lock:
            self._conn.execute(
                "INSERT OR IGNORE INTO items (id, created, source, title, state, error, pending, chars)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (item_id, time.time(), source, title, state, error, pending, chars),
            )
            return self.get(item_id)

    @storage.guarded("workspace")
    def get(self, item_id: str) -> WorkItem:
        row = self._conn.execute(f"SELECT {self._COLUMNS} FROM items WHERE id = ?", (item_id,)).fetchone()
        if row is None:
            raise KeyError(item_id)
        return self._item(row)

    @storage.guarded("workspace")
    def items(self) -> list[WorkItem]:
        rows = self._conn.execute(f"SELECT {self._COLUMNS} FROM items ORDER BY created DESC").fetchall()
        return [self._item(r) for r in rows]

    @storage.guarded("workspace")
    def pending(self, item_id: str) -> str | None:
        row = self._conn.execute("SELECT pending FROM items WHERE id = ?", (item_id,)).fetchone()
        return row[0] if row else None

    @storage.guarded("workspace")
    def set_state(self, item_id: str, state: str, error: str = "", clear_pending: bool = False) -> None:
        with self._lock:
            sql = (
                "UPDATE items SET state = ?, error = ?"
                + (", pending = NULL" if clear_pending else "")
                + " WHERE id = ?"
            )
            self._conn.execute(sql, (state, error, item_id))

    @storage.guarded("workspace")
    def unfinished(self) -> list[WorkItem]:
        """Items whose coding had not finished when the server stopped (to code again, oldest first)."""
        rows = self._conn.execute(
            f"SELECT {self._COLUMNS} FROM items WHERE state IN (?, ?) ORDER BY created", (QUEUED, CODING)
        ).fetchall()
        return [self._item(r) for r in rows]

    def close(self) -> None:
        with self._lock:
            self._conn.close()
