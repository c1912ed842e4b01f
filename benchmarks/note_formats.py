"""The same visit notes in every layout a clinic writes, and the visit's conversation: ICD-10-CM and ATC
micro-F1 for each, in one run, with the shipped rankers and no model (unless --model-problems).

Layouts (`medcoder.evaluation.layouts`): as written, SOAP, abbreviated headers, no headers, one paragraph,
numbered problem list, lower-case headers, CRLF line endings, bullets; then the conversations
(`*-dialogue.jsonl`). Each layout is scored against the same reference codes; "gap" is its micro-F1 minus the
note as written. Sentences repeat across layouts, so retrieval is memoised per sentence: every layout sees
exactly the hits it would see alone.

With --model-problems MODEL, the model step (`agents.problem_lister`: the model lists the problems the clinician
assesses, each read through the Alphabetic Index like a problem line) is measured on the layouts it is meant
for (no headers, the conversation), with and without, same notes, same candidates, same run; its answers are
cached per note (`results/note_formats.model_cache.jsonl`), so a stopped run resumes.

Run: python benchmarks/note_formats.py [--data ../shared/data/aci-bench-coded/valid.jsonl]
         [--dialogue ../shared/data/aci-bench-coded/valid-dialogue.jsonl] [--model-problems default [--limit N]]
Writes benchmarks/results/note_formats.json and note_formats.html (a bar per layout and system).
"""

from __future__ import annotations

import argparse
import hashlib
import html
import json
import sys
import time
from pathlib import Path
from typing import Any, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, write_result  # noqa: E402

from medcoder.agents.problem_lister import list_problems, wants_model  # noqa: E402
from medcoder.evaluation.drugs import STRATEGY, score_note  # noqa: E402
from medcoder.evaluation.layouts import VARIANTS  # noqa: E402
from medcoder.knowledge import default_kb  # noqa: E402
from medcoder.knowledge.atc import ATC  # noqa: E402
from medcoder.knowledge.lexical import SearchHit  # noqa: E402
from medcoder.knowledge.retrieval import HybridRetriever, Retriever, SearchFilter  # noqa: E402
from medcoder.ranking import metrics  # noqa: E402
from medcoder.ranking.candidates import SearchSpan  # noqa: E402
from medcoder.ranking.coder import RankedCoder  # noqa: E402
from medcoder.ranking.datasets import Example, load_dataset  # noqa: E402
from medcoder.ranking.drugs import DrugCoder, drug_ranker_folder  # noqa: E402
from medcoder.ranking.folders import ranker_folder  # noqa: E402
from medcoder.visit import read_layout  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "aci-bench-coded"


class _MemoRetriever(Retriever):
    """A retriever that searches each (text, system, k) once: the layouts share most of their sentences."""

    def __init__(self, inner: Retriever) -> None:
        self.inner = inner
        self.memo: dict[tuple[str, str, int], list[SearchHit]] = {}

    def search_many(
        self, texts: list[str], system: str = "icd10cm", k: int = 10, filt: SearchFilter | None = None
    ) -> list[list[SearchHit]]:
        todo = list(dict.fromkeys(t for t in texts if (t, system, k) not in self.memo))
        if todo:
            for t, hits in zip(todo, self.inner.search_many(todo, system, k, filt)):
                self.memo[(t, system, k)] = hits
        return [self.memo[(t, system, k)] for t in texts]


def _prf(gold: Sequence[set[str]], pred: Sequence[set[str]]) -> dict[str, float]:
    m = metrics.micro(gold, pred)
    return {"f1": round(m.f1, 3), "precision": round(m.precision, 3), "recall": round(m.recall, 3)}


def _code(
    coder: RankedCoder, drugs: DrugCoder, texts: Sequence[str], extra_problems: Any = None
) -> tuple[list[set[str]], list[set[str]], float]:
    icd, atc = [], []
    t0 = time.perf_counter()
    for text in texts:
        icd.append({r.code for r in coder.rank(coder.candidates(text), note=text) if r.accepted})
        row = score_note(drugs, Example("x", text, [], ATC.system))
        atc.append(set(row["strategies"][STRATEGY]["ranked"]))
    return icd, atc, (time.perf_counter() - t0) / max(1, len(texts))


def _model_ablation(
    coder: RankedCoder, model: str, layouts: dict[str, list[str]], gold: dict[str, list[set[str]]]
) -> list[dict[str, Any]]:
    """The model step with and without on each layout's notes: the same candidates, ranked twice."""
    from medcoder.llm import load_llm  # deferred: only this option loads a model

    llm = load_llm(model)
    cache_path = RESULTS / "note_formats.model_cache.jsonl"
    cache = {}
    if cache_path.is_file():
        for line in cache_path.read_text().splitlines():
            row = json.loads(line)
            cache[row["key"]] = row
    out = []
    for name, texts in layouts.items():
        without, with_model, seconds, asked = [], [], [], 0
        for i, text in enumerate(texts, 1):
            cands = coder.candidates(text)
            without.append({r.code for r in coder.rank(cands, note=text) if r.accepted})
            layout = read_layout(text)
            spans: list[SearchSpan] = []
            if wants_model(layout):
                asked += 1
                key = hashlib.sha256(f"{llm.sha256}|{text}".encode()).hexdigest()
                if key not in cache:
                    found, info = list_problems(llm, text, layout)
                    cache[key] = {"key": key, "spans": [[s.read, s.start, s.end] for s in found], "info": info}
                    with cache_path.open("a") as fh:
                        fh.write(json.dumps(cache[key]) + "\n")
                spans = [
                    SearchSpan(text[a:b], a, b, "problem", "present", "plan", t) for t, a, b in cache[key]["spans"]
                ]
                seconds.append(float(cache[key]["info"].get("seconds", 0.0)))
            with_model.append({r.code for r in coder.rank(cands, note=text, problems=spans) if r.accepted})
            print(f"\rmodel step, {name}: {i}/{len(texts)}", end="", file=sys.stderr, flush=True)
        print(file=sys.stderr)
        row = {
            "layout": name,
            "notes": len(texts),
            "asked": asked,
            "without": _prf(gold[name], without),
            "with_model_problems": _prf(gold[name], with_model),
            "model_seconds_per_note": round(sum(seconds) / max(1, len(seconds)), 1),
        }
        out.append(row)
        print(
            f"{name:24s} without {row['without']['f1']:.3f}  with the model's problems "
            f"{row['with_model_problems']['f1']:.3f}  ({row['model_seconds_per_note']} s a call)",
            file=sys.stderr,
        )
    return out


def _html(rows: list[dict[str, Any]]) -> str:
    bars = []
    for r in rows:
        for system in ("icd10cm", "atc"):
            f1 = r[system]["f1"]
            colour = "#2b6cb0" if system == "icd10cm" else "#2f855a"
            bars.append(
                f"<tr><td>{html.escape(r['layout'])}</td><td>{system}</td><td><div style='background:{colour};"
                f"width:{int(f1 * 400)}px;height:14px'></div></td><td>{f1:.3f}</td>"
                f"<td>{r[system].get('gap', 0):+.3f}</td></tr>"
            )
    return (
        "<!doctype html><meta charset=utf-8><title>medcoder: codes by note layout</title>"
        "<style>body{font-family:sans-serif}td{padding:2px 8px}</style>"
        "<h1>Codes by note layout (micro-F1)</h1><table><tr><th>layout</th><th>system</th><th></th><th>F1</th>"
        "<th>gap to as written</th></tr>" + "".join(bars) + "</table>"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(SHARED / "valid.jsonl"))
    ap.add_argument("--dialogue", default=str(SHARED / "valid-dialogue.jsonl"))
    ap.add_argument("--layouts", nargs="*", default=list(VARIANTS), help="which layouts (default: all)")
    ap.add_argument("--limit", type=int, default=None, help="first N notes only")
    ap.add_argument("--out", default="note_formats.json")
    ap.add_argument("--model-problems", default="", help="measure the model step with this model (e.g. default)")
    ap.add_argument("--model-limit", type=int, default=None, help="the model step on the first N notes only")
    ap.add_argument("--ranker", default="", help="an ICD-10-CM ranker folder to measure (default: the shipped one)")
    args = ap.parse_args()
    kb = default_kb()
    retriever = _MemoRetriever(HybridRetriever(kb))
    coder = RankedCoder.from_folder(args.ranker or ranker_folder("icd10cm", "shipped"), kb, retriever)
    drugs = DrugCoder.from_folder(drug_ranker_folder("builtin"), kb.ontology(ATC.system))
    icd_data = load_dataset(args.data, system="icd10cm").head(args.limit)
    atc_gold = {ex.id: set(ex.codes) for ex in load_dataset(args.data, system="atc").examples}
    ids = [ex.id for ex in icd_data.examples]
    icd_gold = [set(ex.codes) for ex in icd_data.examples]
    atc_ref = [atc_gold.get(i, set()) for i in ids]
    rows: list[dict[str, Any]] = []
    base: dict[str, float] = {}
    for name in args.layouts:
        texts = [VARIANTS[name](ex.text) for ex in icd_data.examples]
        icd, atc, secs = _code(coder, drugs, texts)
        row = {"layout": name, "icd10cm": _prf(icd_gold, icd), "atc": _prf(atc_ref, atc), "seconds_per_note": secs}
        rows.append(row)
        print(
            f"{name:24s} ICD F1 {row['icd10cm']['f1']:.3f}  ATC F1 {row['atc']['f1']:.3f}  {secs:.2f} s/note",
            file=sys.stderr,
        )
    if args.dialogue and Path(args.dialogue).is_file():
        d_icd = {ex.id: ex for ex in load_dataset(args.dialogue, system="icd10cm").examples}
        d_atc = {ex.id: set(ex.codes) for ex in load_dataset(args.dialogue, system="atc").examples}
        keep = [i for i in ids if i in d_icd]
        icd, atc, secs = _code(coder, drugs, [d_icd[i].text for i in keep])
        row = {
            "layout": "conversation",
            "icd10cm": _prf([set(d_icd[i].codes) for i in keep], icd),
            "atc": _prf([d_atc.get(i, set()) for i in keep], atc),
            "seconds_per_note": secs,
        }
        rows.append(row)
        print(
            f"{'conversation':24s} ICD F1 {row['icd10cm']['f1']:.3f}  ATC F1 {row['atc']['f1']:.3f}  {secs:.2f} s/note",
            file=sys.stderr,
        )
    base = {s: next((r[s]["f1"] for r in rows if r["layout"] == "as written"), 0.0) for s in ("icd10cm", "atc")}
    for r in rows:
        for s in ("icd10cm", "atc"):
            r[s]["gap"] = round(r[s]["f1"] - base[s], 3)
        r["seconds_per_note"] = round(r["seconds_per_note"], 2)
    model_rows: list[dict[str, Any]] = []
    if args.model_problems:
        n = args.model_limit
        layouts = {"no headers": [VARIANTS["no headers"](ex.text) for ex in icd_data.examples][:n]}
        gold = {"no headers": icd_gold[:n]}
        if args.dialogue and Path(args.dialogue).is_file():
            layouts["conversation"] = [d_icd[i].text for i in keep][:n]
            gold["conversation"] = [set(d_icd[i].codes) for i in keep][:n]
        model_rows = _model_ablation(coder, args.model_problems, layouts, gold)
    path = write_result(
        args.out,
        {
            "data": Path(args.data).name,
            "notes": len(ids),
            "rows": rows,
            "model_problems": {"model": args.model_problems, "rows": model_rows} if model_rows else None,
        },
    )
    (RESULTS / Path(args.out).with_suffix(".html").name).write_text(_html(rows))
    print("| layout | ICD-10-CM micro-F1 (gap) | ATC micro-F1 (gap) | s / note |")
    print("|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['layout']} | {r['icd10cm']['f1']:.3f} ({r['icd10cm']['gap']:+.3f}) | "
            f"{r['atc']['f1']:.3f} ({r['atc']['gap']:+.3f}) | {r['seconds_per_note']} |"
        )
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
