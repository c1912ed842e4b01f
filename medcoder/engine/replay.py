"""Replay a run from its audit record: the same workflow, the recorded model answers, no model loaded."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from typing import Any

from medcoder.audit.store import AuditError, AuditStore
from medcoder.engine.spec import parse_spec
from medcoder.engine.workflow import Workflow
from medcoder.llm import ReplayLLM


@dataclass
class ReplayReport:
    run_id: str
    match: bool
    original: list[str]
    replayed: list[str]
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def _codes(result: dict[str, Any] | None) -> list[str]:
    return sorted(f"{c['system']}:{c['code']}" for c in (result or {}).get("codes", []))


def replay_run(store: AuditStore, run_id: str) -> ReplayReport:
    """Re-run `run_id` with the replay backend and say whether every code matches."""
    info = store.run(run_id)
    if info.note is None:
        raise AuditError(f"run {info.run_id} stored only the note's digest; it cannot be replayed")
    calls = [ev.payload for ev in store.events(info.run_id) if ev.kind == "model_call"]
    replay = ReplayLLM(calls)
    spec = parse_spec(info.spec_text, f"<run {info.run_id}>")
    with tempfile.TemporaryDirectory() as tmp:
        wf = Workflow(
            spec,
            info.spec_text,
            llms={name: replay for name in spec.models},
            checkpoint_path=f"{tmp}/replay.sqlite",
            audit=None,
        )
        try:
            result = wf.run(info.note)
        finally:
            wf.close()
    original = _codes(info.result)
    replayed = _codes(result.to_dict())
    return ReplayReport(
        info.run_id,
        original == replayed,
        original,
        replayed,
        sorted(set(original) - set(replayed)),
        sorted(set(replayed) - set(original)),
    )
