"""The parts of a visit (chief complaint, history, exam, assessment, plan ...) and what each header allows.

A header names one part ("HPI"), a few ("S:" is any of the subjective parts, "A/P" the assessment or the plan),
or none the rules know; the sentence classifier chooses among what the header allows. The ranker learned from
the coarser `RANKER_PARTS`, so `coarse` folds the fine parts into them.
"""

from __future__ import annotations

# the fine parts a sentence of a visit is given
PARTS = ("cc", "hpi", "history", "meds", "allergies", "ros", "exam", "results", "assessment", "plan", "other")
# the parts the diagnosis ranker's features count (assessment and plan are one, allergies sit with medications)
RANKER_PARTS = ("cc", "hpi", "history", "meds", "ros", "exam", "results", "plan", "other")
_COARSE = {"allergies": "meds", "assessment": "plan"}

SUBJECTIVE = ("cc", "hpi", "history", "meds", "allergies", "ros")
OBJECTIVE = ("exam", "results")

# canonical header name (sections.HEADERS) -> the parts a sentence under it may be
HEADER_PARTS: dict[str, tuple[str, ...]] = {
    "chief_complaint": ("cc",),
    "history_of_present_illness": ("hpi",),
    "past_medical_history": ("history",),
    "family_history": ("history",),
    "social_history": ("history",),
    "medications": ("meds",),
    "allergies": ("allergies",),
    "review_of_systems": ("ros",),
    "physical_examination": ("exam",),
    "results": ("results",),
    "assessment_and_plan": ("assessment", "plan"),
    "assessment": ("assessment",),
    "discharge_diagnoses": ("assessment",),
    "plan": ("plan",),
    "instructions": ("plan",),
    "subjective": SUBJECTIVE,
    "objective": OBJECTIVE,
}


# fine part -> the canonical section name that stands for it (sections.HEADERS), for a note's sections
SECTION_NAMES = {
    "cc": "chief_complaint",
    "hpi": "history_of_present_illness",
    "history": "past_medical_history",
    "meds": "medications",
    "allergies": "allergies",
    "ros": "review_of_systems",
    "exam": "physical_examination",
    "results": "results",
    "assessment": "assessment",
    "plan": "plan",
    "other": "other",
}


def coarse(part: str) -> str:
    """The ranker's part for a fine part (assessment -> plan, allergies -> meds)."""
    return _COARSE.get(part, part)


def header_parts(name: str) -> tuple[str, ...]:
    """The parts a sentence under a header of this canonical name may be (every part when the name is unknown)."""
    return HEADER_PARTS.get(name, PARTS)
