"""Short US visit notes for the guideline tests, and coding one through the shipped ranker."""

from __future__ import annotations

from typing import Any

VISIT = """CHIEF COMPLAINT

{cc}

HISTORY OF PRESENT ILLNESS

{hpi}

PHYSICAL EXAMINATION

{exam}

ASSESSMENT AND PLAN

{plan}
"""


def shipped_coder(kb: Any) -> Any:
    """The shipped diagnosis ranker over the real retrieval (BM25 + MiniLM in ChromaDB + the Alphabetic Index)."""
    from medcoder.knowledge.retrieval import HybridRetriever
    from medcoder.ranking.coder import RankedCoder
    from medcoder.ranking.folders import ranker_folder

    return RankedCoder.from_folder(ranker_folder("icd10cm"), kb, HybridRetriever(kb))


def code_note(coder: Any, note: str) -> tuple[set[str], dict[str, Any]]:
    """The accepted codes of a note, and every ranked code by its code."""
    ranked = coder.rank(coder.candidates(note), note=note)
    return {r.code for r in ranked if r.accepted}, {r.code: r for r in ranked}
