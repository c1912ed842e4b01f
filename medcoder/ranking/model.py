"""The ranker: gradient-boosted trees over candidate features, calibrated to a probability.

scikit-learn's HistGradientBoostingClassifier: it handles missing values natively (a verifier
score that was not computed, a memory view that did not fire), needs no feature scaling, and
trains on ~200k rows in seconds on 2 cores; LightGBM would add a compiled dependency for no
measurable gain at this size. Calibration is isotonic regression on out-of-fold predictions, and
the threshold is the one that maximised micro-F1 on those same out-of-fold predictions.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from medcoder.errors import MedcoderError
from medcoder.ranking.candidates import FEATURES, FORMER_FEATURES, note_kind
from medcoder.ranking.drug_features import DRUG_FEATURES

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
# what a ranker ranks -> the features it reads (a diagnosis candidate of a note, or an ATC code of a drug mention)
FEATURE_SETS: dict[str, tuple[str, ...]] = {"diagnosis": FEATURES, "drug": DRUG_FEATURES}
# the names an earlier version gave the same columns (a ranker saved with them reads today's rows unchanged)
FORMER_NAMES: dict[str, tuple[tuple[str, ...], ...]] = {"diagnosis": FORMER_FEATURES}
# kinds whose coder picks a ranker's own columns out of today's rows (`columns_of`), so a ranker learned before
# a feature was added still loads and ranks as it did
FEWER_FEATURES_READ = frozenset({"drug"})


def columns_of(features: Sequence[str], current: Sequence[str]) -> list[int] | None:
    """Where a ranker's features sit in today's rows; None when they are today's."""
    return None if tuple(features) == tuple(current) else [list(current).index(f) for f in features]


class RankerError(MedcoderError):
    """A ranker folder is missing, incomplete or was written by an incompatible version."""


@dataclass
class VerifierBlend:
    """How much the model's yes/no log-odds move a candidate: logistic regression over
    (ranker log-odds, verifier log-odds), fitted for one model file (its sha256)."""

    model_sha256: str
    coef: list[float]
    intercept: float
    top_k: int
    notes: int = 0
    auc_ranker: float = 0.0
    auc_blend: float = 0.0
    applied: bool = True  # False when the cross-validated blend did not beat the ranker alone

    def apply(self, p: float, log_odds: float) -> float:
        if math.isnan(log_odds) or not self.applied:
            return p
        p = min(max(p, 1e-4), 1 - 1e-4)
        z = self.intercept + self.coef[0] * math.log(p / (1 - p)) + self.coef[1] * log_odds
        return 1.0 / (1.0 + math.exp(-z))


@dataclass
class RankerModel:
    """Classifier + calibrator + the threshold that turns probabilities into codes."""

    system: str
    classifier: Any
    calibrator: Any
    threshold: float
    floor: float = 0.05  # suggestions kept for review down to this probability
    features: tuple[str, ...] = FEATURES
    meta: dict[str, Any] = field(default_factory=dict)
    blend: VerifierBlend | None = None

    def classifier_for(self, kind: str = "") -> Any:
        """The trees for this kind of note (a ranker learned from one kind has one set for all)."""
        if not isinstance(self.classifier, dict):
            return self.classifier
        return self.classifier.get(kind) or next(iter(self.classifier.values()))

    def raw(self, rows: Sequence[Sequence[float]]) -> np.ndarray:
        if not len(rows):
            return np.zeros(0)
        proba: np.ndarray = self.classifier_for(self.note_kind(rows)).predict_proba(np.asarray(rows, dtype=np.float64))
        return proba[:, 1]

    def probabilities(self, rows: Sequence[Sequence[float]]) -> np.ndarray:
        """Calibrated probability that each candidate is a code of the note."""
        return self.calibrate(self.raw(rows), self.note_kind(rows))

    def calibrate(self, raw: np.ndarray, kind: str = "") -> np.ndarray:
        if not len(raw):
            return raw
        cal = self.calibrator.get(kind) if isinstance(self.calibrator, dict) else self.calibrator
        if cal is None:  # a per-kind calibrator without this kind: the kinds' first
            cal = next(iter(self.calibrator.values()))
        calibrated: np.ndarray = np.clip(cal.predict(raw), 0.0, 1.0)
        return calibrated

    def note_kind(self, rows: Sequence[Sequence[float]]) -> str:
        """visit | case: which kind of note the candidate rows are of (by the `visit_note` feature)."""
        return note_kind(rows, self.features)

    def threshold_for(self, kind: str = "") -> float:
        """The acceptance threshold learned for this kind of note (the overall one when none was)."""
        return float((self.meta.get("thresholds") or {}).get(kind, self.threshold))

    def accept_threshold(self, kind: str = "") -> float:
        """The threshold a shown probability was accepted at: a visit note's final calibration's when the ranker
        learned one (`decisions.FinalCalibration`), else the ranker's own for the kind."""
        final = self.meta.get("final") if kind == "visit" else None
        return float(final["threshold"]) if final else self.threshold_for(kind)

    def contributions(self, row: Sequence[float], top: int = 6) -> list[dict[str, Any]]:
        """The features that moved this candidate's score most (by replacing each with its typical value)."""
        base = self.meta.get("feature_medians") or [0.0] * len(self.features)
        x = np.asarray([row] * (len(self.features) + 1), dtype=np.float64)
        for i in range(len(self.features)):
            x[i + 1, i] = base[i]
        p = self.classifier_for(self.note_kind([row])).predict_proba(x)[:, 1]
        deltas = [(self.features[i], float(row[i]), float(p[0] - p[i + 1])) for i in range(len(self.features))]
        deltas.sort(key=lambda d: -abs(d[2]))
        return [
            {"feature": n, "value": round(v, 4) if not math.isnan(v) else None, "effect": round(d, 4)}
            for n, v, d in deltas[:top]
        ]

    # -- the folder ------------------------------------------------------------------------
    def save(self, folder: str | Path, memory: Any = None) -> Path:
        import joblib
        import sklearn

        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        joblib.dump({"classifier": self.classifier, "calibrator": self.calibrator}, out / "ranker.joblib", compress=3)
        if memory is not None:
            joblib.dump(memory, out / "memory.joblib", compress=3)
        kind = next((k for k, f in FEATURE_SETS.items() if set(self.features) <= set(f)), "diagnosis")
        meta = {
            **self.meta,
            "learned_at": self.meta.get("learned_at") or datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "format": FORMAT_VERSION,
            "kind": kind,
            "system": self.system,
            "threshold": self.threshold,
            "floor": self.floor,
            "features": list(self.features),
            "sklearn": sklearn.__version__,
            "blend": self.blend.__dict__ if self.blend else None,
        }
        (out / "ranker.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
        return out

    @classmethod
    def load(cls, folder: str | Path) -> "RankerModel":
        import joblib
        import sklearn

        root = Path(folder)
        meta_path = root / "ranker.json"
        if not meta_path.is_file() or not (root / "ranker.joblib").is_file():
            raise RankerError(
                f"{root}: not a ranker folder (needs ranker.json and ranker.joblib); "
                f"build one with `medcoder learn DATASET --out {root}`"
            )
        try:
            meta = json.loads(meta_path.read_text())
        except ValueError as exc:
            raise RankerError(f"{meta_path}: unreadable ({exc}); rebuild it with `medcoder learn`") from exc
        kind = str(meta.get("kind", "diagnosis"))
        expected = FEATURE_SETS.get(kind, FEATURES)
        known = (expected, *FORMER_NAMES.get(kind, ()))
        saved = tuple(meta.get("features", ()))
        if kind in FEWER_FEATURES_READ and saved and set(saved) < set(expected):
            expected, known = saved, (saved,)  # learned before some of today's features: it reads its own columns
        if meta.get("format") != FORMAT_VERSION or saved not in known:
            raise RankerError(
                f"{root}: written by another medcoder version (format {meta.get('format')}, "
                f"{len(meta.get('features', ()))} features); rebuild it with `medcoder learn`"
            )
        if meta.get("sklearn") != sklearn.__version__:
            logger.warning(
                "%s was trained with scikit-learn %s, this is %s", root, meta.get("sklearn"), sklearn.__version__
            )
        parts = joblib.load(root / "ranker.joblib")
        blend = VerifierBlend(**meta["blend"]) if meta.get("blend") else None
        return cls(
            meta["system"],
            parts["classifier"],
            parts["calibrator"],
            float(meta["threshold"]),
            float(meta.get("floor", 0.05)),
            expected,
            meta,
            blend,
        )


def load_memory(folder: str | Path) -> Any:
    """The coded-notes memory saved beside a ranker (None when the ranker was learned without one)."""
    import joblib

    path = Path(folder) / "memory.joblib"
    return joblib.load(path) if path.is_file() else None


def new_classifier(seed: int = 0) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(
        learning_rate=0.05,
        max_iter=400,
        max_leaf_nodes=31,
        min_samples_leaf=40,
        l2_regularization=0.1,
        early_stopping=False,
        random_state=seed,
    )


def new_drug_classifier(seed: int = 0) -> Any:
    """The drug ranker's trees: fewer rows and features than the diagnosis ranker's, so fewer, larger steps."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(
        learning_rate=0.1,
        max_iter=150,
        max_leaf_nodes=31,
        min_samples_leaf=20,
        l2_regularization=0.1,
        early_stopping=False,
        random_state=seed,
    )


def new_calibrator() -> Any:
    from sklearn.isotonic import IsotonicRegression

    return IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0)


def expected_calibration_error(p: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
    """Mean |accuracy - confidence| over equal-width probability bins, weighted by bin size."""
    if not len(p):
        return 0.0
    edges = np.linspace(0, 1, bins + 1)
    idx = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        m = idx == b
        if m.any():
            total += m.sum() / len(p) * abs(y[m].mean() - p[m].mean())
    return float(total)
