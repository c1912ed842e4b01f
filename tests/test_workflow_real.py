"""Every built-in workflow end to end through the real stack: SmolLM2 via llama.cpp, the real
ICD-10-CM and ATC graphs, a real SQLite checkpointer. SmolLM2 cannot code; these tests check
that whatever it says, the output is well formed: codes exist, evidence offsets are exact."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from medcoder import load_workflow
from medcoder.knowledge import load_ontology
from medcoder.agents.notecontext import NOTE_SYSTEM

pytestmark = pytest.mark.slow

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "aci_bench_D2N069.txt"
SHORT = ("CHIEF COMPLAINT:\nCough.\n\nMEDICATIONS:\nLisinopril 20 mg daily.\n\n"
         "ASSESSMENT AND PLAN:\n1. Hypertension. Continue lisinopril.\n")


def _check(result, note: str) -> None:  # type: ignore[no-untyped-def]
    for c in result.codes:
        onto = load_ontology(c.system)
        assert c.code in onto and onto.node(c.code).billable
        for e in c.evidence:
            assert note[e.start:e.end] == e.text
    for e in result.entities:
        assert note[e["start"]:e["end"]] == e["text"]
    if result.workflow != "atc":  # the drug workflow loads no model
        assert result.stats["model_sha256"]["default"].startswith("b179c952")


@pytest.mark.parametrize("name", ["icd10cm", "atc", "full", "full-tree"])
def test_builtin_workflow_end_to_end(name: str, tmp_path) -> None:
    with load_workflow(name, model="test", checkpoint_path=tmp_path / "c.sqlite") as wf:
        result = wf.run(SHORT)
    _check(result, SHORT)
    if name == "icd10cm":  # ranks every sentence: no section splitter; no verifier blend for this model: no call
        assert result.sections == [] and result.stats["model_calls"] == 0
        return
    assert [s["name"] for s in result.sections] == ["chief_complaint", "medications", "assessment_and_plan"]
    if name == "full-tree":  # the model extracts and walks the trees
        assert result.stats["model_calls"] > 0
    else:  # the lexicon finds lisinopril, the drug ranker codes it: no model call for drugs
        assert "C09AA03" in {c.code for c in result.codes if c.system == "atc"}
        lisinopril = next(c for c in result.codes if c.code == "C09AA03")
        assert {SHORT[e.start:e.end] for e in lisinopril.evidence} == {"Lisinopril", "lisinopril"}


def test_cli_code_json_on_the_example() -> None:
    exe = shutil.which("medcoder", path=os.path.dirname(sys.executable))
    if exe is None:
        pytest.skip("console script not installed")
    proc = subprocess.run([exe, "code", str(EXAMPLE), "--model", "test", "--format", "json", "-w", "icd10cm"],
                          capture_output=True, text=True, env=os.environ, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads(proc.stdout)
    note = EXAMPLE.read_text()
    for c in data["codes"]:
        assert c["code"] in load_ontology(c["system"])
        for e in c["evidence"]:
            assert note[e["start"]:e["end"]] == e["text"]


def test_cli_rejects_bad_notes(tmp_path) -> None:
    from click.testing import CliRunner

    from medcoder.cli import main

    empty = tmp_path / "empty.txt"
    empty.write_text("  \n")
    res = CliRunner().invoke(main, ["code", str(empty), "--model", "test"])
    assert res.exit_code == 1 and "the note is empty" in res.stderr
    res = CliRunner().invoke(main, ["code", str(tmp_path), "--model", "test"])
    assert res.exit_code == 2 and "medcoder batch" in res.stderr
    res = CliRunner().invoke(main, ["code", str(empty), "--model", str(tmp_path / "missing.gguf")])
    assert res.exit_code == 1 and "missing.gguf" in res.stderr


def test_quickstart_notebook_runs(tmp_path) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    path = Path(__file__).resolve().parents[1] / "notebooks" / "quickstart.ipynb"
    nb = nbformat.read(path, as_version=4)
    nbclient.NotebookClient(nb, timeout=900, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "sections," in outputs and "graph TD" in outputs and "beem" in outputs


def test_audit_through_the_real_stack(tmp_path, monkeypatch) -> None:
    """`medcoder code --model test`, then verify, tamper, verify again, and replay without a model."""
    import sqlite3

    from click.testing import CliRunner

    from medcoder.cli import main

    monkeypatch.setenv("MEDCODER_HOME", str(tmp_path))
    note = tmp_path / "note.txt"
    note.write_text(SHORT)
    res = CliRunner().invoke(main, ["code", str(note), "--model", "test", "--format", "json", "-w", "icd10cm-tree",
                                    "--run-id", "real-1"])
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["run_id"] == "real-1"
    assert CliRunner().invoke(main, ["audit", "verify", "real-1"]).exit_code == 0
    replay = CliRunner().invoke(main, ["audit", "replay", "real-1", "--json"])
    assert replay.exit_code == 0 and json.loads(replay.stdout)["match"]
    db = tmp_path / "audit.sqlite"
    conn = sqlite3.connect(db)
    seq = conn.execute("SELECT min(seq) FROM events WHERE kind = 'model_call'").fetchone()[0]
    conn.execute("UPDATE events SET payload = replace(payload, 'Cough', 'Couch') WHERE seq = ?", (seq,))
    conn.commit()
    conn.close()
    bad = CliRunner().invoke(main, ["audit", "verify", "real-1"])
    assert bad.exit_code == 1 and f"event {seq}" in bad.stderr


def test_the_warm_workflow_evaluates_the_note_once(tmp_path) -> None:
    """`icd10cm-warm` on the real test model: one extraction call, then one score call that reuses the
    instructions + note the extraction call left in the cache and evaluates only its questions."""
    from medcoder.engine.workflow import RunLog

    with load_workflow("icd10cm-warm", model="test", checkpoint_path=tmp_path / "c.sqlite") as wf:
        log = RunLog("warm-1")
        result = wf.run(SHORT, run_id=log.run_id, log=log)
        prefix = len(wf.llms["default"].prompt_tokens(
            [{"role": "system", "content": NOTE_SYSTEM}, {"role": "user", "content": f'Note:\n"""\n{SHORT}\n"""'}]))
    _check(result, SHORT)
    kinds = [c.kind for c in log.calls]
    assert kinds[0] == "chat" and kinds.count("score") <= 1 and len(kinds) <= 2
    if "score" in kinds:  # the ranker found candidates to judge
        score = log.calls[kinds.index("score")].stats
        assert score.cached_tokens >= prefix - 8  # the note was not evaluated again (up to the join's tokens)
        assert score.sampling["tokens_as_separate_prompts"] > 5 * (score.prompt_tokens - score.cached_tokens)
