"""Cross-validation folds by encounter: a visit written as a note and as its conversation share a fold, so the
out-of-fold figures never score a note with a memory or trees that learned its twin."""

from __future__ import annotations

import numpy as np

from medcoder.ranking.learn import folds_of


def test_notes_of_one_encounter_share_a_fold_and_every_fold_is_used() -> None:
    ids = [f"D2N{i:03d}" for i in range(30)] * 2  # each visit as written and as its conversation
    folds = folds_of(len(ids), 5, 0, ids)
    assert all(folds[i] == folds[i + 30] for i in range(30))
    assert sorted(set(folds.tolist())) == [0, 1, 2, 3, 4]


def test_distinct_ids_give_the_folds_of_ungrouped_notes() -> None:
    """The shipped rankers' cross-validated figures stay reproducible: no group, no change."""
    ids = [f"n{i}" for i in range(97)]
    assert np.array_equal(folds_of(97, 5, 3, ids), folds_of(97, 5, 3))
