"""Drug coding measured: products coded from their ingredients and from their brand alone (ATC level 1-5
exact match, misses split by cause), and notes coded in ATC (micro/macro P/R/F1 of the note's drug codes,
with what a pharmacist would fix). No language model is loaded: the drug ranker needs none.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any, Callable, Sequence

from medcoder.progress import Progress
from medcoder.ranking import metrics
from medcoder.ranking.cards import policy_figures
from medcoder.ranking.datasets import Dataset, Example
from medcoder.ranking.drug_features import NOT_CODED
from medcoder.ranking.drugs import CodedMention, DrugCoder, product_records

STRATEGY = "ranked-nomodel"


def _miss_kind(coder: DrugCoder, gold: str, cm: CodedMention | None) -> str:
    """Why a product's top code is not the gold one."""
    if gold not in coder.onto:
        return "not_in_file"
    if cm is None or not cm.candidates:
        return "nothing_found"
    if gold in {c.code for c in cm.candidates}:
        return "right_substance_other_group"
    return "other"


def product_fields(ex: Example) -> list[tuple[str, dict[str, str | None]]]:
    """The ways one product is coded: from its ingredients (with what its name says of route and use) and from
    its brand alone, each also with its record's route and dosage form when the record has them."""
    brand = ex.meta.get("brand", "")
    base: list[tuple[str, dict[str, str | None]]] = [
        ("ingredients", {"ingredients": ex.meta.get("ingredients") or ex.text, "brand": brand}),
        ("brand", {"brand": brand}),
    ]
    return [
        (fld + suffix, {**kwargs, **({"route": route, "dosage_form": form} if suffix else {})})
        for suffix, route, form in product_records(ex.meta)
        for fld, kwargs in base
    ]


def score_product(coder: DrugCoder, ex: Example) -> dict[str, Any]:
    """One product coded in each of `product_fields`' ways, with why its top code missed."""
    row: dict[str, Any] = {"id": ex.id, "gold": ex.codes, "brand": ex.meta.get("brand", ""), "fields": {}}
    gold = ex.codes[0].upper()
    for fld, kwargs in product_fields(ex):
        start = time.perf_counter()
        cm = coder.code_product(**kwargs)
        ranked = [c.code for c in cm.candidates] if cm else []
        res: dict[str, Any] = {
            "ranked": ranked[:10],
            "seconds": round(time.perf_counter() - start, 4),
            "model_calls": 0,
            "prompt_tokens": 0,
            "cached_tokens": 0,
        }
        if not ranked or ranked[0] != gold:
            res["miss"] = _miss_kind(coder, gold, cm)
        row["fields"][fld] = {STRATEGY: res}
    return row


def _fields(rows: list[dict[str, Any]]) -> list[str]:
    """The fields the rows were coded in, in first-seen order (a product without a record has no +route+form)."""
    return list(dict.fromkeys(f for r in rows for f in r["fields"]))


def product_misses(rows: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Why each field's top code missed, counted: the gold code not in the bundled ATC file stands apart."""
    return {
        fld: dict(
            Counter(
                r["fields"][fld][STRATEGY]["miss"] for r in rows if "miss" in r["fields"].get(fld, {}).get(STRATEGY, {})
            )
        )
        for fld in _fields(rows)
    }


def score_note(coder: DrugCoder, ex: Example) -> dict[str, Any]:
    """A note's drug codes: accepted, suggested, and per mention what was read."""
    start = time.perf_counter()
    coded = coder.mentions(ex.text)
    drugs = coder.decide(coded)
    accepted = [d for d in drugs if d.accepted]
    res = {
        "ranked": [d.code for d in accepted],
        "ranking": [d.code for d in drugs],
        "scores": [[d.code, round(d.probability, 4)] for d in drugs],
        "auto": [d.code for d in accepted if d.auto],
        "seconds": round(time.perf_counter() - start, 4),
        "model_calls": 0,
        "prompt_tokens": 0,
        "cached_tokens": 0,
    }
    mentions = [
        {
            "text": cm.mention.text,
            "status": cm.context.status,
            "code": cm.best.code if cm.best else None,
            "codes": [c.code for c in cm.candidates],
        }
        for cm in coded
    ]
    return {"id": ex.id, "gold": ex.codes, "strategies": {STRATEGY: res}, "mentions": mentions}


def note_fixes(rows: list[dict[str, Any]]) -> dict[str, int]:
    """What a pharmacist would fix, counted over the notes: wrong code for a substance the note names,
    a drug coded though stopped/allergy/only considered, a drug the reference coded that was not found."""
    out: Counter[str] = Counter()
    for r in rows:
        gold, pred = set(r["gold"]), set(r["strategies"][STRATEGY]["ranked"])
        by_code = {m["code"]: m for m in r["mentions"] if m["code"]}
        reachable = {c for m in r["mentions"] for c in m["codes"]}
        for c in pred - gold:
            m = by_code.get(c)
            if m and m["status"] in NOT_CODED:
                out["coded_though_not_taken"] += 1
            elif m and gold & set(m["codes"]):
                out["wrong_code_for_substance"] += 1
            else:
                out["coded_not_in_reference"] += 1
        for c in gold - pred:
            if c not in reachable:
                out["missed_drug_not_found"] += 1
            elif c not in set(r["strategies"][STRATEGY]["ranking"]):
                out["missed_other_code_chosen"] += 1
            else:
                out["missed_below_threshold_or_status"] += 1
    return dict(out)


def evaluate_drugs(
    data: Dataset,
    coder: DrugCoder,
    progress: Progress | None = None,
    cached: dict[str, dict[str, Any]] | None = None,
    add: Callable[[dict[str, Any]], dict[str, Any]] = lambda r: r,
) -> dict[str, Any]:
    """Score a drug-product table or a note dataset coded in ATC; `cached` rows (a resumed eval) are reused."""
    cached = cached or {}
    score = score_product if data.layout == "dpd" else score_note
    rows = []
    for i, ex in enumerate(data.examples):
        if progress:
            progress("examples", i, len(data))
        rows.append(cached[ex.id] if ex.id in cached else add(score(coder, ex)))
    if progress:
        progress("examples", len(data), len(data))
    if data.layout == "dpd":
        return {"metrics": product_metrics(rows), "misses": product_misses(rows), "items": rows}
    gold = [set(r["gold"]) for r in rows]
    pred = [set(r["strategies"][STRATEGY]["ranked"]) for r in rows]
    ranked = [r["strategies"][STRATEGY]["ranking"] for r in rows]
    m: dict[str, Any] = metrics.icd_report(gold, pred, ranked)
    scored = [(p, c in g) for r, g in zip(rows, gold) for c, p in r["strategies"][STRATEGY]["scores"]]
    if scored:
        m["calibration"] = metrics.calibration(scored)
        unseen = [c in g for r, g in zip(rows, gold) for c in r["strategies"][STRATEGY].get("auto", [])]
        m["calibration"]["auto_accept_policy"] = policy_figures(unseen, sum(len(p) for p in pred))
    m["fixes"] = note_fixes(rows)
    m["per_chapter"] = metrics.per_group_f1(gold, pred, lambda c: c[:1])
    m["error_types"] = {}
    m["cost_per_note"] = metrics.mean_cost([r["strategies"][STRATEGY] for r in rows])
    return {"metrics": {STRATEGY: m}, "items": rows}


def product_metrics(rows: list[dict[str, Any]], strategies: Sequence[str] = (STRATEGY,)) -> dict[str, Any]:
    """Level 1-5 exact match of each strategy's top code per product, from the ingredients and from the brand."""
    out: dict[str, Any] = {}
    for fld in _fields(rows):
        have = [r for r in rows if fld in r["fields"]]
        n = max(len(have), 1)
        for name in strategies:
            levels = [0] * 5
            in_file = hits_in_file = 0
            for r in have:
                res = r["fields"][fld][name]
                match = metrics.atc_level_match(r["gold"][0], res["ranked"][0] if res["ranked"] else None)
                for i, hit in enumerate(match):
                    levels[i] += hit
                if res.get("miss") != "not_in_file":
                    in_file += 1
                    hits_in_file += match[4]
            out[f"{fld}/{name}"] = {
                "items": len(have),
                "exact_match_by_level": {f"level{i + 1}": round(levels[i] / n, 4) for i in range(5)},
                "exact_match": round(levels[4] / n, 4),
                # the products whose gold code the ATC file in use holds: what coding can reach
                "exact_match_in_file": round(hits_in_file / max(in_file, 1), 4),
                "gold_in_file": in_file,
                "cost_per_item": metrics.mean_cost([r["fields"][fld][name] for r in have]),
            }
    return out
