"""Candidates from every source for one note, each with its provenance, turned into ranker features.

Sources: hybrid retrieval per sentence (what extraction may miss), hybrid retrieval per
extracted mention, the coded-notes memory (kNN and linear views) and the ontology around the
hits (a non-billable hit proposes its billable descendants). Every candidate is a billable code,
so whatever the ranker puts first is a valid code to report.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from medcoder import cues
from medcoder.cues import cue_pattern
from medcoder.knowledge.abbreviations import expand
from medcoder.knowledge.lexical import SearchHit, tokenize
from medcoder.knowledge.ontology import CodeSystem
from medcoder.knowledge.retrieval import RANKERS
from medcoder.ranking.memory import MemoryHit, MemoryView
from medcoder.ranking.metrics import category
from medcoder.visit import guidelines as gl
from medcoder.visit.features import VISIT_FEATURES, visit_features
from medcoder.visit.layout import read_layout
from medcoder.visit.spans import SearchSpan, Sighting, mention_spans, note_spans, problem_spans, sentence_spans

# the spans a note is searched by and the sightings in them live in `visit.spans`; the ranker's callers find them
# here too
__all__ = [
    "FEATURES",
    "FORMER_FEATURES",
    "MISSING_RANK",
    "NO_MARGIN",
    "FeatureRowError",
    "NoteCandidates",
    "SearchSpan",
    "Sighting",
    "billable_targets",
    "collect",
    "feature_row",
    "mention_spans",
    "note_kind",
    "note_spans",
    "problem_spans",
    "sentence_spans",
]

MISSING_RANK = 200.0


@dataclass
class _Acc:
    """What the sources said about one candidate code while the note's signals are collected."""

    evidence: list[Sighting] = field(default_factory=list)
    sent_ranks: list[int] = field(default_factory=list)
    sent_scores: list[float] = field(default_factory=list)
    label_in_sentence: float = 0.0  # best share of the label's words found in one sentence that found it
    sent_cues: list[int] = field(default_factory=lambda: [0, 0, 0])  # sentences with negation/family/uncertainty
    ment_ranks: list[int] = field(default_factory=list)
    ment_scores: list[float] = field(default_factory=list)
    ment_absent: int = 0  # mentions that found it but are negated, family history or uncertain
    ranker_best: dict[str, int] = field(default_factory=dict)
    direct: int = 0  # found as itself (not only through a non-billable ancestor)
    via_parent: int = 0
    parts: dict[str, int] = field(default_factory=dict)  # visit part -> spans there that found it
    statuses: dict[str, int] = field(default_factory=dict)  # finding status -> spans stating it so
    prob_ranks: list[int] = field(default_factory=list)
    prob_scores: list[float] = field(default_factory=list)
    label_in_problem: float = 0.0
    sides: set[str] = field(default_factory=set)  # the laterality of the spans that found it


def billable_targets(onto: CodeSystem, code: str, limit: int = 12) -> list[str]:
    """The billable codes a hit stands for: itself, or a few billable descendants of a category."""
    node = onto.node(code)
    if node.billable:
        return [code]
    if node.kind in ("chapter", "block", "root") or node.depth <= 1:
        return []
    # a 7th character is the encounter, not the condition: through a category only the initial encounter
    # (…A) is proposed, and the guidelines' `specify` moves it to D or S when the text says so
    leaves = [n for n in onto.descendants(code) if n.billable and (n.kind != "extension" or n.code.endswith("A"))]
    if len(leaves) <= limit:
        return [n.code for n in leaves]
    preferred = [n for n in leaves if "unspecified" in n.label.lower()]
    return [n.code for n in sorted(preferred or leaves, key=lambda n: (len(n.code), n.code))[:limit]]


def _rank_of(source: str) -> tuple[str, int]:
    name, _, rank = source.partition("#")
    return name, int(rank) if rank.isdigit() else int(MISSING_RANK)


@dataclass
class NoteCandidates:
    """All candidates of one note with their features, ready for the ranker."""

    codes: list[str]
    features: list[list[float]]
    evidence: dict[str, list[Sighting]]
    sources: dict[str, list[str]]  # code -> which sources proposed it


# a candidate row's columns in the order the shipped trees learned them: `feature_row` puts each value in the column
# of its name, so a name is put right where it stands and never moved (moving one moves its value)
FEATURES: tuple[str, ...] = (
    "sent_best_rank",
    "sent_max_score",
    "sent_sum_score",
    "sent_n",
    "sent_share",
    "ment_best_rank",
    "ment_max_score",
    "ment_n",
    "ment_absent",
    "has_mentions",
    "lexical_best",
    "dense_best",
    "index_best",
    "direct",
    "via_parent",
    "knn_score",
    "knn_share",
    "knn_rank",
    "svm_margin",
    "svm_rank",
    "mem_freq",
    "mem_cat_freq",
    "mem_seen",
    "note_top_sim",
    "note_top5_sim",
    "cat_sent_sum",
    "cat_knn_sum",
    "cat_candidates",
    "code_len",
    "depth",
    "unspecified",
    "seventh",
    "n_sentences",
    "label_in_note",
    "label_in_sentence",
    "cat_knn_rank",  # the code's rank by kNN share among the note's candidates of its category
    "best_knn_in_cat",  # the best kNN share among them
    "cat_sent_rank",  # the code's rank by sentence score among them
    "best_sent_in_cat",  # the best sentence score among them
    "code_given_cat",
    "centroid_sim",
    "centroid_rank",
    "cat_centroid_max",
    "cat_svm_max",
    "sent_negated_share",
    "sent_family_share",
    "sent_uncertain_share",
)
FEATURES = FEATURES + VISIT_FEATURES
_FEATURE_NAMES = frozenset(FEATURES)
# the names a diagnosis ranker learned before issue 37 gives its columns: 36 and 37 the other way round (the row was
# built by position and "cat_sent_rank" held the best kNN share of the category, "best_knn_in_cat" the code's rank by
# sentence score); the columns are today's, so such a ranker reads today's rows unchanged
_RENAMED = {"best_knn_in_cat": "cat_sent_rank", "cat_sent_rank": "best_knn_in_cat"}
FORMER_FEATURES: tuple[tuple[str, ...], ...] = (tuple(_RENAMED.get(n, n) for n in FEATURES),)
# sentence-wide assertion cues (the extractor's cues are anchored just before a mention; a sentence found by
# retrieval has no mention position, so here any cue in the sentence counts and the ranker learns the weight)
_NEGATION = cue_pattern(cues.NEGATION, cues.NORMAL)
_FAMILY = cue_pattern(cues.FAMILY)
_UNCERTAIN = cue_pattern(cues.UNCERTAIN)
NO_MARGIN = -5.0  # the linear view did not score this code


class FeatureRowError(ValueError):
    """A candidate's named feature values are not exactly the feature names (one missing, extra or given twice)."""


def feature_row(*groups: Mapping[str, float], names: Sequence[str] = FEATURES) -> list[float]:
    """The one place a candidate's named values become its row: `names` order, the order the trees learned."""
    values: dict[str, float] = {}
    for group in groups:
        values.update(group)
    expected = _FEATURE_NAMES if names is FEATURES else frozenset(names)
    if values.keys() != expected or len(values) != sum(len(g) for g in groups):
        given = [n for g in groups for n in g]
        twice = sorted({n for n in given if given.count(n) > 1})
        missing = [n for n in names if n not in values]
        extra = sorted(set(values) - expected)
        raise FeatureRowError(
            f"candidate features do not match the names: missing {missing}, extra {extra}, twice {twice}"
        )
    return [values[n] for n in names]


_LABEL_WORDS: dict[tuple[str, str, bool], frozenset[str]] = {}  # (system, code, status) -> words, per process


def _label_words(onto: CodeSystem, code: str, status: bool = False) -> frozenset[str]:
    """The label's search words, or (`status`) the content words `finding_status` looks for in a sentence."""
    key = (onto.system, code, status)
    if key not in _LABEL_WORDS:
        label = onto.label(code)
        _LABEL_WORDS[key] = frozenset(gl.sentence_words(label) if status else tokenize(label))
    return _LABEL_WORDS[key]


def _share(words: frozenset[str], text_words: set[str]) -> float:
    return len(words & text_words) / len(words) if words else 0.0


def _rank_within(values: dict[str, float], groups: dict[str, list[str]], code: str, key: str) -> tuple[int, float]:
    """The code's rank by `values` among the candidates of its group, and the group's best value."""
    members = groups.get(key, [])
    own = values.get(code, 0.0)
    best = max((values.get(c, 0.0) for c in members), default=0.0)
    return 1 + sum(1 for c in members if values.get(c, 0.0) > own), best


def collect(
    onto: CodeSystem,
    spans: Sequence[SearchSpan],
    hits: Sequence[Sequence[SearchHit]],
    memory: MemoryView | None,
    mem_freq: Any = None,
    expand_limit: int = 12,
    note: str = "",
) -> NoteCandidates:
    """Merge every source's findings for one note into one row of features per billable candidate.

    `hits[i]` are the fused retrieval hits for `spans[i]`; `memory` is the memory's view of the
    note (or None: no memory); `mem_freq(code)` gives the memory's log frequencies.
    """
    sightings = _Sightings(onto, note, expand_limit)
    for span, span_hits in zip(spans, hits):
        sightings.add(span, span_hits)
    accs = sightings.accs
    _add_memory(onto, accs, memory.hits if memory is not None else {})
    scope = _Scope.of(onto, spans, note, memory, mem_freq, accs, sightings.cat_plan)
    codes = list(accs)
    rows = [feature_row(*_features(code, accs[code], scope)) for code in codes]
    sources = {code: _proposed_by(accs[code], scope.mem_hits.get(code)) for code in codes}
    return NoteCandidates(codes, rows, {c: accs[c].evidence for c in codes}, sources)


# -- phase 1: the spans' sightings of each billable code ------------------------------------------------------------
@dataclass(slots=True)
class _Reading:
    """How one searched span reads, worked out once for all its hits."""

    words: set[str]
    cues: list[bool]  # a negation, family or uncertainty cue anywhere in it
    reader: gl.SentenceReader
    side: str


@dataclass
class _Sightings:
    """Every retrieval hit of the note's spans, accumulated per billable code in the order first found."""

    onto: CodeSystem
    note: str
    expand_limit: int
    accs: dict[str, _Acc] = field(default_factory=dict)
    cat_plan: dict[str, int] = field(default_factory=dict)  # category -> the plan's present sightings of its codes
    targets: dict[str, list[str]] = field(default_factory=dict)  # hit -> the billable codes it stands for

    def add(self, span: SearchSpan, span_hits: Sequence[SearchHit]) -> None:
        read = expand(span.read or span.text)  # "CHF" is read as "CHF (congestive heart failure)"
        said = span.read or span.text
        flags = [bool(rx.search(said)) for rx in (_NEGATION, _FAMILY, _UNCERTAIN)]
        reading = _Reading(set(tokenize(read)), flags, gl.SentenceReader(read), gl.side_of(span.text))
        for rank, hit in enumerate(span_hits, start=1):
            if hit.code not in self.targets:
                self.targets[hit.code] = billable_targets(self.onto, hit.code, self.expand_limit)
            for target in self.targets[hit.code]:
                self._sight(self.accs.setdefault(target, _Acc()), target, span, reading, rank, hit)

    def _sight(self, acc: _Acc, target: str, span: SearchSpan, reading: _Reading, rank: int, hit: SearchHit) -> None:
        """What one hit of one span adds to a billable code it stands for."""
        direct = target == hit.code
        acc.direct += direct
        acc.via_parent += not direct
        acc.label_in_sentence = max(acc.label_in_sentence, _share(_label_words(self.onto, target), reading.words))
        status = self._place(acc, target, span, reading) if span.source in ("sentence", "problem") else ""
        if span.source == "sentence":
            acc.sent_cues = [a + b for a, b in zip(acc.sent_cues, reading.cues)]
            acc.sent_ranks.append(rank)
            acc.sent_scores.append(hit.score)
        elif span.source == "problem":
            acc.prob_ranks.append(rank)
            acc.prob_scores.append(hit.score)
            acc.label_in_problem = max(acc.label_in_problem, _share(_label_words(self.onto, target), reading.words))
        elif span.assertion == "present":
            acc.ment_ranks.append(rank)
            acc.ment_scores.append(hit.score)
        else:
            acc.ment_absent += 1
        for src in hit.sources:
            name, r = _rank_of(src)
            acc.ranker_best[name] = min(acc.ranker_best.get(name, int(MISSING_RANK)), r)
        if len(acc.evidence) < 8:
            # a mention is searched by its words; its evidence is the note's own text at its offsets
            quoted = self.note[span.start : span.end] if self.note and span.source == "mention" else span.text
            via = "" if direct else hit.code
            acc.evidence.append(
                Sighting(
                    span.source,
                    quoted,
                    span.start,
                    span.end,
                    rank,
                    round(hit.score, 4),
                    via,
                    span.assertion,
                    span.section,
                    status,
                )  # fmt: skip
            )

    def _place(self, acc: _Acc, target: str, span: SearchSpan, reading: _Reading) -> str:
        """Where a sentence or problem that found the code sits, and how it states the code's finding (returned)."""
        status = reading.reader.status(_label_words(self.onto, target, status=True))
        acc.statuses[status] = acc.statuses.get(status, 0) + 1
        part = span.section or "other"
        acc.parts[part] = acc.parts.get(part, 0) + 1
        if part == "plan" and status == "present":
            self.cat_plan[category(target)] = self.cat_plan.get(category(target), 0) + 1
        if reading.side:
            acc.sides.add(reading.side)
        return status


# -- phase 2: the memory's codes and the note-wide totals -----------------------------------------------------------
def _add_memory(onto: CodeSystem, accs: dict[str, _Acc], mem_hits: dict[str, MemoryHit]) -> None:
    """The memory's billable codes that no span found join the candidates, after those the spans found."""
    for code in mem_hits:
        if code in onto and onto.node(code).billable:
            accs.setdefault(code, _Acc())


@dataclass
class _Categories:
    """Totals per category (`metrics.category`) over the note's candidates, and the values each is ranked by there."""

    sent: dict[str, float] = field(default_factory=dict)  # sentence and mention scores of its candidates
    knn: dict[str, float] = field(default_factory=dict)  # kNN shares of the memory's codes in it
    count: dict[str, int] = field(default_factory=dict)
    members: dict[str, list[str]] = field(default_factory=dict)
    centroid: dict[str, float] = field(default_factory=dict)  # the best centroid similarity in it
    svm: dict[str, float] = field(default_factory=dict)  # the best linear margin in it
    knn_of: dict[str, float] = field(default_factory=dict)  # code -> kNN share
    sent_of: dict[str, float] = field(default_factory=dict)  # code -> summed sentence scores

    @classmethod
    def of(cls, accs: dict[str, _Acc], mem_hits: dict[str, MemoryHit], centroid: dict[str, float]) -> "_Categories":
        cats = cls()
        for code, acc in accs.items():
            k = category(code)
            cats.sent[k] = cats.sent.get(k, 0.0) + sum(acc.sent_scores) + sum(acc.ment_scores)
            cats.count[k] = cats.count.get(k, 0) + 1
            cats.members.setdefault(k, []).append(code)
            cats.sent_of[code] = sum(acc.sent_scores)
        for code, h in mem_hits.items():
            k = category(code)
            cats.knn[k] = cats.knn.get(k, 0.0) + h.knn_share
            cats.knn_of[code] = h.knn_share
            if not math.isnan(h.svm_margin):
                cats.svm[k] = max(cats.svm.get(k, NO_MARGIN), h.svm_margin)
        for code, v in centroid.items():
            cats.centroid[category(code)] = max(cats.centroid.get(category(code), 0.0), v)
        return cats


@dataclass
class _Scope:
    """What a candidate's features read beyond its own sightings: the note, the memory's view and the totals."""

    onto: CodeSystem
    n_sent: int
    has_mentions: bool
    note_words: set[str]
    visit: bool
    cat_plan: dict[str, int]
    memory: MemoryView | None
    mem_hits: dict[str, MemoryHit]
    mem_freq: Any
    cats: _Categories
    centroid_order: dict[str, int]  # code -> its rank by centroid similarity

    @classmethod
    def of(
        cls,
        onto: CodeSystem,
        spans: Sequence[SearchSpan],
        note: str,
        memory: MemoryView | None,
        mem_freq: Any,
        accs: dict[str, _Acc],
        cat_plan: dict[str, int],
    ) -> "_Scope":
        note_words = set(tokenize(expand(note))) if note else {w for s in spans for w in tokenize(expand(s.text))}
        mem_hits = memory.hits if memory is not None else {}
        centroid = memory.centroid if memory is not None else {}
        return cls(
            onto,
            sum(1 for s in spans if s.source == "sentence"),
            any(s.source == "mention" for s in spans),
            note_words,
            read_layout(note).is_visit if note else False,
            cat_plan,
            memory,
            mem_hits,
            mem_freq,
            _Categories.of(accs, mem_hits, centroid),
            {c: i for i, c in enumerate(sorted(centroid, key=lambda c: -centroid[c]), start=1)},
        )


# -- phase 3: each candidate's named features -----------------------------------------------------------------------
def _features(code: str, acc: _Acc, scope: _Scope) -> list[dict[str, float]]:
    """The candidate's feature values by name, in groups (`feature_row` checks that they name FEATURES once each)."""
    return [
        _found_features(acc, scope),
        _memory_features(code, scope.mem_hits.get(code), scope),
        _code_features(code, scope),
        _category_features(code, scope.cats),
        visit_features(scope.onto, code, acc, scope.visit, scope.cat_plan.get(category(code), 0), MISSING_RANK),
    ]


def _found_features(acc: _Acc, scope: _Scope) -> dict[str, float]:
    """How the note's sentences and mentions found the code."""
    n_sent = scope.n_sent
    found = len(acc.sent_ranks)
    return {
        "sent_best_rank": min(acc.sent_ranks, default=MISSING_RANK),
        "sent_max_score": max(acc.sent_scores, default=0.0),
        "sent_sum_score": sum(acc.sent_scores),
        "sent_n": found,
        "sent_share": found / n_sent if n_sent else 0.0,
        "ment_best_rank": min(acc.ment_ranks, default=MISSING_RANK),
        "ment_max_score": max(acc.ment_scores, default=0.0),
        "ment_n": len(acc.ment_ranks),
        "ment_absent": acc.ment_absent,
        "has_mentions": float(scope.has_mentions),
        **{f"{name}_best": acc.ranker_best.get(name, MISSING_RANK) for name in RANKERS},
        "direct": acc.direct,
        "via_parent": acc.via_parent,
        "label_in_sentence": acc.label_in_sentence,
        **{
            f"sent_{cue}_share": (n / found) if found else -1.0
            for cue, n in zip(("negated", "family", "uncertain"), acc.sent_cues)
        },
    }


def _memory_features(code: str, mh: MemoryHit | None, scope: _Scope) -> dict[str, float]:
    """What the coded-notes memory says of the code and of the note."""
    freq, cat_freq = scope.mem_freq(code) if scope.mem_freq else (0.0, 0.0)
    memory = scope.memory
    centroid = memory.centroid if memory is not None else {}
    return {
        "knn_score": mh.knn_score if mh else 0.0,
        "knn_share": mh.knn_share if mh else 0.0,
        "knn_rank": (mh.knn_rank or MISSING_RANK) if mh else MISSING_RANK,
        "svm_margin": mh.svm_margin if mh and not math.isnan(mh.svm_margin) else NO_MARGIN,
        "svm_rank": (mh.svm_rank or MISSING_RANK) if mh else MISSING_RANK,
        "mem_freq": freq,
        "mem_cat_freq": cat_freq,
        "mem_seen": float(freq > 0),
        "note_top_sim": memory.top_similarity if memory else 0.0,
        "note_top5_sim": memory.mean_top5_similarity if memory else 0.0,
        "code_given_cat": (freq - cat_freq) if freq > 0 else -5.0,
        "centroid_sim": centroid.get(code, 0.0),
        "centroid_rank": float(scope.centroid_order.get(code, MISSING_RANK)),
    }


def _code_features(code: str, scope: _Scope) -> dict[str, float]:
    """The code itself, and how much of its label the note says."""
    node = scope.onto.node(code)
    return {
        "code_len": len(code.replace(".", "")),
        "depth": node.depth,
        "unspecified": float("unspecified" in node.label.lower()),
        "seventh": float(node.kind == "extension"),
        "n_sentences": scope.n_sent,
        "label_in_note": _share(_label_words(scope.onto, code), scope.note_words),
    }


def _category_features(code: str, cats: _Categories) -> dict[str, float]:
    """The code among the note's candidates of its category."""
    k = category(code)
    knn_rank, best_knn = _rank_within(cats.knn_of, cats.members, code, k)
    sent_rank, best_sent = _rank_within(cats.sent_of, cats.members, code, k)
    return {
        "cat_sent_sum": cats.sent.get(k, 0.0),
        "cat_knn_sum": cats.knn.get(k, 0.0),
        "cat_candidates": cats.count.get(k, 0),
        "cat_knn_rank": knn_rank,
        "best_knn_in_cat": best_knn,
        "cat_sent_rank": sent_rank,
        "best_sent_in_cat": best_sent,
        "cat_centroid_max": cats.centroid.get(k, 0.0),
        "cat_svm_max": cats.svm.get(k, NO_MARGIN),
    }


def _proposed_by(acc: _Acc, mh: MemoryHit | None) -> list[str]:
    """Which sources proposed the candidate."""
    found = (
        ("sentence", acc.sent_ranks),
        ("problem", acc.prob_ranks),
        ("mention", acc.ment_ranks),
        ("memory-knn", mh and mh.knn_rank),
        ("memory-linear", mh and mh.svm_rank),
        ("ontology", acc.via_parent),
    )
    return [name for name, present in found if present]


def note_kind(rows: Sequence[Sequence[float]], features: Sequence[str] = FEATURES) -> str:
    """visit | case: which kind of note a note's candidate rows are of (by `visit_note`); "" when the feature
    set has no such feature or there are no rows."""
    if "visit_note" not in features or not len(rows):
        return ""
    return "visit" if rows[0][list(features).index("visit_note")] > 0.5 else "case"
