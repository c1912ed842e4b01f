"""The SDK side of `medcoder learn`: load the data, build retrieval, learn, write the folder."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

from medcoder import audit
from medcoder.errors import MedcoderError
from medcoder.knowledge import KnowledgeBase, default_kb
from medcoder.knowledge.atc import ATC
from medcoder.knowledge.retrieval import HybridRetriever, Retriever
from medcoder.knowledge.systems import DEFAULT_SYSTEM
from medcoder.llm import load_llm
from medcoder.progress import Progress
from medcoder.ranking.cards import examples_digest
from medcoder.ranking.datasets import Example, load_dataset
from medcoder.ranking.drug_learn import learn_drugs
from medcoder.ranking.feedback import feedback_examples
from medcoder.ranking.learn import learn

logger = logging.getLogger(__name__)

CODIESP_ATTRIBUTION = (
    "Learned from CodiEsp v4 train (500 clinical case reports, English machine translation, gold ICD-10 codes): "
    "CLEF eHealth 2020 CodiEsp, Barcelona Supercomputing Center / TEMU (Zenodo 3693570), CC BY 4.0 "
    "(https://creativecommons.org/licenses/by/4.0/). Changes: codes mapped to ICD-10-CM 2026; features and "
    "model weights derived; no note text is stored except the TF-IDF vocabulary of the memory."
)


DPD_ATTRIBUTION = (
    "Learned from Health Canada Drug Product Database products (extract of 2026-04-01). Contains "
    "information licensed under the Open Government Licence – Canada."
)
ACI_ICD_ATTRIBUTION = (
    "Learned from ACI-Bench visit notes (wyim/aci-bench, CC BY 4.0) coded to ICD-10-CM FY2026 by "
    "the medcoder project (CC BY 4.0)."
)
ACI_ATTRIBUTION = (
    "Learned from ACI-Bench visit notes (wyim/aci-bench, CC BY 4.0) coded to ATC by the medcoder project (CC BY 4.0)."
)


def learn_drugs_from(
    datasets: Sequence[str | Path],
    out: str | Path,
    *,
    folds: int = 5,
    limit: int | None = None,
    progress: Progress | None = None,
    kb: KnowledgeBase | None = None,
) -> Any:
    """Learn the drug ranker from drug-product tables (DPD layout) and notes coded in ATC (JSONL) into `out`."""
    kb = kb or default_kb()
    products: list[Example] = []
    notes: list[Example] = []
    source: list[dict[str, Any]] = []
    for path in datasets:
        data = load_dataset(path, system=ATC.system).head(limit)
        if data.system != ATC.system:
            raise MedcoderError(f"{path}: coded in {data.system}, not ATC")
        (products if data.layout == "dpd" else notes).extend(data.examples)
        source.append(
            {
                "dataset": data.name,
                "layout": data.layout,
                "items": len(data),
                "digest": examples_digest(data.examples),
                "attribution": DPD_ATTRIBUTION if data.layout == "dpd" else ACI_ATTRIBUTION,
            }
        )
    _, report = learn_drugs(
        kb.ontology(ATC.system), products, notes, out, folds=folds, progress=progress, source={"datasets": source}
    )
    return report


def learn_from(
    datasets: str | Path | Sequence[str | Path] | None,
    out: str | Path,
    *,
    system: str = DEFAULT_SYSTEM,
    feedback: Sequence[str] = (),
    audit_path: str | None = None,
    folds: int = 5,
    limit: int | None = None,
    cache_path: str | None = None,
    progress: Progress | None = None,
    retriever: Retriever | None = None,
    kb: KnowledgeBase | None = None,
    verifier_model: str | None = None,
    verifier_notes: int = 40,
) -> Any:
    """Learn a ranker and memory from datasets (a JSONL coded in several systems gives its `system` lines)
    and/or feedback files into `out`; returns the report."""

    kb = kb or default_kb()
    examples = []
    source: dict[str, Any] = {"datasets": []}
    paths = [datasets] if isinstance(datasets, (str, Path)) else list(datasets or [])
    for path in paths:
        data = load_dataset(path, system=system).head(limit)
        if data.system != system:
            raise MedcoderError(f"{path}: coded in {data.system}, not {system}")
        examples += data.examples
        item = {
            "dataset": data.name,
            "layout": data.layout,
            "notes": len(data),
            "digest": examples_digest(data.examples),
        }
        if data.layout == "codiesp":
            item["attribution"] = CODIESP_ATTRIBUTION
        elif "aci" in str(path).lower():
            item["attribution"] = ACI_ICD_ATTRIBUTION
        source["datasets"].append(item)
    if feedback:
        fb = feedback_examples(feedback, audit.open(audit_path), system)
        examples += fb
        source["feedback_sessions"] = len(fb)
    retriever = retriever or HybridRetriever(kb)
    llm = None
    if verifier_model:
        llm = load_llm(verifier_model)
    try:
        _, _, report = learn(
            examples,
            kb,
            retriever,
            system,
            out,
            folds=folds,
            progress=progress,
            cache_path=cache_path,
            source=source,
            verifier=llm,
            verifier_notes=verifier_notes,
        )
    finally:
        if llm is not None:
            llm.close()
    return report
