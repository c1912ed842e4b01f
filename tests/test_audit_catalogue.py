"""Every audit event kind medcoder records is in the catalogue (`medcoder.audit.events`), with its meaning.

Two ways round: the kinds written in the source (`ctx.emit("kind", ...)`, `log.event(node, KIND, ...)`, an audit
store's `append(run, node, "kind", ...)`, a session's `_audit("turn", ...)`), read from the syntax tree of every
module, and the kinds real runs record (the ranked ICD-10-CM and ATC workflows, no model; the tree workflow with a
fake model), which must also be among those read from the source, so a new way of emitting is not missed.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import medcoder
from medcoder.audit import events
from medcoder.audit.memory import MemoryAuditStore

SOURCE = Path(medcoder.__file__).parent
# the names events.py gives its kinds (NOTE_READ = "note_read"), for calls that pass the constant
CONSTANTS = {
    name: value
    for name, value in vars(events).items()
    if name.isupper() and isinstance(value, str) and value != events.SESSION_PREFIX
}


def _kind(node: ast.expr) -> set[str]:
    """The kind strings an argument can be: a literal, a catalogue constant, or either side of an `a if c else b`."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, ast.Name) and node.id in CONSTANTS:
        return {CONSTANTS[node.id]}
    if isinstance(node, ast.IfExp):
        return _kind(node.body) | _kind(node.orelse)
    return set()


def emitted_in_source() -> dict[str, set[str]]:
    """Each kind a module records, with where: `{kind: {"medcoder/agents/ranker.py:192", ...}}`."""
    found: dict[str, set[str]] = {}
    for path in sorted(SOURCE.rglob("*.py")):
        if path.parent.name == "testing":  # the plugin test kit writes made-up events to check a store
            continue
        for call in ast.walk(ast.parse(path.read_text(), str(path))):
            if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)):
                continue
            name, args = call.func.attr, call.args
            kinds: set[str] = set()
            if name == "emit" and args:  # an agent's context: ctx.emit(kind, payload)
                kinds = _kind(args[0])
            elif name == "event" and len(args) == 3:  # a run's log: log.event(node, kind, payload)
                kinds = _kind(args[1])
            elif name in ("append", "_append") and len(args) == 4:  # a store: store.append(run_id, node, kind, payload)
                kinds = _kind(args[2])
            elif name == "_audit" and args:  # a review session's turn: recorded as session_<turn>
                kinds = {events.SESSION_PREFIX + k for k in _kind(args[0])}
            where = f"{path.relative_to(SOURCE.parent)}:{call.lineno}"
            for kind in kinds:
                found.setdefault(kind, set()).add(where)
    return found


def test_every_kind_emitted_in_the_source_is_in_the_catalogue() -> None:
    found = emitted_in_source()
    # the scan sees each way of emitting: the engine, the agents, the guard, the model calls, the review session
    assert {"run", "node_start", "entities", "ranked", "guidelines", "drugs_ranked", "note_read", "model_call"} <= set(
        found
    )
    assert events.DECISION in found
    missing = {k: sorted(w) for k, w in found.items() if events.kind_of(k) is None}
    assert not missing, f"audit event kinds emitted but not in medcoder.audit.events.CATALOGUE: {missing}"
    for kind in found:
        entry = events.kind_of(kind)
        assert entry is not None and entry.meaning, kind


def test_every_catalogued_kind_is_emitted_somewhere() -> None:
    """A kind in the catalogue that nothing records is a stale entry."""
    assert set(events.CATALOGUE) <= set(emitted_in_source())


@pytest.mark.parametrize("workflow", ["icd10cm-nomodel", "atc", "full-tree"])
def test_kinds_a_real_run_records_are_catalogued_and_seen_in_the_source(workflow: str, tmp_path: Path) -> None:
    from medcoder.llm import FakeLLM
    from tests.test_workflow_logic import NOTE, agree, extractor

    store = MemoryAuditStore()
    llms = {"default": FakeLLM(extractor, chooser=agree)} if workflow == "full-tree" else None
    with medcoder.load_workflow(workflow, llms=llms, audit=store, checkpoint_path=tmp_path / "c.sqlite") as wf:
        result = wf.run(NOTE)
    recorded = {ev.kind for ev in store.events(result.run_id)}
    assert {"run", "node_start", "node_end", "note_read", "result"} <= recorded
    assert {"icd10cm-nomodel": "guidelines", "atc": "drugs_ranked", "full-tree": "critic"}[workflow] in recorded
    assert recorded <= set(events.CATALOGUE), recorded - set(events.CATALOGUE)
    assert recorded <= set(emitted_in_source()), recorded - set(emitted_in_source())
    for ev in store.events(result.run_id):  # each renders through its own entry, not the JSON fallback
        assert events.sentence(ev) == events.CATALOGUE[ev.kind].line(ev.payload)
