"""`CodingResult`: what a run returns, with exports to JSON, CSV and FHIR."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from medcoder.records import CodedItem, Entity, NodeError, Rejection, Section, Span, Suggestion, to_json

if TYPE_CHECKING:
    from medcoder.engine.state import CodingState

Evidence = Span  # the one evidence type: a stretch of the note by offsets, with its text
__all__ = ["CodedItem", "CodingResult", "Evidence"]


@dataclass
class CodingResult:
    """Codes ranked by confidence, with the entities and sections they came from."""

    run_id: str
    workflow: str
    note: str
    codes: list[CodedItem]
    entities: list[Entity]
    sections: list[Section]
    rejected: list[Rejection] = field(default_factory=list)
    errors: list[NodeError] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    suggestions: list[Suggestion] = field(default_factory=list)  # below the threshold, for review

    @classmethod
    def from_state(cls, state: "CodingState", workflow: str, stats: dict[str, Any]) -> "CodingResult":
        result = state.result
        return cls(
            state.run_id,
            workflow,
            state.note,
            list(result.codes) if result else [],
            list(state.entities),
            list(state.sections),
            list(result.rejected) if result else [],
            list(state.errors),
            stats,
            list(result.suggestions) if result else [],
        )

    def codes_of(self, system: str) -> list[str]:
        return [c.code for c in self.codes if c.system == system]

    def to_dict(self, steps: bool = False) -> dict[str, Any]:
        """The JSON a user exports (`steps`: with the navigator's choices and the ranker's features)."""
        codes = []
        for item in self.codes:
            c = item.model_dump(mode="json", exclude={"entity_ids"}, exclude_none=True)
            c["ranking"] = c.get("ranking") or {}
            if not steps:
                c.pop("steps", None)
                c["ranking"] = {k: v for k, v in c["ranking"].items() if k != "features"}
            codes.append(c)
        return {
            "run_id": self.run_id,
            "workflow": self.workflow,
            "codes": codes,
            "entities": to_json(self.entities),
            "sections": to_json(self.sections),
            "rejected": to_json(self.rejected),
            "errors": to_json(self.errors),
            "stats": self.stats,
            "suggestions": to_json(self.suggestions),
        }

    def to_json(self, indent: int | None = 2, steps: bool = False) -> str:
        return json.dumps(self.to_dict(steps), indent=indent, ensure_ascii=False)

    def to_csv(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["run_id", "system", "code", "label", "confidence", "evidence", "offsets", "decision"])
        for c in self.codes:
            w.writerow(
                [
                    self.run_id,
                    c.system,
                    c.code,
                    c.label,
                    f"{c.confidence:.4f}",
                    " | ".join(e.text for e in c.evidence),
                    " ".join(f"{e.start}-{e.end}" for e in c.evidence),
                    c.verdict.decision,
                ]
            )
        return buf.getvalue()

    def to_fhir(self, patient: str = "Patient/unknown") -> dict[str, Any]:
        """A FHIR R4 collection Bundle: a Condition per diagnosis code, a MedicationStatement per drug."""
        from medcoder.knowledge.systems import system_class  # deferred: results load without the knowledge layer

        entries = []
        for i, c in enumerate(self.codes):
            cls = system_class(c.system)
            coding = {"system": cls.fhir_uri, "code": c.code, "display": c.label}
            notes = [{"text": f'evidence: "{e.text}" [{e.start}:{e.end}]'} for e in c.evidence]
            resource = _fhir_resource(
                cls.fhir_resource,
                f"{self.run_id}-{cls.fhir_resource[0].lower()}{i}",
                coding,
                c.mention or c.label,
                patient,
                notes,
            )
            entries.append({"fullUrl": f"urn:uuid:{resource['id']}", "resource": resource})
        return {"resourceType": "Bundle", "type": "collection", "entry": entries}


def _fhir_resource(
    kind: str, rid: str, coding: dict[str, Any], text: str, patient: str, notes: list[dict[str, str]]
) -> dict[str, Any]:
    """One FHIR R4 resource of the kind the code system asks for (Condition, MedicationStatement, Observation)."""
    concept = {"coding": [coding], "text": text}
    if kind == "Condition":
        return {
            "resourceType": "Condition",
            "id": rid,
            "clinicalStatus": {
                "coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]
            },
            "verificationStatus": {
                "coding": [
                    {"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "provisional"}
                ]
            },
            "code": concept,
            "subject": {"reference": patient},
            "note": notes,
        }
    if kind == "MedicationStatement":
        return {
            "resourceType": "MedicationStatement",
            "id": rid,
            "status": "active",
            "medicationCodeableConcept": concept,
            "subject": {"reference": patient},
            "note": notes,
        }
    return {
        "resourceType": kind,
        "id": rid,
        "status": "preliminary",
        "code": concept,
        "subject": {"reference": patient},
        "note": notes,
    }
