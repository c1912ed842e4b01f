"""Files medcoder keeps under the home: created owner-only, and every storage failure said in one line.

A full disk, a read-only folder, a lock held too long or a damaged database all reach the user
as a `StorageError` naming the file, what went wrong and what to do, never as a sqlite3 traceback.
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import re
import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

from medcoder.errors import StorageError

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

_FIX_SPACE = "free space, then run the same command again (nothing already written is lost)"
_FIX_WRITE = "make it writable, or point MEDCODER_HOME at a folder you can write"
_FIX_DAMAGED = "run `medcoder doctor`; move the file aside to start a new one"


def _explain(exc: BaseException) -> tuple[str, str]:
    """(what happened, what to do) for a sqlite3 or OS error."""
    if isinstance(exc, OSError) and exc.errno is not None:
        if exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
            return f"no space left ({exc.strerror})", _FIX_SPACE
        if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            return f"cannot be written ({exc.strerror})", _FIX_WRITE
        return exc.strerror or str(exc), _FIX_DAMAGED
    msg = str(exc).lower()
    if "locked" in msg or "busy" in msg:
        return "is locked by another process for too long", "let the other medcoder finish, then run again"
    if "full" in msg or "disk i/o" in msg:
        return f"could not be written: disk full or failing ({exc})", _FIX_SPACE
    if "readonly" in msg or "read-only" in msg or "unable to open" in msg:
        return f"cannot be written ({exc})", _FIX_WRITE
    if "malformed" in msg or "not a database" in msg or "corrupt" in msg:
        return f"is damaged ({exc})", _FIX_DAMAGED
    return str(exc), _FIX_DAMAGED


_SQLITE_CODE = re.compile(r"\(code: (\d+)\)")  # how Chroma's Rust bindings quote SQLite's extended code
_SQLITE_WRITE_FAULTS = {8, 13, 778, 1034}  # READONLY, FULL, IOERR_WRITE, IOERR_FSYNC (extended codes kept)


def is_write_fault(exc: BaseException) -> bool:
    """A full disk or a read-only folder, not damage: what is stored is sound and must not be rebuilt over.
    An extended SQLite code in the message tells a failed write from a short read (a truncated file), though
    both read "disk I/O error"."""
    found = _SQLITE_CODE.search(str(exc))
    if found:
        code = int(found.group(1))
        return code in _SQLITE_WRITE_FAULTS or code & 0xFF in (8, 13)
    return _explain(exc)[1] in (_FIX_SPACE, _FIX_WRITE)


def storage_error(path: str | Path, what: str, exc: BaseException) -> StorageError:
    happened, fix = _explain(exc)
    return StorageError(f"{what} {path}: {happened}; {fix}")


@contextmanager
def guard(path: str | Path, what: str) -> Iterator[None]:
    """Turn sqlite3 and OS errors inside the block into one `StorageError` about `path`."""
    try:
        yield
    except StorageError:
        raise
    except (sqlite3.Error, OSError) as exc:
        raise storage_error(path, what, exc) from exc


def guarded(what: str) -> Callable[[F], F]:
    """Method decorator: `guard(self.path, what)` around the call."""

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def inner(self: Any, *args: Any, **kwargs: Any) -> Any:
            with guard(self.path, what):
                return fn(self, *args, **kwargs)

        return inner  # type: ignore[return-value]

    return wrap


def private_dir(path: Path) -> Path:
    """Make a folder that only its owner can enter (0700); an existing one keeps its mode."""
    if not path.exists():
        path.mkdir(parents=True, exist_ok=True)
        os.chmod(path, 0o700)
    return path


def private_file(path: Path) -> Path:
    """Create an empty owner-only (0600) file if there is none; SQLite gives its -wal and -shm the same mode."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    return path


def connect(path: Path, what: str, **kwargs: Any) -> sqlite3.Connection:
    """An SQLite connection to an owner-only file; a file that is not a database fails here, in one line."""
    with guard(path, what):
        if str(path) != ":memory:":  # SQLite's in-memory database is not a file
            private_file(Path(path))
        conn = sqlite3.connect(path, **kwargs)
        conn.execute("PRAGMA schema_version").fetchone()  # reads the header: "not a database" shows now
        return conn


def migrate(conn: sqlite3.Connection, migrations: list[str], what: str) -> int:
    """Bring a database's schema up to date: run the migrations it has not had, in one transaction.

    The version lives in a `schema_version` table; each migration is `;`-separated SQL. Returns the
    version reached. The connection must be in autocommit mode (`isolation_level=None`)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = conn.execute("SELECT version FROM schema_version").fetchone()
        version = row[0] if row else 0
        if row is None:
            conn.execute("INSERT INTO schema_version VALUES (0)")
        for i, sql in enumerate(migrations[version:], start=version + 1):
            for statement in filter(str.strip, sql.split(";")):
                conn.execute(statement)
            conn.execute("UPDATE schema_version SET version = ?", (i,))
            logger.info("%s migrated to schema %d", what, i)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return max(version, len(migrations))
