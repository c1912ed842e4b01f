"""Candidates from every source for one note, each with its provenance, turned into ranker features.

Sources: hybrid retrieval per sentence (what extraction may miss), hybrid retrieval per
extracted mention, the coded-notes memory (kNN and linear views) and the ontology around the
hits (a non-billable hit proposes its billable descendants). Every candidate is a billable code,
so whatever the ranker puts first is a valid code to report.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from medcoder import cues
from medcoder.cues import cue_pattern
from medcoder.knowledge import guidelines as gl
from medcoder.knowledge.abbreviations import abbreviations, expand
from medcoder.knowledge.lexical import SearchHit, tokenize
from medcoder.knowledge.ontology import CodeSystem
from medcoder.knowledge.retrieval import RANKERS
from medcoder.notesections import header_end
from medcoder.notetext import same_length_text
from medcoder.ranking.memory import MemoryView
from medcoder.ranking.metrics import category
from medcoder.records import Entity, Span
from medcoder.visit.layout import VisitLayout, read_layout
from medcoder.visit.parts import RANKER_PARTS, coarse

MISSING_RANK = 200.0


@dataclass(slots=True)
class Sighting:
    """Where a candidate was found: a sentence or a mention, its character span and the hit's rank (kept as a
    dataclass: a note makes thousands; `span()` is the evidence a proposal carries)."""

    source: str  # sentence | mention
    text: str
    start: int
    end: int
    rank: int
    score: float
    via: str = ""  # the non-billable hit this billable code descends from, if any
    assertion: str = "present"
    section: str = ""  # the visit part it sits in (cc, hpi, exam, plan ...)
    status: str = ""  # how its sentence states the code's finding (guidelines.finding_status)

    def span(self) -> Span:
        return Span(start=self.start, end=self.end, text=self.text)


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


@dataclass(slots=True)
class SearchSpan:
    """A piece of the note that was searched: a sentence or a mention, with offsets into the note."""

    text: str
    start: int
    end: int
    source: str = "sentence"
    assertion: str = "present"
    section: str = ""
    read: str = ""  # the text to read when it is not the quoted text (a question the patient answered "no")


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
    "cat_knn_rank",
    "cat_sent_rank",
    "best_knn_in_cat",
    "best_sent_in_cat",
    "code_given_cat",
    "centroid_sim",
    "centroid_rank",
    "cat_centroid_max",
    "cat_svm_max",
    "sent_negated_share",
    "sent_family_share",
    "sent_uncertain_share",
)
# where in a visit note the evidence sits, how it is stated, and what the outpatient guidelines say of the code
VISIT_FEATURES = (
    *(f"sec_{p}" for p in RANKER_PARTS),
    "only_findings",
    "prob_best_rank",
    "prob_max_score",
    "prob_n",
    "label_in_problem",
    *(f"st_{s}" for s in gl.STATUSES),
    "symptom",
    "unspecified_label",
    "side_match",
    "visit_note",
    "cat_plan_hits",
)
FEATURES = FEATURES + VISIT_FEATURES
_FINDINGS_ONLY = {"ros", "exam", "results"}
# sentence-wide assertion cues (the extractor's cues are anchored just before a mention; a sentence found by
# retrieval has no mention position, so here any cue in the sentence counts and the ranker learns the weight)
_NEGATION = cue_pattern(cues.NEGATION, cues.NORMAL)
_FAMILY = cue_pattern(cues.FAMILY)
_UNCERTAIN = cue_pattern(cues.UNCERTAIN)
NO_MARGIN = -5.0  # the linear view did not score this code


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
    accs: dict[str, _Acc] = {}
    n_sent = sum(1 for s in spans if s.source == "sentence")
    has_mentions = any(s.source == "mention" for s in spans)
    targets_cache: dict[str, list[str]] = {}
    note_words = set(tokenize(expand(note))) if note else {w for s in spans for w in tokenize(expand(s.text))}
    visit = read_layout(note).is_visit if note else False
    cat_plan: dict[str, int] = {}
    for span, span_hits in zip(spans, hits):
        read = expand(span.read or span.text)  # "CHF" is read as "CHF (congestive heart failure)"
        span_words = set(tokenize(read))
        cues = [bool(rx.search(span.read or span.text)) for rx in (_NEGATION, _FAMILY, _UNCERTAIN)]
        reader = gl.SentenceReader(read)
        side = gl.side_of(span.text)
        for rank, hit in enumerate(span_hits, start=1):
            if hit.code not in targets_cache:
                targets_cache[hit.code] = billable_targets(onto, hit.code, expand_limit)
            for target in targets_cache[hit.code]:
                acc = accs.setdefault(target, _Acc())
                direct = target == hit.code
                acc.direct += direct
                acc.via_parent += not direct
                acc.label_in_sentence = max(acc.label_in_sentence, _share(_label_words(onto, target), span_words))
                status = ""
                if span.source in ("sentence", "problem"):
                    status = reader.status(_label_words(onto, target, status=True))
                    acc.statuses[status] = acc.statuses.get(status, 0) + 1
                    part = span.section or "other"
                    acc.parts[part] = acc.parts.get(part, 0) + 1
                    if part == "plan" and status == "present":
                        cat_plan[category(target)] = cat_plan.get(category(target), 0) + 1
                    if side:
                        acc.sides.add(side)
                if span.source == "sentence":
                    acc.sent_cues = [a + b for a, b in zip(acc.sent_cues, cues)]
                    acc.sent_ranks.append(rank)
                    acc.sent_scores.append(hit.score)
                elif span.source == "problem":
                    acc.prob_ranks.append(rank)
                    acc.prob_scores.append(hit.score)
                    acc.label_in_problem = max(acc.label_in_problem, _share(_label_words(onto, target), span_words))
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
                    quoted = note[span.start : span.end] if note and span.source == "mention" else span.text
                    acc.evidence.append(
                        Sighting(
                            span.source,
                            quoted,
                            span.start,
                            span.end,
                            rank,
                            round(hit.score, 4),
                            "" if direct else hit.code,
                            span.assertion,
                            span.section,
                            status,
                        )
                    )
    mem_hits = memory.hits if memory is not None else {}
    for code in mem_hits:
        if code in onto and onto.node(code).billable:
            accs.setdefault(code, _Acc())
    cat_sent: dict[str, float] = {}
    cat_knn: dict[str, float] = {}
    cat_count: dict[str, int] = {}
    for code, acc in accs.items():
        k = category(code)
        cat_sent[k] = cat_sent.get(k, 0.0) + sum(acc.sent_scores) + sum(acc.ment_scores)
        cat_count[k] = cat_count.get(k, 0) + 1
    for code, h in mem_hits.items():
        cat_knn[category(code)] = cat_knn.get(category(code), 0.0) + h.knn_share
    by_cat: dict[str, list[str]] = {}
    for code in accs:
        by_cat.setdefault(category(code), []).append(code)
    knn_of = {c: h.knn_share for c, h in mem_hits.items()}
    sent_of = {c: sum(a.sent_scores) for c, a in accs.items()}
    centroid = memory.centroid if memory is not None else {}
    centroid_order = {c: i for i, c in enumerate(sorted(centroid, key=lambda c: -centroid[c]), start=1)}
    cat_centroid: dict[str, float] = {}
    for c, v in centroid.items():
        cat_centroid[category(c)] = max(cat_centroid.get(category(c), 0.0), v)
    cat_svm: dict[str, float] = {}
    for c, h in mem_hits.items():
        if not math.isnan(h.svm_margin):
            cat_svm[category(c)] = max(cat_svm.get(category(c), NO_MARGIN), h.svm_margin)
    codes: list[str] = []
    rows: list[list[float]] = []
    sources: dict[str, list[str]] = {}
    for code, acc in accs.items():
        mh = mem_hits.get(code)
        node = onto.node(code)
        freq, cat_freq = mem_freq(code) if mem_freq else (0.0, 0.0)
        proposed_by = [
            name
            for name, present in (
                ("sentence", acc.sent_ranks),
                ("problem", acc.prob_ranks),
                ("mention", acc.ment_ranks),
                ("memory-knn", mh and mh.knn_rank),
                ("memory-linear", mh and mh.svm_rank),
                ("ontology", acc.via_parent),
            )
            if present
        ]
        row = [
            min(acc.sent_ranks, default=MISSING_RANK),
            max(acc.sent_scores, default=0.0),
            sum(acc.sent_scores),
            len(acc.sent_ranks),
            len(acc.sent_ranks) / n_sent if n_sent else 0.0,
            min(acc.ment_ranks, default=MISSING_RANK),
            max(acc.ment_scores, default=0.0),
            len(acc.ment_ranks),
            acc.ment_absent,
            float(has_mentions),
            *(acc.ranker_best.get(name, MISSING_RANK) for name in RANKERS),
            acc.direct,
            acc.via_parent,
            mh.knn_score if mh else 0.0,
            mh.knn_share if mh else 0.0,
            (mh.knn_rank or MISSING_RANK) if mh else MISSING_RANK,
            mh.svm_margin if mh and not math.isnan(mh.svm_margin) else NO_MARGIN,
            (mh.svm_rank or MISSING_RANK) if mh else MISSING_RANK,
            freq,
            cat_freq,
            float(freq > 0),
            memory.top_similarity if memory else 0.0,
            memory.mean_top5_similarity if memory else 0.0,
            cat_sent.get(category(code), 0.0),
            cat_knn.get(category(code), 0.0),
            cat_count.get(category(code), 0),
            len(code.replace(".", "")),
            node.depth,
            float("unspecified" in node.label.lower()),
            float(node.kind == "extension"),
            n_sent,
            _share(_label_words(onto, code), note_words),
            acc.label_in_sentence,
            *_rank_within(knn_of, by_cat, code, category(code)),
            *_rank_within(sent_of, by_cat, code, category(code)),
            (freq - cat_freq) if freq > 0 else -5.0,
            centroid.get(code, 0.0),
            float(centroid_order.get(code, MISSING_RANK)),
            cat_centroid.get(category(code), 0.0),
            cat_svm.get(category(code), NO_MARGIN),
            *((n / len(acc.sent_ranks)) if acc.sent_ranks else -1.0 for n in acc.sent_cues),
            *_visit_row(onto, code, acc, visit, cat_plan),
        ]
        codes.append(code)
        rows.append(row)
        sources[code] = proposed_by
    return NoteCandidates(codes, rows, {c: accs[c].evidence for c in codes}, sources)


def _visit_row(onto: CodeSystem, code: str, acc: _Acc, visit: bool, cat_plan: dict[str, int]) -> list[float]:
    """The VISIT_FEATURES of one candidate."""
    label = onto.label(code)
    stated = sum(acc.statuses.values())
    found_in = {p for p, n in acc.parts.items() if n}
    side = gl.label_side(label)
    if not acc.sides or not side:
        side_match = 0.0
    elif side == "unspecified":
        side_match = -0.5
    else:
        side_match = 1.0 if side in acc.sides else -1.0
    return [
        *(float(acc.parts.get(p, 0)) for p in RANKER_PARTS),
        float(bool(found_in) and found_in <= _FINDINGS_ONLY),
        min(acc.prob_ranks, default=MISSING_RANK),
        max(acc.prob_scores, default=0.0),
        len(acc.prob_ranks),
        acc.label_in_problem,
        *((acc.statuses.get(s, 0) / stated) if stated else -1.0 for s in gl.STATUSES),
        float(gl.is_symptom(code)),
        float(gl.is_unspecified(label)),
        side_match,
        float(visit),
        float(cat_plan.get(category(code), 0)),
    ]


def note_kind(rows: Sequence[Sequence[float]], features: Sequence[str] = FEATURES) -> str:
    """visit | case: which kind of note a note's candidate rows are of (by `visit_note`); "" when the feature
    set has no such feature or there are no rows."""
    if "visit_note" not in features or not len(rows):
        return ""
    return "visit" if rows[0][list(features).index("visit_note")] > 0.5 else "case"


def sentence_spans(text: str, layout: VisitLayout | None = None) -> list[SearchSpan]:
    """The note's sentences with their offsets and the visit part each sits in (`visit.read_layout`); of a
    conversation, what was said that is not small talk or an instruction to the recording assistant."""
    layout = read_layout(text) if layout is None else layout
    spoken = layout.kind == "conversation"
    return [
        SearchSpan(s.text, s.start, s.end, section=coarse(s.part), read=s.read)
        for s in layout.sentences
        if len(s.text) > 3
        and re.search(r"[A-Za-z]{3}", s.text)
        and not (spoken and (s.part == "other" or len(s.text.split()) < 3))
    ]


_BULLET = re.compile(r"^\s*(?:[-*•·#]|\d{1,2}[.)]|[a-z][.)])\s*")
_LISTED = re.compile(r"^\s*(?:#|\d{1,2}[.)])\s*")  # a numbered or "#" problem list item
_ITEM_END = re.compile(r"\s+[–—-]\s+|\s*[:;]\s+|\s*[:;]?$|,\s+(?=(?:continue|start|stop|increase|decrease|f/u)\b)")
_NOT_A_PROBLEM = re.compile(
    r"\b(i|we|he|she|they|you|will|would|should|recommend\w*|discuss\w*|advis\w*|"
    r"continue|order\w*|follow|return|call|schedule\w*|refer\w*|prescrib\w*|start\w*|"
    r"medical reasoning|patient education|additional testing|medical treatment|"
    r"monitor\w*|notify|agree\w*|explain\w*|understand\w*|the patient)\b",
    re.IGNORECASE,
)
_VERB = re.compile(r"\b(is|are|was|were|has|have|had|does|did|reports?|states?|shows?|presents?|agrees?)\b", re.I)


def problem_spans(text: str, layout: VisitLayout | None = None) -> list[SearchSpan]:
    """The problems a visit note names: the short lines of its assessment/plan and its chief complaint
    ("Congestive heart failure.", "1. Right knee sprain.", "IMPRESSION: ..."), the problem of a numbered or "#"
    list item ("1. HTN – continue lisinopril", "#Type 2 DM: A1c 8.1"), the short verbless sentences of an
    assessment run into one paragraph, and the problems a clinician states in a conversation; each searched on
    its own."""
    layout = read_layout(text) if layout is None else layout
    text = same_length_text(text)
    out = [SearchSpan(text[a:b], a, b, "problem", section="plan", read=_spoken(p)) for a, b, p in layout.problems]
    for start, end, part in layout.parts() if layout.kind != "conversation" else []:
        if part not in ("plan", "cc"):
            continue
        line_start = text.rfind("\n", 0, start) + 1
        if _BULLET.fullmatch(text[line_start:start] + " ") or not text[line_start:start].strip():
            start = line_start  # the line's list number ("1.") belongs to its problem
        for line in re.finditer(r"[^\n]+", text[start:end]):
            raw = line.group()
            here = start + line.start()
            ls = text.rfind("\n", 0, here) + 1
            le = text.find("\n", here)
            le = len(text) if le < 0 else le
            lead = text[ls:here][header_end(text[ls:le]) :]  # what stands before it on its line, past a header
            if (lead.strip() and not _BULLET.fullmatch(lead + " ")) or text[start + line.end() : le].strip():
                # a stretch of a longer line (a note run into one paragraph): its problem headings only
                out += [
                    p for p in _run_in_problems(text, ls, text[ls:le], part) if here <= p.start < start + line.end()
                ]
                continue
            body = _BULLET.sub("", raw[header_end(raw) :]).strip().rstrip(".:")
            if _LISTED.match(raw):  # a list item: its problem is what comes before a dash or colon
                cut = _ITEM_END.search(body)
                body = body[: cut.start()].strip().rstrip(".") if cut else body
            words = body.split()
            if len(words) > 12 and part == "plan":
                out += _run_in_problems(text, here, raw)
            if not (1 <= len(words) <= 12) or _NOT_A_PROBLEM.search(body) or not re.search(r"[A-Za-z]{3}", body):
                continue
            offset = here + raw.index(body[:1])
            out.append(SearchSpan(body, offset, offset + len(body), "problem", section=part))
    return out


_RUN_IN = re.compile(
    r"(?:^|(?<=[.!?]\s)|(?<=•\s))(?!(?:Mrs?|Ms|Dr|St)\.)([A-Z][^.!?•]{2,80}?)\.(?=\s+(?:[A-Z•]|[-*]\s|\d{1,2}[.)]\s))"
)


def _spoken(phrase: str) -> str:
    """A spoken problem phrase with its abbreviations written as a note writes them ("chf" -> "CHF"), so they are
    spelled out like a note's: a transcript is in lower case."""
    table = abbreviations()
    words = [w.upper() if len(w) >= 3 and w.upper() in table else w for w in phrase.split()]
    for i in range(1, len(words)):  # "type two diabetes", "stage three": the Index writes the number
        if words[i - 1].lower() in _NUMBERED and words[i].lower() in _NUMBERS:
            words[i] = str(_NUMBERS.index(words[i].lower()) + 1)
    return " ".join(words)


_NUMBERED = {"type", "stage", "grade", "class", "level", "degree", "phase"}
_NUMBERS = ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")


def _run_in_problems(text: str, base: int, line: str, section: str = "plan") -> list[SearchSpan]:
    """The problem headings of an assessment run into one line ("... problems. Congestive heart failure. • Medical
    Reasoning: ..."): short sentences without a verb, each followed by more text."""
    out = []
    for m in _RUN_IN.finditer(line):
        body = re.sub(r"\s+(?:Mrs?|Ms|Dr)$", "", m.group(1).strip())  # "• Iron deficiency anemia Mrs. Cooper is"
        words = body.split()
        if 1 <= len(words) <= 12 and not _NOT_A_PROBLEM.search(body) and not _VERB.search(body):
            out.append(SearchSpan(body, base + m.start(1), base + m.start(1) + len(body), "problem", section=section))
    return out


def note_spans(text: str) -> list[SearchSpan]:
    """What the ranker searches in a note: every sentence and every problem the note names."""
    layout = read_layout(text)
    return sentence_spans(text, layout) + problem_spans(text, layout)


def mention_spans(entities: Iterable[Entity], kind: str) -> list[SearchSpan]:
    """Extracted mentions of the system's entity kind as searchable spans."""
    out = []
    for e in entities:
        if e.kind != kind:
            continue
        text = " ".join(x for x in (e.mention, e.text) if x).strip()
        if text:
            out.append(SearchSpan(e.mention or text, e.start, e.end, "mention", e.assertion, e.section))
    return out
