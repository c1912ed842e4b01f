"""Drug coding the way a pharmacist does it: the substance from the lexicon, every ATC code it has,
then the one its route, use and section support, chosen by a learned, calibrated ranker.

`DrugCoder` is what the `drug_ranker` node, `medcoder eval` and `medcoder learn --system atc`
share, so a drug is coded the same way everywhere: a product from its ingredients or brand
(`code_product`), a note from its mentions (`code_note`: one code per substance, accepted
above the threshold only when the drug is taken, prescribed or given now).
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

from medcoder.errors import MedcoderError
from medcoder.knowledge.atc import ATC
from medcoder.knowledge.druglex import DrugLexicon, DrugMention, drug_lexicon, fold, substance_key
from medcoder.knowledge.ontology import CodeSystem
from medcoder.ranking.drug_features import (
    DRUG_FEATURES,
    LOCAL_GROUPS,
    NOT_CODED,
    DrugContext,
    DrugPriors,
    family_word,
    feature_row,
    forms_in,
    read_context,
    routes_in,
)
from medcoder.ranking.folders import ranker_folder
from medcoder.ranking.model import RankerModel, columns_of
from medcoder.records import Section
from medcoder.visit.layout import read_layout
from medcoder.visit.sections import section_at, section_kind

logger = logging.getLogger(__name__)

PRIORS_FILE = "priors.json"
RECORD = "+route+form"  # a product coded with its record's route and dosage form columns too
_CLASS_FILLER = frozenset(
    fold(w)
    for w in (
        "agents",
        "other",
        "various",
        "drugs",
        "preparations",
        "sequential",
        "excl",
        "combinations",
        "with",
        "plain",
        "incl",
    )
)


def drug_ranker_folder(name: str = "builtin") -> Path:
    """The drug ranker a workflow names: a folder from `medcoder learn --system atc`; `builtin`, the one this home
    uses (`rankers use`; the shipped one until then); `shipped`, the one in the package (`ranker_folder`)."""
    folder = ranker_folder(ATC.system, name)
    if not (folder / "ranker.json").is_file():
        raise MedcoderError(f"{folder}: no drug ranker there; learn one with `medcoder learn DATA --system atc`")
    return folder


@dataclass(slots=True)
class DrugCandidate:
    """One ATC code a mention may stand for, with how it was reached and its feature row."""

    code: str
    kind: str
    label_parts: int
    row: list[float] = field(default_factory=list)
    probability: float = 0.0  # calibrated: what a code's confidence says
    raw: float = 0.0  # the trees' score: orders candidates the calibration's steps leave tied

    def features(self) -> dict[str, float | None]:
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in zip(DRUG_FEATURES, self.row)}


@dataclass
class CodedMention:
    """A drug mention, what its words say, and its candidates best first."""

    mention: DrugMention
    context: DrugContext
    candidates: list[DrugCandidate]

    @property
    def best(self) -> DrugCandidate | None:
        return self.candidates[0] if self.candidates else None

    @property
    def key(self) -> str:
        return "+".join(sorted(self.mention.substances))


@dataclass
class DrugCode:
    """A note's drug code: its probability, whether it is accepted, and the mentions that support it."""

    code: str
    probability: float  # this code's calibrated probability
    accepted: bool
    mentions: list[CodedMention]
    reason: str = ""
    drug_probability: float = 0.0  # that the drug is coded at all: its codes' probabilities summed (at most 1)
    auto: bool = False  # accepted at or above the auto-accept threshold learned out of fold (0.95 precise)

    @property
    def best_mention(self) -> CodedMention:
        return max(self.mentions, key=lambda m: (m.context.status == "current", m.best.probability if m.best else 0))

    @property
    def chosen(self) -> DrugCandidate:
        """This code as a candidate of its best mention: its feature row (for `why`)."""
        return next(c for c in self.best_mention.candidates if c.code == self.code)


def candidates_of(lex: DrugLexicon, mention: DrugMention) -> list[DrugCandidate]:
    """Every level-5 code of the mention's substance (set): single codes, fixed combinations,
    "<substance>, combinations" and, for several substances, each one's own codes."""
    atc, keys = lex.atc, [k for k in mention.substances if not k.startswith("code:")]
    out: dict[str, DrugCandidate] = {}

    def add(codes: Sequence[str], kind: str, parts: int) -> None:
        for c in codes:
            out.setdefault(c, DrugCandidate(c, kind, parts))

    if mention.code:
        add([mention.code], "lexicon_code", max(2, len(keys)))
    if len(keys) == 1:
        add(atc.single.get(keys[0], ()), "single", 1)
        if not out:
            add(atc.x_combinations.get(keys[0], ()), "x_combinations", 2)
    elif keys:
        add(atc.combos.get(frozenset(keys), ()), "combo_exact", len(keys))
        for s, codes in atc.combos.items():
            if set(keys) < s:
                add(codes, "combo_superset", len(s))
            elif len(s) > 1 and s < set(keys):
                add(codes, "part", len(s))
        for k in keys:
            add(atc.x_combinations.get(k, ()), "x_combinations", 2)
        for k in keys:
            add(atc.partial.get(k, ()), "combo_class", 2)
        for k in keys:
            for code in atc.single.get(k, ()):
                add(atc.group_combos.get(code[:5], ()), "combo_group", len(keys))
        for k in keys:
            add(atc.single.get(k, ()), "part", 1)
    return list(out.values())


_FIT, _CONFLICT = DRUG_FEATURES.index("route_fit"), DRUG_FEATURES.index("route_conflict")


def _class_words(text: str) -> set[str]:
    """A class phrase as folded words ("Electrolytes" and "electrolyte solutions" share electrolit)."""
    return {fold(w) for w in re.findall(r"[a-z]{4,}", text.lower())} - _CLASS_FILLER


def _promote(cands: list[DrugCandidate], best: DrugCandidate) -> None:
    """Put `best` first: it takes the top's probability (and a hair more score), the order is redone."""
    top = cands[0]
    best.probability, best.raw = max(best.probability, top.probability), max(best.raw, top.raw) + 1e-6
    cands.sort(key=rank_key)


def route_rule(cands: list[DrugCandidate]) -> None:
    """The words say the route ("gel", "by mouth", "eye drops"): a code whose group and DDD routes contradict
    them never goes first while one that fits is there (a pharmacist's rule, not a weight to learn)."""
    top = cands[0]
    if top.row[_CONFLICT] and not top.row[_FIT]:
        fits = [c for c in cands if c.row[_FIT]]
        if fits:
            _promote(cands, fits[0])


def record_rule(cands: list[DrugCandidate], ctx: DrugContext) -> None:
    """A product record names every route the product is for ("OPHTHALMIC; OTIC"): a code that fits them all
    (S03, eye and ear) goes before one that fits only some (S01)."""
    if not ctx.from_record or len(ctx.routes) < 2 or not (cands[0].row[_CONFLICT] and cands[0].row[_FIT]):
        return
    whole = [c for c in cands if c.row[_FIT] and not c.row[_CONFLICT]]
    if whole:
        _promote(cands, whole[0])


def skin_rule(cands: list[DrugCandidate], ctx: DrugContext) -> None:
    """A cream, ointment or lotion on the skin or a rash is the substance's dermatological (D) code, never its
    anal, eye, ear or other local group's ("hydrocortisone 1% cream to the rash" is D07AA02, not C05AA01)."""
    if not ctx.skin or cands[0].code.startswith("D") or not cands[0].code.startswith(LOCAL_GROUPS):
        return
    derm = [c for c in cands if c.code.startswith("D")]
    if derm:
        _promote(cands, derm[0])


def apply_rules(cands: list[DrugCandidate], ctx: DrugContext, is_product: bool) -> None:
    """The pharmacist's rules over a mention's candidates, best first: a note's route and skin words, a product
    record's routes (a product's name alone is read by the ranker, which learned from thousands of them)."""
    if not cands:
        return
    if is_product:
        record_rule(cands, ctx)
        return
    route_rule(cands)
    skin_rule(cands, ctx)


def rank_key(c: DrugCandidate) -> tuple[float, float, str]:
    """Best first: calibrated probability, then the raw score, then the code (a stable order)."""
    return (-c.probability, -c.raw, c.code)


def product_context(brand: str | None, route: str | None = None, dosage_form: str | None = None) -> DrugContext:
    """What a product's name says of its route and use ("FUCIDIN CREAM 2%", "SANDOZ FENTANYL PATCH"), and what
    its record's route and dosage form columns say ("OPHTHALMIC", "SPRAY, METERED DOSE"), read as the route and
    form words of a note are read; with a record, its route column decides the route (its form column when the
    route names none) and its form column the form."""
    ctx = read_context(brand, 0, 0, "product") if brand else DrugContext(section="product")
    if not (route or dosage_form):
        return ctx
    routes = routes_in(route or "") or routes_in(dosage_form or "") or ctx.routes
    return replace(ctx, routes=routes, forms=forms_in(dosage_form or "") or ctx.forms, from_record=True)


def product_records(meta: dict[str, str]) -> list[tuple[str, str | None, str | None]]:
    """The readings of one product: its name alone, and (suffixed RECORD) with its record's route and dosage
    form when the record has them: (suffix, route, dosage form)."""
    route, form = meta.get("route") or None, meta.get("dosage_form") or None
    return [("", None, None), *([(RECORD, route, form)] if route or form else [])]


class DrugCoder:
    """The lexicon, the ATC, the learned priors and ranker: mentions in, ranked ATC codes out."""

    def __init__(
        self, onto: CodeSystem, ranker: RankerModel, priors: DrugPriors, lexicon: DrugLexicon | None = None
    ) -> None:
        self.onto = onto
        self.ranker = ranker
        self.priors = priors
        self.lex = lexicon or drug_lexicon(onto)
        self._words: dict[str, set[str]] = {}
        self._columns = columns_of(ranker.features, DRUG_FEATURES)  # a ranker learned before today's features

    def ranker_row(self, row: Sequence[float]) -> list[float]:
        """A candidate's row as the ranker reads it (its own columns, for one learned with fewer features)."""
        return list(row) if self._columns is None else [row[i] for i in self._columns]

    @classmethod
    def from_folder(cls, folder: str | Path, onto: CodeSystem) -> "DrugCoder":
        ranker = RankerModel.load(folder)
        priors_path = Path(folder) / PRIORS_FILE
        priors = DrugPriors.from_json(json.loads(priors_path.read_text())) if priors_path.is_file() else DrugPriors()
        return cls(onto, ranker, priors)

    # -- reading ---------------------------------------------------------------------------------
    def read(self, text: str, sections: Sequence[Section] | None = None) -> list[tuple[DrugMention, DrugContext]]:
        """The note's drug mentions with the context of each (the note's own sections when not given: its headers,
        else its visit layout)."""
        sections = read_layout(text).sections(text) if sections is None else sections
        found = self.lex.find(text)
        out = []
        for i, m in enumerate(found):
            kind = section_kind(section_at(sections, m.start))
            ctx = read_context(
                text,
                m.start,
                m.end,
                kind,
                found[i + 1].start if i + 1 < len(found) else None,
                found[i - 1].end if i else None,
            )
            out.append((m, ctx))
        return out

    def score(
        self,
        mention: DrugMention,
        ctx: DrugContext,
        *,
        is_product: bool = False,
        brand_only: bool = False,
        priors: DrugPriors | None = None,
    ) -> CodedMention:
        """The mention's candidates with feature rows and calibrated probabilities, best first."""
        cands = self.rows(mention, ctx, is_product=is_product, brand_only=brand_only, priors=priors)
        if cands:
            raw = self.ranker.raw([self.ranker_row(c.row) for c in cands])
            for c, r, p in zip(cands, raw, self.ranker.calibrate(raw)):
                c.raw, c.probability = float(r), float(p)
            cands.sort(key=rank_key)
            apply_rules(cands, ctx, is_product)
        return CodedMention(mention, ctx, cands)

    def rows(
        self,
        mention: DrugMention,
        ctx: DrugContext,
        *,
        is_product: bool = False,
        brand_only: bool = False,
        priors: DrugPriors | None = None,
    ) -> list[DrugCandidate]:
        cands = candidates_of(self.lex, mention)
        cands += self.class_candidates(mention, {c.code for c in cands})
        keys = [k for k in mention.substances if not k.startswith("code:")]
        memory: dict[str, tuple[float, float]] = {}
        if not cands and is_product:  # names the lexicon does not know: what products with their words were
            for code, share, seen in (priors or self.priors).codes_for_words(keys):
                if code in self.onto:
                    memory[code] = (share, seen)
                    cands.append(DrugCandidate(code, "word_memory", len(keys)))
        groups = Counter(c.code[0] for c in cands)
        family = family_word(ctx.window if is_product else mention.text)
        for c in cands:
            fit = self.class_fit(c.code, keys) if c.kind == "combo_class" else float("nan")
            c.row = feature_row(
                self.onto,
                c.code,
                c.kind,
                keys,
                c.label_parts,
                ctx,
                len(cands),
                groups,
                priors or self.priors,
                mention.via,
                is_product,
                brand_only,
                family,
                fit,
                memory.get(c.code, (float("nan"), float("nan"))),
            )
        return cands

    def class_candidates(self, mention: DrugMention, have: set[str]) -> list[DrugCandidate]:
        """Combination codes named by classes alone ("opium derivatives and expectorants") whose every class
        holds one of the mention's substances (dextromethorphan, guaifenesin)."""
        keys = [k for k in mention.substances if not k.startswith("code:")]
        if len(keys) < 2:
            return []
        words = [self._group_words(k) for k in keys]
        out = []
        for code, parts in self.lex.atc.class_only.items():
            classes = [_class_words(p) for p in parts]
            if code not in have and all(c and any(c <= w for w in words) for c in classes):
                out.append(DrugCandidate(code, "combo_class", len(parts)))
        return out

    def class_fit(self, code: str, keys: Sequence[str]) -> float:
        """For "losartan and diuretics": the share of the mention's other substances that belong to the class
        the label names (hydrochlorothiazide is under C03 DIURETICS), read from their codes' ATC groups."""
        parts = [p for p in re.split(r",\s*|\s+and\s+", self.onto.label(code).lower()) if p]
        named = {k for k in keys if any(substance_key(p) == k for p in parts)}
        classes = [_class_words(p) for p in parts if substance_key(p) not in keys]
        others = [k for k in keys if k not in named]
        if not classes or not others:
            return float("nan")
        fits = 0
        for k in others:
            words = self._group_words(k)
            fits += any(c and c <= words for c in classes)
        return fits / len(others)

    def _group_words(self, key: str) -> set[str]:
        if key not in self._words:
            words: set[str] = set()
            for code in self.lex.codes_of(key):
                for n in self.onto.path(code)[:-1]:
                    words |= _class_words(n.label)
            self._words[key] = words
        return self._words[key]

    # -- products and notes ----------------------------------------------------------------------
    def product_mention(self, ingredients: str | None = None, brand: str | None = None) -> DrugMention | None:
        """A product as one mention: its ingredient list, or whatever the lexicon finds in its brand."""
        if ingredients:
            keys = self.lex.ingredients(ingredients)
            return DrugMention(0, len(ingredients), ingredients, keys, "product") if keys else None
        found = self.lex.find(brand or "")
        if not found:
            return None
        keys = tuple(dict.fromkeys(k for m in found for k in m.substances))
        code = found[0].code if len(found) == 1 else None
        return DrugMention(0, len(brand or ""), brand or "", keys, found[0].via, code)

    def code_product(
        self,
        ingredients: str | None = None,
        brand: str | None = None,
        route: str | None = None,
        dosage_form: str | None = None,
    ) -> CodedMention | None:
        """Rank the codes of one drug product from its ingredients, or from its brand name alone; the record's
        route and dosage form, when given, are read beside the name."""
        mention = self.product_mention(ingredients, brand)
        if mention is None:
            return None
        ctx = product_context(brand, route, dosage_form)
        return self.score(mention, ctx, is_product=True, brand_only=ingredients is None)

    def mentions(self, text: str, sections: Sequence[Section] | None = None) -> list[CodedMention]:
        """Every drug mention of a note with its context and ranked candidates."""
        return [self.score(m, ctx) for m, ctx in self.read(text, sections)]

    def code_note(self, text: str, sections: Sequence[Section] | None = None) -> list[DrugCode]:
        """The note's drug codes: one per substance (set), its best code over all its mentions; accepted
        above the threshold when at least one mention says the drug is taken, prescribed or given now."""
        return self.decide(self.mentions(text, sections))

    def decide(self, coded: list[CodedMention], threshold: float | None = None) -> list[DrugCode]:
        """One code per substance (set) over its mentions; accepted above the threshold and only for a
        drug taken, prescribed or given now."""
        threshold = self.ranker.threshold if threshold is None else threshold
        by_key: dict[str, list[CodedMention]] = {}
        for cm in coded:
            if cm.best is not None:
                by_key.setdefault(cm.key, []).append(cm)
        out: dict[str, DrugCode] = {}
        for mentions in by_key.values():
            best: dict[str, float] = {}
            for cm in mentions:
                for c in cm.candidates:
                    best[c.code] = max(best.get(c.code, 0.0), c.probability)
            raw = {c.code: c.raw for cm in mentions for c in cm.candidates if best[c.code] == c.probability}
            code = min(best, key=lambda c: (-best[c], -raw.get(c, 0.0), c))
            p = best[code]
            p_drug = min(1.0, max(sum(c.probability for c in cm.candidates) for cm in mentions))
            current = [cm for cm in mentions if cm.context.status not in NOT_CODED]
            reason = ""
            if not current:
                ctx = mentions[0].context
                reason = f"not coded: {ctx.status} ({ctx.status_cue})"
            accepted = bool(current) and p_drug >= threshold
            if code in out:  # two substance sets reaching one code: keep the stronger
                prev = out[code]
                prev.mentions += mentions
                prev.accepted = prev.accepted or accepted
                prev.probability = max(prev.probability, p)
                prev.drug_probability = max(prev.drug_probability, p_drug)
                continue
            out[code] = DrugCode(code, p, accepted, mentions, reason, p_drug)
        auto = ((self.ranker.meta.get("cv") or {}).get("notes") or {}).get("auto_accept_threshold")
        for d in out.values():
            d.auto = bool(d.accepted and auto is not None and d.probability >= auto)
        return sorted(out.values(), key=lambda d: (-d.probability, d.code))
