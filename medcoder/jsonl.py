"""Append-only JSONL files that survive a kill: one fsynced line per record, a torn last line cut off.

The batch output and the evaluation's scored-items cache both use it, so a kill at any moment
loses at most the record being written, and a rerun neither loses nor duplicates one.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import IO, Any, Iterator

from medcoder import faults

logger = logging.getLogger(__name__)


def repair_tail(path: Path) -> None:
    """Cut a half-written last line (a kill mid-write) so the file is valid JSONL again."""
    if not path.exists():
        return
    with open(path, "r+b") as fh:
        size = fh.seek(0, os.SEEK_END)
        if size == 0:
            return
        fh.seek(size - 1)
        if fh.read(1) == b"\n":
            return
        fh.seek(max(0, size - (1 << 20)))  # the torn line is at most one record long; search its tail
        tail = fh.read()
        cut = tail.rfind(b"\n")
        keep = size - len(tail) + cut + 1 if cut >= 0 else (0 if size <= len(tail) else size - len(tail))
        logger.warning("%s: dropping a half-written last line from an interrupted run", path)
        fh.truncate(keep)


def numbered_rows(path: Path, errors: str = "strict") -> Iterator[tuple[int, dict[str, Any] | None, str]]:
    """Each non-blank line of a JSONL file as (line number, its object or None, why not): the one reader of
    the JSONL files medcoder reads (datasets, batch inputs and outputs, feedback, the retrieval cache); each
    caller decides what a bad line means (an error naming file and line, an error item, a skipped line)."""
    with open(path, encoding="utf-8", errors=errors) as fh:
        for n, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                yield n, None, str(exc)
                continue
            yield (n, row, "") if isinstance(row, dict) else (n, None, "not a JSON object")


def read_rows(path: Path) -> Iterator[dict[str, Any]]:
    """Every complete JSON object line of `path` (lines that do not parse are skipped)."""
    if not path.exists():
        return
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict):
                yield row


def append_row(fh: IO[bytes], row: dict[str, Any], fault: str = "") -> None:
    """Write one record as one line straight to the file (no buffer to flush again on close), then fsync;
    `fault` names the fault point half-way through it. Open `fh` with `open(path, "ab", buffering=0)`."""
    data = (json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8")
    if fault:
        faults.point(fault, lambda: _write_all(fh.fileno(), data[: len(data) // 2]))
    _write_all(fh.fileno(), data)
    os.fsync(fh.fileno())


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
