"""The workspace's background coder: one thread that codes queued notes one at a time, with progress.

One at a time because the notes share one model (two runs at once would only fight over the cores and
the model's cached prefix). Progress is the nodes finished out of the workflow's nodes, and the node
that finished last; a page polls it.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

logger = logging.getLogger(__name__)


@dataclass
class CodingProgress:
    """How far the coding of one note has got."""

    item_id: str
    state: str = "queued"  # queued | coding | ready | failed
    done_nodes: list[str] = field(default_factory=list)
    total_nodes: int = 1
    last_node: str = ""
    started: float | None = None
    finished: float | None = None
    error: str = ""

    @property
    def fraction(self) -> float:
        if self.state in ("ready", "failed"):
            return 1.0
        return min(0.95, len(set(self.done_nodes)) / max(1, self.total_nodes))

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("done_nodes")
        out["steps"] = len(self.done_nodes)
        out["fraction"] = round(self.fraction, 3)
        out["seconds"] = round((self.finished or time.time()) - self.started, 1) if self.started else 0.0
        return out


# code(item_id, on_node) codes one note, calling on_node(name) after each node; raises on failure
CodeFn = Callable[[str, Callable[[str], None]], None]


class BackgroundCoder:
    """A queue of item ids and the one thread that codes them."""

    def __init__(self, code: CodeFn, total_nodes: int) -> None:
        self._code = code
        self._total = total_nodes
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._progress: dict[str, CodingProgress] = {}
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="medcoder-coder", daemon=True)
        self._thread.start()

    def submit(self, item_id: str) -> CodingProgress:
        with self._lock:
            progress = self._progress[item_id] = CodingProgress(item_id, total_nodes=self._total)
        self._queue.put(item_id)
        return progress

    def progress(self, item_id: str) -> CodingProgress | None:
        with self._lock:
            return self._progress.get(item_id)

    def wait(self, item_id: str, timeout: float = 600.0) -> CodingProgress:
        """Block until an item is coded or failed (for the SDK and tests)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            p = self.progress(item_id)
            if p is None or p.state in ("ready", "failed"):
                return p or CodingProgress(item_id, state="failed", error="not queued")
            time.sleep(0.05)
        raise TimeoutError(f"coding {item_id} did not finish in {timeout:.0f} s")

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while True:
            item_id = self._queue.get()
            if item_id is None:
                return
            progress = self._progress[item_id]
            progress.state, progress.started = "coding", time.time()

            def on_node(name: str, progress: CodingProgress = progress) -> None:
                progress.done_nodes.append(name)
                progress.last_node = name

            try:
                self._code(item_id, on_node)
                progress.state = "ready"
            except Exception as exc:  # noqa: BLE001 - the item shows the failure; the coder goes on
                logger.warning("coding %s failed: %s", item_id, type(exc).__name__)
                logger.debug("coding %s failed", item_id, exc_info=True)
                progress.state, progress.error = "failed", str(exc) or type(exc).__name__
            progress.finished = time.time()
