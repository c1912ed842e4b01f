"""Problem phrases read through the real ICD-10-CM Alphabetic Index and Neoplasm Table the way a coder reads them,
and the assessment's problem lines coded from that reading through the shipped ranker on short visit notes."""

from __future__ import annotations

from typing import Any

import pytest

from medcoder.visit import guidelines as gl
from medcoder.visit.index_phrase import billable_for, read_phrase
from tests.visit_notes import VISIT, code_note, shipped_coder


@pytest.fixture(scope="module")
def coder(kb: Any) -> Any:
    return shipped_coder(kb)


@pytest.mark.parametrize("phrase, trail, codes", [
    # main term, then the subterms the phrase names, looking past a level it does not name (Pain › joint › knee)
    ("Non-cardiac chest pain", "Pain › chest › non-cardiac", ["R07.89"]),
    ("Left knee pain", "Pain › joint › knee", ["M25.562"]),
    ("Congestive heart failure", "Failure, failed › heart › congestive", ["I50.9"]),
    ("Radiation pneumonitis", "Pneumonitis › radiation", ["J70.0"]),
    # "see Neoplasm, benign, by site" is followed to the Neoplasm Table's site row and column
    ("Pituitary adenoma", "Adenoma › benign › pituitary", ["D35.2"]),
    # a main term's nonessential modifiers are words it reads ("Diabetes (mellitus)")
    ("Diabetes mellitus type 2", "Diabetes, diabetic › type 2", ["E11.9"]),
    ("Type 2 diabetes with hyperglycemia", "Diabetes, diabetic › type 2 › hyperglycemia", ["E11.65"]),
    # "Gout, gouty" (a form of the word) before "Gout, chronic" (a modifier the phrase does not state)
    ("Gout", "Gout, gouty", ["M10.9"]),
    # the 7th character and the side come from the Tabular List; both sides where no bilateral code exists
    ("Right wrist Colles fracture", "Colles' fracture", ["S52.531A"]),
    ("Bilateral medial epicondylitis", "Epicondylitis › medial", ["M77.01", "M77.02"]),
])
def test_a_phrase_is_read_through_the_index_to_its_billable_codes(icd: Any, phrase: str, trail: str, codes: list[str]):
    reading = read_phrase(icd, phrase)
    assert reading is not None and reading.complete, reading
    assert reading.path() == trail
    assert billable_for(icd, reading.code, phrase) == codes
    assert all(icd.node(c).billable for c in codes)


def test_a_phrase_the_index_does_not_read_whole_is_not_complete(icd: Any):
    # "painful" is a modifier of "Erection, painful", not a main term of its own: no reading through it
    painful = read_phrase(icd, "Painful swallowing")
    assert painful is None or not painful.complete
    bitemporal = read_phrase(icd, "Bitemporal hemianopia")
    assert bitemporal is not None and not bitemporal.complete  # H53.47 by default, "bitemporal" unread
    assert read_phrase(icd, "qwzx") is None


def test_e11_65_needs_a_sentence_that_says_the_sugars_are_high():
    assert gl.without_hyperglycemia("E11.65", ["He is doing a good job managing his diabetes."]) == "E11.9"
    assert gl.without_hyperglycemia("E11.65", ["Her blood glucose levels have been elevated."]) == "E11.65"
    assert gl.without_hyperglycemia("I10", []) == "I10"


def test_a_diagnosis_only_the_chief_complaint_states_and_the_note_calls_suspected_is_not_coded():
    f = gl.CodedFinding("K20.90", 0.8, "Esophagitis, unspecified without bleeding",
                        ["Esophagitis.", "She was referred for suspected esophagitis."],
                        ["present", "uncertain"], False, ["cc", "hpi"])
    out = gl.referral_question(f)
    assert out is not None and out.rule == "uncertain-diagnosis"
    confirmed = gl.CodedFinding("K20.90", 0.8, "Esophagitis",
                                ["Esophagitis.", "Referred for suspected esophagitis.", "EGD shows esophagitis."],
                                ["present", "uncertain", "present"], True, ["cc", "hpi", "plan"])
    assert gl.referral_question(confirmed) is None


# ---- through the shipped ranker ---------------------------------------------------------------------------------

def test_an_assessed_problem_the_ranker_never_saw_is_coded_from_the_index_with_its_reason(coder: Any):
    note = VISIT.format(cc="Right wrist injury.",
                        hpi="She fell on an outstretched hand yesterday and has pain and swelling of the right wrist.",
                        exam="Dinner fork deformity of the right wrist. Sensation is intact.",
                        plan="Right wrist Colles fracture.\nShe will be placed in a splint.")
    _, by_code = code_note(coder, note)
    assert "S52.531A" in by_code and by_code["S52.531A"].accepted
    r = by_code["S52.531A"]
    assert r.rule == "assessed-problem" and "Index: Colles' fracture" in r.reason
    assert any(e.source == "problem" and note[e.start:e.end] == e.text for e in r.evidence)
    assert not {c for c in by_code if by_code[c].accepted and c.startswith("R20")}


def test_an_uncertain_cause_on_a_problem_line_codes_the_symptom_not_the_cause(coder: Any):
    note = VISIT.format(cc="Left shoulder pain.",
                        hpi="He has had left shoulder pain for two months, worse with overhead reaching.",
                        exam="Pain with abduction of the left shoulder. Strength is normal.",
                        plan="Left shoulder pain, most likely due to rotator cuff tendinopathy.\nPhysical therapy.")
    accepted, _ = code_note(coder, note)
    assert "M25.512" in accepted, accepted
    assert not {c for c in accepted if c.startswith(("M75", "S46"))}, accepted


def test_an_abbreviated_heart_failure_beside_hypertension_is_the_combination_code(coder: Any):
    note = VISIT.format(cc="Follow-up.",
                        hpi="He has a history of hypertension and heart failure and is taking his medications.",
                        exam="Blood pressure is 128/72 mm Hg. No edema.",
                        plan="CHF.\nContinue current medications.\nHypertension.\nContinue lisinopril.")
    accepted, _ = code_note(coder, note)
    assert "I11.0" in accepted and "I10" not in accepted, accepted
    assert {c for c in accepted if c.startswith("I50")}, accepted


def test_a_code_the_index_reads_that_no_source_proposed_is_coded_with_its_line_as_evidence(
    coder: Any, medcoder_home: Any, monkeypatch: pytest.MonkeyPatch
):
    """The Index can lead to a code that retrieval and the memory never proposed: it has no ranker features, and
    the workflow's ranker node still codes it, with the problem line as its evidence and the rule in its verdict."""
    import medcoder
    from medcoder.ranking.candidates import NoteCandidates
    from medcoder.ranking.coder import RankedCoder

    real = RankedCoder.candidates

    def without_colles(self: RankedCoder, *args: Any, **kwargs: Any) -> NoteCandidates:
        c = real(self, *args, **kwargs)
        keep = [i for i, code in enumerate(c.codes) if not code.startswith("S52.5")]
        return NoteCandidates([c.codes[i] for i in keep], [c.features[i] for i in keep], c.evidence, c.sources)

    monkeypatch.setattr(RankedCoder, "candidates", without_colles)
    note = VISIT.format(cc="Right wrist injury.", hpi="She fell on an outstretched hand yesterday.",
                        exam="Dinner fork deformity of the right wrist.",
                        plan="Right wrist Colles fracture.\nShe will be placed in a splint.")
    _, by_code = code_note(coder, note)
    r = by_code["S52.531A"]
    assert r.accepted and r.features == {} and r.sources == ["index"]
    line = r.evidence[0]
    assert line.text == "Right wrist Colles fracture" and note[line.start:line.end] == line.text
    result = medcoder.load_workflow("icd10cm-nomodel").run(note)
    coded = {c.code: c for c in result.codes}
    assert "S52.531A" in coded, list(coded)
    assert coded["S52.531A"].evidence[0].text == "Right wrist Colles fracture"
    assert any("assessed-problem" in reason and "Index" in reason for reason in coded["S52.531A"].verdict.reasons)
