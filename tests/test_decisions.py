"""The confidence shown for a visit note's final codes (`ranking.decisions`) and the coding conventions
(`visit.conventions`): each convention alone on the real ICD-10-CM 2026 tables, the calibration on constructed
decisions, and both through the shipped ranker on the sample note (real retrieval, real Index)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from medcoder.ranking.coder import RankedCode
from medcoder.ranking.decisions import Curve, Decided, FinalCalibration, fit_curve, fit_final
from medcoder.visit import conventions as cv
from medcoder.visit.conventions import Coded, NoteSentence, apply_conventions
from tests.visit_notes import VISIT, code_note, shipped_coder

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "aci_bench_D2N069.txt"


@pytest.fixture(scope="module")
def coder(kb: Any) -> Any:
    return shipped_coder(kb)


def _s(text: str, part: str = "assessment") -> NoteSentence:
    return NoteSentence(0, len(text), text, part)


def _c(icd: Any, code: str, *evidence: str) -> Coded:
    return Coded(code, icd.label(code), tuple(evidence))


# ---- the conventions, one by one -------------------------------------------------------------------------------

def test_heart_failure_is_coded_by_the_type_and_acuity_the_note_states(icd: Any) -> None:
    unstated = cv.heart_failure_type([_c(icd, "I50.22", "CHF.")], [_s("Congestive heart failure.")], icd)
    assert [(c.code, c.new) for c in unstated] == [("I50.22", "I50.9")]
    reduced = [_s("Her echocardiogram demonstrated a reduced ejection fraction of 45%.", "results")]
    assert [c.new for c in cv.heart_failure_type([_c(icd, "I50.9", "CHF.")], reduced, icd)] == ["I50.20"]
    both = [_s("Acute on chronic diastolic heart failure.")]
    assert [c.new for c in cv.heart_failure_type([_c(icd, "I50.9", "CHF.")], both, icd)] == ["I50.33"]
    assert cv.heart_failure_type([_c(icd, "I50.33", "x")], both, icd) == []  # already what the note states


def test_a_complication_of_diabetes_anywhere_in_the_note_is_its_combination_code(icd: Any) -> None:
    said = [_s("The patient has type 2 diabetes with neuropathy.", "hpi")]
    change = cv.diabetes_complications([_c(icd, "E11.9", "Type 2 diabetes.")], said, icd)
    assert [(c.action, c.code, c.new) for c in change] == [("replace", "E11.9", "E11.40")]
    assert change[0].sentence == said[0]  # the sentence that documents it is the evidence
    denied = [_s("He denies neuropathy.", "hpi")]
    assert cv.diabetes_complications([_c(icd, "E11.9", "Type 2 diabetes.")], denied, icd) == []
    kidney = [_s("Stage 3 chronic kidney disease.")]
    added = cv.diabetes_complications([_c(icd, "E11.65", "Type 2 diabetes, uncontrolled.")], kidney, icd)
    assert [(c.action, c.new) for c in added] == [("add", "E11.22")]  # the hyperglycemia stays coded beside it
    assert cv.diabetes_complications([_c(icd, "I10", "Hypertension.")], said, icd) == []


def test_an_unspecified_code_takes_the_specificity_its_evidence_states(icd: Any) -> None:
    lung = cv.specificity([_c(icd, "C34.90", "Adenocarcinoma of the right upper lobe of the lung.")], [], icd)
    assert [c.new for c in lung] == ["C34.11"]
    eye = cv.specificity([_c(icd, "H35.30", "Dry macular degeneration of the right eye, intermediate stage.")], [], icd)
    assert [c.new for c in eye] == ["H35.3112"]
    assert cv.specificity([_c(icd, "C34.90", "Stage III non-small cell lung cancer.")], [], icd) == []  # no lobe said


def test_the_follow_up_of_a_joint_replacement_is_aftercare_with_the_joint_status(icd: Any) -> None:
    changes = cv.aftercare([], [_s("Follow-up after right total knee replacement.", "cc")], icd)
    assert [(c.action, c.new) for c in changes] == [("add", "Z47.1"), ("add", "Z96.651")]
    assert cv.aftercare([], [_s("She is considering a knee replacement next year.", "plan")], icd) == []


def test_a_convention_left_out_changes_nothing(icd: Any) -> None:
    coded = [_c(icd, "E11.9", "Type 2 diabetes."), _c(icd, "I50.22", "CHF.")]
    said = [_s("Type 2 diabetes with neuropathy.", "hpi"), _s("Congestive heart failure.")]
    every = {c.rule for c in apply_conventions(coded, said, icd, cv.CONVENTIONS)}
    assert every == {"diabetes-complications", "heart-failure-type"}
    without = apply_conventions(coded, said, icd, [n for n in cv.CONVENTIONS if n != "diabetes-complications"])
    assert {c.rule for c in without} == {"heart-failure-type"}


# ---- the calibration of what the rules decided -----------------------------------------------------------------

def test_a_curve_is_monotone_and_a_thin_decision_gets_its_own_measured_rate() -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, 2000)
    y = rng.uniform(0, 1, 2000) < x
    curve = fit_curve(x.tolist(), y.tolist())
    values = [curve(v) for v in np.linspace(0, 1, 50)]
    assert values == sorted(values) and abs(curve(0.9) - 0.9) < 0.1 and abs(curve(0.1) - 0.1) < 0.1
    thin = fit_curve([0.0] * 10, [True] * 8 + [False] * 2)  # ten Index readings, eight right
    assert thin.n == 10 and 0.7 < thin(0.0) < 0.85  # shrunk a little toward the middle, not a hand-set constant
    assert Curve.from_dict(curve.to_dict())(0.5) == pytest.approx(curve(0.5), abs=1e-4)


def test_the_final_calibration_accepts_at_its_threshold_and_never_shows_an_accepted_code_below_it() -> None:
    final = FinalCalibration(
        {"ranker": Curve([0.0, 1.0], [0.0, 1.0], 100, 0.3), "index": Curve([], [], 40, 0.9)}, 0.4, 0.85
    )
    ranked = [
        RankedCode("A00.0", 0.3, accepted=True, ranker_probability=0.3),  # the ranker's, below the final threshold
        RankedCode("B00.0", 0.9, accepted=True, ranker_probability=0.9),
        RankedCode("C00.0", 0.8, accepted=True, ranker_probability=0.0, decision="index"),
        RankedCode("D00.0", 0.1, accepted=False, ranker_probability=0.1),
    ]
    out = {r.code: r for r in FinalCalibration.from_dict(final.to_dict()).apply(ranked)}
    assert not out["A00.0"].accepted and "below the threshold" in out["A00.0"].reason
    assert out["C00.0"].accepted and out["C00.0"].probability == pytest.approx(0.9)  # the Index's measured rate
    assert all(r.probability >= 0.4 for r in out.values() if r.accepted)
    assert {c for c, r in out.items() if r.auto} == {"B00.0", "C00.0"}


def test_fit_final_measures_itself_by_cross_fitting() -> None:
    rng = np.random.default_rng(1)
    notes, golds = [], []
    for i in range(40):
        rows = [Decided("ranker", float(x), x > 0.3, bool(rng.uniform() < x), f"R{i}.{j}")
                for j, x in enumerate(rng.uniform(0, 1, 30))]
        rows.append(Decided("index", 0.0, True, bool(rng.uniform() < 0.8), f"I{i}"))
        notes.append(rows)
        golds.append({d.code for d in rows if d.right} | {f"MISS{i}"})
    final = fit_final(notes, golds, [i % 5 for i in range(40)])
    report = final.report
    assert report["notes"] == 40 and 0 < report["cv"]["micro"]["f1"] < 1
    assert report["ece"] < 0.1 and set(report["by_decision"]) == {"ranker", "index"}
    assert 0.6 < final.curves["index"](0.0) < 0.95



def test_a_site_whose_accepted_codes_were_all_right_keeps_accepting_codes_a_hair_below_them() -> None:
    """The relearn regression: 21 notes where every rules-accepted code was right put each at the curve's top, and
    a threshold on that very value cut off every new code the curve placed a hair lower (micro-F1 0.0)."""
    notes, golds = [], []
    for i in range(21):
        rows = [Decided("ranker", 0.99, True, True, f"R{i}"), Decided("ranker", 0.995, True, True, f"S{i}")]
        rows += [Decided("ranker", 0.01 * j, False, False, f"N{i}.{j}") for j in range(30)]
        notes.append(rows)
        golds.append({f"R{i}", f"S{i}"})
    final = fit_final(notes, golds, [i % 3 for i in range(21)])
    assert final.report["cv"]["micro"]["f1"] == 1.0
    new = [RankedCode("A00.0", 0.9, accepted=True, ranker_probability=0.9)]  # below every learned one
    assert final.apply(new)[0].accepted, (final.threshold, final.apply(new)[0])


# ---- through the shipped ranker --------------------------------------------------------------------------------

def test_the_sample_note_shows_every_accepted_code_at_or_above_the_threshold_that_accepted_it(coder: Any) -> None:
    note = EXAMPLE.read_text(encoding="utf-8")
    ranked = coder.rank(coder.candidates(note), note=note)
    threshold = coder.ranker.accept_threshold("visit")
    accepted = {r.code: r for r in ranked if r.accepted}
    assert "S83.8X1A" in accepted and "I48.91" in accepted, sorted(accepted)
    assert all(r.probability >= threshold for r in accepted.values()), [(r.code, r.probability) for r in ranked[:8]]
    assert all(r.decision for r in ranked) and ranked == sorted(ranked, key=lambda r: -r.probability)


def test_a_documented_complication_of_diabetes_is_coded_through_the_ranker(coder: Any) -> None:
    note = VISIT.format(cc="Follow-up of diabetes.",
                        hpi="He has type 2 diabetes with peripheral neuropathy; his feet are numb at night.",
                        exam="Decreased sensation to monofilament in both feet.",
                        plan="Type 2 diabetes.\nContinue metformin.")
    accepted, ranked = code_note(coder, note)
    assert "E11.9" not in accepted and {"E11.40", "E11.42"} & accepted, accepted
    assert any(r.rule == "diabetes-complications" for r in ranked.values())
    coder.conventions = [c for c in cv.DEFAULT_CONVENTIONS if c != "diabetes-complications"]
    try:
        without, _ = code_note(coder, note)
    finally:
        coder.conventions = cv.DEFAULT_CONVENTIONS
    assert not {"E11.40", "E11.42"} & without
