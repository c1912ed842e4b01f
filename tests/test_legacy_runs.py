"""Runs recorded by an older medcoder still read, resume and replay: the checkpoint of a crashed run whose
state was plain dicts resumes to the codes it gave then, and a recorded run replays to the same codes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from medcoder import load_workflow
from medcoder.audit.store import SQLiteAuditStore
from medcoder.engine.replay import replay_run
from medcoder.llm import FakeLLM
from medcoder.session import Session
from tests import flaky_agent
from tests.data.legacy.make_fixtures import crash_spec
from tests.test_workflow_logic import agree, extractor

LEGACY = Path(__file__).parent / "data" / "legacy"
EXPECTED = json.loads((LEGACY / "expected.json").read_text())


def test_a_crashed_run_checkpointed_by_an_older_version_resumes_to_the_same_codes(tmp_path: Path) -> None:
    shutil.copy(LEGACY / "checkpoints.sqlite", tmp_path / "c.sqlite")
    flaky_agent.CALLS["n"] = 1  # the crash happened; the node passes now
    fake = FakeLLM(extractor, chooser=agree)
    with load_workflow(text=crash_spec(), llms={"default": fake}, checkpoint_path=tmp_path / "c.sqlite",
                       audit=None) as wf:
        result = wf.run(None, run_id="crash-1")
        assert fake.calls == 0  # nothing was coded again: the old state carried everything
        assert sorted(f"{c.system}:{c.code}" for c in result.codes) == EXPECTED["crash-1"]
        assert all(c.evidence and c.evidence[0].text for c in result.codes)
        entity = result.entities[0]
        assert entity.mention and entity.end > entity.start  # old dicts read back as records


def test_a_run_recorded_by_an_older_version_replays_to_the_same_codes(tmp_path: Path) -> None:
    shutil.copy(LEGACY / "audit.sqlite", tmp_path / "a.sqlite")
    report = replay_run(SQLiteAuditStore(tmp_path / "a.sqlite"), "recorded-1")
    assert report.match and report.replayed == EXPECTED["recorded-1"]


def test_a_review_saved_by_an_older_version_opens_with_its_rows_and_takes_new_decisions(tmp_path: Path) -> None:
    shutil.copy(LEGACY / "session.sqlite", tmp_path / "c.sqlite")
    expected = json.loads((LEGACY / "session-expected.json").read_text())
    wf = load_workflow("full-tree", llms={"default": FakeLLM(extractor, chooser=agree)},
                       checkpoint_path=tmp_path / "c.sqlite", audit=None)
    with Session.open("s-legacy", wf) as session:
        rows = session.codes()
        assert len(rows) == len(expected)
        for row, old in zip(rows, expected):  # every key the old row had reads back the same
            assert {k: v for k, v in row.model_dump(mode="json").items() if k in old} == old
        proposed = session.codes("proposed")[0].code
        session.accept(proposed)
        assert {r.code for r in session.accepted()} == {expected[0]["code"], "J45.909", proposed}
        assert session.why(expected[0]["code"])["evidence"]
        exported = json.loads(session.export(fmt="json"))
        assert {c["code"] for c in exported["codes"]} == {expected[0]["code"], "J45.909", proposed}


def test_a_version_1_state_whose_code_lost_its_entity_reads_with_no_evidence() -> None:
    """v1's finalize gave a code whose entity was gone a span without offsets; the migration drops it."""
    from medcoder.state import STATE_VERSION, CodingState

    code = {"code": "E11.9", "system": "icd10cm", "label": "Type 2 diabetes", "confidence": 0.8, "path": ["E11.9"],
            "steps": [], "mention": "", "entity_ids": ["e9"],
            "evidence": [{"start": None, "end": None, "text": ""}],
            "verdict": {"code": "E11.9", "system": "icd10cm", "decision": "accept", "reasons": []}}
    state = CodingState.model_validate({"run_id": "old", "note": "x", "result": {"codes": [code], "rejected": [],
                                                                                 "suggestions": []}})
    assert state.version == STATE_VERSION and state.result is not None
    assert state.result.codes[0].evidence == [] and state.result.codes[0].verdict.decision == "accept"
