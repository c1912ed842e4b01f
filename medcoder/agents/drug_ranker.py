"""Drug ranker node: the lexicon finds every drug, the learned ranker chooses each one's ATC code,
the status rules keep stopped, allergy and merely considered drugs out, and the model is asked
only what it was measured to help with (both questions are off by default: see docs/drugs.md's
ablation table).

Codes above the ranker's threshold become proposals with their evidence spans; the rest, down
to the floor, and drugs set aside by status (with the reason) become suggestions for review.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pydantic import Field

from medcoder.agents.base import AgentContext, AgentParams, NodeFn, register_agent
from medcoder.injection import coding_text
from medcoder.knowledge.atc import ATC
from medcoder.knowledge.ontology import CodeSystem
from medcoder.ranking.cards import ranker_card, version_of
from medcoder.ranking.drug_questions import ModelReading, choose_close, judge_status
from medcoder.ranking.drugs import DrugCode, DrugCoder, drug_ranker_folder
from medcoder.records import Proposal, Span, Suggestion, Verdict
from medcoder.state import CodingState, StateUpdate

logger = logging.getLogger(__name__)


class DrugRankParams(AgentParams):
    ranker: str = Field("builtin", description="a drug ranker folder from `medcoder learn --system atc`, or builtin")
    status_model: bool = Field(
        False,
        description="ask the model whether each drug is taken now (one batched judge); "
        "off by default: it did not improve F1 on the coded notes",
    )
    choose_model: bool = Field(
        False,
        description="ask the model between two close codes in different anatomical "
        "groups; off by default: it did not improve F1 on the coded notes",
    )
    choose_margin: float = Field(0.15, ge=0, le=1)
    model: str = "default"
    floor: float | None = Field(None, ge=0, le=1, description="suggestions kept down to this probability")

    def models_needed(self) -> list[str]:
        return [self.model] if (self.status_model or self.choose_model) else []


_CODERS: dict[tuple[str, int], DrugCoder] = {}


def load_drug_coder(folder: str | Path, onto: CodeSystem) -> DrugCoder:
    """One loaded drug ranker per (folder, ATC) in a process."""
    key = (str(Path(folder).resolve()), id(onto))
    if key not in _CODERS:
        _CODERS[key] = DrugCoder.from_folder(folder, onto)
    return _CODERS[key]


def _item(coder: DrugCoder, d: DrugCode) -> dict[str, Any]:
    onto = coder.onto
    return {
        "code": d.code,
        "system": ATC.system,
        "label": onto.label(d.code),
        "confidence": round(d.probability, 4),
        "path": [n.code for n in onto.path(d.code)],
        "evidence": [Span(start=cm.mention.start, end=cm.mention.end, text=cm.mention.text) for cm in d.mentions[:5]],
        "sources": sorted({f"lexicon:{cm.mention.via}" for cm in d.mentions}),
        "features": d.chosen.features(),
        "ranker_probability": round(d.probability, 4),
    }


@register_agent("drug_ranker", DrugRankParams)
def drug_ranker(params: DrugRankParams, ctx: AgentContext) -> NodeFn:
    """Drugs from the lexicon, ATC codes chosen by the learned drug ranker, status rules, optional model questions."""
    folder = drug_ranker_folder(params.ranker)
    version = version_of(ranker_card(folder))

    def run(state: CodingState) -> StateUpdate:
        onto = ctx.kb.ontology(ATC.system)
        coder = load_drug_coder(folder, onto)
        note = coding_text(state.note)
        coded = coder.mentions(note, state.sections or None)
        reading = ModelReading()
        llm = ctx.llms.get(params.model) if params.models_needed() else None
        if llm is not None and params.status_model:
            judge_status(llm, note, coded, reading)
        if llm is not None and params.choose_model:
            choose_close(llm, note, coded, onto, reading, params.choose_margin)
        drugs = coder.decide(coded)
        floor = params.floor if params.floor is not None else coder.ranker.floor
        proposals: dict[str, Proposal] = {}
        verdicts: dict[str, Verdict] = {}
        suggestions = list(state.suggestions)
        for d in drugs:
            item = _item(coder, d)
            if d.accepted:
                eid = f"drug:{d.code}"
                why = coder.ranker.contributions(coder.ranker_row(d.chosen.row))
                proposals[eid] = Proposal(**item, entity_id=eid, steps=[{"ranker": why}])
                verdicts[eid] = Verdict(
                    code=d.code,
                    system=ATC.system,
                    decision="accept",
                    reasons=[
                        f"drug ranker: drug p={d.drug_probability:.2f} ≥ threshold {coder.ranker.threshold:.2f}, "
                        f"this code p={d.probability:.2f}",
                        f"status: {d.best_mention.context.status}",
                    ],
                )
            elif d.drug_probability >= floor or d.reason:
                suggestions.append(Suggestion(**item, reason=d.reason or None))
        ctx.emit(
            "drugs_ranked",
            {
                "ranker": version,  # which ranker version coded the note
                "threshold": coder.ranker.threshold,
                "mentions": [
                    {
                        "text": cm.mention.text,
                        "start": cm.mention.start,
                        "end": cm.mention.end,
                        "substances": list(cm.mention.substances),
                        "via": cm.mention.via,
                        "status": cm.context.status,
                        "status_cue": cm.context.status_cue,
                        "routes": sorted(cm.context.routes),
                        "section": cm.context.section,
                        "top": [{"code": c.code, "p": round(c.probability, 4)} for c in cm.candidates[:3]],
                    }
                    for cm in coded
                ],
                "codes": [
                    {
                        "code": d.code,
                        "p": round(d.probability, 4),
                        "p_drug": round(d.drug_probability, 4),
                        "accepted": d.accepted,
                        "reason": d.reason,
                    }
                    for d in drugs
                ],
                "model": {
                    "status_log_odds": reading.status_log_odds,
                    "status_changed": reading.status_changed,
                    "choices": reading.choices,
                },
            },
        )
        return {"proposals": proposals, "verdicts": verdicts, "suggestions": suggestions}

    return run
