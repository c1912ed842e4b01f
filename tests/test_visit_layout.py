"""Codes that do not depend on the note's layout: headers of every vocabulary, the learned sentence classifier
where no header speaks, problem lists, Windows line endings, and the visit's conversation; the layouts through
the real stack (the shipped rankers over real retrieval) give the sample note's codes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from medcoder.evaluation.layouts import VARIANTS, crlf, no_headers, one_paragraph, soap
from medcoder.ranking.candidates import problem_spans, sentence_spans
from medcoder.visit import read_layout
from medcoder.visit.classifier import card, shipped_model
from medcoder.visit.conversation import turns
from medcoder.visit.parts import PARTS
from medcoder.visit.sections import find_headers
from tests.visit_notes import code_note, shipped_coder

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "aci_bench_D2N069.txt"
SAMPLE = EXAMPLE.read_text()

TRANSCRIPT = """Doctor: hi , ms. lee . what brings you in today ?
Patient: my right knee has been hurting since i twisted it on the stairs yesterday .
Doctor: okay . any chest pain ?
Patient: no .
Doctor: any fever or chills ?
Patient: no , none .
Doctor: do you take any medications ?
Patient: just ibuprofen , and digoxin for my atrial fibrillation .
Doctor: okay . let's do your exam . on exam you have tenderness over the medial joint line .
Patient: ouch , yes .
Doctor: so looking at the x-ray , there is no fracture .
Doctor: so for your first problem , your right knee pain , i think you have an acute medial meniscus sprain .
Doctor: i want you to use a knee brace and take motrin 800 mg every 6 hours with food .
Doctor: for your atrial fibrillation , continue the digoxin .
Patient: sounds good .
"""


def _part_of(layout: Any, words: str) -> str:
    return next(s.part for s in layout.sentences if words in s.text)


# ---- headers of every vocabulary ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line, name",
    [
        ("S:", "subjective"),
        ("Subjective:", "subjective"),
        ("O:", "objective"),
        ("A:", "assessment"),
        ("P:", "plan"),
        ("A/P:", "assessment_and_plan"),
        ("Assessment & Plan:", "assessment_and_plan"),
        ("Impression/Plan:", "assessment_and_plan"),
        ("Dx: Type 2 diabetes.", "assessment"),
        ("PMH/PSH/FH/SH:", "past_medical_history"),
        ("history of present illness", "history_of_present_illness"),
        ("HPI: 54-year-old man with cough.", "history_of_present_illness"),
        ("PE: Lungs clear.", "physical_examination"),
    ],
)
def test_header_vocabularies_real_notes_use(line: str, name: str) -> None:
    found = find_headers(f"{line}\nSomething here.\n")
    assert [h[2] for h in found] == [name], found


def test_a_lone_letter_is_not_a_header_and_a_problem_label_is_not_either() -> None:
    assert find_headers("A\nHypertension: well controlled.\n") == []


# ---- the learned classifier and visit-note detection ---------------------------------------------------------------


def test_the_shipped_layout_model_has_its_card_with_accuracy_per_part() -> None:
    model, info = shipped_model(), card()
    assert model.parts == PARTS
    accuracy, note_kind, per_part = info["accuracy"], info["note_kind_accuracy"], info["per_part"]
    assert isinstance(accuracy, float) and isinstance(note_kind, float) and isinstance(per_part, dict)
    assert accuracy >= 0.9 and note_kind >= 0.95
    assert {"hpi", "exam", "assessment", "plan"} <= set(per_part)


@pytest.mark.parametrize("variant", ["no headers", "one paragraph", "SOAP"])
def test_without_headers_the_sentences_still_get_their_visit_parts(variant: str) -> None:
    layout = read_layout(VARIANTS[variant](SAMPLE))
    assert layout.kind == "visit"
    assert _part_of(layout, "Right knee acute medial meniscus sprain") == "assessment"
    assert _part_of(layout, "Sensation is intact") == "exam"
    assert _part_of(layout, "She will use crutches") == "plan"
    assert _part_of(layout, "Ms. Thompson is a 43-year-old") == "hpi"
    assert any(s.source == "classifier" for s in layout.sentences)


def test_a_header_wins_over_the_classifier() -> None:
    layout = read_layout("PLAN\nRight knee acute medial meniscus sprain.\nFollow up in a week.\n")
    assert all(s.part == "plan" and s.source == "header" for s in layout.sentences if not s.header_line)


def test_a_case_report_is_not_a_visit_and_a_one_paragraph_dictation_is(shared_data: Path) -> None:
    report = next((shared_data / "codiesp" / "dev" / "text_files_en").glob("*.txt")).read_text()
    assert read_layout(report).kind == "case"
    assert read_layout(one_paragraph(SAMPLE)).kind == "visit"


def test_windows_line_endings_read_as_lines_with_the_same_offsets() -> None:
    written, windows = read_layout(SAMPLE), read_layout(crlf(SAMPLE))
    assert [s.part for s in written.sentences] == [s.part for s in windows.sentences]
    note = crlf(SAMPLE)
    for s in windows.sentences:
        assert note[s.start : s.end].replace("\r", " ").strip() == s.text


# ---- problem lists ---------------------------------------------------------------------------------------------


def test_numbered_and_hash_problem_lists_give_one_problem_a_line() -> None:
    note = (
        "S: 62-year-old man here for follow-up of his chronic problems. He reports good adherence to his "
        "medications. No chest pain.\nO: BP 150/90. Lungs clear. A1c 8.1.\n"
        "A/P:\n"
        "1. HTN – continue lisinopril 20 mg daily.\n"
        "2. Hyperlipidemia - continue atorvastatin.\n"
        "#Type 2 DM: A1c 8.1, increase metformin.\n"
    )
    problems = [p.text for p in problem_spans(note)]
    assert problems == ["HTN", "Hyperlipidemia", "Type 2 DM"], problems
    for p in problem_spans(note):
        assert note[p.start : p.end] == p.text


def test_an_assessment_run_into_one_paragraph_still_names_its_problems() -> None:
    note = one_paragraph(SAMPLE)
    assert "Right knee acute medial meniscus sprain" in [p.text for p in problem_spans(note)]


# ---- the conversation ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        TRANSCRIPT,
        TRANSCRIPT.replace("Doctor:", "[doctor]").replace("Patient:", "[patient]"),
        TRANSCRIPT.replace("Doctor:", "Speaker 1:").replace("Patient:", "Speaker 2:"),
    ],
)
def test_a_transcript_is_recognised_with_who_speaks(text: str) -> None:
    said = turns(text)
    assert len(said) == 15
    assert said[0].speaker == "clinician" and said[1].speaker == "patient"
    assert read_layout(text).kind == "conversation"


def test_the_clinician_states_the_problems_and_a_question_answered_no_is_denied() -> None:
    layout = read_layout(TRANSCRIPT)
    assert [p for _, _, p in layout.problems][:3] == [
        "right knee pain",
        "acute medial meniscus sprain",
        "atrial fibrillation",
    ]
    for a, b, p in layout.problems:
        assert TRANSCRIPT[a:b] == p
    chest = next(s for s in layout.sentences if "chest pain" in s.text)
    assert chest.read.startswith("denies")
    assert _part_of(layout, "on exam you have tenderness") == "exam"
    assert _part_of(layout, "i want you to use a knee brace") == "plan"
    spans = sentence_spans(TRANSCRIPT, layout)
    assert not any(s.text.strip() in ("no .", "sounds good .") for s in spans)


def test_a_note_that_merely_has_colons_is_not_a_transcript() -> None:
    assert turns(SAMPLE) == []
    assert turns(soap(SAMPLE)) == []


# ---- through the real stack -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def coder(kb: Any) -> Any:
    return shipped_coder(kb)


@pytest.fixture(scope="module")
def drugs(kb: Any) -> Any:
    from medcoder.knowledge.atc import ATC
    from medcoder.ranking.drugs import DrugCoder, drug_ranker_folder

    return DrugCoder.from_folder(drug_ranker_folder("builtin"), kb.ontology(ATC.system))


@pytest.mark.parametrize("variant", ["SOAP", "no headers", "one paragraph", "CRLF line endings"])
def test_the_sample_note_in_other_layouts_keeps_its_codes(variant: str, coder: Any, drugs: Any) -> None:
    note = VARIANTS[variant](SAMPLE)
    accepted, ranked = code_note(coder, note)
    assert {"S83.8X1A", "I48.91"} <= accepted, accepted
    assert not {c for c in accepted if c.startswith("R20")}, accepted  # "Sensation is intact" is normal
    assert {"M01AE01", "C01AA05"} <= {d.code for d in drugs.code_note(note) if d.accepted}
    sprain = ranked["S83.8X1A"]
    assert any(note[e.start : e.end].replace("\r", " ").strip() == e.text.strip() for e in sprain.evidence)


def test_a_transcript_codes_its_assessed_problems_and_not_a_denied_symptom(coder: Any) -> None:
    accepted, ranked = code_note(coder, TRANSCRIPT)
    assert {c for c in accepted if c.startswith("S83")}, accepted
    assert {c for c in accepted if c.startswith("I48")}, accepted
    assert not {c for c in accepted if c.startswith(("R07", "R50"))}, accepted  # chest pain, fever: denied
    for r in ranked.values():
        for e in r.evidence:
            assert TRANSCRIPT[e.start : e.end].strip() == e.text.strip() or e.source == "mention"


def test_a_case_report_keeps_the_case_report_path(coder: Any, shared_data: Path) -> None:
    report = next((shared_data / "codiesp" / "dev" / "text_files_en").glob("*.txt")).read_text()
    cands = coder.candidates(report)
    assert coder.ranker.note_kind(cands.features) == "case"
    ranked = coder.rank(cands, note=report)
    assert not any(r.rule for r in ranked)  # the outpatient rules are for visits only


def test_the_cli_shows_how_a_note_is_read(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from medcoder.cli import main

    path = tmp_path / "visit.txt"
    path.write_text(no_headers(SAMPLE))
    out = CliRunner().invoke(main, ["layout", str(path), "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert data["kind"] == "visit" and data["sentences_by_source"]["classifier"] > 10


# ---- the model where a rule cannot see ---------------------------------------------------------------------------

CONVERSATION_ONLY = """Doctor: hi , how are you doing ?
Patient: not great , my wrist hurts since i fell on it on the ice .
Doctor: any numbness or tingling ?
Patient: no .
Doctor: okay . let me take a look . on exam there is swelling and tenderness over the distal radius .
Patient: ouch .
Doctor: looking at the x-ray there is a break at the end of the radius , the colles type .
Doctor: we'll put you in a splint and see you in a week .
Patient: okay , thank you .
"""


def test_the_model_lists_the_problems_and_each_is_read_through_the_index(coder: Any) -> None:
    from medcoder.agents.problem_lister import list_problems, wants_model
    from medcoder.llm.fake import FakeLLM

    def answer(messages: Any, schema: Any) -> dict[str, Any]:
        assert "break at the end of the radius" in messages[-1]["content"]  # the visit's text comes first
        return {
            "problems": [
                {
                    "problem": "Right Colles fracture",
                    "evidence": "a break at the end of the radius",
                    "certainty": "confirmed",
                },
                {"problem": "numbness", "evidence": "numbness or tingling", "certainty": "suspected"},
            ]
        }

    layout = read_layout(CONVERSATION_ONLY)
    assert wants_model(layout) and not layout.problems  # no problem stated in words the rules know
    spans, info = list_problems(FakeLLM(answer), CONVERSATION_ONLY, layout)
    assert [s.read for s in spans] == ["Right Colles fracture"] and info["calls"] == 1
    assert CONVERSATION_ONLY[spans[0].start : spans[0].end] == spans[0].text == "a break at the end of the radius"
    without = {r.code for r in coder.rank(coder.candidates(CONVERSATION_ONLY), note=CONVERSATION_ONLY) if r.accepted}
    ranked = coder.rank(coder.candidates(CONVERSATION_ONLY), note=CONVERSATION_ONLY, problems=spans)
    added = {r.code for r in ranked if r.accepted} - without
    assert any(c.startswith("S52.53") for c in added), added


def test_a_junk_answer_adds_no_problem() -> None:
    from medcoder.agents.problem_lister import list_problems
    from medcoder.llm.fake import FakeLLM

    spans, info = list_problems(
        FakeLLM(lambda m, s: "not json at all"), CONVERSATION_ONLY, read_layout(CONVERSATION_ONLY)
    )
    assert spans == [] and "error" in info


@pytest.mark.slow
def test_the_model_step_runs_on_the_real_test_model_in_a_workflow(tmp_path: Path) -> None:
    from medcoder.engine.workflow import load_workflow

    with load_workflow("icd10cm", model="test", checkpoint_path=tmp_path / "c.sqlite") as wf:
        result = wf.run(TRANSCRIPT)
    assert {c.code for c in result.codes if c.code.startswith("S83")}
    for c in result.codes:
        for e in c.evidence:
            assert TRANSCRIPT[e.start : e.end] == e.text
    assert result.stats["model_calls"] >= 1  # the conversation asked the model for its problems
