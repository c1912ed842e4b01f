"""Coders' decisions as training labels: a review session's feedback JSONL becomes coded notes.

Accepted and added codes (and the new code of a replacement) are the note's codes; rejected
ones (and the old code of a replacement) are left out, so they become negatives the next time
the ranker and memory are learned. The note text comes from the audit store (run id = session id).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from medcoder.audit.store import AuditStore
from medcoder.errors import MedcoderError
from medcoder.jsonl import numbered_rows
from medcoder.knowledge.systems import DEFAULT_SYSTEM
from medcoder.ranking.datasets import Example


def feedback_examples(paths: Iterable[str | Path], store: AuditStore, system: str = DEFAULT_SYSTEM) -> list[Example]:
    """One example per session in the feedback files: its note and the codes the coder kept."""
    sessions: dict[str, dict[str, Any]] = {}
    for path in paths:
        p = Path(path)
        for n, rec, why in numbered_rows(p):
            if rec is None:
                raise MedcoderError(f"{p}:{n}: not a JSON line ({why})")
            if (rec.get("system") or system) != system:
                continue
            s = sessions.setdefault(rec["session_id"], {"keep": [], "drop": set()})
            action, code, old = rec.get("action"), rec.get("code") or "", rec.get("old")
            if action in ("accept", "add") and code:
                s["keep"].append(code)
            elif action == "reject" and code:
                s["drop"].add(code)
            elif action == "replace":
                if old:
                    s["drop"].add(old)
                if code:
                    s["keep"].append(code)
    out = []
    for sid, s in sessions.items():
        info = store.run(sid)
        if info.note is None:
            raise MedcoderError(f"session {sid} stored only the note's digest; its feedback cannot be learned from")
        codes = [c for c in dict.fromkeys(s["keep"]) if c not in s["drop"]]
        out.append(Example(f"feedback:{sid}", info.note, codes, system, {"rejected": ",".join(sorted(s["drop"]))}))
    return out
