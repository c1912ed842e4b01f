"""What a pharmacist reads around a drug mention, and the feature row of each (mention, ATC code) pair.

Route and form words (tablet, cream, eye drops, inhaler, injection ...), the strength, indication
words, the section, and status cues (stopped, allergic to, only considered) are read from the
words around the mention; each candidate code brings its anatomical group, its WHO DDD routes
(`adm_r`) and how often its groups were the answer in coded products (`DrugPriors`). The ranker
learns the weights; nothing here decides alone except the status rules, which are the coding
protocol (an allergy, a stopped or a merely considered drug is not coded).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from medcoder.knowledge.ontology import CodeSystem

ANATOMICAL_GROUPS = "ABCDGHJLMNPRSV"
# groups whose codes are for local use: a systemic mention rarely belongs there
LOCAL_GROUPS = ("A01", "C05", "D", "G01", "G02", "M02", "R01", "R02", "S")
ROUTES = ("oral", "topical", "eye", "ear", "nasal", "inhal", "inject", "vaginal", "rectal", "transdermal", "mouth")
_ROUTE_WORDS: dict[str, str] = {
    "oral": r"tablets?|tabs?|capsules?|caps?|by mouth|p\.?o\.?|orally|oral(?! spray| rinse)|chewable|syrup|"
    r"suspension|elixir|pills?|caplets?|with food|liquid|ec|enteric|sr|xr|er|cr|odt",
    "topical": r"creams?|ointments?|(?<!liqui-)(?<!liqui )gel(?!\s*caps?)|emulgel|jelly|lotion|liniment|"
    r"topical(?:ly)?|foam|shampoo|"
    r"to the (?:rash|skin|area|lesion)s?|apply|applied|paste|dermal|external|spf|sunscreen|sun ?block|"
    r"face|facial|scalp|stick|moisturi[sz]er|conditioner|dandruff|skin|soap|wash|lip balm|hand sanitizer",
    "eye": r"eye ?drops?|ophthalmic|ophth|in (?:the|each|both) eyes?|eyes?|ocular|gtts|intravitreal|intraocular|"
    r"retrobulbar|intracameral|conjunctival",
    "ear": r"ear ?drops?|otic|in (?:the|each|both) ears?|ears?",
    "nasal": r"nasal(?:ly)?|nose|nostrils?|intranasal",
    "inhal": r"inhalers?|inhaled|inhalation|puffs?|hfa|nebuli[sz]e[rd]?|nebs?|mdi|diskus|respimat|ellipta|"
    r"twisthaler|turbuhaler|handihaler|breezhaler|genuair|aerosol",
    "inject": r"injections?|inject(?:ed|able)?|i\.?v\.?|intravenous(?:ly)?|i\.?m\.?|intramuscular|subcutaneous|"
    r"s\.?c\.?|infusions?|shots?|pens?|vials?|depot|solu|for injection|ampoules?|syringes?|inj|intradermal|"
    r"intra-?arterial|intravascular|intrathecal|epidural|intra-?articular|infiltration|percutaneous|"
    r"intracutaneous|intracardiac|intracerebroventricular|intraspinal|intralesional|intraperitoneal|parenteral",
    "vaginal": r"vaginal(?:ly)?|intravaginal|pessar(?:y|ies)|ovules?|internal",
    "rectal": r"rectal(?:ly)?|suppositor(?:y|ies)|enemas?",
    "transdermal": r"patch(?:es)?|transdermal",
    "mouth": r"mouthwash|mouth ?rinse|lozenges?|throat|viscous|gargle|oral spray|troches?|swish|buccal|"
    r"sublingual|dental|subgingival|gingival|periodontal",
}
_ROUTE_RX = {r: re.compile(rf"\b(?:{w})\b", re.IGNORECASE) for r, w in _ROUTE_WORDS.items()}
# dosage forms, as a product record names them and as a note writes them ("TABLET (EXTENDED-RELEASE)", "2 tabs")
FORMS: dict[str, str] = {
    "tablet": r"tablets?|tabs?|caplets?",
    "capsule": r"capsules?|caps?|gelcaps?|softgels?",
    "solution": r"solutions?",
    "suspension": r"suspensions?",
    "liquid": r"liquids?|syrups?|elixirs?",
    "lotion": r"lotions?|liniments?",
    "cream": r"creams?",
    "ointment": r"ointments?|salves?",
    "gel": r"(?<!liqui-)(?<!liqui )gels?(?!\s*caps?)|jelly|emulgel",
    "shampoo": r"shampoos?",
    "spray": r"sprays?|metered[- ]dose pump",
    "aerosol": r"aerosols?|inhalers?|puffs?",
    "powder": r"powders?|granules?",
    "drops": r"drops?|gtts",
    "patch": r"patch(?:es)?",
    "stick": r"sticks?|lip balm",
    "emulsion": r"emulsions?",
    "gas": r"gas",
    "lozenge": r"lozenges?|troches?|pastilles?",
    "suppository": r"suppositor(?:y|ies)|enemas?|ovules?|pessar(?:y|ies)",
    "mouthwash": r"mouthwash|mouth ?rinse|gargle",
    "kit": r"kits?",
    "foam": r"foams?",
    "wash": r"wash|soap|cleanser|wipes?|swabs?|pads?",
    "implant": r"implants?|rings?|intrauterine|iud",
}
_FORM_RX = {f: re.compile(rf"\b(?:{w})\b", re.IGNORECASE) for f, w in FORMS.items()}
# a route and the ATC groups / DDD route letters that fit it
_ROUTE_GROUPS = {
    "eye": ("S01", "S03"),
    "ear": ("S02", "S03"),
    "nasal": ("R01",),
    "inhal": ("R03",),
    "topical": ("D", "M02", "C05", "S01", "G01"),
    "vaginal": ("G01", "G02"),
    "rectal": ("C05", "A06AG", "A07E"),
    "mouth": ("A01", "R02"),
    "transdermal": (),
    "inject": (),
    "oral": (),
}
_ROUTE_DDD = {
    "oral": ("O",),
    "inject": ("P",),
    "rectal": ("R",),
    "vaginal": ("V",),
    "nasal": ("N",),
    "inhal": ("Inhal",),
    "transdermal": ("TD",),
    "mouth": ("SL", "O"),
    "eye": (),
    "ear": (),
    "topical": (),
}

# indication words -> the ATC groups that treat them
_INDICATIONS: list[tuple[str, tuple[str, ...]]] = [
    (
        r"pain|arthritis|inflammation|inflammatory|sprain|strain|swelling|tendinitis|bursitis|back|knee|injury|"
        r"fracture|ache|aches",
        ("M01", "N02", "M02", "M03"),
    ),
    (r"fever|headache|migraine", ("N02",)),
    (r"hypertension|blood pressure|bp", ("C02", "C03", "C07", "C08", "C09")),
    (
        r"atrial fibrillation|a-?fib|heart failure|chf|arrhythmia|rate control|palpitations",
        ("C01", "B01", "C03", "C07"),
    ),
    (r"cholesterol|hyperlipidemia|lipids?|statin", ("C10",)),
    (r"diabetes|diabetic|blood sugars?|glucose|a1c|hyperglycemia", ("A10",)),
    (
        r"infection|infected|pneumonia|uti|cellulitis|sinusitis|bronchitis|strep|abscess|antibiotics?|lyme|"
        r"tick",
        ("J01", "J02", "J05", "D06", "P01"),
    ),
    (r"depression|depressive|anxiety|panic|mood", ("N06A", "N05B")),
    (r"insomnia|sleep", ("N05C",)),
    (r"asthma|copd|wheez\w*|shortness of breath|bronchospasm", ("R03",)),
    (r"allerg\w*|rhinitis|hay fever|hives|itch\w*|congestion|sinus", ("R06", "R01", "D04")),
    (r"cough|cold|flu|colds", ("R05", "R01", "N02")),
    (r"dandruff|scalp", ("D11", "D01")),
    (r"reflux|gerd|heartburn|ulcer|dyspepsia|gastritis", ("A02",)),
    (r"constipation|bowel", ("A06",)),
    (r"nausea|vomiting", ("A04",)),
    (r"rash|eczema|dermatitis|psoriasis|acne|skin", ("D",)),
    (r"eyes?|conjunctivitis|glaucoma", ("S01",)),
    (r"ears?|otitis", ("S02",)),
    (r"clots?|dvt|embolism|anticoagula\w*|thinner|stroke|prevention|cardiovascular|heart attack|stent|cad", ("B01",)),
    (r"gout", ("M04",)),
    (r"thyroid|hypothyroidism", ("H03",)),
    (r"seizures?|epilepsy", ("N03",)),
    (r"anemia|iron deficiency|iron", ("B03",)),
    (r"osteoporosis|bone density", ("M05",)),
    (r"cancer|chemotherapy|tumou?r|lymphoma|leukemia|carcinoma", ("L01", "L02")),
    (r"mouth|throat|mucositis|sore", ("A01", "R02")),
]
_INDICATION_RX = [(re.compile(rf"\b(?:{w})\b", re.IGNORECASE), g) for w, g in _INDICATIONS]

# status: the nearest cue before the mention in its sentence (or just after it) decides
_STATUS_CUES: list[tuple[str, str]] = [
    ("allergy", r"allerg\w*|intoleran\w*|anaphyla\w*|reaction to"),
    (
        "stopped",
        r"stop(?:ped|s)?|discontinu\w*|no longer|quit|came off|off of|d/c'?d?|held|hold(?:ing)?|"
        r"was (?:previously )?on|used to take|tried|failed|didn'?t help|did not help|not help(?:ing|ed)|"
        r"had been on|weaned",
    ),
    (
        "considered",
        r"consider\w*|could (?:try|start|use|add)|might|may want|option|options|would like to avoid|"
        r"declin\w*|refus\w*|not interested|hesitant|avoid|instead of|rather than|if (?:it|the|this|she|he)",
    ),
    ("denied", r"denies|not taking|not on any|doesn'?t take|does not take|no medications?|never taken"),
    (
        "current",
        r"continue\w*|take|taking|takes|took|prescrib\w*|start\w*|initiat\w*|increas\w*|decreas\w*|"
        r"refill\w*|gave|given|administer\w*|using|uses|use|on|resume\w*|recommend\w*|switch\w*|added|add|"
        r"change\w*|compliant",
    ),
]
_STATUS_RX = re.compile("|".join(rf"(?P<{k}>\b(?:{w})\b)" for k, w in _STATUS_CUES), re.IGNORECASE)
_AFTER_STOPPED = re.compile(
    r"^[^.;\n]{0,40}?\b(?:was|were|has been|had been|is)\s+(?:stopped|discontinued|held)\b", re.IGNORECASE
)
# a drug tried without effect: "He took Tylenol, ibuprofen ... but it did not seem to help", "Tylenol failed to improve"
_AFTER_FAILED = re.compile(
    r"^[^.;\n]{0,80}?\b(?:did ?n[o']t (?:seem to )?(?:help|work|improve)|failed|without (?:much |any )?"
    r"relief|no relief|not (?:helped|helping|effective)|was ineffective)\b",
    re.IGNORECASE,
)
# a substance named as a laboratory test, not given: "recheck CBC, iron, B-12, and folate", "vitamin D level"
_TEST_BEFORE = re.compile(
    r"\b(?:re-?check(?:ed)?|check(?:ed)?|levels? of|labs?|lab work|blood work|measure\w*|panel|"
    r"order(?:ed)?|draw)\b[^.;\n]{0,60}$",
    re.IGNORECASE,
)
_TEST_AFTER = re.compile(r"^\s*(?:levels?\b|(?:was|is|were)\s+(?:low|high|normal|elevated|\d))", re.IGNORECASE)
_SENTENCE_END = re.compile(r"[.;!?\n](?=\s)|\n")
_STRENGTH = re.compile(r"(\d+(?:\.\d+)?)\s*(mg|mcg|µg|g)\b", re.IGNORECASE)
STATUSES = ("current", "stopped", "allergy", "considered", "denied", "test")
NOT_CODED = frozenset({"stopped", "allergy", "considered", "denied", "test"})


@dataclass(frozen=True, slots=True)
class DrugContext:
    """What the words around one mention say (or a product record: its route and dosage form columns)."""

    routes: frozenset[str] = frozenset()
    forms: frozenset[str] = frozenset()
    strength_mg: float | None = None
    indications: frozenset[str] = frozenset()  # ATC prefixes the indication words point to
    section: str = "other"  # a visit.sections.section_kind, or "product"
    status: str = "current"
    status_cue: str = ""
    window: str = ""
    skin: bool = False  # a cream, ointment or lotion on the skin or a rash (`on_skin`)
    from_record: bool = False  # the route and form came from a product record's columns, not from words


def sentence_bounds(text: str, start: int, end: int) -> tuple[int, int]:
    """The sentence (or list line) around a span."""
    left = max((m.end() for m in _SENTENCE_END.finditer(text, 0, start)), default=0)
    m = _SENTENCE_END.search(text, end)
    return left, (m.start() if m else len(text))


def read_context(
    text: str, start: int, end: int, section: str = "other", next_start: int | None = None, prev_end: int | None = None
) -> DrugContext:
    """Route, strength, indication and status of the mention at [start, end) in `text`.

    The mention's own item runs from the previous mention (or the sentence start) to the next
    mention (or the sentence end), so in "Ibuprofen, digoxin." neither borrows the other's words.
    """
    s0, s1 = sentence_bounds(text, start, end)
    item_start = max(s0, prev_end if prev_end is not None and prev_end <= start else s0)
    item_end = min(s1, next_start if next_start is not None and next_start >= end else s1)
    item = text[item_start:item_end]
    after = text[end:item_end]
    routes, forms = routes_in(item), forms_in(item)
    strength = None
    m = _STRENGTH.search(after[:40])
    if m:
        value, unit = float(m.group(1)), m.group(2).lower()
        strength = value * {"g": 1000.0, "mcg": 0.001, "µg": 0.001}.get(unit, 1.0)
    sentence = text[s0:s1]
    indications = frozenset(g for rx, groups in _INDICATION_RX if rx.search(sentence) for g in groups)
    status, cue = _status(text, s0, start, end, item_end, section)
    window = text[s0:s1][:300]
    return DrugContext(routes, forms, strength, indications, section, status, cue, window, on_skin(sentence))


_SKIN_FORM = re.compile(r"\b(?:creams?|ointments?|lotions?|gels?|emollients?|salves?)\b", re.IGNORECASE)
_SKIN_SITE = re.compile(
    r"\b(?:rash(?:es)?|skin|eczema|dermatitis|psoriasis|lesions?|hives|itch\w*|bites?|sunburn|scalp|face|"
    r"hands?|arms?|legs?|feet|foot|chest|back|neck|affected areas?)\b",
    re.IGNORECASE,
)
_NOT_SKIN = re.compile(
    r"\b(?:rectal(?:ly)?|anal|peri-?anal|hemorrhoid\w*|haemorrhoid\w*|vaginal(?:ly)?|vulva\w*|eyes?|eyelids?|"
    r"ophthalmic|ears?|otic|nasal|nose|nostrils?|mouth|lips?)\b",
    re.IGNORECASE,
)


def on_skin(text: str) -> bool:
    """A cream, ointment or lotion put on the skin or a rash, and nowhere a local group of its own names (the
    anus, the eye, the ear, the nose, the vagina): a dermatological (D) product."""
    return bool(_SKIN_FORM.search(text) and _SKIN_SITE.search(text) and not _NOT_SKIN.search(text))


def routes_in(text: str) -> frozenset[str]:
    """The routes (ROUTES) that route and form words in `text` name ("eye drops" -> eye, "INTRAVENOUS" -> inject)."""
    return frozenset(r for r, rx in _ROUTE_RX.items() if rx.search(text))


def forms_in(text: str) -> frozenset[str]:
    """The dosage forms (FORMS) that `text` names ("TABLET (EXTENDED-RELEASE)" -> tablet, "2 puffs" -> aerosol)."""
    return frozenset(f for f, rx in _FORM_RX.items() if rx.search(text))


def _status(text: str, s0: int, start: int, end: int, item_end: int, section: str) -> tuple[str, str]:
    if section == "allergies":
        return "allergy", "allergies section"
    before = text[max(s0, start - 80) : start]
    cues = [(m.lastgroup or "", m.group()) for m in _STATUS_RX.finditer(before)]
    after = text[end : max(item_end, end) + 80]
    for rx, kind in ((_AFTER_STOPPED, "stopped"), (_AFTER_FAILED, "stopped"), (_TEST_AFTER, "test")):
        m = rx.match(after)
        if m:
            return kind, m.group().strip()[-40:]
    test = _TEST_BEFORE.search(before)
    if test and not [k for k, _ in cues if k == "current" and before.rfind(_) > test.start()]:
        return "test", test.group().strip()[:40]
    if cues:
        kind, word = cues[-1]
        if kind == "allergy" or any(k == "allergy" for k, _ in cues):
            return "allergy", word
        return str(kind), word
    return "current", ""


@dataclass
class DrugPriors:
    """How often each ATC group (levels 1-4) and each substance's code was the answer in coded products
    and notes: what generalises to a substance never seen (its groups) and what a seen one adds."""

    groups: Counter[str] = field(default_factory=Counter)
    substance: Counter[str] = field(default_factory=Counter)  # "key|code" and "key"
    family: Counter[str] = field(default_factory=Counter)  # a brand's first word: "minims|S", "minims|S01E", "minims"
    total: int = 0
    route: Counter[str] = field(default_factory=Counter)  # "eye|S", "eye|S01E", "eye": the answers' groups by route
    form: Counter[str] = field(default_factory=Counter)  # "shampoo|D", "shampoo|D11A", "shampoo": and by dosage form
    # an ingredient name's words -> the codes of the products that named them ("venom|V01AA07", "venom"): what
    # a name the lexicon does not know (a vaccine's strains, an allergen, an enzyme) was coded as
    words: Counter[str] = field(default_factory=Counter)
    _by_word: dict[str, Counter[str]] | None = field(default=None, repr=False, compare=False)

    def add_words(self, names: Sequence[str], code: str) -> None:
        """Count a product's answer under each word of its ingredient names."""
        for w in ingredient_words(names):
            self.words[f"{w}|{code}"] += 1
            self.words[w] += 1
        self._by_word = None

    def codes_for_words(self, names: Sequence[str], limit: int = 5) -> list[tuple[str, float, float]]:
        """The codes products with these ingredient words were coded as: (code, its best share under one of the
        words, log1p of that word's count), best first."""
        if self._by_word is None:
            self._by_word = {}
            for key, n in self.words.items():
                if "|" in key:
                    w, code = key.split("|", 1)
                    self._by_word.setdefault(w, Counter())[code] += n
        best: dict[str, tuple[float, float]] = {}
        for w in ingredient_words(names):
            seen = self.words.get(w, 0)
            for code, n in (self._by_word.get(w) or {}).items():
                share = (n / seen, math.log1p(seen))
                best[code] = max(best.get(code, share), share)
        ranked = sorted(best.items(), key=lambda kv: (-kv[1][0], -kv[1][1], kv[0]))[:limit]
        return [(code, share, seen) for code, (share, seen) in ranked]

    def add_context(self, ctx: "DrugContext", code: str) -> None:
        """Count the answer's groups under each route and dosage form its context names."""
        for counter, names in ((self.route, ctx.routes), (self.form, ctx.forms)):
            for name in names:
                for part in (code[:1], code[:4], ""):
                    counter[f"{name}|{part}" if part else name] += 1

    def context_shares(self, ctx: "DrugContext", code: str) -> tuple[float, float, float, float]:
        """How often products and notes with this context's routes (then forms) were coded in the code's
        anatomical group and in its level-3 group: the best over the context's routes (forms); NaN when none
        was seen."""
        out: list[float] = []
        for counter, names in ((self.route, ctx.routes), (self.form, ctx.forms)):
            for part in (code[:1], code[:4]):
                shares = [counter.get(f"{n}|{part}", 0) / counter[n] for n in names if counter.get(n)]
                out.append(max(shares) if shares else float("nan"))
        return out[0], out[1], out[2], out[3]

    def add_family(self, word: str, code: str) -> None:
        if word:
            for part in (code[:1], code[:4], ""):
                self.family[f"{word}|{part}" if part else word] += 1

    def add(self, substances: Sequence[str], code: str) -> None:
        for n in (1, 3, 4, 5, 7):
            self.groups[code[:n]] += 1
        key = "+".join(sorted(substances))
        self.substance[f"{key}|{code}"] += 1
        self.substance[key] += 1
        self.total += 1

    def to_json(self) -> dict[str, Any]:
        return {
            "groups": dict(self.groups),
            "substance": dict(self.substance),
            "family": dict(self.family),
            "total": self.total,
            "route": dict(self.route),
            "form": dict(self.form),
            "words": dict(self.words),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "DrugPriors":
        return cls(
            Counter(data.get("groups", {})),
            Counter(data.get("substance", {})),
            Counter(data.get("family", {})),
            int(data.get("total", 0)),
            Counter(data.get("route", {})),
            Counter(data.get("form", {})),
            Counter(data.get("words", {})),
        )


_INGREDIENT_WORD = re.compile(r"[a-z0-9]{3,}")


def ingredient_words(names: Sequence[str]) -> set[str]:
    """The words of ingredient names (substance keys, folded) that can say what a product is."""
    return {w for name in names for w in _INGREDIENT_WORD.findall(name.lower()) if not w.isdigit()}


_FAMILY_WORD = re.compile(r"[A-Za-z]{3,}")
_NOT_FAMILY = frozenset("the for with and extra strength regular junior children adult original relief".split())


def family_word(text: str) -> str:
    """The first word of a product or brand name ("MINIMS PILOCARPINE" -> minims), the family its maker sells
    under; empty when the name starts with no such word."""
    for w in _FAMILY_WORD.findall(text or "")[:2]:
        if w.lower() not in _NOT_FAMILY:
            return str(w).lower()
    return ""


CANDIDATE_KINDS = (
    "single",
    "combo_exact",
    "combo_superset",
    "x_combinations",
    "combo_class",
    "combo_group",
    "part",
    "lexicon_code",
    "word_memory",
)
_SECTIONS = ("medications", "plan", "hpi", "history", "allergies", "product", "other")
DRUG_FEATURES: tuple[str, ...] = (
    "is_product",
    "brand_only",
    "n_substances",
    "n_candidates",
    "n_groups",
    *(f"kind_{k}" for k in CANDIDATE_KINDS),
    "label_parts",
    "extra_parts",
    *(f"group_{g}" for g in ANATOMICAL_GROUPS),
    "local_group",
    "ddd_any",
    "ddd_O",
    "ddd_P",
    "ddd_R",
    "ddd_V",
    "ddd_N",
    "ddd_inhal",
    "ddd_TD",
    "ddd_SL",
    "n_ddd_routes",
    *(f"cue_{r}" for r in ROUTES),
    "route_fit",
    "route_conflict",
    "strength_ratio",
    "indication_match",
    "indication_any",
    *(f"section_{s}" for s in _SECTIONS),
    *(f"status_{s}" for s in STATUSES),
    "via_brand",
    "via_fuzzy",
    "via_us_name",
    "prior_l1",
    "prior_l2",
    "prior_l3",
    "prior_l4",
    "prior_code",
    "subst_share",
    "subst_seen",
    "group_share_in_candidates",
    "family_seen",
    "family_l1_share",
    "family_l3_share",
    "class_fit",
    "from_record",
    "route_l1_share",
    "route_l3_share",
    "form_l1_share",
    "form_l3_share",
    "word_share",
    "word_seen",
)


def ddd_routes(node: Any) -> set[str]:
    """The DDD route letters of an ATC code (`Inhal.aerosol` -> Inhal)."""
    return {str(d.get("route", "")).split(".")[0] for d in (node.attrs.get("ddd") or []) if d.get("route")}


def _oral_ddd_mg(node: Any) -> float | None:
    for d in node.attrs.get("ddd") or []:
        if d.get("route") == "O":
            try:
                value = float(d["ddd"])
            except (TypeError, ValueError):
                return None
            return value * {"g": 1000.0, "mcg": 0.001, "mg": 1.0}.get(str(d.get("unit", "")).lower(), float("nan"))
    return None


def route_fit(code: str, ddd: set[str], routes: Iterable[str]) -> tuple[float, float]:
    """(+1 when a route word fits the code's group or DDD route, and whether one conflicts)."""
    fit = conflict = 0.0
    local = code.startswith(LOCAL_GROUPS)
    for r in routes:
        ok = code.startswith(_ROUTE_GROUPS[r]) if _ROUTE_GROUPS[r] else False
        ok = ok or bool(ddd & set(_ROUTE_DDD[r]))
        if r == "oral" and local and not ddd & {"O"}:
            ok = False
        fit = max(fit, float(ok))
        conflict = max(conflict, float(not ok))
    return fit, conflict


def feature_row(
    onto: CodeSystem,
    code: str,
    kind: str,
    substances: Sequence[str],
    label_parts: int,
    ctx: DrugContext,
    n_candidates: int,
    groups: Counter[str],
    priors: DrugPriors,
    via: str,
    is_product: bool,
    brand_only: bool,
    family: str = "",
    class_fit: float = float("nan"),
    word_memory: tuple[float, float] = (float("nan"), float("nan")),
) -> list[float]:
    """One row of DRUG_FEATURES for a candidate code of a mention; `family` is the brand's first word."""
    node = onto.node(code)
    ddd = ddd_routes(node)
    fit, conflict = route_fit(code, ddd, ctx.routes)
    oral = _oral_ddd_mg(node)
    ratio = math.log10(ctx.strength_mg / oral) if ctx.strength_mg and oral and oral > 0 else float("nan")
    key = "+".join(sorted(substances))
    seen = priors.substance.get(key, 0)

    def lg(n: int) -> float:
        return math.log1p(priors.groups.get(code[:n], 0))

    return [
        float(is_product),
        float(brand_only),
        float(len(substances)),
        float(n_candidates),
        float(len(groups)),
        *(float(kind == k) for k in CANDIDATE_KINDS),
        float(label_parts),
        float(max(0, label_parts - len(substances))),
        *(float(code[0] == g) for g in ANATOMICAL_GROUPS),
        float(code.startswith(LOCAL_GROUPS)),
        float(bool(ddd)),
        *(float(r in ddd) for r in ("O", "P", "R", "V", "N", "Inhal", "TD", "SL")),
        float(len(ddd)),
        *(float(r in ctx.routes) for r in ROUTES),
        fit,
        conflict,
        ratio,
        (float(code.startswith(tuple(ctx.indications))) * 2 - 1) if ctx.indications else 0.0,
        float(bool(ctx.indications)),
        *(float(ctx.section == s) for s in _SECTIONS),
        *(float(ctx.status == s) for s in STATUSES),
        float(via in ("brand", "combination-brand", "product-brand")),
        float(via == "fuzzy"),
        float(via == "us-name"),
        lg(1),
        lg(3),
        lg(4),
        lg(5),
        math.log1p(priors.groups.get(code, 0)),
        (priors.substance.get(f"{key}|{code}", 0) / seen) if seen else float("nan"),
        float(seen > 0),
        groups.get(code[0], 0) / max(1, n_candidates),
        *_family(priors, family, code),
        class_fit,
        float(ctx.from_record),
        *priors.context_shares(ctx, code),
        *word_memory,
    ]


def _family(priors: DrugPriors, word: str, code: str) -> tuple[float, float, float]:
    seen = priors.family.get(word, 0) if word else 0
    if not seen:
        return 0.0, float("nan"), float("nan")
    return (
        math.log1p(seen),
        priors.family.get(f"{word}|{code[:1]}", 0) / seen,
        priors.family.get(f"{word}|{code[:4]}", 0) / seen,
    )
