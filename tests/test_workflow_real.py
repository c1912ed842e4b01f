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
from medcoder.agents.notecontext import NOTE_SYSTEM
from medcoder.knowledge import load_ontology

pytestmark = pytest.mark.slow

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "aci_bench_D2N069.txt"
SHORT = ("CHIEF COMPLAINT:\nCough.\n\nMEDICATIONS:\nLisinopril 20 mg daily.\n\n"
         "ASSESSMENT AND PLAN:\n1. Hypertension. Continue lisinopril.\n")


def _check(result, note: str) -> None:
    for c in result.codes:
        onto = load_ontology(c.system)
        assert c.code in onto and onto.node(c.code).billable
        for e in c.evidence:
            assert note[e.start:e.end] == e.text
    for e in result.entities:
        assert note[e.start:e.end] == e.text
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
    assert [s.name for s in result.sections] == ["chief_complaint", "medications", "assessment_and_plan"]
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


def test_a_utf16_note_is_coded_like_its_utf8_twin_and_the_audit_says_how_it_was_read(tmp_path, monkeypatch) -> None:
    """Windows tools save notes as UTF-16 with a byte-order mark: read, coded the same, the encoding recorded."""
    from click.testing import CliRunner

    from medcoder import audit as audit_store
    from medcoder.audit.events import NOTE_READ
    from medcoder.cli import main

    monkeypatch.setenv("MEDCODER_HOME", str(tmp_path))
    text = EXAMPLE.read_text(encoding="utf-8")
    files = {"utf-8": text.encode("utf-8"), "utf-16-le": text.encode("utf-16"),  # Python writes LE with its BOM
             "utf-16-be": b"\xfe\xff" + text.encode("utf-16-be")}
    codes = {}
    for name, data in files.items():
        path = tmp_path / f"note-{name}.txt"
        path.write_bytes(data)
        res = CliRunner().invoke(main, ["code", str(path), "--format", "json", "-w", "icd10cm-nomodel",
                                        "--run-id", f"enc-{name}"])
        assert res.exit_code == 0, res.stderr
        codes[name] = [c["code"] for c in json.loads(res.stdout)["codes"]]
        events = [e for e in audit_store.open(str(tmp_path / "audit.sqlite")).events(f"enc-{name}")
                  if e.kind == NOTE_READ]
        assert [e.payload["encoding"] for e in events] == [name] and events[0].payload["chars"] == len(text)
    assert codes["utf-16-le"] == codes["utf-8"] == codes["utf-16-be"] and codes["utf-8"]


def test_the_table_cuts_evidence_at_words_in_an_80_column_terminal(tmp_path, monkeypatch) -> None:
    """The table's evidence column: whole words around the evidence, an ellipsis where the note goes on."""
    import re

    from click.testing import CliRunner

    from medcoder.cli import main
    from medcoder.notetext import apart, snippet

    assert apart([(0, 10), (2, 5), (10, 12), (11, 20)]) == [0, 2]  # a span inside one already shown is not repeated
    assert snippet("PAST SURGICAL HISTORY: Rhinoplasty in 2010. He takes digoxin daily.", 53, 60, context=12) \
        == ("…He takes ", "digoxin", " daily.")
    monkeypatch.setenv("MEDCODER_HOME", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "80")
    res = CliRunner().invoke(main, ["code", str(EXAMPLE), "-w", "icd10cm-nomodel"], terminal_width=80)
    assert res.exit_code == 0, res.stderr
    words = set(re.findall(r"[A-Za-z]+", EXAMPLE.read_text(encoding="utf-8")))
    table = res.stdout.split("model calls")[0]
    cells = [line.split("│")[-3] for line in table.splitlines() if line.count("│") >= 6]
    shown = re.findall(r"[A-Za-z]+", " ".join(cells))
    assert shown and all(w in words for w in shown), sorted(set(shown) - words)
