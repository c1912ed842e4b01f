"""Finalize: turn the run's state into the result a coder reads: codes ranked by confidence,
each with its evidence spans, the path walked and the critic's verdict."""

from __future__ import annotations

from medcoder.agents.base import AgentContext, AgentParams, NodeFn, register_agent
from medcoder.records import CodedItem, Ranking, Rejection, RunResult, Span, Verdict
from medcoder.state import CodingState, StateUpdate


class FinalizeParams(AgentParams):
    include_rejected: bool = False


def build_result(state: CodingState, include_rejected: bool = False) -> RunResult:
    """The accepted proposals as codes (one per code, evidence merged, best first), the rejected, the suggestions."""
    entities = {e.id: e for e in state.entities}
    by_code: dict[tuple[str, str], CodedItem] = {}
    rejected: list[Rejection] = []
    for eid, prop in state.proposals.items():
        verdict = state.verdicts.get(eid) or Verdict(
            code=prop.code, system=prop.system, decision="accept", reasons=["no critic in this workflow"]
        )
        entity = entities.get(eid)
        # ranked codes carry their own spans (none when only the memory proposed them)
        if prop.evidence is not None:
            spans = list(prop.evidence)
        else:
            spans = [Span(start=entity.start, end=entity.end, text=entity.text)] if entity else []
        if verdict.code != prop.code or verdict.decision != "accept":
            rejected.append(Rejection(code=prop.code, system=prop.system, entity_id=eid, verdict=verdict))
            if not include_rejected:
                continue
        mention = entity.mention if entity else ""
        item = by_code.get((prop.system, prop.code))
        if item is None:
            item = by_code[(prop.system, prop.code)] = CodedItem(
                code=prop.code,
                system=prop.system,
                label=prop.label,
                confidence=0.0,
                path=prop.path,
                steps=prop.steps,
                verdict=verdict,
                mention=mention,
            )
        if prop.features is not None:  # a ranked code: what made its score, for `why` and the review page
            item.ranking = Ranking(
                sources=prop.sources or [],
                features=prop.features,
                ranker_probability=prop.ranker_probability,
                decision=prop.decision,
                contributions=(prop.steps or [{}])[0].get("ranker", []),
            )
        item.evidence.extend(spans)
        item.entity_ids.append(eid)
        if prop.confidence > item.confidence:
            item.confidence, item.path, item.steps = prop.confidence, prop.path, prop.steps
            item.verdict, item.mention = verdict, mention
    codes = sorted(by_code.values(), key=lambda c: (-c.confidence, c.code))
    return RunResult(codes=codes, rejected=rejected, suggestions=list(state.suggestions))


@register_agent("finalize", FinalizeParams)
def finalize(params: FinalizeParams, ctx: AgentContext) -> NodeFn:
    """Collect accepted codes, merge evidence of the same code, rank by confidence."""

    def run(state: CodingState) -> StateUpdate:
        result = build_result(state, params.include_rejected)
        ctx.emit("result", {"codes": [c.model_dump(include={"code", "system", "confidence"}) for c in result.codes]})
        return {"result": result}

    return run
