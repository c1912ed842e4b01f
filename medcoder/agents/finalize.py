"""Finalize: turn the run's state into the result a coder reads: codes ranked by confidence,
each with its evidence spans, the path walked and the critic's verdict."""

from __future__ import annotations

from typing import Any

from medcoder.agents.base import AgentContext, AgentParams, NodeFn, register_agent


class FinalizeParams(AgentParams):
    include_rejected: bool = False


def build_result(state: dict[str, Any], include_rejected: bool = False) -> dict[str, Any]:
    entities = {e["id"]: e for e in state.get("entities", [])}
    verdicts = state.get("verdicts", {})
    by_code: dict[tuple[str, str], dict[str, Any]] = {}
    rejected = []
    for eid, prop in state.get("proposals", {}).items():
        verdict = verdicts.get(eid, {"decision": "accept", "reasons": ["no critic in this workflow"]})
        entity = entities.get(eid, {})
        # ranked codes carry their own spans (none when only the memory proposed them)
        spans = (
            prop["evidence"]
            if "evidence" in prop
            else [{"start": entity.get("start"), "end": entity.get("end"), "text": entity.get("text", "")}]
        )
        if verdict.get("code", prop["code"]) != prop["code"] or verdict["decision"] != "accept":
            rejected.append({"code": prop["code"], "system": prop["system"], "entity_id": eid, "verdict": verdict})
            if not include_rejected:
                continue
        key = (prop["system"], prop["code"])
        item = by_code.setdefault(
            key,
            {
                "code": prop["code"],
                "system": prop["system"],
                "label": prop["label"],
                "confidence": 0.0,
                "evidence": [],
                "entity_ids": [],
                "path": prop["path"],
                "steps": prop.get("steps", []),
                "verdict": verdict,
                "mention": entity.get("mention", ""),
            },
        )
        if "features" in prop:  # a ranked code: what made its score, for `why` and the review page
            item["ranking"] = {
                "sources": prop.get("sources", []),
                "features": prop["features"],
                "ranker_probability": prop.get("ranker_probability"),
                "contributions": (prop.get("steps") or [{}])[0].get("ranker", []),
            }
        item["evidence"].extend(spans)
        item["entity_ids"].append(eid)
        if prop["confidence"] > item["confidence"]:
            item.update(
                confidence=prop["confidence"],
                path=prop["path"],
                steps=prop.get("steps", []),
                verdict=verdict,
                mention=entity.get("mention", ""),
            )
    codes = sorted(by_code.values(), key=lambda c: (-c["confidence"], c["code"]))
    return {"codes": codes, "rejected": rejected, "suggestions": list(state.get("suggestions") or [])}


@register_agent("finalize", FinalizeParams)
def finalize(params: FinalizeParams, ctx: AgentContext) -> NodeFn:
    """Collect accepted codes, merge evidence of the same code, rank by confidence."""

    def run(state: dict[str, Any]) -> dict[str, Any]:
        result = build_result(state, params.include_rejected)
        ctx.emit(
            "result",
            {
                "codes": [
                    {"code": c["code"], "system": c["system"], "confidence": c["confidence"]} for c in result["codes"]
                ]
            },
        )
        return {"result": result}

    return run
