"""The workspace's re-learn job: gather the site's decided notes, learn a new ranker in a thread, show progress.

One job at a time. It runs `evaluation.relearn.relearn`, which holds back a slice of the decided notes and
writes a before/after report into the new ranker's folder under this `MEDCODER_HOME`; the ranker in use
changes only when the administrator asked to adopt and the new one is not worse. A job that fails leaves the
current ranker in use and says why on the page.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from medcoder import paths
from medcoder.errors import MedcoderError
from medcoder.records import CodeStatus

if TYPE_CHECKING:
    from medcoder.session import Session

logger = logging.getLogger(__name__)


def decided_notes(sessions: Sequence["Session"], system: str) -> list[tuple[str, str, list[str]]]:
    """(id, note, codes the coder kept) of every note a coder decided on: accepted and added codes in `system`
    (a rejected code is left out, so it becomes a negative; an undecided one counts as not confirmed)."""
    out = []
    for session in sessions:
        review = session.review()
        if not review.decisions:
            continue
        kept = [r.code for r in review.codes if r.system == system and r.status == CodeStatus.ACCEPTED]
        out.append((session.id, session.note, kept))
    return out


@dataclass
class RelearnJob:
    """Where the one re-learn job of this workspace stands."""

    state: str = "idle"  # idle | learning | done | failed
    stage: str = ""
    done: int = 0
    total: int = 0
    started: float = 0.0
    folder: str = ""
    verdict: str = ""
    adopted: bool = False
    error: str = ""
    history: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "seconds": round(time.time() - self.started, 1) if self.started else 0.0}


class Relearner:
    """Runs re-learn jobs one at a time on a thread of their own."""

    def __init__(self) -> None:
        self.job = RelearnJob()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(
        self,
        notes: Callable[[], list[tuple[str, str, list[str]]]],
        system: str,
        base: Sequence[str | Path],
        adopt: bool,
        out: str | Path | None = None,
    ) -> RelearnJob:
        """Start a job (MedcoderError when one is running); `notes` is read on the job's thread."""
        with self._lock:
            if self.job.state == "learning":
                raise MedcoderError("a re-learn is already running; its page shows how far it has got")
            folder = Path(out) if out else paths.home() / "rankers" / f"site-{system}-{time.strftime('%Y%m%d-%H%M%S')}"
            self.job = RelearnJob(
                state="learning", stage="gathering decided notes", started=time.time(), folder=str(folder)
            )
            self._thread = threading.Thread(
                target=self._run,
                args=(notes, system, list(base), adopt, folder),
                name="medcoder-relearn",
                daemon=True,
            )
            self._thread.start()
            return self.job

    def wait(self, timeout: float = 1800.0) -> RelearnJob:
        """Block until the job ends (for the SDK and tests)."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return self.job

    def _progress(self, stage: str, done: int, total: int) -> None:
        with self._lock:
            self.job.stage, self.job.done, self.job.total = stage, done, total

    def _run(
        self,
        notes: Callable[[], list[tuple[str, str, list[str]]]],
        system: str,
        base: list[str | Path],
        adopt: bool,
        folder: Path,
    ) -> None:
        from medcoder.evaluation.relearn import relearn, site_examples  # deferred: learning loads scikit-learn

        try:
            site = site_examples(notes(), system)
            report = relearn(site, None, folder, base=base, system=system, adopt=adopt, progress=self._progress)
        except Exception as exc:  # noqa: BLE001 - the page says why; the ranker in use stays
            logger.exception("re-learn failed")
            with self._lock:
                self.job.state, self.job.error = "failed", f"{type(exc).__name__}: {exc}"[:500]
            return
        with self._lock:
            self.job.state, self.job.verdict, self.job.adopted = "done", report.verdict, report.adopted
            self.job.stage = "done"
