"""The ICD-10-CM Official Guidelines for outpatient coding (Section IV) as rules a program can apply.

Each rule is a small function, tested on its own: what a finding's status is in its sentence
(present, negated, normal, uncertain, family), which codes are signs or symptoms and of which
body site, which codes are unspecified beside a specific sibling, and which laterality and 7th
character the text supports. The ranker uses them as features; `apply_outpatient_rules` applies
the hard ones to a note's accepted codes and says, for every code it drops or changes, why.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from medcoder import cues
from medcoder.cues import cue_pattern
from medcoder.words import tokenize

STATUSES = ("present", "negated", "normal", "uncertain", "family")

_NEG_BEFORE = cue_pattern(cues.NEGATION)
_NORMAL = cue_pattern(cues.NORMAL)
_UNCERTAIN = cue_pattern(cues.UNCERTAIN)
UNCERTAIN_CUE = _UNCERTAIN  # "probable", "most likely", "rule out" ...: what follows is not a confirmed diagnosis
_FAMILY = cue_pattern(cues.FAMILY)
_RESOLVED = cue_pattern(cues.RESOLVED)
_SCOPE_END = re.compile(rf"\b({cues.SCOPE_END})\b|[;:.]", re.IGNORECASE)
_CLAUSE = re.compile(r"[,;:]|\b(?:but|and|however|although|with)\b", re.IGNORECASE)


def finding_status(sentence: str, words: Iterable[str]) -> str:
    """present | negated | normal | uncertain | family: how the sentence states the finding named by `words`.

    The finding is placed at the first of its words found in the sentence (the whole sentence when none
    is); a negation counts only when it comes before the finding and nothing ends its reach in between
    ("denies chest pain, but reports cough": cough is present); a normal word counts in the finding's
    own clause ("Sensation is intact").
    """
    return SentenceReader(sentence).status(words)


class SentenceReader:
    """One sentence read once: its words with their offsets, and each finding position's status (cached),
    so the many candidate codes a sentence retrieves are judged cheaply."""

    def __init__(self, sentence: str) -> None:
        self.low = sentence.lower()
        self.words: list[tuple[str, int]] = []
        for m in re.finditer(r"[a-z0-9]+", self.low):
            t = tokenize(m.group())
            if t:
                self.words.append((t[0], m.start()))
        self._by_pos: dict[int, str] = {}

    def position(self, words: Iterable[str]) -> int:
        wanted = {w for w in words if len(w) > 2}
        return next((pos for w, pos in self.words if w in wanted), len(self.low))

    def clause_start(self, pos: int) -> int:
        """Where the clause holding `pos` begins (0 when the finding is not in the sentence)."""
        return max((m.end() for m in _CLAUSE.finditer(self.low[:pos])), default=0) if pos < len(self.low) else 0

    def status(self, words: Iterable[str]) -> str:
        pos = self.position(words)
        if pos not in self._by_pos:
            self._by_pos[pos] = self._status_at(pos)
        return self._by_pos[pos]

    def _status_at(self, pos: int) -> str:
        low = self.low
        before = low[:pos]
        if _FAMILY.search(before):
            return "family"
        neg = None
        for m in _NEG_BEFORE.finditer(before):
            neg = m
        if neg is not None and not _SCOPE_END.search(before[neg.end() :]):
            return "negated"
        start = self.clause_start(pos)
        nxt = _CLAUSE.search(low, pos + 1) if pos < len(low) else None
        clause = low[start : nxt.start() if nxt else len(low)]
        if _NORMAL.search(clause) and not re.search(r"\babnormal", clause):
            return "normal"
        if _UNCERTAIN.search(before[max(0, pos - 80) :]) or _UNCERTAIN.search(clause):
            return "uncertain"
        return "present"


# ---- signs, symptoms and body sites --------------------------------------------------------------------------

SITES = (
    "knee",
    "hip",
    "shoulder",
    "elbow",
    "wrist",
    "hand",
    "finger",
    "thumb",
    "ankle",
    "foot",
    "toe",
    "back",
    "neck",
    "chest",
    "abdomen",
    "abdominal",
    "head",
    "leg",
    "arm",
    "thigh",
    "lumbar",
    "cervical",
    "thoracic",
    "eye",
    "ear",
    "throat",
    "pelvi",
    "groin",
    "jaw",
    "face",
    "forearm",
    "calf",
    "heel",
)
_SIDES = {"right": "right", "left": "left", "bilateral": "bilateral", "both": "bilateral"}
# the body systems a block of chapter R signs belongs to, by their first three characters
_R_SYSTEM = (
    ("R00", "R09", "IJ"),
    ("R10", "R10", "KN"),
    ("R11", "R19", "K"),
    ("R20", "R23", "L"),
    ("R25", "R29", "GM"),
    ("R30", "R39", "N"),
    ("R40", "R46", "FG"),
    ("R47", "R49", "GF"),
    ("R50", "R69", ""),
)
_PAIN_CODES = ("M25.5", "M79.6", "M54", "M25.4", "M25.6", "G89", "R51", "M79.1", "M79.2")


def is_symptom(code: str) -> bool:
    """A sign or symptom code: chapter 18 (R00-R99) or a pain, effusion or stiffness of a site."""
    return code.startswith("R") or code.startswith(_PAIN_CODES)


def is_definitive(code: str) -> bool:
    """A diagnosis a symptom can be part of (not a symptom, not a Z or external-cause code)."""
    return not is_symptom(code) and code[:1] not in ("Z", "V", "W", "X", "Y")


def body_sites(label: str) -> set[str]:
    """The body sites a code's label names (knee, shoulder, back ...)."""
    low = label.lower()
    return {s for s in SITES if re.search(rf"\b{s}", low)}


def side_of(text: str) -> str:
    """right | left | bilateral | "" : the laterality a text states (bilateral wins over one side)."""
    found = {_SIDES[m.group(1)] for m in re.finditer(r"\b(right|left|bilateral|both)\b", text.lower())}
    if "bilateral" in found or {"right", "left"} <= found:
        return "bilateral"
    return next(iter(found), "")


def label_side(label: str) -> str:
    """The laterality a code's label states: right | left | bilateral | unspecified | "" (none)."""
    low = label.lower()
    for side in ("bilateral", "right", "left"):
        if re.search(rf"\b{side}\b", low):
            return side
    return (
        "unspecified"
        if re.search(
            r"\bunspecified (side|knee|hip|shoulder|[a-z]+ (?:limb|side))|"
            r"unspecified [a-z]+$",
            low,
        )
        and body_sites(low)
        else ""
    )


def symptom_system(code: str) -> str:
    """The chapters whose diagnoses a chapter R sign belongs to ("" when none or not in chapter R)."""
    if not code.startswith("R"):
        return ""
    head = code[:3]
    return next((chapters for lo, hi, chapters in _R_SYSTEM if lo <= head <= hi), "")


def is_unspecified(label: str) -> bool:
    low = label.lower()
    return "unspecified" in low or "without complications" in low or low.endswith(", not elsewhere classified")


# ---- the 7th character ---------------------------------------------------------------------------------------

_SUBSEQUENT = re.compile(
    r"\b(follow[- ]?up of (his|her|the|their) (fracture|injury|sprain)|healing (well|"
    r"appropriately|as expected)|routine healing|cast removal|subsequent encounter|"
    r"recheck of (his|her|the) (fracture|injury))\b",
    re.IGNORECASE,
)
_SEQUELA = re.compile(r"\b(sequela|late effect)\b", re.IGNORECASE)


def encounter_character(text: str) -> str:
    """A (active treatment), D (routine healing follow-up) or S (sequela): the 7th character the text supports."""
    if _SEQUELA.search(text):
        return "S"
    return "D" if _SUBSEQUENT.search(text) else "A"


# ---- rules over a note's codes -------------------------------------------------------------------------------


@dataclass
class CodedFinding:
    """One code proposed for a note: its probability and the note's text that supports it (with statuses)."""

    code: str
    probability: float
    label: str
    evidence: list[str] = field(default_factory=list)  # sentences (or problem lines) that support it
    statuses: list[str] = field(default_factory=list)  # finding_status of each evidence
    in_plan: bool = False  # named in the assessment or plan
    sections: list[str] = field(default_factory=list)  # the visit part of each evidence (cc, hpi, plan ...)


@dataclass
class RuleOutcome:
    """What the rules did to one code: kept, dropped (with the rule and reason) or replaced by another code."""

    code: str
    action: str  # keep | drop | replace
    rule: str = ""
    reason: str = ""
    new_code: str = ""


def is_resolved(sentence: str, words: Iterable[str] = ()) -> bool:
    """Whether the sentence, from the finding's clause on, places it in the past (resolved, healed, cured,
    "as a child"): "Pneumonia last year, resolved." but not "history of CAD, hypertension and diabetes"."""
    reader = SentenceReader(sentence)
    start = reader.clause_start(reader.position(words)) if words else 0
    return bool(_RESOLVED.search(reader.low[start:]))


def past_condition(f: CodedFinding, others: Sequence[CodedFinding] = ()) -> RuleOutcome | None:
    """A condition that is over (resolved, healed, only in the past) is not coded; a chronic condition the note
    documents as current ("history of hypertension, on lisinopril") is: only sentences that say it is over count."""
    if f.in_plan or not f.evidence:
        return None
    words = sentence_words(f.label)
    if all(is_resolved(e, words) for e in f.evidence):
        return RuleOutcome(f.code, "drop", "past-condition", f'the note places it in the past ("{f.evidence[0][:80]}")')
    return None


def status_drop(f: CodedFinding, others: Sequence[CodedFinding] = ()) -> RuleOutcome | None:
    """Normal, negated, family and uncertain findings are not coded (a symptom's uncertainty is its own)."""
    if not f.statuses or "present" in f.statuses:
        return None
    if all(s in ("negated", "normal") for s in f.statuses):
        return RuleOutcome(
            f.code, "drop", "normal-or-negated", f'only normal or negated findings support it ("{f.evidence[0][:80]}")'
        )
    if all(s == "family" for s in f.statuses):
        return RuleOutcome(f.code, "drop", "family-history", "named only as family history")
    if "uncertain" in f.statuses and not is_symptom(f.code):
        return _uncertain(f)
    return None


def _uncertain(f: CodedFinding) -> RuleOutcome:
    return RuleOutcome(
        f.code,
        "drop",
        "uncertain-diagnosis",
        f'the diagnosis is not confirmed ("{f.evidence[f.statuses.index("uncertain")][:80]}"); '
        "its signs and symptoms are coded instead",
    )


def referral_question(f: CodedFinding, others: Sequence[CodedFinding] = ()) -> RuleOutcome | None:
    """A diagnosis that only the chief complaint states, which the note calls suspected elsewhere ("Esophagitis."
    as the reason for a referral "for suspected esophagitis"), is the question of the visit, not its answer."""
    if is_symptom(f.code) or "uncertain" not in f.statuses or len(f.sections) != len(f.statuses):
        return None
    present = {sec for st, sec in zip(f.statuses, f.sections) if st == "present"}
    return _uncertain(f) if present == {"cc"} else None


def symptom_of_diagnosis(f: CodedFinding, others: Sequence[CodedFinding]) -> RuleOutcome | None:
    """A sign or symptom is dropped beside a coded diagnosis of the same body site and side, or beside one
    of its own body system whose evidence already holds every sentence the symptom rests on."""
    if not is_symptom(f.code):
        return None
    sites, side = body_sites(f.label), label_side(f.label)
    for o in others:
        if o.code == f.code or not is_definitive(o.code):
            continue
        o_side = label_side(o.label)
        if (
            sites
            and sites & body_sites(o.label)
            and (not side or not o_side or side == o_side or "unspecified" in (side, o_side))
        ):
            return RuleOutcome(
                f.code, "drop", "symptom-of-diagnosis", f"a sign of {o.code} {o.label} (same site), coded instead"
            )
        if o.probability < SPECIFIC_SHARE * f.probability:
            continue  # by body system only: a diagnosis much less likely than the symptom does not explain it away
        system = symptom_system(f.code)
        if system and o.code[:1] in system and f.evidence and set(f.evidence) <= set(o.evidence):
            return RuleOutcome(
                f.code,
                "drop",
                "symptom-of-diagnosis",
                f"a sign of {o.code} {o.label} in the same sentences, coded instead",
            )
    return None


_VAGUE = {"unspecified", "elsewhere", "classified", "complication", "without", "type", "site", "organism"}
SPECIFIC_SHARE = 0.5  # a specific sibling this likely (relative to the unspecified code) is coded instead of it


def unspecified_beside_specific(f: CodedFinding, others: Sequence[CodedFinding]) -> RuleOutcome | None:
    """Unspecified and specific codes of one category exclude each other (I48.91 and I48.0; E11.9 "without
    complications" and E11.65): the specific one is coded when it is at least half as likely, else the
    unspecified one; of two unspecified siblings the likelier stays."""
    cat = f.code[:3]
    if is_unspecified(f.label):
        mine = sentence_words(f.label) - _VAGUE
        for o in others:  # "Anemia, unspecified" beside "Iron deficiency anemia": another category, same condition
            likely = o.probability >= SPECIFIC_SHARE * f.probability
            if o.code[:3] != cat and mine and mine < sentence_words(o.label) and likely:
                return RuleOutcome(
                    f.code,
                    "drop",
                    "unspecified-beside-specific",
                    f"{o.code} {o.label} names the same condition more specifically",
                )
    siblings = [o for o in others if o.code != f.code and o.code[:3] == cat]
    if not siblings:
        return None
    if is_unspecified(f.label):
        for o in siblings:
            if not is_unspecified(o.label) and o.probability >= SPECIFIC_SHARE * f.probability:
                return RuleOutcome(
                    f.code, "drop", "unspecified-beside-specific", f"{o.code} {o.label} is more specific"
                )
        for o in siblings:
            if is_unspecified(o.label) and (o.probability, o.code) > (f.probability, f.code):
                return RuleOutcome(
                    f.code, "drop", "unspecified-beside-specific", f"{o.code} {o.label} says the same and is likelier"
                )
        return None
    for o in siblings:
        if is_unspecified(o.label) and f.probability < SPECIFIC_SHARE * o.probability:
            return RuleOutcome(
                f.code,
                "drop",
                "unspecified-beside-specific",
                f"{o.code} {o.label} is much likelier; the text does not support this specific code",
            )
    return None


def hypertension_combination(f: CodedFinding, others: Sequence[CodedFinding]) -> RuleOutcome | None:
    """Hypertension with heart failure or chronic kidney disease is coded as the combination (I.C.9.a: the
    link is presumed): I10 beside I50.x becomes I11.0, beside N18.x I12.9, beside both I13.0."""
    if f.code != "I10":
        return None
    heart = any(o.code.startswith("I50") for o in others)
    kidney = any(o.code.startswith("N18") for o in others)
    if not (heart or kidney):
        return None
    new = "I13.0" if heart and kidney else ("I11.0" if heart else "I12.9")
    what = " and ".join(w for w, on in (("heart failure", heart), ("chronic kidney disease", kidney)) if on)
    return RuleOutcome(
        f.code,
        "replace",
        "combination-code",
        f"hypertension with {what} is coded as the combination {new} (the link is presumed)",
        new,
    )


_HISTORY_STATUS_Z = (
    "Z79",
    "Z80",
    "Z81",
    "Z82",
    "Z83",
    "Z84",
    "Z85",
    "Z86",
    "Z87",
    "Z88",
    "Z89",
    "Z90",
    "Z91",
    "Z92",
    "Z93",
    "Z94",
    "Z95",
    "Z96",
    "Z97",
    "Z98",
    "Z99",
)


def history_or_status(f: CodedFinding, others: Sequence[CodedFinding] = ()) -> RuleOutcome | None:
    """A visit is coded for its problems, not the patient's history or status (Z79-Z99: past surgery, acquired
    absence, long-term drug use, family history) unless that is the reason for the visit."""
    if f.code.startswith(_HISTORY_STATUS_Z) and not f.in_plan:
        return RuleOutcome(f.code, "drop", "history-or-status", "a history or status code, not a problem of this visit")
    return None


OUTPATIENT_RULES = (
    status_drop,
    referral_question,
    past_condition,
    history_or_status,
    symptom_of_diagnosis,
    unspecified_beside_specific,
    hypertension_combination,
)


def apply_outpatient_rules(findings: Sequence[CodedFinding]) -> list[RuleOutcome]:
    """The hard rules over a visit note's accepted codes, in OUTPATIENT_RULES order, each over the codes the
    earlier ones kept (a dropped code does not hide another). Every code gets an outcome."""
    out: dict[str, RuleOutcome] = {}
    alive = list(findings)
    for rule in OUTPATIENT_RULES:
        for f in alive:
            r = rule(f, alive)
            if r:
                out[f.code] = r
        alive = [f for f in alive if f.code not in out]
    return [out.get(f.code) or RuleOutcome(f.code, "keep") for f in findings]


# ---- specifying: laterality and the 7th character ------------------------------------------------------------


def stem_label(label: str) -> str:
    """A label with its side and encounter words taken out, to find the same code for another side/encounter."""
    low = label.lower()
    low = re.sub(r",? (initial|subsequent) encounter.*$|,? sequela$", "", low)
    low = re.sub(r"\b(right|left|bilateral|unspecified)\b", "", low)
    return re.sub(r"\s+", " ", low).strip(" ,")


def specify(onto: Any, code: str, text: str) -> tuple[str, str]:
    """The billable code the text supports best among `code`'s side and encounter variants: (code, why).

    `text` is the code's evidence (and the note's chief complaint): its laterality picks right/left/bilateral,
    its wording picks the 7th character (A first visit of active treatment, D routine healing, S sequela)."""
    node = onto.node(code)
    label = node.label
    side_now = label_side(label)
    want_side = side_of(text) if (side_now or body_sites(label)) else ""
    want_7 = encounter_character(text) if node.kind == "extension" else ""
    if not want_side and not want_7:
        return code, ""
    stem = stem_label(label)
    parent_cat = code[:3]
    best, why = code, ""
    for n in onto.descendants(parent_cat) if parent_cat in onto else []:
        if not n.billable or n.code == code or stem_label(n.label) != stem:
            continue
        n_side = label_side(n.label)
        side_ok = not want_side or n_side == want_side or (not n_side and not side_now)
        ch_ok = not want_7 or (n.kind == "extension" and n.code.endswith(want_7))
        cur_side_ok = not want_side or side_now == want_side
        cur_7_ok = not want_7 or code.endswith(want_7)
        if side_ok and ch_ok and not (cur_side_ok and cur_7_ok):
            best = n.code
            why = ("laterality " + want_side if want_side and not cur_side_ok else "") + (
                (" and " if want_side and not cur_side_ok else "") + f"7th character {want_7}"
                if want_7 and not cur_7_ok
                else ""
            )
            break
    return best, why.strip()


_SITE_UNSPECIFIED = re.compile(r"\bunspecified (?:site|joint|part|region|body region)\b", re.IGNORECASE)


def specify_site(label: str, evidence: str, candidates: Iterable[tuple[str, str]]) -> str:
    """The candidate that names the site the evidence states, for a code of "unspecified site" ("Unspecified
    osteoarthritis, unspecified site" with "his knee" -> "Osteoarthritis of knee"); "" when there is none.
    `candidates` are (code, label) pairs of the note, likeliest first; one must say everything `label` says."""
    if not _SITE_UNSPECIFIED.search(label) or body_sites(label):  # "unspecified site of right knee" names one
        return ""
    sites = body_sites(evidence)
    core = sentence_words(label) - _VAGUE
    if not sites or not core:
        return ""
    for code, other in candidates:
        if body_sites(other) & sites and core <= sentence_words(other) and not _SITE_UNSPECIFIED.search(other):
            return code
    return ""


_DIABETES_UNCOMPLICATED = re.compile(r"^(E0[89]|E1[013])\.9$")
_GLUCOSE = re.compile(r"\b(diabet\w*|glucose|sugars?|a1c|glycemic)\b", re.IGNORECASE)
_HIGH = re.compile(
    r"\b(uncontrolled|poorly controlled|not (?:well )?controlled|out of control|inadequately "
    r"controlled|hyperglycemi\w*|elevated|high|higher|rising|running high|trending up|"
    r"[2-5]\d\d(?:'?s)?)\b",
    re.IGNORECASE,
)
_NOT_HIGH = re.compile(
    r"\b(?:no|not|never|denies|without)\b[^.,;]{0,25}\b(?:elevated|high|hyperglyc)|"
    r"\b(?:below|under|less than|keep)\b",
    re.IGNORECASE,
)


def with_hyperglycemia(code: str, sentences: Iterable[str]) -> tuple[str, str]:
    """E11.9 (diabetes without complications) becomes E11.65 (with hyperglycemia) when the note says the
    patient's sugars are high: the Index's "Diabetes, uncontrolled, meaning hyperglycemia" and "poorly
    controlled" both lead there. Returns (code, the sentence) or (code unchanged, "")."""
    if not _DIABETES_UNCOMPLICATED.match(code):
        return code, ""
    for s in sentences:
        if _FAMILY.search(s):
            continue
        for clause in re.split(r"[,;:]|\b(?:and|but|while)\b", s):  # "uncontrolled hypertension and diabetes": no
            if _GLUCOSE.search(clause) and _HIGH.search(clause) and not _NOT_HIGH.search(clause):
                return code[:3] + ".65", s.strip()
    return code, ""


_DIABETES_HYPERGLYCEMIA = re.compile(r"^(E0[89]|E1[013])\.65$")


def without_hyperglycemia(code: str, sentences: Iterable[str]) -> str:
    """E11.65 (with hyperglycemia) becomes E11.9 when no sentence says the sugars are high: the code needs
    documented hyperglycemia or poor control, which the ranker cannot see from "diabetes" alone."""
    if not _DIABETES_HYPERGLYCEMIA.match(code):
        return code
    uncomplicated = code[:3] + ".9"
    return code if with_hyperglycemia(uncomplicated, sentences)[0] != uncomplicated else uncomplicated


def sentence_words(label: str) -> set[str]:
    """A label's content words (what `finding_status` looks for in a sentence)."""
    return set(tokenize(label)) - {"right", "left", "bilateral", "initial", "encounter", "subsequent", "part"}


__all__ = [
    "STATUSES",
    "finding_status",
    "SentenceReader",
    "is_symptom",
    "is_definitive",
    "body_sites",
    "side_of",
    "label_side",
    "symptom_system",
    "is_unspecified",
    "encounter_character",
    "CodedFinding",
    "RuleOutcome",
    "status_drop",
    "is_resolved",
    "past_condition",
    "history_or_status",
    "symptom_of_diagnosis",
    "unspecified_beside_specific",
    "hypertension_combination",
    "OUTPATIENT_RULES",
    "apply_outpatient_rules",
    "specify",
    "stem_label",
    "sentence_words",
    "specify_site",
    "with_hyperglycemia",
]
