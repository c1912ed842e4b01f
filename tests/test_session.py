"""Interactive sessions: every turn type from the SDK (fake model, deterministic), a resume in a new
process, the audit trail of turns, and the terminal REPL scripted through a real pty (pexpect)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from medcoder import load_workflow
from medcoder.audit.store import SQLiteAuditStore
from medcoder.cli.chat import ChatREPL
from medcoder.llm import FakeLLM
from medcoder.session import Session, SessionError
from tests.test_workflow_logic import NOTE, agree, extractor

REPO = Path(__file__).resolve().parents[1]


def _wf(tmp_path: Path):
    return load_workflow("full-tree", llms={"default": FakeLLM(extractor, chooser=agree)},
                         checkpoint_path=tmp_path / "c.sqlite", audit=SQLiteAuditStore(tmp_path / "a.sqlite"))


@pytest.fixture()
def session(tmp_path: Path):
    s = Session.start(NOTE, _wf(tmp_path), session_id="s-test")
    yield s
    s.close()


def test_every_turn_type(session: Session, tmp_path: Path) -> None:
    codes = [c.code for c in session.codes()]
    assert len(codes) >= 3 and all(c.status == "proposed" for c in session.codes())
    first, second = codes[0], codes[1]
    session.accept(first.lower().replace(".", ""))  # typed as a coder would
    session.reject(second, "not documented as a current problem")
    with pytest.raises(SessionError, match="say why"):
        session.reject(codes[2], "")
    session.add("J45.909", "wheeze in the exam")
    session.replace(codes[2], "I10", "coder prefers essential hypertension") if codes[2].startswith("I") else None
    status = {c.code: c.status for c in session.codes()}
    assert status[first] == "accepted" and status[second] == "rejected" and status["J45.909"] == "accepted"

    why = session.why(first)
    assert why["evidence"] and why["path"][-1]["code"] == first and why["critic"]["decision"]
    assert why["audit_events"], "the explanation points at the audit events"
    assert "added by the coder" in session.why("J45.909")["explanation"]

    assert [c["code"] for c in session.explore("children", "E11")][:2] == ["E11.0", "E11.1"]
    assert session.explore("path", "E11.9")[-1]["code"] == "E11.9"
    assert session.explore("notes", "E11.9")["notes"]
    assert session.explore("search", "high blood pressure")[0]["code"]
    assert session.explore("index", "diabetes, type 2")["code"] == "E11.9"

    answer = session.ask("What does E11.9 mean for this patient?")
    assert answer.tool_calls[0]["name"] == "lookup_code" and answer.tool_calls[0]["result"]["code"] == "E11.9"
    assert answer.text

    exported = json.loads(session.export(tmp_path / "out.json"))
    assert {c["code"] for c in exported["codes"]} == {c.code for c in session.accepted()}
    assert "J45.909" in session.export(fmt="csv") and session.export(fmt="fhir")
    fb = session.feedback()
    assert [f["action"] for f in fb][:3] == ["accept", "reject", "add"]
    assert fb[1]["reason"] == "not documented as a current problem" and fb[0]["proposed_confidence"] is not None


def test_bad_turns_are_clear_errors(session: Session) -> None:
    with pytest.raises(SessionError, match="not in this session"):
        session.accept("K35.80")
    with pytest.raises(SessionError, match="not a icd10cm code"):
        session.add("ZZZ.99")
    with pytest.raises(SessionError, match="cannot be reported"):
        session.add("E11")  # a category, not billable
    with pytest.raises(SessionError):
        session.explore("teleport", "E11")
    with pytest.raises(SessionError):
        session.ask("  ")


def test_every_turn_is_in_the_audit_trail_and_the_chain_holds(session: Session) -> None:
    code = session.codes()[0].code
    session.accept(code)
    session.why(code)
    session.explore("children", "E11")
    session.ask("anything about asthma?")
    store = session.workflow.audit
    assert store is not None
    kinds = [e.kind for e in store.events(session.id)]
    for kind in ("session_start", "session_decision", "session_why", "session_explore", "session_ask"):
        assert kind in kinds
    assert store.verify(session.id).ok


def test_finish_closes_decisions(session: Session) -> None:
    session.finish()
    assert session.done
    with pytest.raises(SessionError, match="finished"):
        session.accept(session.codes()[0].code)


def test_resume_in_a_new_process(tmp_path: Path) -> None:
    s = Session.start(NOTE, _wf(tmp_path), session_id="s-proc")
    first = s.codes()[0].code
    s.accept(first)
    s.close()
    script = f"""
import json, sys
sys.path.insert(0, {str(REPO)!r})
from medcoder import load_workflow
from medcoder.audit.store import SQLiteAuditStore
from medcoder.llm import FakeLLM
from medcoder.session import Session
from tests.test_workflow_logic import extractor, agree
wf = load_workflow("full-tree", llms={{"default": FakeLLM(extractor, chooser=agree)}},
                   checkpoint_path={str(tmp_path / 'c.sqlite')!r},
                   audit=SQLiteAuditStore({str(tmp_path / 'a.sqlite')!r}))
s = Session.open("s-proc", wf)
s.add("J45.909", "from the other process")
print(json.dumps({{c.code: c.status for c in s.codes()}}))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 0, out.stderr
    status = json.loads(out.stdout.strip().splitlines()[-1])
    assert status[first] == "accepted" and status["J45.909"] == "accepted"
    again = Session.open("s-proc", _wf(tmp_path))
    assert {c.code for c in again.accepted()} == {first, "J45.909"}
    again.close()
    with pytest.raises(SessionError, match="no session"):
        Session.open("never-started", _wf(tmp_path))


def test_repl_commands_and_unknown_input(session: Session) -> None:
    from io import StringIO

    from rich.console import Console

    buf = StringIO()
    repl = ChatREPL(session, Console(file=buf, width=200))
    code = session.codes()[0].code
    lines = ["codes", f"why {code}", f"accept {code}", "reject K35.80 nope", "add ZZZ", "frobnicate", "children",
             "children E11", "help", "why"]
    for line in lines:
        assert repl.handle(line)
    out = buf.getvalue()
    assert f"accepted {code}" in out and "not in this session" in out and "not a icd10cm code" in out
    assert "unknown command 'frobnicate'" in out and "usage: children CODE" in out and "usage: why CODE" in out
    assert "E11.0" in out and "Traceback" not in out
    assert repl.handle("quit") is False


@pytest.mark.slow
def test_the_chat_lists_the_suggestions_and_adds_one(tmp_path: Path) -> None:
    """The ranker's codes below the threshold are shown in the chat as on the web page; `add` takes one."""
    from io import StringIO

    from rich.console import Console

    wf = load_workflow("icd10cm-nomodel", checkpoint_path=tmp_path / "c.sqlite",
                       audit=SQLiteAuditStore(tmp_path / "a.sqlite"))
    note = (REPO / "examples" / "aci_bench_D2N069.txt").read_text(encoding="utf-8")
    with Session.start(note, wf, session_id="s-sugg") as session:
        rows = session.suggestions()
        listed = {c.code for c in session.codes()}
        assert rows and not {r.code for r in rows} & listed
        buf = StringIO()
        repl = ChatREPL(session, Console(file=buf, width=220))
        assert repl.handle("suggestions")
        out = buf.getvalue()
        first = rows[0]
        assert "suggestions for session s-sugg" in out and first.code in out
        assert (first.reason or "below the threshold")[:30] in out
        assert session.evidence()[(first.system, first.code)] == first.evidence
        assert repl.handle(f"add {first.code} seen in the assessment")
        assert first.code in {c.code for c in session.codes()}
        assert first.code not in {r.code for r in session.suggestions()}


@pytest.mark.slow
def test_scripted_terminal_session_with_the_real_model(tmp_path: Path) -> None:
    """The real program in a pty: load, list, why, reject, add, explore, quit, resume, export."""
    pexpect = pytest.importorskip("pexpect")
    env = {**os.environ, "MEDCODER_HOME": str(tmp_path / "home"), "TERM": "dumb", "COLUMNS": "200"}
    exe = [sys.executable, "-m", "medcoder", "chat"]
    note = str(tmp_path / "note.txt")
    Path(note).write_text("ASSESSMENT AND PLAN:\nType 2 diabetes with hyperglycemia. Continue metformin.\n")

    def run(args: list[str], lines: list[str]) -> str:
        import io

        child = pexpect.spawn(exe[0], exe[1:] + args, env=env, encoding="utf-8", timeout=900, cwd=str(tmp_path),
                              dimensions=(50, 200))
        child.logfile_read = transcript = io.StringIO()
        for line in lines:
            child.expect("medcoder> ")
            child.sendline(line)
        child.expect(pexpect.EOF)
        return transcript.getvalue()

    first = run([note, "--session", "tty1", "--model", "test", "-w", "icd10cm"],
                ["codes", "add E11.9 type 2 diabetes in the plan", "add I10", "why E11.9", "reject I10 not documented",
                 "children E11", "accept E1165", "bogus", "what does the note say about diabetes?", "quit"])
    assert "added E11.9" in first and "rejected I10" in first and "E11.0" in first
    assert "unknown command 'bogus'" in first and "tool search_codes" in first and "Traceback" not in first
    second = run(["--session", "tty1", "--model", "test", "-w", "icd10cm"], ["codes", "export accepted.json", "quit"])
    assert "wrote" in second and "E11.9" in second
    exported = json.loads((tmp_path / "accepted.json").read_text())
    accepted = {c["code"] for c in exported["codes"]}
    assert "E11.9" in accepted and "I10" not in accepted
    store = SQLiteAuditStore(tmp_path / "home" / "audit.sqlite")
    kinds = [e.kind for e in store.events("tty1")]
    assert kinds.count("session_decision") >= 3 and "session_why" in kinds and "session_explore" in kinds
    assert "session_ask" in kinds and "session_resume" in kinds and "session_export" in kinds
    assert store.verify("tty1").ok


@pytest.mark.slow
def test_session_notebook_runs(tmp_path: Path) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(REPO / "notebooks" / "session.ipynb", as_version=4)
    nbclient.NotebookClient(nb, timeout=900, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "E11.65 accepted" in outputs and "I10 rejected" in outputs and "accepted: [" in outputs
    assert "tools: ['lookup_code']" in outputs and "E11.65" in outputs.split("accepted:")[1]
