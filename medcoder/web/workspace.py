"""`Workspace`: the SDK behind `medcoder serve`: a worklist of notes, each a review `Session` over one
workflow, coded in the background, decided on from any number of browser tabs without losing a decision.

Everything the web pages and the JSON API do is a method here, so Python can do it too.
"""

from __future__ import annotations

import logging
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from medcoder.engine.workflow import Workflow, load_workflow
from medcoder.errors import MedcoderError, StorageError
from medcoder.jsonl import numbered_rows
from medcoder.knowledge.systems import DEFAULT_SYSTEM
from medcoder.notetext import read_note
from medcoder.records import CODER_ACTIONS, CoderAction, CodeStatus, ReviewRow, Suggestion
from medcoder.session import Session, SessionError
from medcoder.tools import functions as fn
from medcoder.web.coder import BackgroundCoder
from medcoder.web.relearning import Relearner, RelearnJob, decided_notes
from medcoder.web.views import audit_story, review_status, review_view, status_counts
from medcoder.web.worklist import CODING, FAILED, QUEUED, READY, WorkItem, Worklist

logger = logging.getLogger(__name__)

ACTIONS = CODER_ACTIONS


class NotFound(MedcoderError):
    """No such item, session or run in this workspace."""


class Conflict(MedcoderError):
    """A decision made on a stale view: another tab already decided on the same code."""

    def __init__(self, message: str, version: int) -> None:
        super().__init__(message)
        self.version = version


@dataclass
class Decision:
    """One coder decision as the page or API sends it; `version` is the number of decisions the sender saw."""

    action: str
    code: str
    reason: str = ""
    old: str | None = None
    system: str | None = None
    version: int | None = None


ARRIVAL, NEEDS_REVIEW = "arrival", "needs review"
ORDERS = (ARRIVAL, NEEDS_REVIEW)


def _uncertainty(
    rows: list[ReviewRow],
    limits: dict[str, dict[str, Any]],
    suggestions: list[Suggestion],
    acceptable: list[tuple[str, str]],
) -> dict[str, Any]:
    """How near the threshold the note's nearest open code or suggestion sits, and how many codes are
    auto-acceptable."""
    listed = {(r.system, r.code) for r in rows}
    margins = [
        abs(s.confidence - limits[s.system]["accept"])
        for s in suggestions
        if (s.system, s.code) not in listed and (limits.get(s.system) or {}).get("accept") is not None
    ]
    auto = len(acceptable)
    for r in rows:
        limit = limits.get(r.system) or {}
        if r.status == CodeStatus.PROPOSED and limit.get("accept") is not None:
            margins.append(abs(r.confidence - limit["accept"]))
    return {"margin": round(min(margins), 4) if margins else None, "auto_acceptable": auto}


class Workspace:
    """A worklist, one workflow, a background coder and the review sessions; thread-safe."""

    def __init__(
        self,
        workflow: Workflow | str = "full",
        model: str | None = None,
        worklist: Worklist | None = None,
        batches: list[str | Path] | None = None,
        auto_accept: bool = False,
        learn_base: Sequence[str | Path] = (),
    ) -> None:
        self.workflow = workflow if isinstance(workflow, Workflow) else load_workflow(workflow, model=model)
        self.auto_accept = auto_accept  # accept codes above the ranker's auto-accept threshold once coded
        self.learn_base = list(learn_base)  # the datasets a re-learn starts from, besides the site's decisions
        self.relearner = Relearner()
        self.worklist = worklist or Worklist()
        self._sessions: dict[str, Session] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self.coder = BackgroundCoder(self._code, total_nodes=len(self.workflow.spec.nodes))
        for item in self.worklist.unfinished():  # a server stopped mid-coding: the runs resume from checkpoints
            logger.info("coding %s again (the server stopped before it finished)", item.id)
            self.coder.submit(item.id)
        for path in batches or []:
            self.import_batch(path)

    def close(self) -> None:
        self.coder.stop()
        self.worklist.close()
        self.workflow.close()

    # -- the worklist --------------------------------------------------------------------------
    def submit(self, text: str | bytes, title: str = "", source: str = "paste", item_id: str | None = None) -> WorkItem:
        """Queue a note for coding; an empty, binary or oversized note is refused here (NoteError). An
        `item_id` already in the worklist is not queued again (what `medcoder serve --note` relies on)."""
        note = read_note(text, self.workflow.spec.max_note_chars)
        item_id = item_id or "s" + uuid.uuid4().hex[:11]
        try:
            return self.worklist.get(item_id)
        except KeyError:
            pass
        item = self.worklist.add(item_id, source, _title(title, note, item_id), QUEUED, pending=note, chars=len(note))
        self.coder.submit(item_id)
        return item

    def import_batch(self, path: str | Path) -> list[WorkItem]:
        """Add a batch output's notes (`medcoder batch --out FILE`) to the worklist, each as a review to do."""
        path = Path(path)
        if not path.is_file():
            raise NotFound(f"no batch output {path}")
        added = []
        for n, row, _ in numbered_rows(path):
            try:
                if row is None:
                    raise ValueError
                run_id, note_id = row["run_id"], str(row["id"])
            except (ValueError, KeyError, TypeError):
                logger.warning("%s line %d is not a batch result; skipped", path, n)
                continue
            if not row.get("ok"):
                state, error = FAILED, f"the batch could not code it: {row.get('error', 'unknown error')}"
            elif not self.workflow.finished(run_id):
                state, error = (
                    FAILED,
                    ("its run is not in this workspace's checkpoints (coded under another MEDCODER_HOME?)"),
                )
            else:
                state, error = READY, ""
            added.append(self.worklist.add(run_id, f"batch:{path.name}", note_id, state, error=error))
        return added

    def adopt(self, session_id: str, title: str = "") -> WorkItem:
        """Put a session (or any finished run) coded elsewhere, `medcoder chat` or Python, in the worklist: the
        browser then reviews the same session the REPL and the SDK see."""
        if not self.workflow.finished(session_id):
            raise NotFound(f"no finished run {session_id!r} in this workspace's checkpoints")
        note = self.workflow.note_of(session_id)
        return self.worklist.add(session_id, "session", _title(title, note, session_id), READY, chars=len(note))

    def items(self, query: str = "", status: str = "", order: str = ARRIVAL) -> list[dict[str, Any]]:
        """The worklist with each item's review status and counts; `query` matches id, title or note text.

        `order` NEEDS_REVIEW puts first the notes whose open codes sit nearest the ranker's threshold (where a
        coder's look changes most); each row says how many of its codes are at or above the auto-accept
        threshold (`auto_acceptable`) and how near the threshold its nearest open code is (`margin`)."""
        rows = []
        for item in self.worklist.items():
            row = self._row(item)
            if item.state == READY:  # read without opening a review (listing must not write audit events)
                session = self._peek(item.id)
                review = session.review()
                row["status"] = review_status(review)
                result, limits = session.result, session.thresholds()
                rows_now = (
                    review.codes
                    if review.session_id  # the review is open
                    else [ReviewRow(code=c.code, system=c.system, confidence=c.confidence) for c in result.codes]
                )
                row["counts"] = status_counts(c.status for c in rows_now)
                row.update(_uncertainty(rows_now, limits, result.suggestions, session.auto_acceptable(limits)))
            else:
                row["status"], row["counts"] = {QUEUED: "queued", CODING: "coding", FAILED: "failed"}[item.state], {}
            rows.append(row)
        if order == NEEDS_REVIEW:
            rows.sort(key=lambda r: (r.get("margin") is None, r.get("margin") or 0.0))
        return self.select(rows, query, status)

    def select(self, rows: list[dict[str, Any]], query: str = "", status: str = "") -> list[dict[str, Any]]:
        """The rows of `items()` with this status whose id, title or note text holds `query`."""
        q = query.strip().lower()
        return [
            r
            for r in rows
            if (not status or r["status"] == status)
            and (not q or q in r["id"].lower() or q in r["title"].lower() or q in self._note(r).lower())
        ]

    def item(self, item_id: str) -> dict[str, Any]:
        try:
            return self._row(self.worklist.get(item_id))
        except KeyError:
            raise NotFound(f"no note {item_id!r} in this workspace") from None

    def _row(self, item: WorkItem) -> dict[str, Any]:
        """An item as data, with its coding progress while it is queued or being coded."""
        row = item.to_dict()
        progress = self.coder.progress(item.id)
        if progress is not None and item.state in (QUEUED, CODING):
            row["progress"] = progress.to_dict()
        return row

    def _note(self, row: dict[str, Any]) -> str:
        return self.workflow.note_of(row["id"]) if row["state"] != QUEUED else ""

    # -- coding (the background thread) ----------------------------------------------------------
    def _code(self, item_id: str, on_node: Callable[[str], None]) -> None:
        wf = self.workflow
        try:
            if not wf.finished(item_id):
                text = None if wf.note_of(item_id) else self.worklist.pending(item_id)
                self.worklist.set_state(item_id, CODING)
                for update in wf.stream(text, item_id):
                    if text is not None:  # the run's checkpoint holds the note now; the worklist lets it go
                        self.worklist.set_state(item_id, CODING, clear_pending=True)
                        text = None
                    for node in update:
                        on_node(node)
            with self._lock_for(item_id):
                Session.start(None, wf, session_id=item_id)  # type: ignore[arg-type]  # opens the review
                if self.auto_accept:
                    self._peek(item_id).auto_accept()
        except StorageError:
            raise  # not the note's fault: the item stays queued and is coded again when the server restarts
        except Exception as exc:
            self.worklist.set_state(item_id, FAILED, error=str(exc)[:500] or type(exc).__name__)
            raise
        self.worklist.set_state(item_id, READY, clear_pending=True)

    # -- sessions --------------------------------------------------------------------------------
    def _peek(self, item_id: str) -> Session:
        """The item's Session object, without opening its review (one per item, kept)."""
        with self._guard:
            session = self._sessions.get(item_id)
            if session is None:
                session = self._sessions[item_id] = Session(self.workflow, item_id)
            return session

    def session(self, item_id: str) -> Session:
        """The review session of a coded item (batch items open their review here, on first use)."""
        item = self.item(item_id)
        if item["state"] != READY:
            raise NotFound(f"note {item_id} is not coded yet ({item['state']})")
        session = self._peek(item_id)
        if not session.started:
            with self._lock_for(item_id):
                if not session.started:
                    Session.start(None, self.workflow, session_id=item_id)  # type: ignore[arg-type]
        return session

    def _lock_for(self, item_id: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(item_id, threading.Lock())

    def review(self, item_id: str) -> dict[str, Any]:
        return review_view(self.session(item_id), self.item(item_id))

    def decide(self, item_id: str, decision: Decision) -> dict[str, Any]:
        """Apply one decision, serialised per session. A sender that saw an older version is refused only
        when a decision it did not see touched the same code (Conflict); otherwise both decisions stand."""
        if decision.action not in ACTIONS:
            raise SessionError(f"unknown decision {decision.action!r}; use {', '.join(ACTIONS)}")
        session = self.session(item_id)
        with self._lock_for(item_id):
            seen = session.decisions()
            if decision.version is not None and decision.version < len(seen):
                touched = {c for d in seen[decision.version :] for c in (d.get("code"), d.get("old")) if c}
                mine = {c for c in (decision.code, decision.old) if c}
                if "done" in {d["action"] for d in seen[decision.version :]} or touched & mine:
                    raise Conflict(
                        f"another tab decided on {', '.join(sorted(touched & mine)) or 'this note'} "
                        "after this page was loaded; the page shows the current codes now",
                        version=len(seen),
                    )
            if decision.action == CoderAction.ACCEPT:
                session.accept(decision.code)
            elif decision.action == CoderAction.REJECT:
                session.reject(decision.code, decision.reason)
            elif decision.action == CoderAction.ADD:
                session.add(decision.code, decision.reason, decision.system)
            else:
                if not decision.old:
                    raise SessionError("replace needs the code it replaces (old)")
                session.replace(decision.old, decision.code, decision.reason)
        return self.review(item_id)

    def finish(self, item_id: str) -> dict[str, Any]:
        session = self.session(item_id)
        with self._lock_for(item_id):
            session.finish()
        return self.review(item_id)

    def why(self, item_id: str, code: str) -> dict[str, Any]:
        """Why a code stands (Session.why), or, for a suggestion below the threshold, what the ranker saw."""
        session = self.session(item_id)
        try:
            return session.why(code)
        except SessionError:
            for s in session.result.suggestions:
                if s.code.lower() == code.lower():
                    return {
                        "code": s.code,
                        "system": s.system,
                        "label": s.label,
                        "status": "suggestion",
                        "confidence": s.confidence,
                        "evidence": [e.text for e in s.evidence],
                        "path": [],
                        "ranking": {
                            "sources": s.sources,
                            "features": s.features,
                            "ranker_probability": s.ranker_probability,
                        },
                        "explanation": "below the acceptance threshold: kept as a suggestion for review",
                    }
            raise

    # -- learning from the site's decisions ----------------------------------------------------------
    def decided_notes(self, system: str = DEFAULT_SYSTEM) -> list[tuple[str, str, list[str]]]:
        """(id, note, codes kept) of every coded note a coder decided on (what a re-learn learns from)."""
        ready = [item.id for item in self.worklist.items() if item.state == READY]
        return decided_notes([self._peek(i) for i in ready], system)

    def relearn(self, system: str = DEFAULT_SYSTEM, adopt: bool = False, out: str | Path | None = None) -> RelearnJob:
        """Start learning a new ranker from the base datasets and the site's decided notes (a thread); the job's
        page shows progress and, when done, the before/after report."""
        return self.relearner.start(lambda: self.decided_notes(system), system, self.learn_base, adopt, out)

    def export(self, item_id: str, fmt: str) -> str:
        return self.session(item_id).export(fmt=fmt)

    def search(self, text: str, system: str = DEFAULT_SYSTEM, k: int = 10) -> list[dict[str, Any]]:
        """Hybrid search over the knowledge base (BM25, vectors, Alphabetic Index) for a code to add: only
        codes that can be reported (a category with subcodes cannot be added)."""
        if not text.strip():
            return []
        return fn.search_codes(text[:200], system, k=k, billable_only=True, kb=self.workflow.kb)

    def audit(self, run_id: str) -> dict[str, Any]:
        if self.workflow.audit is None:
            raise NotFound("this workspace keeps no audit store")
        return audit_story(self.workflow.audit, run_id)


def _title(title: str, note: str, fallback: str) -> str:
    """The worklist's name for a note: the one given, else its first line."""
    first = next((line.strip() for line in note.splitlines() if line.strip()), fallback)
    return (title or first)[:80]
