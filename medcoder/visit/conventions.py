"""ICD-10-CM conventions a careful coder applies to a visit note's codes after the ranker and the outpatient rules.

Each convention reads the codes accepted so far and the note's sentences, and proposes changes (`Change`): add a
code, re-specify one, with the sentence that supports it. They run in `CONVENTIONS` order:

1. `hypertension` (I.C.9.a): hypertension is coded once, so I10 beside a hypertensive heart or kidney disease code
   (I11-I13, I15, I16) is set aside; and I11.0 / I13.0 without a heart failure code gets I50.9 beside it (the
   Tabular List: "use additional code to identify the type of heart failure"), which the next convention types.
2. `heart-failure-type`: heart failure is coded by the type and acuity the note states (reduced / preserved
   ejection fraction, systolic, diastolic; acute, chronic), and as unspecified (I50.9) when it states neither.
3. `diabetes-complications` (Section I.C.4.a, the "with" convention): a complication of diabetes documented
   anywhere in the note (neuropathy, chronic kidney disease, peripheral vascular disease, retinopathy,
   gastroparesis) is coded with the diabetes as its combination code; E11.9 ("without complications") becomes it.
4. `specificity`: an "unspecified" code becomes the sibling whose distinguishing words (eye, stage, lobe, tendon,
   acuity) one sentence of its evidence states beside the condition's own words.
5. `aftercare`: the follow-up visit of a joint replacement is coded as aftercare (Z47.1) with the joint's status
   (Z96.6-, by joint and side).

Each is measured by turning it over (`medcoder learn` reports the cross-validated figures without each one that is
on and with each one that is off; `benchmarks/visit_rules_ablation.py` on the validation notes); those that did
not help are off by default (`DEFAULT_CONVENTIONS`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Collection, Sequence

from medcoder.knowledge.lexical import tokenize
from medcoder.visit.guidelines import finding_status, side_of

CONVENTIONS = ("hypertension", "heart-failure-type", "diabetes-complications", "specificity", "aftercare")
# on by default: those that helped when turned over on the coded visit notes (cross-validated, `medcoder learn`:
# heart-failure type 0.585 -> 0.599, diabetes complications 0.598 -> 0.599, specificity 0.5992 -> 0.6000, one code),
# hypertension (+0.007 on the validation notes), and aftercare, which no coded
# note exercises but the guideline asks for; none is off at present
DEFAULT_CONVENTIONS = CONVENTIONS


@dataclass(frozen=True)
class Coded:
    """An accepted code as the conventions see it: the sentences it rests on."""

    code: str
    label: str
    evidence: tuple[str, ...] = ()


@dataclass(frozen=True)
class NoteSentence:
    start: int
    end: int
    text: str
    part: str  # the visit part (cc, hpi, history, assessment, plan ...)


@dataclass(frozen=True)
class Change:
    """What a convention does: `add` `new` beside the codes, or `replace` `code` by `new`, for `reason`, resting
    on `sentence` (None: on the code's own evidence)."""

    rule: str
    action: str  # add | replace | drop
    code: str
    new: str
    reason: str
    sentence: NoteSentence | None = None


# ---- heart failure: the type and acuity the note states -----------------------------------------------------

_HF = re.compile(r"^I50\.")
_FAILURE = r"(?:congestive\s+)?(?:heart failure|chf|hf|dysfunction|cardiomyopathy)"
_REDUCED = re.compile(
    rf"\b(?:reduced|low|decreased|depressed)\s+(?:left ventricular\s+)?ejection fraction|\bhfref\b|"
    rf"\bsystolic\s+{_FAILURE}|heart failure with reduced",
    re.I,
)
_PRESERVED = re.compile(
    rf"\bhfpef\b|\bdiastolic\s+{_FAILURE}|\b(?:abnormal|impaired)\s+diastolic\s+(?:filling|function)|"
    rf"heart failure with preserved",
    re.I,
)
_ACUTE_ON_CHRONIC = re.compile(rf"\bacute on chronic\b(?:\s+\w+){{0,2}}\s+{_FAILURE}", re.I)
_ACUTE = re.compile(rf"\bacute\b(?:\s+\w+){{0,2}}\s+{_FAILURE}|{_FAILURE}\s+exacerbation|decompensated", re.I)
_CHRONIC = re.compile(rf"\bchronic\b(?:\s+\w+){{0,2}}\s+{_FAILURE}", re.I)
_HF_WORDS = re.compile(r"\b(heart failure|chf|hfref|hfpef|ejection fraction|diastolic|systolic)\b", re.I)


def heart_failure_type(coded: Sequence[Coded], sentences: Sequence[NoteSentence], onto: Any) -> list[Change]:
    """I50.x by what the note states of the heart failure: its type (reduced or preserved ejection fraction,
    systolic or diastolic) and, with a type, its acuity; no type stated is I50.9."""
    out = []
    about = [s for s in sentences if _HF_WORDS.search(s.text) and s.part not in ("ros",)]
    for c in coded:
        if not _HF.match(c.code) or c.code == "I50.1":
            continue
        texts = [s.text for s in about] + list(c.evidence)
        kind = next((k for k, pat in (("2", _REDUCED), ("3", _PRESERVED)) if any(pat.search(t) for t in texts)), "")
        if not kind:
            new, why = "I50.9", "the note does not state the type of heart failure"
        else:
            acuity = (
                "3"
                if any(_ACUTE_ON_CHRONIC.search(t) for t in texts)
                else "1"
                if any(_ACUTE.search(t) for t in texts)
                else "2"
                if any(_CHRONIC.search(t) for t in texts)
                else "0"
            )
            new = f"I50.{kind}{acuity}"
            why = f"the note states {'systolic (reduced EF)' if kind == '2' else 'diastolic (preserved EF)'} failure"
        if new != c.code and new in onto:
            out.append(Change("heart-failure-type", "replace", c.code, new, why))
    return out


# ---- diabetes with its complications (I.C.4.a) --------------------------------------------------------------

_DIABETES = re.compile(r"^E(0[89]|1[013])\.")
_COMPLICATIONS = (  # (what the note says, the 4th-5th characters of the combination code, what it is)
    (re.compile(r"\bpolyneuropath\w*", re.I), "42", "polyneuropathy"),
    (re.compile(r"\bneuropath\w*", re.I), "40", "neuropathy"),
    (re.compile(r"\b(chronic kidney disease|ckd|diabetic nephropathy|diabetic kidney disease)\b", re.I), "22", "CKD"),
    (
        re.compile(r"\b((?i:peripheral (?:vascular|arterial) disease|peripheral angiopathy)|PVD|PAD)\b"),
        "51",
        "peripheral angiopathy",
    ),
    (re.compile(r"\bgastroparesis\b", re.I), "43", "gastroparesis"),
    (re.compile(r"\bretinopath\w*", re.I), "319", "retinopathy"),
)


def diabetes_complications(coded: Sequence[Coded], sentences: Sequence[NoteSentence], onto: Any) -> list[Change]:
    """A diabetes code with each complication a sentence of the note states as present (not in the family
    history, not denied): E11.9 becomes the first, the others are added beside it."""
    diabetes = [c for c in coded if _DIABETES.match(c.code)]
    if not diabetes:
        return []
    family = diabetes[0].code[:3]
    have = {c.code for c in coded}
    found: list[tuple[str, str, NoteSentence]] = []
    for pattern, tail, what in _COMPLICATIONS:
        if any(f[1] == what or (what == "neuropathy" and f[1] == "polyneuropathy") for f in found):
            continue
        for s in sentences:
            m = pattern.search(s.text)
            if not m or s.part == "ros" or finding_status(s.text, tokenize(m.group(0))) != "present":
                continue
            code = f"{family}.{tail}"
            if code in onto and onto.node(code).billable and code not in have:
                found.append((code, what, s))
            break
    out = []
    plain = next((c for c in diabetes if c.code.endswith(".9")), None)
    for i, (code, what, s) in enumerate(found):
        why = f'diabetes with {what} is coded as the combination {code} (the link is presumed): "{s.text[:80]}"'
        if i == 0 and plain is not None:
            out.append(Change("diabetes-complications", "replace", plain.code, code, why, s))
        else:
            out.append(Change("diabetes-complications", "add", "", code, why, s))
    return out


# ---- the specificity the evidence states --------------------------------------------------------------------

_VAGUE = {"unspecified", "other", "of", "the", "and", "or", "with", "without", "in", "to", "not", "elsewhere"}
_IMPLIED = {"age", "related"}  # macular degeneration in an adult's note is the age-related kind (the Index's default)
_SYNONYMS = {"dry": "nonexudative", "wet": "exudative", "tendonitis": "tendinitis", "tendinopathy": "tendinitis"}


def _words(text: str) -> set[str]:
    return {_SYNONYMS.get(w, w) for w in tokenize(text)}


_OWNED = re.compile(r"^(I50|E0[89]|E1[013])")  # the conventions above decide these codes' specificity
_NEAR = 6  # a distinguishing word counts within this many words of the condition's own words


def _stated_near(extra: set[str], own: set[str], sentences: Sequence[str]) -> bool:
    """Every word of `extra` stands within `_NEAR` words of one of the condition's `own` words in one sentence
    ("right upper lobe of the lung", not a "chronic" that qualifies another problem of the sentence)."""
    for sentence in sentences:
        words = [_SYNONYMS.get(w, w) for w in tokenize(sentence)]
        anchors = [i for i, w in enumerate(words) if w in own]
        near = {w for i, w in enumerate(words) if any(abs(i - a) <= _NEAR for a in anchors)}
        if extra <= near:
            return True
    return False


def specificity(coded: Sequence[Coded], sentences: Sequence[NoteSentence], onto: Any) -> list[Change]:
    """An unspecified code becomes the billable code of its category whose words beyond its own (the eye, the
    stage, the lobe, the tendon) one sentence of its evidence states beside the condition's words; the one that
    states most wins, none when two tie."""
    out = []
    have = {c.code for c in coded}
    for c in coded:
        if "unspecified" not in c.label.lower() or not c.evidence or c.code not in onto or _OWNED.match(c.code):
            continue
        own = _words(c.label)
        anchor = own - _VAGUE - {"right", "left", "bilateral", "part", "site"}
        best: list[tuple[int, str]] = []
        for node in onto.descendants(c.code[:3]):
            if not node.billable or node.code == c.code or node.code in have:
                continue
            extra = _words(node.label) - own - _VAGUE - _IMPLIED
            if extra and _stated_near(extra, anchor, c.evidence):
                best.append((len(extra), node.code))
        best.sort(reverse=True)
        if best and (len(best) == 1 or best[0][0] > best[1][0]):
            new = best[0][1]
            out.append(Change("specificity", "replace", c.code, new, f"its evidence states {onto.label(new)}"))
    return out


# ---- aftercare of a joint replacement ---------------------------------------------------------------------

_JOINT_REPLACEMENT = re.compile(
    r"\b(?:(?:total|partial|reverse)\s+)?(knee|hip|shoulder)\s+(?:replacement|arthroplasty)|"
    r"\b(tka|tkr|tha|thr)\b",
    re.I,
)
_POST_OP = re.compile(r"\b(post[- ]?op(?:erative)?|status post|s/p|follow[- ]?up|after (?:his|her|the))\b", re.I)
# beyond the chief complaint, the sentence must say the visit is the follow-up: "status post knee arthroplasty" in
# a history is the patient's past, not this visit's reason (measured: it fired so on a gastritis visit)
_FOLLOW_UP_VISIT = re.compile(
    r"\b(post[- ]?op(?:erative)?\s+(?:visit|check|follow)|follow[- ]?up\s+(?:of|after|for))\b", re.I
)
_JOINT_STATUS = {"shoulder": "Z96.61", "hip": "Z96.64", "knee": "Z96.65"}
_ABBREVIATED = {"tka": "knee", "tkr": "knee", "tha": "hip", "thr": "hip"}


def aftercare(coded: Sequence[Coded], sentences: Sequence[NoteSentence], onto: Any) -> list[Change]:
    """A visit that follows up a joint replacement (its chief complaint says so, or a sentence calls the visit its
    post-operative follow-up) is aftercare, Z47.1, with the replaced joint's status by side (Z96.651 right knee)."""
    have = {c.code for c in coded}
    for s in sentences:
        if s.part not in ("cc", "hpi", "assessment", "plan"):
            continue
        m = _JOINT_REPLACEMENT.search(s.text)
        post_op = _POST_OP.search(s.text) if s.part == "cc" else _FOLLOW_UP_VISIT.search(s.text)
        if not m or not post_op or finding_status(s.text, tokenize(m.group(0))) != "present":
            continue
        joint = (m.group(1) or _ABBREVIATED.get((m.group(2) or "").lower(), "")).lower()
        side = side_of(s.text)
        digit = {"right": "1", "left": "2", "bilateral": "3"}.get(side, "9")
        status = _JOINT_STATUS[joint] + digit
        why = f'the visit follows up a {joint} replacement: "{s.text[:80]}"'
        out = []
        for code in ("Z47.1", status):
            if code in onto and code not in have:
                out.append(Change("aftercare", "add", "", code, why, s))
        return out
    return []


# ---- hypertension coded once, with its heart failure -----------------------------------------------------------

_HYPERTENSIVE_DISEASE = re.compile(r"^I1[1-6]")
_WITH_HEART_FAILURE = ("I11.0", "I13.0")


def hypertension(coded: Sequence[Coded], sentences: Sequence[NoteSentence], onto: Any) -> list[Change]:
    """I10 beside a code of hypertensive heart or kidney disease (which already says hypertension) is dropped; a
    hypertensive heart disease with heart failure gets its heart failure code when none is coded."""
    out = []
    other = next((c for c in coded if _HYPERTENSIVE_DISEASE.match(c.code)), None)
    if other is not None and any(c.code == "I10" for c in coded):
        out.append(Change("hypertension", "drop", "I10", "", f"{other.code} already codes the hypertension"))
    combined = next((c for c in coded if c.code in _WITH_HEART_FAILURE), None)
    if combined is not None and not any(_HF.match(c.code) for c in coded) and "I50.9" in onto:
        said = next((s for s in sentences if _HF_WORDS.search(s.text) and s.part in ("assessment", "plan")), None)
        said = said or next((s for s in sentences if _HF_WORDS.search(s.text)), None)
        why = f"{combined.code} asks for an additional code for the type of heart failure"
        out.append(Change("hypertension", "add", "", "I50.9", why, said))
    return out


_RULES = {
    "hypertension": hypertension,
    "heart-failure-type": heart_failure_type,
    "diabetes-complications": diabetes_complications,
    "specificity": specificity,
    "aftercare": aftercare,
}


def apply_conventions(
    coded: Sequence[Coded], sentences: Sequence[NoteSentence], onto: Any, use: Collection[str] = DEFAULT_CONVENTIONS
) -> list[Change]:
    """The changes of every convention in `use`, in `CONVENTIONS` order, each over the codes the earlier ones left."""
    codes = list(coded)
    out: list[Change] = []
    for name in CONVENTIONS:
        if name not in use:
            continue
        changes = _RULES[name](codes, sentences, onto)
        for ch in changes:
            if ch.action == "replace":
                codes = [Coded(ch.new, onto.label(ch.new), c.evidence) if c.code == ch.code else c for c in codes]
            elif ch.action == "drop":
                codes = [c for c in codes if c.code != ch.code]
            else:
                codes.append(Coded(ch.new, onto.label(ch.new), (ch.sentence.text,) if ch.sentence else ()))
        out += changes
    return out


__all__ = ["CONVENTIONS", "DEFAULT_CONVENTIONS", "Change", "Coded", "NoteSentence", "apply_conventions"]
