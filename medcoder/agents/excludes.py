"""The Excludes1 rule over a final set of codes: two accepted codes that an Excludes1 note forbids together
keep only the more confident one. The ranker applies it to its proposals (and the comparison path's critic,
`agents.tree.critic`, to its verdicts)."""

from __future__ import annotations

from medcoder.agents.base import AgentContext
from medcoder.records import Proposal, Verdict


def drop_excludes1_conflicts(
    verdicts: dict[str, Verdict], new: dict[str, Verdict], proposals: dict[str, Proposal], ctx: AgentContext
) -> None:
    """Of two accepted codes that an Excludes1 note forbids together, keep the more confident one
    (the ranker and the comparison critic both apply this rule over their final set)."""
    for system in sorted({v.system for v in verdicts.values() if v.decision == "accept"}):
        _drop_conflicts_in(system, verdicts, new, proposals, ctx)


def _drop_conflicts_in(
    system: str,
    verdicts: dict[str, Verdict],
    new: dict[str, Verdict],
    proposals: dict[str, Proposal],
    ctx: AgentContext,
) -> None:
    accepted = {eid: v for eid, v in verdicts.items() if v.decision == "accept" and v.system == system}
    codes = sorted({v.code for v in accepted.values()})
    if len(codes) < 2:
        return
    for conflict in ctx.kb.ontology(system).excludes1_conflicts(codes):
        losers = [eid for eid, v in accepted.items() if v.code in (conflict["code"], conflict["excludes"])]
        if len(losers) < 2:
            continue
        loser = min(losers, key=lambda e: proposals[e].confidence)
        v = verdicts[loser]
        other = conflict["excludes"] if v.code == conflict["code"] else conflict["code"]
        reason = f"Excludes1 with {other}: {conflict['note']} (from {conflict['from']})"
        verdicts[loser] = new[loser] = v.model_copy(update={"decision": "reject", "reasons": [*v.reasons, reason]})
        accepted.pop(loser)
