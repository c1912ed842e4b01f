"""A learned reader of what part of a visit a sentence is, for the notes whose headers do not say.

Two small linear models over words, shipped as arrays (`data/visit_layout.npz`, no pickle) with their measured
accuracy (`data/visit_layout.card.json`):
- the **sentence model** gives each sentence a probability per visit part from its words, its first words, its
  cue phrases ("I think", "on exam", "we will"), its length, its place in the note and its neighbours' words;
  a Viterbi pass over the note then prefers the order visits are written in (learned transitions), within
  what each sentence's header allows;
- the **note model** tells a visit note (what a clinician writes after a visit) from a case report, from the
  note's words alone, so a one-paragraph dictation is a visit and a published case is not.
Learned by `medcoder.visit.learn` from the headered notes themselves (their headers label the sentences).
"""

from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

from medcoder.errors import MedcoderError
from medcoder.visit.parts import PARTS, header_parts
from medcoder.visit.sections import find_headers

logger = logging.getLogger(__name__)

DATA = Path(__file__).resolve().parent / "data"
MODEL_FILE = DATA / "visit_layout.npz"
CARD_FILE = DATA / "visit_layout.card.json"

_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?|\d+")
_CUES = {
    "cue_think": re.compile(r"\b(i think|i believe|my impression|consistent with|suspect|likely)\b"),
    "cue_will": re.compile(r"\b(we will|we'll|i will|i'll|will (?:start|continue|order|refer|follow|obtain|see))\b"),
    "cue_plan": re.compile(r"\b(continue|recommend\w*|prescrib\w*|order\w*|refer\w*|follow[- ]up|return|schedul\w*)\b"),
    "cue_exam": re.compile(r"\b(on exam|examination|exam of|auscultation|palpation|tender\w*|range of motion)\b"),
    "cue_result": re.compile(r"\b(x-?rays?|mri|ct|ultrasound|echocardiogram|a1c|lab\w*|reveal\w*|shows?|showed)\b"),
    "cue_denies": re.compile(r"\b(denies|reports|endorses|complains)\b"),
    "cue_history": re.compile(r"\b(history of|diagnosed|surgery|smok\w*|alcohol|lives|married|works)\b"),
    "cue_med": re.compile(r"\b(\d+ ?mg|mcg|tablets?|daily|twice|nightly)\b"),
    "cue_allergy": re.compile(r"\b(allerg\w*|nkda)\b"),
    "cue_presents": re.compile(r"\b(presents?|year-old|years? old)\b"),
}


def _words(text: str) -> list[str]:
    return [("0" if w.isdigit() else w) for w in _WORD.findall(text.lower())]


def sentence_features(texts: Sequence[str], i: int) -> list[str]:
    """The features of the i-th of a note's content sentences (its header lines left out)."""
    text = texts[i]
    words = _words(text)
    n = len(texts)
    feats = [f"w:{w}" for w in set(words)]
    feats += [f"b:{a}_{b}" for a, b in set(zip(words, words[1:]))]
    feats += [f"f:{w}" for w in words[:1]] + [f"f2:{'_'.join(words[:2])}"]
    low = text.lower()
    feats += [name for name, rx in _CUES.items() if rx.search(low)]
    size = len(words)
    feats.append(
        "len:" + ("1" if size <= 1 else "2-3" if size <= 3 else "4-6" if size <= 6 else "7-15" if size <= 15 else "16+")
    )
    rel = i / max(1, n - 1)
    feats.append(f"pos:{min(9, int(rel * 10))}")
    feats.append(f"pos3:{min(2, int(rel * 3))}")
    if i == 0:
        feats.append("first")
    if i == n - 1:
        feats.append("last")
    if re.match(r"^\s*(?:[-*•#]|\d{1,2}[.)])", text):
        feats.append("bullet")
    lead = re.match(r"^\s*([A-Za-z][A-Za-z ]{2,30}):", text)
    if lead:
        feats.append(f"lead:{lead.group(1).lower()}")
    if not re.search(r"\b(is|are|was|were|has|have|had|will|does|did|reports?|states?|shows?)\b", low):
        feats.append("noverb")
    for prefix, j in (("p", i - 1), ("n", i + 1)):
        if 0 <= j < n:
            feats += [f"{prefix}:{w}" for w in set(_words(texts[j]))]
        else:
            feats.append(f"{prefix}:<edge>")
    return feats


def note_features(text: str) -> list[str]:
    """The note model's features: the note's words and word pairs, and the visit parts its headers name."""
    words = _words(text)
    heads = {name for _, _, name, _ in find_headers(text)}
    return (
        [f"w:{w}" for w in set(words)]
        + [f"b:{a}_{b}" for a, b in set(zip(words, words[1:]))]
        + [f"h:{p}" for name in heads for p in header_parts(name) if len(header_parts(name)) <= 2]
    )


@dataclass(frozen=True)
class _Linear:
    """A multinomial linear model over named binary features."""

    vocabulary: dict[str, int]
    coef: np.ndarray  # (features, classes)
    intercept: np.ndarray  # (classes,)
    idf: np.ndarray | None = None  # with it, features are weighted by idf and the row L2-normalised (a note
    # model that reads a five-line note and a five-page one alike)

    def log_proba(self, feature_lists: Sequence[Sequence[str]]) -> np.ndarray:
        out = np.tile(self.intercept, (len(feature_lists), 1)).astype(np.float64)
        for row, feats in enumerate(feature_lists):
            idx = sorted({self.vocabulary[f] for f in feats if f in self.vocabulary})
            if idx and self.idf is not None:
                weights = self.idf[idx]
                out[row] += (weights / np.linalg.norm(weights)) @ self.coef[idx]
            elif idx:
                out[row] += self.coef[idx].sum(axis=0)
        if out.shape[1] == 1:  # a binary model: one column of log-odds for the second class
            out = np.hstack([np.zeros_like(out), out])
        out -= out.max(axis=1, keepdims=True)
        return out - np.log(np.exp(out).sum(axis=1, keepdims=True))


@dataclass(frozen=True)
class LayoutModel:
    """The sentence model, the learned transitions between parts, and the note model."""

    parts: tuple[str, ...]
    sentences: _Linear
    transitions: np.ndarray  # (parts + 1 start row, parts): log P(next part | part)
    notes: _Linear  # classes: case, visit

    def sentence_log_proba(self, texts: Sequence[str]) -> np.ndarray:
        """log P(part | sentence) for each of a note's content sentences, columns in `parts` order."""
        return self.sentences.log_proba([sentence_features(texts, i) for i in range(len(texts))])

    def decode(self, texts: Sequence[str], allowed: Sequence[Sequence[str]]) -> list[tuple[str, float]]:
        """The likeliest sequence of parts (each within what its header allows) and each sentence's own probability
        of its part: a Viterbi pass over the sentence model's probabilities and the learned transitions."""
        if not texts:
            return []
        emit = self.sentence_log_proba(texts)
        index = {p: k for k, p in enumerate(self.parts)}
        masks = []
        for ok in allowed:
            mask = np.full(len(self.parts), -np.inf)
            mask[[index[p] for p in ok if p in index]] = 0.0
            masks.append(mask)
        score = self.transitions[-1] + emit[0] + masks[0]
        back = []
        for t in range(1, len(texts)):
            cand = score[:, None] + self.transitions[:-1]
            back.append(cand.argmax(axis=0))
            score = cand.max(axis=0) + emit[t] + masks[t]
        path = [int(score.argmax())]
        for b in reversed(back):
            path.append(int(b[path[-1]]))
        path.reverse()
        return [(self.parts[k], float(math.exp(emit[t, k]))) for t, k in enumerate(path)]

    def visit_probability(self, text: str) -> float:
        """P(visit note) against a case report, from the note's words."""
        return float(math.exp(self.notes.log_proba([note_features(text)])[0, 1]))

    def save(self, path: Path = MODEL_FILE) -> None:
        np.savez_compressed(
            path,
            parts=np.array(self.parts),
            s_vocab=np.array(sorted(self.sentences.vocabulary, key=self.sentences.vocabulary.__getitem__)),
            s_coef=self.sentences.coef.astype(np.float32),
            s_intercept=self.sentences.intercept.astype(np.float32),
            transitions=self.transitions.astype(np.float32),
            n_vocab=np.array(sorted(self.notes.vocabulary, key=self.notes.vocabulary.__getitem__)),
            n_coef=self.notes.coef.astype(np.float32),
            n_intercept=self.notes.intercept.astype(np.float32),
            n_idf=(self.notes.idf if self.notes.idf is not None else np.zeros(0)).astype(np.float32),
        )

    @classmethod
    def load(cls, path: Path = MODEL_FILE) -> "LayoutModel":
        try:
            with np.load(path, allow_pickle=False) as z:
                return cls(
                    tuple(str(p) for p in z["parts"]),
                    _Linear({str(w): i for i, w in enumerate(z["s_vocab"])}, z["s_coef"], z["s_intercept"]),
                    z["transitions"],
                    _Linear(
                        {str(w): i for i, w in enumerate(z["n_vocab"])},
                        z["n_coef"],
                        z["n_intercept"],
                        z["n_idf"] if len(z["n_idf"]) else None,
                    ),
                )
        except (OSError, KeyError, ValueError) as exc:
            raise MedcoderError(f"the visit layout model {path} cannot be read ({exc}): reinstall medcoder") from exc


@lru_cache(maxsize=1)
def shipped_model() -> LayoutModel:
    """The layout model that ships in the package."""
    model = LayoutModel.load()
    if model.parts != PARTS:
        raise MedcoderError(f"the visit layout model's parts {model.parts} are not medcoder's {PARTS}")
    return model


def card() -> dict[str, object]:
    """The shipped model's card: what it learned from and its measured accuracy per part."""
    return dict(json.loads(CARD_FILE.read_text())) if CARD_FILE.is_file() else {}
