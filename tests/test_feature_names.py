"""Each ranker feature's name says what its value is (issue 37).

`collect` once built each row by position, and the four within-category columns 35-38 held (kNN rank, best kNN
share, sentence rank, best sentence score) under the names (cat_knn_rank, cat_sent_rank, best_knn_in_cat,
best_sent_in_cat): `RankerModel.contributions` and the review page's "why" showed the best kNN share as a
sentence rank and the other way round. The names of columns 36 and 37 were put right; the columns, and so the
shipped trees' probabilities, are unchanged. A row is now built by name (`feature_row`), so the two ways of
planting the swap back each fail here:

- swapping the two keys in `candidates._category_features` ("best_knn_in_cat": sent_rank, "cat_sent_rank":
  best_knn) fails `test_the_category_values_sit_under_their_names` (E11.9's "best_knn_in_cat" reads 1, its
  sentence rank, and its "cat_sent_rank" 0.6, the category's best kNN share) and the column test below;
- swapping the two names back in FEATURES now moves the values with their names, so the columns are no longer
  those the shipped trees learned: `test_the_columns_are_those_the_trees_learned` fails (column 36 reads 1, the
  sentence rank, where the trees learned the best kNN share, 0.6), and so does `test_former_names_are_the_swap`.
"""

from __future__ import annotations

from typing import Any

import pytest

from medcoder.knowledge.lexical import SearchHit
from medcoder.ranking.candidates import (
    FEATURES,
    FORMER_FEATURES,
    FeatureRowError,
    SearchSpan,
    collect,
    feature_row,
)
from medcoder.ranking.memory import MemoryHit, MemoryView

NOTE = "Type 2 diabetes without complications.\nDiabetes with hyperglycemia, poorly controlled."


def _rows(icd: Any) -> dict[str, list[float]]:
    """The rows of a note where the kNN and sentence orders of category E11 disagree: each value is knowable.

    Sentences: E11.9 scores 0.9 (rank 1); E11.65 scores 0.5 (rank 2) and 0.3 (rank 1): summed 0.9 against 0.8,
    so by sentence E11.9 ranks 1st in E11 and the best is 0.9. Memory: E11.65 has kNN share 0.6, E11.9 0.1 (and
    I10, another category, 0.3): by kNN E11.65 ranks 1st in E11 and the best is 0.6.
    """
    first = NOTE.index("\n")
    spans = [
        SearchSpan(NOTE[:first], 0, first, section="plan"),
        SearchSpan(NOTE[first + 1 :], first + 1, len(NOTE), section="plan"),
    ]
    hits = [
        [SearchHit("E11.9", 0.9, "", ["lexical#1"]), SearchHit("E11.65", 0.5, "", ["dense#2"])],
        [SearchHit("E11.65", 0.3, "", ["lexical#1"])],
    ]
    memory = MemoryView(
        {
            "E11.65": MemoryHit(knn_score=1.2, knn_share=0.6, knn_rank=1),
            "I10": MemoryHit(knn_score=0.6, knn_share=0.3, knn_rank=2),
            "E11.9": MemoryHit(knn_score=0.2, knn_share=0.1, knn_rank=3),
        },
        top_similarity=0.7,
        mean_top5_similarity=0.5,
    )
    cands = collect(icd, spans, hits, memory, note=NOTE)
    assert cands.codes == ["E11.9", "E11.65", "I10"]
    return dict(zip(cands.codes, cands.features))


def _named(icd: Any) -> dict[str, dict[str, float]]:
    """Each candidate's values by name, as `RankedCode.features`, `contributions` and "why" show them."""
    return {code: dict(zip(FEATURES, row)) for code, row in _rows(icd).items()}


def test_the_category_values_sit_under_their_names(icd: Any) -> None:
    named = _named(icd)
    e119, e1165 = named["E11.9"], named["E11.65"]
    assert (e119["cat_knn_rank"], e1165["cat_knn_rank"]) == (2, 1)
    assert e119["best_knn_in_cat"] == e1165["best_knn_in_cat"] == 0.6
    assert (e119["cat_sent_rank"], e1165["cat_sent_rank"]) == (1, 2)
    assert e119["best_sent_in_cat"] == e1165["best_sent_in_cat"] == 0.9
    assert e119["cat_candidates"] == 2 and e119["cat_knn_sum"] == pytest.approx(0.7)
    assert named["I10"]["cat_knn_rank"] == 1 and named["I10"]["cat_sent_rank"] == 1


def test_the_columns_are_those_the_trees_learned(icd: Any) -> None:
    """The shipped rankers learned columns 35-38 as kNN rank, best kNN share, sentence rank, best sentence score."""
    rows = _rows(icd)
    assert rows["E11.9"][35:39] == [2, 0.6, 1, 0.9]
    assert rows["E11.65"][35:39] == [1, 0.6, 2, 0.9]


def test_the_span_and_memory_values_sit_under_their_names(icd: Any) -> None:
    e1165 = _named(icd)["E11.65"]
    assert (e1165["sent_best_rank"], e1165["sent_n"], e1165["sent_max_score"]) == (1, 2, 0.5)
    assert e1165["sent_sum_score"] == pytest.approx(0.8)
    assert (e1165["lexical_best"], e1165["dense_best"], e1165["index_best"]) == (1, 2, 200.0)
    assert (e1165["knn_share"], e1165["knn_score"], e1165["knn_rank"]) == (0.6, 1.2, 1)
    assert (e1165["note_top_sim"], e1165["note_top5_sim"]) == (0.7, 0.5)
    assert (e1165["sec_plan"], e1165["prob_n"], e1165["n_sentences"]) == (2.0, 0, 2)


def test_former_names_are_the_swap() -> None:
    """A ranker saved before the names were put right still loads: its names are today's with 36 and 37 swapped."""
    (former,) = FORMER_FEATURES
    differ = [i for i, (a, b) in enumerate(zip(FEATURES, former)) if a != b]
    assert differ == [36, 37]
    assert FEATURES[36:38] == ("best_knn_in_cat", "cat_sent_rank")
    assert former[36:38] == ("cat_sent_rank", "best_knn_in_cat")
    assert len(set(FEATURES)) == len(FEATURES)


def test_the_shipped_ranker_loads_with_todays_names() -> None:
    from medcoder.ranking.folders import ranker_folder
    from medcoder.ranking.model import RankerModel

    ranker = RankerModel.load(ranker_folder("icd10cm", "shipped"))
    assert ranker.features == FEATURES


def test_a_row_needs_every_name_once() -> None:
    full = {name: float(i) for i, name in enumerate(FEATURES)}
    assert feature_row(full) == [float(i) for i in range(len(FEATURES))]
    half = len(FEATURES) // 2
    assert feature_row(dict(list(full.items())[half:]), dict(list(full.items())[:half])) == feature_row(full)
    with pytest.raises(FeatureRowError, match="missing \\['sent_best_rank'\\]"):
        feature_row({k: v for k, v in full.items() if k != "sent_best_rank"})
    with pytest.raises(FeatureRowError, match="extra \\['cat_sent_rnak'\\]"):
        feature_row(full, {"cat_sent_rnak": 1.0})
    with pytest.raises(FeatureRowError, match="twice \\['direct'\\]"):
        feature_row(full, {"direct": 1.0})
