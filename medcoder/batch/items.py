"""What a batch is made of: its items and options, the run id of a note, and coding one note into its line.

Shared by the local runner (`runner.py`) and the Ray engine (`ray_engine.py`), which both import it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from medcoder.errors import MedcoderError, StorageError
from medcoder.jsonl import numbered_rows
from medcoder.notetext import NoteError

logger = logging.getLogger(__name__)

ENGINES = ("local", "ray")


@dataclass(frozen=True)
class RayOptions:
    """Where and how wide a Ray batch runs: `address` None starts a private local Ray; "auto" joins the
    cluster this machine belongs to; "ray://host:10001" a remote one. One workflow and model per actor."""

    address: str | None = None
    actors: int = 2
    gpus_per_actor: float = 0.0
    cpus_per_actor: float = 1.0


@dataclass(slots=True)
class BatchItem:
    """One note of a batch: its id and raw content (bytes from a file: the workflow checks them)."""

    id: str
    text: str | bytes


@dataclass
class BatchSummary:
    total: int
    skipped: int = 0  # already in the output file from an earlier run
    done: int = 0
    errors: int = 0
    started: float = field(default_factory=time.time)
    out: str = ""

    @property
    def finished(self) -> int:
        return self.done + self.errors

    def to_dict(self) -> dict[str, Any]:
        elapsed = time.time() - self.started
        return {
            "total": self.total,
            "skipped": self.skipped,
            "coded": self.done,
            "errors": self.errors,
            "seconds": round(elapsed, 1),
            "notes_per_minute": round(60 * self.finished / elapsed, 2) if elapsed else 0,
            "out": self.out,
        }


NOTE_SUFFIXES = (".txt",)


def iter_inputs(path: str | Path, suffixes: Sequence[str] = NOTE_SUFFIXES) -> Iterator[BatchItem]:
    """A folder of note files with one of `suffixes` (id = file name without suffix; a README.md beside
    the notes is not a note unless ".md" is asked for) or a JSONL of `{id, text}`."""
    p = Path(path)
    if p.is_dir():
        wanted = {s.lower() if s.startswith(".") else "." + s.lower() for s in suffixes}
        every = sorted(f for f in p.iterdir() if f.is_file() and not f.name.startswith("."))
        files = [f for f in every if f.suffix.lower() in wanted]
        if not files:
            others = sorted({f.suffix or "(no suffix)" for f in every})
            hint = (
                f" (it holds {len(every)} other files: {', '.join(others)}; ask for them with --suffix)"
                if every
                else ""
            )
            raise MedcoderError(f"{p}: no {' or '.join(sorted(wanted))} note files in this folder{hint}")
        for f in files:
            yield BatchItem(f.stem, f.read_bytes())
    elif p.is_file():
        for n, obj, why in numbered_rows(p, errors="replace"):
            try:
                if obj is None:
                    raise ValueError(why)
                yield BatchItem(str(obj["id"]), obj["text"] if isinstance(obj["text"], str) else str(obj["text"]))
            except (ValueError, KeyError, TypeError) as exc:
                yield BatchItem(f"{p.name}:{n}", "")  # recorded as an error line, the batch goes on
                logger.warning("%s:%d: not an {id, text} JSON line (%s)", p, n, exc)
    else:
        raise MedcoderError(f"batch input not found: {p}")


def run_id_for(out: Path, item: BatchItem) -> str:
    data = item.text.encode() if isinstance(item.text, str) else item.text
    return "b" + hashlib.sha256(f"{out.resolve()}|{item.id}|".encode() + data).hexdigest()[:15]


def code_item(workflow: Any, item: BatchItem, run_id: str) -> dict[str, Any]:
    """Code one note into its output line; any failure becomes an error line with its reason, never a crash
    of the batch (storage errors excepted: they stop it, so the note is retried when space is back)."""
    start = time.perf_counter()
    try:
        result = workflow.run_or_result(item.text, run_id)
        return {
            "id": item.id,
            "ok": True,
            "run_id": run_id,
            "result": result.to_dict(),
            "seconds": round(time.perf_counter() - start, 3),
        }
    except NoteError as exc:
        return {"id": item.id, "ok": False, "run_id": run_id, "error": str(exc), "error_type": "bad_note"}
    except StorageError:  # not this note's fault: stop the batch, so the note is retried when space is back
        raise
    except Exception as exc:  # noqa: BLE001 - the batch records it and goes on
        logger.exception("note %s failed", item.id)
        return {
            "id": item.id,
            "ok": False,
            "run_id": run_id,
            "error": f"{type(exc).__name__}: {exc}",
            "error_type": "failed",
            "seconds": round(time.perf_counter() - start, 3),
        }


def with_threads(factory: Callable[[], Any], threads: int) -> Callable[[], Any]:
    """The recipe with llama.cpp's CPU threads set to `threads`, unless the settings already say: N workers
    that each start one thread per core spin against each other (2 workers on 2 cores were slower than 1)."""
    settings = getattr(factory, "settings", None)
    if isinstance(settings, dict) and not settings.get("n_threads"):
        return dataclasses.replace(factory, settings={**settings, "n_threads": max(1, threads)})  # type: ignore[type-var]
    return factory
