"""`CodingResult`: what a run returns, with exports to JSON, CSV and FHIR."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Evidence:
    start: int
    end: int
    text: str


@dataclass
class CodedItem:
    """One proposed code: where it came from and why it stands."""

    code: str
    system: str
    label: str
    confidence: float
    evidence: list[Evidence]
    path: list[str]
    verdict: dict[str, Any]
    mention: str = ""
    steps: list[dict[str, Any]] = field(default_factory=list)
    ranking: dict[str, Any] = field(default_factory=dict)  # ranked codes: sources, features, contributions

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "CodedItem":
        return cls(
            d["code"],
            d["system"],
            d["label"],
            d["confidence"],
            [Evidence(e["start"], e["end"], e["text"]) for e in d["evidence"]],
            list(d["path"]),
            d.get("verdict", {}),
            d.get("mention", ""),
            d.get("steps", []),
            d.get("ranking", {}),
        )


@dataclass
class CodingResult:
    """Codes ranked by confidence, with the entities and sections they came from."""

    run_id: str
    workflow: str
    note: str
    codes: list[CodedItem]
    entities: list[dict[str, Any]]
    sections: list[dict[str, Any]]
    rejected: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    suggestions: list[dict[str, Any]] = field(default_factory=list)  # below the threshold, for review

    @classmethod
    def from_state(cls, state: dict[str, Any], workflow: str, stats: dict[str, Any]) -> "CodingResult":
        result = state.get("result") or {}
        return cls(
            state.get("run_id", ""),
            workflow,
            state.get("note", ""),
            [CodedItem.from_dict(c) for c in result.get("codes", [])],
            list(state.get("entities", [])),
            list(state.get("sections", [])),
            result.get("rejected", []),
            list(state.get("errors", [])),
            stats,
            list(result.get("suggestions", [])),
        )

    def codes_of(self, system: str) -> list[str]:
        return [c.code for c in self.codes if c.system == system]

    def to_dict(self, steps: bool = False) -> dict[str, Any]:
        codes = [asdict(c) for c in self.codes]
        if not steps:
            for c in codes:
                c.pop("steps", None)
                if c.get("ranking"):
                    c["ranking"] = {k: v for k, v in c["ranking"].items() if k != "features"}
        return {
            "run_id": self.run_id,
            "workflow": self.workflow,
            "codes": codes,
            "entities": self.entities,
            "sections": self.sections,
            "rejected": self.rejected,
            "errors": self.errors,
            "stats": self.stats,
            "suggestions": self.suggestions,
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
                    c.verdict.get("decision", ""),
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
