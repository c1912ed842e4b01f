"""Re-learn the ranker from a site's decided notes and show, before anyone adopts it, whether it is better.

A slice of the site's decided notes is held back (chosen by note id, so the same notes each time); a new
ranker learns from the base datasets given plus the rest; the current ranker and the new one code the
held-back notes and are compared (MAP, micro-F1, auto-accept precision and coverage, per chapter, with their
reliability diagrams). The new ranker is adopted only when asked and only if it is not worse; a learn that
fails or is stopped leaves the current ranker in use, and nothing leaves this `MEDCODER_HOME`.
"""

from __future__ import annotations

import hashlib
import html
import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from medcoder.errors import MedcoderError
from medcoder.evaluation.report import bars_svg, html_table, reliability_svg
from medcoder.knowledge import KnowledgeBase, default_kb
from medcoder.knowledge.retrieval import HybridRetriever, Retriever
from medcoder.knowledge.systems import DEFAULT_SYSTEM
from medcoder.progress import Progress
from medcoder.ranking import metrics
from medcoder.ranking.cards import RankerCard, policy_figures, ranker_card, use_ranker
from medcoder.ranking.coder import RankedCoder
from medcoder.ranking.datasets import Example, load_dataset
from medcoder.ranking.folders import ranker_folder
from medcoder.ranking.learn import canonical_codes, learn

logger = logging.getLogger(__name__)

MIN_SITE_NOTES = 6  # fewer decided notes leave no slice worth holding back


@dataclass
class RelearnReport:
    """The before/after comparison on the site's held-back notes, and what was done with the new ranker."""

    system: str
    current: dict[str, Any]  # the card of the ranker in use
    new: dict[str, Any]  # the card of the one learned
    site_notes: int
    held_back: list[str]
    before: dict[str, Any]
    after: dict[str, Any]
    not_worse: bool
    adopted: bool = False
    seconds: float = 0.0
    html: str = ""
    verdict: str = ""
    base: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def site_examples(notes: Sequence[tuple[str, str, list[str]]], system: str) -> list[Example]:
    """The site's decided notes (id, text, the codes the coder kept) as examples to learn from."""
    return [Example(f"site:{nid}", text, list(codes), system) for nid, text, codes in notes if text.strip() and codes]


def held_back(examples: Sequence[Example], share: float = 0.3) -> tuple[list[Example], list[Example]]:
    """(learn from, hold back): about `share` of the notes, chosen by a hash of their id (the same each run)."""
    if len(examples) < MIN_SITE_NOTES:
        raise MedcoderError(
            f"re-learning needs at least {MIN_SITE_NOTES} decided notes to hold some back; this site has "
            f"{len(examples)}"
        )
    ranked = sorted(examples, key=lambda e: hashlib.sha256(e.id.encode()).hexdigest())
    n = max(2, round(len(ranked) * share))
    return ranked[n:], ranked[:n]


def compare(
    folder: str | Path, examples: Sequence[Example], kb: KnowledgeBase, retriever: Retriever, system: str
) -> dict[str, Any]:
    """How the ranker in `folder` codes `examples`: MAP, micro-F1, per chapter, reliability and auto-accept."""
    coder = RankedCoder.from_folder(folder, kb, retriever)
    onto = kb.ontology(system)
    auto = (coder.ranker.meta.get("cv") or {}).get("auto_accept_threshold")
    gold, pred, ranked, scored, unseen = [], [], [], [], []
    for ex in examples:
        g = canonical_codes(onto, ex.codes)
        codes = coder.rank(coder.candidates(ex.text), note=ex.text)
        gold.append(g)
        pred.append({r.code for r in codes if r.accepted})
        ranked.append([r.code for r in codes])
        scored += [(r.probability, r.code in g) for r in codes if r.accepted]
        unseen += [r.code in g for r in codes if r.auto]
    out = metrics.icd_report(gold, pred, ranked)
    out["per_chapter"] = metrics.per_group_f1(gold, pred, metrics.chapter_of(onto))
    out["calibration"] = metrics.calibration(scored, auto_threshold=auto)
    # what the workspace applies: the threshold and the found-directly gate (ranking/cards.py)
    out["calibration"]["auto_accept_policy"] = policy_figures(unseen, len(scored))
    out["notes"] = len(examples)
    return out


def relearn(
    site: Sequence[Example],
    current: str | Path | None,
    out: str | Path,
    base: Sequence[str | Path] = (),
    system: str = DEFAULT_SYSTEM,
    folds: int = 4,
    adopt: bool = False,
    progress: Progress | None = None,
    kb: KnowledgeBase | None = None,
    retriever: Retriever | None = None,
) -> RelearnReport:
    """Learn a new ranker from `base` datasets plus the site's notes (less a held-back slice) into `out`, compare
    it with the `current` one on that slice, write `report.json`/`report.html` there, and adopt it when asked
    and not worse."""
    started = time.perf_counter()
    current = current or ranker_folder(system)  # the one in use
    kb = kb or default_kb()
    retriever = retriever or HybridRetriever(kb)
    train_site, slice_ = held_back(site)
    base_examples: list[Example] = []
    for path in base:
        data = load_dataset(path, system=system)
        base_examples += data.examples
    target = Path(out).expanduser()
    if target.exists():
        raise MedcoderError(f"{target} exists; give a new folder for the new ranker (the current one stays in use)")
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    source: dict[str, Any] = {"datasets": [{"dataset": str(p), "layout": "base"} for p in base]}
    source["datasets"].append({"dataset": "site decisions", "layout": "workspace", "notes": len(train_site)})
    try:
        learn(
            [*base_examples, *train_site], kb, retriever, system, partial, folds=folds, progress=progress, source=source
        )
        partial.rename(target)  # only a whole ranker gets the name a workflow or `rankers use` can point at
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    if progress:
        progress("comparing on the held-back notes", 0, 2)
    before = compare(current, slice_, kb, retriever, system)
    if progress:
        progress("comparing on the held-back notes", 1, 2)
    after = compare(target, slice_, kb, retriever, system)
    if progress:
        progress("comparing on the held-back notes", 2, 2)
    not_worse = after["map"] >= before["map"] and after["micro"]["f1"] >= before["micro"]["f1"]
    current_card, new_card = ranker_card(current), ranker_card(target)
    adopted = False
    if adopt and not_worse:
        use_ranker(target)
        adopted = True
    verdict = _verdict(not_worse, adopt, adopted)
    report = RelearnReport(
        system,
        current_card.to_dict(),
        new_card.to_dict(),
        len(site),
        [e.id for e in slice_],
        before,
        after,
        not_worse,
        adopted,
        round(time.perf_counter() - started, 1),
        str(target / "report.html"),
        verdict,
        [str(p) for p in base],
    )
    (target / "report.json").write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
    (target / "report.html").write_text(render(report, current_card, new_card), encoding="utf-8")
    logger.info("re-learned %s ranker into %s: %s", system, target, verdict)
    return report


def _verdict(not_worse: bool, asked: bool, adopted: bool) -> str:
    if adopted:
        return "adopted: not worse than the current ranker on the held-back notes, and asked to adopt"
    if not not_worse:
        return "not adopted: worse than the current ranker on the held-back notes (MAP or micro-F1)"
    return "not adopted (not asked): not worse on the held-back notes; `medcoder rankers use FOLDER` adopts it"


def render(report: RelearnReport, current: RankerCard, new: RankerCard) -> str:
    """The before/after page: headline figures, per chapter, and both reliability diagrams."""
    b, a = report.before, report.after
    rows = [
        ["MAP", b["map"], a["map"]],
        ["micro F1", b["micro"]["f1"], a["micro"]["f1"]],
        ["precision", b["micro"]["precision"], a["micro"]["precision"]],
        ["recall", b["micro"]["recall"], a["micro"]["recall"]],
        [
            "auto-accept precision",
            b["calibration"]["auto_accept_policy"]["precision"],
            a["calibration"]["auto_accept_policy"]["precision"],
        ],
        [
            "auto-accept coverage",
            b["calibration"]["auto_accept_policy"]["share_of_predicted"],
            a["calibration"]["auto_accept_policy"]["share_of_predicted"],
        ],
        ["ECE", b["calibration"].get("ece"), a["calibration"].get("ece")],
    ]
    chapters = sorted(set(b["per_chapter"]) | set(a["per_chapter"]))
    series = {
        f"current {current.digest}": [b["per_chapter"].get(c, {}).get("f1", 0.0) for c in chapters],
        f"new {new.digest}": [a["per_chapter"].get(c, {}).get("f1", 0.0) for c in chapters],
    }
    out = [
        f"<h1>Re-learned {html.escape(report.system)} ranker: before and after</h1>",
        f"<p id='verdict' class='{'good' if report.not_worse else 'bad'}'>{html.escape(report.verdict)}</p>",
        f"<p>{len(report.held_back)} of the site's {report.site_notes} decided notes held back; the new ranker "
        f"learned from the rest{' and ' + html.escape(', '.join(report.base)) if report.base else ''} "
        f"in {report.seconds:.0f} s.</p>",
        html_table(["", f"current ({current.name}, {current.digest})", f"new ({new.name}, {new.digest})"], rows),
        bars_svg("F1 per chapter on the held-back notes", chapters, series) if chapters else "",
        reliability_svg("current", b["calibration"]),
        reliability_svg("new", a["calibration"]),
    ]
    style = (
        "body{font-family:sans-serif;margin:2em;max-width:60em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}.good{color:#060}.bad{color:#a00}"
    )
    head = f"<meta charset='utf-8'><title>re-learned ranker</title><style>{style}</style>"
    return f"<!doctype html><html><head>{head}</head><body>{''.join(out)}</body></html>"
