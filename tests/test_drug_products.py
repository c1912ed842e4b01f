"""Drug products coded from their whole record (issue 38): the route and dosage form columns read as a note's
route and form words are, learned from, evaluated with and without, and a cream on the skin coded in group D.
Real stack: the bundled ATC file, the shipped lexicon and drug ranker, the bundled Canadian products."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from medcoder.evaluation.drugs import evaluate_drugs, product_fields
from medcoder.knowledge.ontology import CodeSystem
from medcoder.ranking.datasets import load_dataset
from medcoder.ranking.drug_features import DRUG_FEATURES, DrugPriors
from medcoder.ranking.drugs import RECORD, DrugCandidate, DrugCoder, drug_ranker_folder, product_context, skin_rule
from medcoder.ranking.model import RankerModel, new_calibrator, new_drug_classifier

ROOT = Path(__file__).resolve().parents[1]
PRODUCTS = ROOT / "medcoder" / "knowledge" / "data" / "dpd_products_2026-04-01.tsv"


@pytest.fixture(scope="module")
def coder(atc: CodeSystem) -> DrugCoder:
    return DrugCoder.from_folder(drug_ranker_folder("shipped"), atc)


def _write(path: Path, rows: list[dict[str, str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]), delimiter="\t")
        w.writeheader()
        w.writerows(rows)
    return path


def test_the_reader_takes_route_and_form_when_the_file_has_them(tmp_path: Path) -> None:
    row = {"brand_name": "NYADERM", "ingredients": "NYSTATIN", "atc_code": "G01AA01"}
    bare = load_dataset(_write(tmp_path / "bare.tsv", [row])).examples[0]
    full = load_dataset(_write(tmp_path / "full.tsv", [{**row, "route": "VAGINAL", "dosage_form": "CREAM"}]))
    ex = full.examples[0]
    assert "route" not in bare.meta and [f for f, _ in product_fields(bare)] == ["ingredients", "brand"]
    assert ex.meta["route"] == "VAGINAL" and ex.meta["dosage_form"] == "CREAM"
    assert [f for f, _ in product_fields(ex)] == ["ingredients", "brand", "ingredients" + RECORD, "brand" + RECORD]


@pytest.mark.parametrize(
    "record,routes,forms",
    [
        (("VAGINAL", "CREAM"), {"vaginal"}, {"cream"}),  # the route column decides, the form word does not add one
        (("NASAL", "SPRAY, METERED DOSE"), {"nasal"}, {"spray"}),
        (("INTRAVENOUS; SUBCUTANEOUS", "POWDER FOR SOLUTION"), {"inject"}, {"powder", "solution"}),
        (("OPHTHALMIC; OTIC", "DROPS"), {"eye", "ear"}, {"drops"}),
        (("SUBLINGUAL", "TABLET"), {"mouth"}, {"tablet"}),
        (("", "SHAMPOO"), {"topical"}, {"shampoo"}),  # no route column: the form names it
    ],
)
def test_a_record_is_read_as_a_notes_route_and_form_words(
    record: tuple[str, str], routes: set[str], forms: set[str]
) -> None:
    ctx = product_context("SOME BRAND", *record)
    assert set(ctx.routes) == routes and set(ctx.forms) == forms and ctx.from_record
    assert not product_context("FUCIDIN CREAM 2%").from_record  # the name alone: words, no record


def test_route_priors_count_the_answers_groups_and_survive_json() -> None:
    priors = DrugPriors()
    eye = product_context("X", "OPHTHALMIC", "SOLUTION")
    for code in ("S01AA17", "S01AA17", "S01CA01", "D10AF02"):
        priors.add_context(eye, code)
    again = DrugPriors.from_json(json.loads(json.dumps(priors.to_json())))
    l1, l3, f1, f3 = again.context_shares(eye, "S01AA11")
    assert l1 == pytest.approx(0.75) and l3 == pytest.approx(0.5) and f1 == pytest.approx(0.75)
    nothing = again.context_shares(product_context("X", "RECTAL", "SUPPOSITORY"), "S01AA11")
    assert all(np.isnan(v) for v in nothing)  # a route never seen says nothing


def test_the_record_moves_a_product_to_its_routes_group(coder: DrugCoder) -> None:
    eye = coder.code_product("ERYTHROMYCIN", "ERYTHROMYCIN", "OPHTHALMIC", "OINTMENT")
    nasal = coder.code_product("MOMETASONE FUROATE", "APO-MOMETASONE", "NASAL", "SPRAY, METERED DOSE")
    assert eye is not None and eye.best is not None and eye.best.code.startswith("S01")
    assert nasal is not None and nasal.best is not None and nasal.best.code == "R01AD09"
    assert eye.context.from_record and eye.best.features()["from_record"] == 1.0


def test_eval_reports_each_field_with_and_without_the_record_and_the_codes_not_in_the_file(
    tmp_path: Path, coder: DrugCoder
) -> None:
    rows = [
        {"brand_name": "APO-MOMETASONE", "ingredients": "MOMETASONE FUROATE", "atc_code": "R01AD09",
         "route": "NASAL", "dosage_form": "SPRAY, METERED DOSE"},
        {"brand_name": "ERYTHROMYCIN OPHTHALMIC", "ingredients": "ERYTHROMYCIN", "atc_code": "S01AA17",
         "route": "OPHTHALMIC", "dosage_form": "OINTMENT"},
        {"brand_name": "NEWDRUG", "ingredients": "NEWDRUGINE", "atc_code": "Z99ZZ99",  # not in the ATC file
         "route": "ORAL", "dosage_form": "TABLET"},
    ]
    data = load_dataset(_write(tmp_path / "p.tsv", rows))
    out = evaluate_drugs(data, coder)
    m = out["metrics"]
    assert set(m) == {f"{f}/ranked-nomodel" for f in ("ingredients", "brand", "ingredients" + RECORD,
                                                        "brand" + RECORD)}
    with_record = m["ingredients" + RECORD + "/ranked-nomodel"]
    assert with_record["exact_match"] == pytest.approx(2 / 3, abs=1e-3)
    assert with_record["gold_in_file"] == 2 and with_record["exact_match_in_file"] == 1.0
    assert out["misses"]["ingredients" + RECORD] == {"not_in_file": 1}


def _candidate(code: str, p: float) -> DrugCandidate:
    return DrugCandidate(code, "single", 1, [0.0] * len(DRUG_FEATURES), p, p)


def test_a_cream_on_the_skin_goes_to_the_dermatological_group(coder: DrugCoder) -> None:
    rash = coder.read("Apply hydrocortisone 1% cream to the rash.")[0][1]
    piles = coder.read("Hydrocortisone cream to the hemorrhoids.")[0][1]
    assert rash.skin and not piles.skin
    cands = [_candidate("C05AA01", 0.6), _candidate("D07AA02", 0.3), _candidate("S01BA02", 0.1)]
    skin_rule(cands, rash)
    assert [c.code for c in cands][:2] == ["D07AA02", "C05AA01"]
    kept = [_candidate("C05AA01", 0.6), _candidate("D07AA02", 0.3)]
    skin_rule(kept, piles)  # the anal group is right for hemorrhoids
    assert kept[0].code == "C05AA01"
    for text in ("Apply hydrocortisone 1% cream to the rash.", "MEDICATIONS\n\nHydrocortisone 1% cream twice daily "
                 "to the rash on her arms."):
        assert [d.code for d in coder.code_note(text) if d.accepted] == ["D07AA02"]


def test_a_drug_ranker_learned_before_the_record_features_still_loads_and_ranks(
    tmp_path: Path, atc: CodeSystem
) -> None:
    old = tuple(f for f in DRUG_FEATURES if f != "from_record" and not f.endswith("_share") or f == "subst_share")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(200, len(old))), rng.integers(0, 2, 200)
    clf = new_drug_classifier(0).fit(x, y)
    cal = new_calibrator().fit(clf.predict_proba(x)[:, 1], y)
    RankerModel(atc.system, clf, cal, 0.5, features=old, meta={"cv": {}}).save(tmp_path)
    assert json.loads((tmp_path / "ranker.json").read_text())["kind"] == "drug"
    coder = DrugCoder.from_folder(tmp_path, atc)
    assert coder.ranker.features == old
    cm = coder.code_product("METRONIDAZOLE", "METRONIDAZOLE", "ORAL", "CAPSULE")
    assert cm is not None and len(cm.candidates) > 1 and len(cm.best.row if cm.best else []) == len(DRUG_FEATURES)
    assert len(coder.ranker_row(cm.candidates[0].row)) == len(old)


@pytest.mark.parametrize(
    "ingredients,brand,expected",
    [
        ("SODIUM CHLORIDE|POTASSIUM CHLORIDE|SODIUM LACTATE|CALCIUM CHLORIDE", "LACTATED RINGER'S", "B05BB01"),
        ("DEXTROSE|SODIUM CHLORIDE", "5% DEXTROSE AND 0.45% SODIUM CHLORIDE", "B05BB02"),
    ],
)
def test_a_code_named_by_a_class_alone_codes_a_product_whose_every_ingredient_is_of_it(
    coder: DrugCoder, ingredients: str, brand: str, expected: str
) -> None:
    """ "electrolytes" and "electrolytes with carbohydrates" are level-5 codes no ingredient names: an IV solution
    of several electrolytes (and dextrose) is coded there, not as one of its salts."""
    cm = coder.code_product(ingredients, brand, "INTRAVENOUS", "SOLUTION")
    assert cm is not None and cm.best is not None
    assert cm.best.code == expected and cm.best.kind == "combo_class"
    lone = coder.code_product("SODIUM CHLORIDE", "SODIUM CHLORIDE 0.9%", "INTRAVENOUS", "SOLUTION")
    assert lone is not None and "B05BB01" not in {c.code for c in lone.candidates}  # one salt is not "electrolytes"


def test_a_record_for_the_eye_and_the_ear_takes_the_code_for_both(coder: DrugCoder) -> None:
    both = coder.code_product("DEXAMETHASONE SODIUM PHOSPHATE", "ODAN-DEXAMETHASONE", "OPHTHALMIC; OTIC", "SOLUTION")
    eye = coder.code_product("DEXAMETHASONE SODIUM PHOSPHATE", "ODAN-DEXAMETHASONE", "OPHTHALMIC", "SOLUTION")
    assert both is not None and both.best is not None and both.best.code == "S03BA01"  # eye and ear
    assert eye is not None and eye.best is not None and eye.best.code.startswith("S01")
