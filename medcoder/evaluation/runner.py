"""`medcoder eval`: run the strategies over a dataset and score them in one pass.

ICD datasets (CodiEsp, JSONL): the workflow codes each note (the `tree` strategy); the
`retrieval` and `flat` baselines code the same extracted entities, so all three are measured
on the same notes with the same model in the same run. DPD (ATC): each product is coded from its
ingredients and, separately, from its brand name alone.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from medcoder import jsonl
from medcoder.engine.workflow import Workflow, load_workflow
from medcoder.errors import MedcoderError
from medcoder.evaluation.coder_fixes import FIX_KINDS, coder_fixes
from medcoder.evaluation.drugs import STRATEGY as DRUG_STRATEGY
from medcoder.evaluation.drugs import evaluate_drugs, product_metrics
from medcoder.evaluation.report import write_html
from medcoder.evaluation.strategies import (
    DEFAULT_STRATEGIES,
    MEMORY_THRESHOLD,
    NO_MODEL,
    STRATEGIES,
    Prediction,
    StrategyOutput,
    flat_codes,
    memory_codes,
    ranked_nomodel_codes,
    retrieval_codes,
    term_entity,
    term_workflow,
    tree_term,
)
from medcoder.knowledge import KnowledgeBase, default_kb, druglex
from medcoder.knowledge.atc import ATC
from medcoder.knowledge.retrieval import HybridRetriever, Retriever
from medcoder.knowledge.systems import system_class
from medcoder.llm import LLM
from medcoder.paths import file_digest
from medcoder.progress import Progress
from medcoder.ranking import drug_features, metrics
from medcoder.ranking import drugs as drugs_module
from medcoder.ranking.cards import policy_figures
from medcoder.ranking.coder import RankedCoder, RetrievalCache
from medcoder.ranking.datasets import Dataset, Example, jsonl_systems, load_dataset
from medcoder.ranking.drugs import DrugCoder, drug_ranker_folder
from medcoder.ranking.folders import ranker_folder

logger = logging.getLogger(__name__)


@dataclass
class _Counter:
    """Counts a model's calls and tokens between two points (an LLM observer)."""

    calls: int = 0
    prompt: int = 0
    cached: int = 0
    seconds: float = 0.0
    _stop: Any = field(default=None, repr=False)

    def attach(self, llm: LLM) -> "_Counter":
        def see(record: Any) -> None:
            self.calls += 1
            self.prompt += record.stats.prompt_tokens
            self.cached += record.stats.cached_tokens
            self.seconds += record.stats.latency_s

        self._stop = llm.observe(see)
        return self

    def detach(self) -> None:
        if self._stop:
            self._stop()


def _timed(out: StrategyOutput, llm: LLM | None, fn: Callable[[], Any]) -> StrategyOutput:
    counter = _Counter().attach(llm) if llm else None
    start = time.perf_counter()
    try:
        out.predictions = fn()
    finally:
        out.seconds = round(time.perf_counter() - start, 3)
        if counter:
            counter.detach()
            out.model_calls, out.prompt_tokens, out.cached_tokens = counter.calls, counter.prompt, counter.cached
    return out


def evaluate(
    dataset: str | Path | Dataset,
    workflow: str | None = None,
    model: str | None = None,
    limit: int | None = None,
    out_dir: str | Path | None = None,
    strategies: tuple[str, ...] = DEFAULT_STRATEGIES,
    progress: Progress | None = None,
    workflow_kwargs: dict[str, Any] | None = None,
    ranker: str = "builtin",
    system: str | None = None,
) -> dict[str, Any]:
    """Score every strategy on the dataset; writes `eval.json` and `eval.html` into `out_dir` when given.

    Strategies that need no model (`memory`, `ranked-nomodel`) load none when they run alone.
    """

    if system is None and not isinstance(dataset, Dataset) and len(jsonl_systems(dataset)) > 1:
        return evaluate_systems(dataset, workflow, model, limit, out_dir, strategies, progress, workflow_kwargs, ranker)
    data = dataset if isinstance(dataset, Dataset) else load_dataset(dataset, system=system)
    data = data.head(limit)
    unknown = set(strategies) - set(STRATEGIES)
    if unknown:
        raise MedcoderError(f"unknown strategies {sorted(unknown)}; choose from {', '.join(STRATEGIES)}")
    started = time.time()
    if data.system == ATC.system and (strategies == DEFAULT_STRATEGIES or set(strategies) <= set(NO_MODEL)):
        # drugs: the lexicon and the learned drug ranker, no model (the model's two questions are measured by
        # benchmarks/drug_ablation.py); the term strategies of the first version stay selectable by name
        return _finish(
            _evaluate_drugs(data, ranker, progress, out_dir),
            data,
            dataset,
            ATC.default_workflow,
            {"name": "none", "sha256": "", "backend": "none"},
            (DRUG_STRATEGY,),
            started,
            out_dir,
        )
    if data.layout == "dpd":  # drug products: the term strategies (the ranked ones are for notes)
        term = ("retrieval", "flat", "tree")
        strategies = term if strategies == DEFAULT_STRATEGIES else tuple(s for s in strategies if s in term) or term
    # the term strategies walk the tree: the drug workflow that does is `atc-tree` (`atc` ranks, with no model)
    workflow = workflow or (
        (system_class(data.system).tree_workflow if data.layout == "dpd" else None)
        or system_class(data.system).default_workflow
    )
    if workflow is None:
        raise MedcoderError(f"the {data.system} code system names no workflow to evaluate with; give one")
    if data.layout != "dpd" and set(strategies) <= set(NO_MODEL):
        return _finish(
            _evaluate_without_model(data, strategies, ranker, progress, out_dir),
            data,
            dataset,
            "none",
            {"name": "none", "sha256": "", "backend": "none"},
            strategies,
            started,
            out_dir,
        )
    with load_workflow(workflow, model=model, **(workflow_kwargs or {})) as wf:
        strategies, skipped = _runnable(wf, strategies, data.layout)
        llm = wf.llms.get("default") or next(iter(wf.llms.values()))
        retriever = wf.retriever
        if retriever is None:
            retriever = HybridRetriever(wf.kb)
        cache = _RowCache(out_dir, data, workflow, llm, strategies)
        if data.layout == "dpd":
            per_item = _eval_terms(data, wf, llm, retriever, strategies, progress, cache)
            report = {"metrics": product_metrics(per_item, strategies)}
        else:
            coder = _coder(data.system, ranker, wf.kb, retriever) if set(strategies) & set(NO_MODEL) else None
            per_item = _eval_notes(data, wf, llm, retriever, strategies, progress, cache, coder)
            auto = (coder.ranker.meta.get("cv") or {}).get("auto_accept_threshold") if coder else None
            report = _score_icd(data, per_item, strategies, wf.kb, auto)
        model_info = {"name": llm.name, "sha256": llm.sha256, "backend": llm.backend}
    if skipped:
        report["skipped"] = skipped
    return _finish(report, data, dataset, workflow, model_info, strategies, started, out_dir, per_item)


ENTITY_STRATEGIES = ("retrieval", "flat")  # they code the mentions a workflow's extractor found


def _runnable(wf: Workflow, strategies: tuple[str, ...], layout: str) -> tuple[tuple[str, ...], dict[str, str]]:
    """The strategies this workflow can run, and why the others cannot (said in one line, left out of the
    table): `retrieval` and `flat` code extracted mentions, so they need a workflow that extracts (or `tree`,
    whose workflow does)."""
    if layout == "dpd" or "tree" in strategies or any(n.agent == "entity_extractor" for n in wf.spec.nodes):
        return strategies, {}
    skipped = {
        s: f"needs extracted mentions and the workflow {wf.spec.name} extracts none (use -w "
        f"icd10cm-extract or add --strategy tree)"
        for s in strategies
        if s in ENTITY_STRATEGIES
    }
    kept = tuple(s for s in strategies if s not in skipped)
    for name, why in skipped.items():
        logger.warning("strategy %s left out: %s", name, why)
    if not kept:
        raise MedcoderError(f"--strategy {' / '.join(skipped)} {next(iter(skipped.values()))}")
    return kept, skipped


def evaluate_systems(
    dataset: str | Path,
    workflow: str | None = None,
    model: str | None = None,
    limit: int | None = None,
    out_dir: str | Path | None = None,
    strategies: tuple[str, ...] = DEFAULT_STRATEGIES,
    progress: Progress | None = None,
    workflow_kwargs: dict[str, Any] | None = None,
    ranker: str = "builtin",
) -> dict[str, Any]:
    """A JSONL of notes coded in several systems (diagnoses and drugs): each system scored on the same notes,
    each in `out_dir/<system>/`; the report holds one section per system under `systems`."""
    reports = {}
    systems = jsonl_systems(dataset)
    for system in systems:
        sub = Path(out_dir) / system if out_dir is not None else None
        reports[system] = evaluate(
            dataset,
            workflow if system == systems[0] else None,
            model,
            limit,
            sub,
            strategies,
            progress,
            workflow_kwargs,
            ranker,
            system=system,
        )
    first = next(iter(reports.values()))
    return {
        "dataset": {**first["dataset"], "systems": list(reports)},
        "systems": reports,
        "seconds": round(sum(r["seconds"] for r in reports.values()), 1),
    }


def _finish(
    report: dict[str, Any],
    data: Dataset,
    dataset: Any,
    workflow: str,
    model_info: dict[str, Any],
    strategies: tuple[str, ...],
    started: float,
    out_dir: str | Path | None,
    per_item: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The eval report with its header, written as eval.json and eval.html when `out_dir` is given."""
    per_item = per_item if per_item is not None else report.pop("items", [])
    report = {
        "dataset": {
            "name": data.name,
            "layout": data.layout,
            "system": data.system,
            "items": len(data),
            "path": str(dataset) if not isinstance(dataset, Dataset) else data.name,
        },
        "workflow": workflow,
        "model": model_info,
        "strategies": list(strategies),
        "seconds": round(time.time() - started, 1),
        **report,
        "items": per_item,
    }
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "eval.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
        write_html(report, out / "eval.html")
    return report


class _RowCache:
    """Scored items appended to `out_dir/items-<digest>.jsonl` as they finish, so a killed eval resumes
    where it stopped (the digest covers dataset, workflow, model sha256 and strategies)."""

    def __init__(
        self,
        out_dir: str | Path | None,
        data: Dataset,
        workflow: str,
        llm: LLM | None,
        strategies: tuple[str, ...],
        ranker: str = "builtin",
    ) -> None:
        import hashlib

        self.rows: dict[str, dict[str, Any]] = {}
        self.path: Path | None = None
        if out_dir is None:
            return
        key = json.dumps(
            [data.name, data.layout, workflow, llm.name if llm else "", llm.sha256 if llm else "", sorted(strategies)]
            + ([ranker] if ranker != "builtin" else [])
        )
        self.path = Path(out_dir) / f"items-{hashlib.sha256(key.encode()).hexdigest()[:12]}.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        jsonl.repair_tail(self.path)
        for row in jsonl.read_rows(self.path):
            if "id" in row:
                self.rows[row["id"]] = row
        if self.rows:
            logger.info("eval: %d items already scored in %s", len(self.rows), self.path)

    def add(self, row: dict[str, Any]) -> dict[str, Any]:
        if self.path is not None and "error" not in row:
            with open(self.path, "ab", buffering=0) as fh:
                jsonl.append_row(fh, row, fault="eval_append")
        return row


def _each_item(
    data: Dataset, progress: Progress | None, cache: _RowCache, score: Callable[[Example], dict[str, Any]]
) -> list[dict[str, Any]]:
    """Score every example once: rows already in the cache are reused, new ones are appended to it."""
    rows = []
    for i, ex in enumerate(data.examples):
        if progress:
            progress("examples", i, len(data))
        rows.append(cache.rows[ex.id] if ex.id in cache.rows else cache.add(score(ex)))
    if progress:
        progress("examples", len(data), len(data))
    return rows


def _coder(system: str, ranker: str, kb: KnowledgeBase, retriever: Retriever) -> RankedCoder:

    return RankedCoder.from_folder(ranker_folder(system, ranker), kb, retriever)


def _nomodel_outputs(
    coder: RankedCoder, text: str, strategies: tuple[str, ...], searched: Any = None
) -> dict[str, StrategyOutput]:
    outputs: dict[str, StrategyOutput] = {}
    if "memory" in strategies:
        ranking: list[Prediction] = []

        def remember() -> list[Prediction]:
            ranking.extend(memory_codes(coder, text))
            return [p for p in ranking if p.confidence >= MEMORY_THRESHOLD]

        outputs["memory"] = _timed(StrategyOutput(calibrated=False), None, remember)
        outputs["memory"].ranking = ranking
    if "ranked-nomodel" in strategies:
        out = StrategyOutput(calibrated=True)
        holder: dict[str, Any] = {}

        def run() -> list[Prediction]:
            holder["accepted"], holder["every"], holder["auto"] = ranked_nomodel_codes(coder, text, searched)
            return holder["accepted"]

        _timed(out, None, run)
        out.ranking, out.auto = holder["every"], holder["auto"]
        outputs["ranked-nomodel"] = out
    return outputs


def _evaluate_without_model(
    data: Dataset, strategies: tuple[str, ...], ranker: str, progress: Progress | None, out_dir: str | Path | None
) -> dict[str, Any]:
    """`memory` and `ranked-nomodel` only: knowledge, retrieval and the ranker, no language model loaded."""

    kb = default_kb()
    coder = _coder(data.system, ranker, kb, HybridRetriever(kb))
    cache = _RowCache(out_dir, data, "no-model", None, strategies, ranker)

    # retrieval does not depend on the ranker: cached per sentence list, a re-scored eval searches nothing again
    searched = RetrievalCache(Path(out_dir) / "retrieval-cache.jsonl" if out_dir is not None else None)

    def score(ex: Example) -> dict[str, Any]:
        row: dict[str, Any] = {"id": ex.id, "gold": ex.codes}
        try:
            row["strategies"] = {
                k: v.to_row() for k, v in _nomodel_outputs(coder, ex.text, strategies, searched).items()
            }
        except Exception as exc:  # noqa: BLE001 - one bad note is recorded, the evaluation goes on
            logger.exception("eval: note %s failed", ex.id)
            row["error"] = f"{type(exc).__name__}: {exc}"
        return row

    rows = _each_item(data, progress, cache, score)
    auto = (coder.ranker.meta.get("cv") or {}).get("auto_accept_threshold")
    return {**_score_icd(data, rows, strategies, kb, auto), "items": rows}


def _evaluate_drugs(
    data: Dataset, ranker: str, progress: Progress | None, out_dir: str | Path | None
) -> dict[str, Any]:
    folder = drug_ranker_folder(ranker)
    coder = DrugCoder.from_folder(folder, default_kb().ontology(ATC.system))
    # rows are reused only for the same ranker and lexicon: a retrained ranker scores everything again
    code = [Path(str(m.__file__)) for m in (drug_features, drugs_module, druglex)]  # the code that reads the notes too
    version = "|".join(
        [ranker, file_digest(folder / "ranker.joblib"), str(coder.lex.entries), *(file_digest(f)[:12] for f in code)]
    )
    cache = _RowCache(out_dir, data, "drug-ranker", None, (DRUG_STRATEGY,), version)
    return evaluate_drugs(data, coder, progress, cache.rows, cache.add)


def _eval_notes(
    data: Dataset,
    wf: Workflow,
    llm: LLM,
    retriever: Retriever,
    strategies: tuple[str, ...],
    progress: Progress | None,
    cache: _RowCache,
    coder: RankedCoder | None = None,
) -> list[dict[str, Any]]:
    tree_wf = None
    tree_name = system_class(data.system).tree_workflow
    if "tree" in strategies and tree_name and wf.spec.name != tree_name:
        tree_wf = load_workflow(tree_name, llms=wf.llms, kb=wf.kb, audit=None)

    def score(ex: Example) -> dict[str, Any]:
        row: dict[str, Any] = {"id": ex.id, "gold": ex.codes, "strategies": {}}
        try:
            start = time.perf_counter()
            result = wf.run(ex.text)
            main = StrategyOutput(
                seconds=round(time.perf_counter() - start, 3),
                model_calls=result.stats.get("model_calls", 0),
                prompt_tokens=result.stats.get("prompt_tokens", 0),
                cached_tokens=result.stats.get("cached_tokens", 0),
                calibrated=True,
            )
            main.predictions = [
                Prediction(c.code, c.confidence, c.mention) for c in result.codes if c.system == data.system
            ]
            main.ranking = main.predictions + [
                Prediction(s.code, s.confidence) for s in result.suggestions if s.system == data.system
            ]
            outputs = {"tree" if wf.spec.name == tree_name else "ranked": main}
            entities = result.entities
            if tree_wf is not None:
                t0 = time.perf_counter()
                tres = tree_wf.run(ex.text)
                entities = entities or tres.entities  # the ranked workflow extracts nothing: baselines use these
                outputs["tree"] = StrategyOutput(
                    [Prediction(c.code, c.confidence, c.mention) for c in tres.codes if c.system == data.system],
                    round(time.perf_counter() - t0, 3),
                    tres.stats.get("model_calls", 0),
                    tres.stats.get("prompt_tokens", 0),
                    tres.stats.get("cached_tokens", 0),
                )
            if coder is not None:
                outputs.update(_nomodel_outputs(coder, ex.text, strategies))
            row["run_id"], row["entities"] = result.run_id, len(entities)
            if "retrieval" in strategies:
                outputs["retrieval"] = _timed(
                    StrategyOutput(), None, lambda: retrieval_codes(retriever, entities, data.system)
                )
            if "flat" in strategies:
                outputs["flat"] = _timed(
                    StrategyOutput(),
                    llm,
                    lambda: flat_codes(llm, retriever, wf.kb.ontology(data.system), ex.text, entities),
                )
            row["strategies"] = {name: outputs[name].to_row() for name in strategies}
        except Exception as exc:  # noqa: BLE001 - one bad note is recorded, the evaluation goes on
            logger.exception("eval: note %s failed", ex.id)
            row["error"] = f"{type(exc).__name__}: {exc}"
        return row

    return _each_item(data, progress, cache, score)


def _eval_terms(
    data: Dataset,
    wf: Workflow,
    llm: LLM,
    retriever: Retriever,
    strategies: tuple[str, ...],
    progress: Progress | None,
    cache: _RowCache,
) -> list[dict[str, Any]]:
    system = data.system
    tree = term_workflow(llm, wf.kb, system) if "tree" in strategies else None

    def score(ex: Example) -> dict[str, Any]:
        row: dict[str, Any] = {"id": ex.id, "gold": ex.codes, "brand": ex.meta.get("brand", ""), "fields": {}}
        for fld in ("ingredients", "brand"):
            text = ex.meta.get(fld) or ex.text
            per: dict[str, Any] = {}
            for name in strategies:
                run = {
                    "retrieval": lambda: retrieval_codes(retriever, [term_entity(text, system)], system),
                    "flat": lambda: flat_codes(
                        llm, retriever, wf.kb.ontology(system), text, [term_entity(text, system)]
                    ),
                    "tree": lambda: tree_term(tree, text) if tree is not None else [],
                }[name]
                try:
                    per[name] = _timed(StrategyOutput(), llm if name != "retrieval" else None, run).to_row()
                except Exception as exc:  # noqa: BLE001 - one bad product is recorded, the evaluation goes on
                    logger.exception("eval: product %s failed", ex.id)
                    per[name] = {"ranked": [], "error": f"{type(exc).__name__}: {exc}"}
            row["fields"][fld] = per
        return row

    try:
        return _each_item(data, progress, cache, score)
    finally:
        if tree is not None:
            tree.close()


def _score_icd(
    data: Dataset,
    rows: list[dict[str, Any]],
    strategies: tuple[str, ...],
    kb: KnowledgeBase,
    auto_threshold: float | None = None,
) -> dict[str, Any]:
    icd = kb.ontology(data.system)
    texts = {ex.id: ex.text for ex in data.examples}
    ok_rows = [r for r in rows if "error" not in r]
    gold = [{_canon(icd, c) for c in r["gold"]} for r in ok_rows]

    chapter = metrics.chapter_of(icd)

    def is_ancestor(a: str, b: str) -> bool:
        try:
            return a in {n.code for n in icd.path(b)[:-1]}
        except Exception:  # noqa: BLE001
            return False

    out: dict[str, Any] = {"metrics": {}, "errors": len(rows) - len(ok_rows)}
    for name in strategies:
        ranked = [r["strategies"][name].get("ranking") or r["strategies"][name]["ranked"] for r in ok_rows]
        pred = [set(r["strategies"][name]["ranked"]) for r in ok_rows]
        m = metrics.icd_report(gold, pred, ranked)
        # calibration over the codes the tool shows (at or above the suggestion floor, 0.05)
        scored = [
            (p, c in g) for r, g in zip(ok_rows, gold) for c, p in r["strategies"][name].get("scores", []) if p >= 0.05
        ]
        if scored:
            # MAP over what the tool shows (codes and suggestions down to 0.05): comparable across strategies
            shown = [[c for c, p in r["strategies"][name].get("scores", []) if p >= 0.05] for r in ok_rows]
            m["map_shown"] = round(metrics.mean_average_precision(gold, shown), 4)
            m["calibration"] = metrics.calibration(scored, auto_threshold=auto_threshold)
            predicted = sum(len(p) for p in pred)
            if auto_threshold is not None and predicted:
                above = sum(
                    1
                    for r in ok_rows
                    for c, p in r["strategies"][name].get("scores", [])
                    if p >= auto_threshold and c in r["strategies"][name]["ranked"]
                )
                m["calibration"]["auto_accept_share_of_predicted"] = round(above / predicted, 4)
            by_decision = _by_decision(ok_rows, gold, name)
            if by_decision:  # a reliability diagram per kind of decision (ranker, Index reading, re-specified ...)
                m["calibration"]["by_decision"] = by_decision
            if predicted and all("auto" in r["strategies"][name] for r in ok_rows):
                # the policy that auto-accepts: above the threshold and found directly twice (ranking/cards.py)
                unseen = [c in g for r, g in zip(ok_rows, gold) for c in r["strategies"][name]["auto"]]
                m["calibration"]["auto_accept_policy"] = policy_figures(unseen, predicted)
        m["per_chapter"] = metrics.per_group_f1(gold, pred, chapter)
        errs: Counter[str] = Counter()
        fixes: Counter[str] = Counter()
        for g, p, r in zip(gold, pred, ok_rows):
            errs += metrics.error_types(g, p, is_ancestor)
            if r["id"] in texts:
                fixes += coder_fixes(icd, texts[r["id"]], r["strategies"][name]["ranked"], g)
        m["error_types"] = dict(errs)
        m["fixes"] = {k: fixes.get(k, 0) for k in FIX_KINDS}
        m["cost_per_note"] = metrics.mean_cost([r["strategies"][name] for r in ok_rows])
        out["metrics"][name] = m
    return out


def _by_decision(rows: list[dict[str, Any]], gold: list[set[str]], name: str) -> dict[str, Any]:
    """Calibration of the codes shown (p >= 0.05) for each kind of decision that made them."""
    kinds: dict[str, list[tuple[float, bool]]] = {}
    for r, g in zip(rows, gold):
        out = r["strategies"][name]
        decisions = out.get("decisions") or {}
        for c, p in out.get("scores", []):
            if p >= 0.05 and c in decisions:
                kinds.setdefault(decisions[c], []).append((p, c in g))
    return {k: metrics.calibration(v) for k, v in sorted(kinds.items())}


def _canon(icd: Any, code: str) -> str:
    try:
        return icd.resolve(code)
    except Exception:  # noqa: BLE001 - keep unknown gold codes as they are: they count as misses
        return code.upper()


__all__ = ["evaluate"]
