"""The drug lexicon: every way a note names a drug, mapped to ATC substances, and a matcher with exact spans.

Names come from data, each with its provenance (see `data/PROVENANCE.md`): every ATC level-5
substance name (salts, esters and hydrates folded), US adopted and common names beside the
WHO INN (`us_drug_names.csv`), RABBITS' US brands, the ATC combination brands, and brands of
the coded Canadian products. The matcher reads a medication list whole without a model:
case, plural, hyphen/slash combinations ("losartan-hydrochlorothiazide") and one-letter
misspellings are found; devices, supplies and therapies are never in the lexicon, and no entry or
misspelling is an everyday word in any inflection ("topicals") or a dose instruction ("nightly").
"""

from __future__ import annotations

import csv
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medcoder.knowledge.drugwords import (
    BRANDS_LIKE_WORDS,
    INSTRUCTION_WORDS,
    NOT_BRANDS,
    TOKEN,
    data_path,
    deletes,
    dropped_from,
    everyday_words,
    is_everyday_word,
    product_brand_words,
    product_rows,
    rabbits_brands,
    sounds_alike,
    stems,
    within_one,
)
from medcoder.knowledge.ontology import CodeSystem

logger = logging.getLogger(__name__)

US_NAMES_FILE = "us_drug_names.csv"
RABBITS_FILE = "rabbits_generic_to_brand.csv"
PRODUCTS_FILE = "dpd_products_2026-04-01.tsv"

# salt, ester and hydrate words that name the same substance ("metoprolol succinate" -> metoprolol)
SALTS = frozenset(
    "hydrochloride hcl dihydrochloride sodium potassium calcium magnesium propionate dipropionate acetate sulfate "
    "sulphate maleate mesylate mesilate besylate besilate citrate tartrate bitartrate phosphate fumarate succinate "
    "bromide chloride hydrobromide monohydrate dihydrate trihydrate sesquihydrate hemihydrate anhydrous hyclate "
    "furoate valerate lactate gluconate nitrate oxalate pamoate palmitate stearate tosylate trometamol tromethamine "
    "disodium dipotassium hydrate base free as xinafoate embonate decanoate enanthate cypionate benzoate "
    "hemifumarate dimesylate mononitrate".split()
)
# release and form words that may trail a drug name and belong to its span ("metoprolol succinate ER")
_TRAILING = (SALTS - {"as", "base", "free"}) | {"er", "xr", "xl", "sr", "cr", "la", "dr", "ir", "ec", "odt", "hfa"}
# names that are also everyday or lab words: a drug only when a form or dose word follows
# ("nicotine patch", "glucose tablets"), never in "drinks alcohol" or "potassium is 4.1"
CONTEXT_ONLY = frozenset(
    "oxygen water alcohol ethanol nicotine caffeine cocaine glucose sodium potassium calcium magnesium iron zinc "
    "sugar honey oil tar charcoal silver gold sulfur talc wax light heat urea lactose fructose cannabis "
    "carbon dioxide nitrogen helium air".split()
)
_FORM_AFTER = re.compile(
    r"\s*(?:\d|patch|patches|gum|lozenges?|tablets?|tabs?|capsules?|supplements?|injections?|"
    r"infusion|drip|inhaler|spray|cream|gel|ointment|solution|replacement|therapy|chloride|"
    r"sulfate|gluconate|carbonate|citrate|oxide)",
    re.IGNORECASE,
)
# a misspelling is read only as a generic name one edit away, both at least this long (folded): brands are
# short coined words, and one edit from a brand is an everyday word ("bedtime" / Betim, "tracer" / Tracleer)
FUZZY_MIN = 7
FUZZY_VIA = frozenset({"atc-name", "us-name"})
# a misspelling is not read when it is also another generic with up to this many letters dropped ("propranol":
# propanol or propranolol, "cefoxime": cefixime or cefotaxime)
FUZZY_RIVAL = 2
# what is left of "magnesium hydroxide" or "sodium nitrite" without the salt word: an inorganic anion or a
# metal's -ic state, no drug alone ("crown hydroxide", "negative nitrites", "ferric pigment"); "ferrous" alone
# stays a drug ("ferrous 325 mg")
_INORGANIC = re.compile(
    r"(?:hidrogen|hidr|per|bi|hipo|mono|di|tri|poli|tio)?"
    r"(?:ox|carbon|nitr|chlor|fluor|iod|brom|sulf|silic|bor|selen|fosf|permangan|arsen|cian)(?:id|it|at)"
    r"|(?:fer|cupr|mercur)ic"
)
# words on a product's ingredient line that qualify its substance without naming another ("LITHIUM CARBONATE",
# "MIXED SALTS AMPHETAMINE", "INSULIN HUMAN BIOSYNTHETIC", "CHOLESTYRAMINE RESIN"): dropped only when the whole
# name does not resolve, so "calcium carbonate" stays its own ATC substance
PRODUCT_QUALIFIERS = frozenset(
    "human recombinant mixed salts salt activated resin carbonate meglumine biosynthetic semisynthetic "
    "porcine bovine pork concentrate purified isophane injection semi synthetic".split()
)
# greek-letter suffixes the INN gives biologics ("epoetin alfa", "nonacog gamma"); the ATC often names the parent
_GREEK = frozenset("alfa alpha beta gamma delta epsilon zeta eta theta kappa lambda omega".split())
# INN/USAN stems that name their ATC substance whatever the prefix: every octocog (WHO INN "-cog") is factor
# VIII, every nonacog IX, every "-botulinumtoxinA" (onabotulinumtoxinA, prabotulinumtoxinA) botulinum toxin
_STEMS = (
    ("botulinumtoxin", "botulinum toxin"),
    ("catridecacog", "coagulation factor XIII"),
    ("octocog", "coagulation factor VIII"),
    ("nonacog", "coagulation factor IX"),
    ("eptacog", "coagulation factor VIIa"),
)
# ingredient words that are lab tests or proteins in a note but a product's substance on an ingredient line:
# never lexicon entries, only read here ("LIPASE|PROTEASE|AMYLASE" is pancrelipase, "IMMUNOGLOBULIN (HUMAN)" IVIG)
PRODUCT_ONLY_NAMES = {
    "lipase": "pancrelipase",
    "protease": "pancrelipase",
    "amylase": "pancrelipase",
    "immunoglobulin": "immune globulin",
    "immunoglobulin g": "immune globulin",
}
# a roman numeral (factor VIII, XIII): fold must keep it whole, its doubled letters are its value
_ROMAN = re.compile(r"x{0,3}(?:ix|iv|v?i{0,3})")
_JOINERS = re.compile(r"\s*[-/+]\s*")
_GAP = re.compile(r"[ \t]*[-/+]?[ \t]*")


def fold(word: str) -> str:
    """One spelling for the variants a drug name is written in (cephalexin/cefalexin, oestradiol/estradiol,
    sulphate/sulfate, glycerine/glycerin): lower case, ph->f, th->t, ae/oe->e, y->i, no doubled letter,
    no trailing e or s, so a plural or a British spelling matches. A roman numeral stays whole (factor XIII is
    not factor XI), and -trophin is -tropin (the INN's chorionic gonadotrophin is the US gonadotropin)."""
    w = word.lower()
    if w and _ROMAN.fullmatch(w):
        return w
    w = w.replace("ph", "f").replace("th", "t").replace("ae", "e").replace("oe", "e").replace("y", "i")
    w = w.replace("trofin", "tropin")
    w = re.sub(r"(.)\1+", r"\1", w)
    if len(w) > 4 and w.endswith("es") and not w.endswith("ies"):
        w = w[:-2]
    elif len(w) > 4 and w.endswith("s") and not w.endswith(("is", "us", "ss")):
        w = w[:-1]
    if len(w) > 4 and w.endswith("e"):
        w = w[:-1]
    return w


_INSTRUCTION_FOLDED = frozenset(fold(w) for w in INSTRUCTION_WORDS)
_NOT_BRANDS_FOLDED = frozenset(fold(w) for w in NOT_BRANDS)
_BRAND_VIA = frozenset({"brand", "combination-brand", "product-brand"})

# ATC level-5 names that are allergen or class words, never a drug a note names ("food", "various", "others")
NEVER = frozenset(
    fold(w)
    for w in "animals combinations feather feathers flowers food insects oil others other "
    "textiles various silver sulfur".split()
)


def name_tokens(name: str, salts: bool = False) -> tuple[str, ...]:
    """A name as folded tokens, without parentheses and (unless `salts`, or nothing else is left) salt words."""
    words = [t for t in TOKEN.findall(re.sub(r"\([^)]*\)", " ", name)) if t.lower() not in ("and", "with")]
    kept = words if salts else [t for t in words if t.lower() not in SALTS] or words
    return tuple(fold(t) for t in kept)


def whole_if_inorganic(tokens: tuple[str, ...], name: str) -> tuple[str, ...]:
    """The words a substance is found by: its tokens, or its whole name with the salt words where the tokens are
    an inorganic anion left by dropping them ("magnesium hydroxide", never "hydroxide" alone)."""
    if len(tokens) == 1 and _INORGANIC.fullmatch(tokens[0]):
        whole = name_tokens(name, salts=True)
        if len(whole) > 1:
            return whole
    return tokens


def substance_key(name: str) -> str:
    """The key that identifies a substance across spellings and salts ("metoprolol succinate" -> metoprolol)."""
    return " ".join(name_tokens(name))


def full_key(name: str) -> str:
    """The key with its salt words, for substances told apart only by them (ferrous sulfate, ferrous gluconate)."""
    return " ".join(name_tokens(name, salts=True))


@dataclass(frozen=True, slots=True)
class DrugMention:
    """A drug named in the text: where, what it names (ATC substance keys) and how it was recognised."""

    start: int
    end: int
    text: str
    substances: tuple[str, ...]
    via: str  # atc-name | us-name | brand | combination-brand | product-brand | fuzzy | product
    code: str | None = None  # a code the lexicon itself names (an ATC combination brand)


@dataclass(frozen=True, slots=True)
class _Entry:
    substances: tuple[str, ...]
    via: str
    code: str | None = None
    raw: str = ""  # the name as its source spells it (lower case)


@dataclass
class AtcSubstances:
    """The ATC level-5 codes of each substance key: single substances, fixed combinations,
    and the "<substance>, combinations" codes."""

    single: dict[str, list[str]] = field(default_factory=dict)
    combos: dict[frozenset[str], list[str]] = field(default_factory=dict)
    x_combinations: dict[str, list[str]] = field(default_factory=dict)
    partial: dict[str, list[str]] = field(default_factory=dict)  # "irbesartan and diuretics": named with a class
    class_only: dict[str, list[str]] = field(default_factory=dict)  # "opium derivatives and expectorants" -> parts
    group_combos: dict[str, list[str]] = field(default_factory=dict)  # level-4 group -> its "combinations" codes
    names: dict[str, str] = field(default_factory=dict)  # key -> a readable name (the ATC label)


# a level-5 code named by a class alone ("electrolytes", "electrolytes with carbohydrates")
_CLASS_LABEL = re.compile(r"[a-z]{4,}s(?: with [a-z]{4,}s)?")


def _split_combination(label: str) -> list[str]:
    return [p.strip() for p in re.split(r",\s*|\s+and\s+", label.lower()) if p.strip()]


def atc_substances(onto: CodeSystem) -> AtcSubstances:
    """Read every level-5 label of the ATC once: which codes each substance (set) has."""
    out = AtcSubstances()
    level5 = [n for n in onto.iter_nodes() if n.depth == 5]
    pending = []
    salted: dict[str, dict[str, list[str]]] = {}
    for n in level5:
        label = n.label.lower()
        if label.startswith("combination") or label == "various":
            out.group_combos.setdefault(n.code[:5], []).append(n.code)
            continue
        if "combination" in label:
            head = substance_key(label.split(",")[0].split(" combination")[0])
            if head:
                out.x_combinations.setdefault(head, []).append(n.code)
            continue
        if " and " in label or ", " in label:
            pending.append(n)
            continue
        key = substance_key(label)
        if key:
            out.single.setdefault(key, []).append(n.code)
            out.names.setdefault(key, n.label.lower())
            salted.setdefault(key, {}).setdefault(full_key(label), []).append(n.code)
        if _CLASS_LABEL.fullmatch(label):  # "electrolytes with carbohydrates": a product of several such substances
            out.class_only[n.code] = label.split(" with ")
        for alias in re.findall(r"\(([^)]+)\)", label):  # "ascorbic acid (vitamin c)", not "(111In)"
            akey = substance_key(alias)
            if akey and len(akey) >= 4 and not re.search(r"\d", alias):
                out.single.setdefault(akey, []).append(n.code)
                out.names.setdefault(akey, n.label.lower())
    for key, by_full in salted.items():  # "ferrous sulfate" and "ferrous gluconate": each its own substance too
        if len(by_full) > 1:
            for fkey, codes in by_full.items():
                if fkey != key:
                    out.single[fkey] = codes
                    out.names[fkey] = onto.label(codes[0]).lower()
    for n in pending:
        parts = [substance_key(p) for p in _split_combination(n.label)]
        if len(parts) > 1 and all(p in out.single for p in parts):
            out.combos.setdefault(frozenset(parts), []).append(n.code)
            continue
        named = [p for p in parts if p in out.single]
        for p in named:  # "irbesartan and diuretics", "prednisolone and antiinfectives"
            out.partial.setdefault(p, []).append(n.code)
        if not named and len(parts) > 1:
            out.class_only[n.code] = parts
        if not named:  # "omega-3-triglycerides incl. other esters and acids": one substance with "and" in its name
            key = substance_key(n.label)
            out.single.setdefault(key, []).append(n.code)
            out.names.setdefault(key, n.label.lower())
    return out


def _is_everyday(name: str, words: frozenset[str]) -> bool:
    """Whether a brand string is nothing but everyday words (in any inflection); a few real brands are kept."""
    if name.lower() in BRANDS_LIKE_WORDS:
        return False
    toks = [t.lower() for t in TOKEN.findall(name)]
    return not toks or all(len(t) < 4 or is_everyday_word(t, words) for t in toks)


def is_instruction_word(word: str) -> bool:
    """A clinical-instruction word ("bedtime", "nightly", "tablets"), in any case or inflection."""
    w = word.lower()
    return w in INSTRUCTION_WORDS or fold(w) in _INSTRUCTION_FOLDED or bool(stems(w) & INSTRUCTION_WORDS)


class DrugLexicon:
    """Names → substances, matched in text with exact spans. Built from the ATC code system in use,
    so a user's own licensed WHOCC file gets the same lexicon."""

    def __init__(self, onto: CodeSystem, data_dir: Path | None = None) -> None:
        self.onto = onto
        self.atc = atc_substances(onto)
        self._data = data_dir
        self._trie: dict[str, Any] = {}  # word -> sub-trie; "$" -> the _Entry a name ending here means
        self.entries = 0
        self.unresolved: list[str] = []
        self._deletes: dict[str, set[str]] = {}
        self.everyday: frozenset[str] = frozenset()
        self._everyday_folded: frozenset[str] = frozenset()
        self._generics: dict[str, list[str]] = {}  # first letter -> one-word generic names (misspelling rivals)
        self._build()
        for key in list(self._trie):
            node = self._trie[key]
            if "$" not in node or node["$"].via not in FUZZY_VIA:
                continue
            self._generics.setdefault(key[0], []).append(key)
            if len(key) >= FUZZY_MIN:
                for d in deletes(key):
                    self._deletes.setdefault(d, set()).add(key)

    # -- building ----------------------------------------------------------------------------
    def _file(self, name: str) -> Path:
        return (self._data / name) if self._data else data_path(name)

    def resolve(self, name: str, prefix: bool = True) -> tuple[str, ...] | None:
        """The substance keys a name stands for: one substance, or a fixed combination's parts; with `prefix`,
        the one longer substance name it begins (tried last by products, so "FACTOR VIII" is coagulation
        factor VIII before it is "factor VIII inhibitor bypassing activity")."""
        for key in (full_key(name), substance_key(name)):
            if key in self.atc.single:
                return (key,)
        parts = [substance_key(p) for p in _split_combination(name)]
        if len(parts) > 1 and all(p in self.atc.single for p in parts):
            return tuple(parts)
        alias = self._aliases.get(substance_key(name))
        if alias is not None:
            return alias
        if not prefix:
            return None
        longer = [k for k in self._prefixes.get(key.split()[0] if key else "", ()) if k.startswith(key + " ")]
        return (longer[0],) if len(longer) == 1 else None  # "ceftobiprole" -> ceftobiprole medocaril

    def _add(self, tokens: tuple[str, ...], entry: _Entry, raw: str = "") -> None:
        if not tokens or not entry.substances or not _may_name(tokens, entry.via):
            return
        if raw:
            entry = _Entry(entry.substances, entry.via, entry.code, raw.lower().strip())
        node = self._trie
        for t in tokens:
            node = node.setdefault(t, {})
        if "$" not in node or node["$"].via == "fuzzy":
            node["$"] = entry
            self.entries += 1

    def _build(self) -> None:
        self._aliases: dict[str, tuple[str, ...]] = {}
        self._prefixes: dict[str, list[str]] = {}
        for key in self.atc.single:
            self._prefixes.setdefault(key.split()[0], []).append(key)
        for key in self.atc.single:
            name = self.atc.names.get(key, "")
            tokens = tuple(key.split())
            self._add(whole_if_inorganic(tokens, name), _Entry((key,), "atc-name"), name)
        for keys, codes in self.atc.combos.items():
            for code in codes:
                label = self.onto.label(code)
                self._add(whole_if_inorganic(name_tokens(label), label), _Entry(tuple(sorted(keys)), "atc-name"))
        # US and common names: the first kind that resolves wins over brands
        labels: dict[str, list[str]] = {}
        for n in self.onto.iter_nodes():
            if n.depth == 5:
                labels.setdefault(n.label.lower(), []).append(n.code)
        path = self._file(US_NAMES_FILE)
        with open(path, encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                target = self.resolve(row["atc_name"])
                named: str | None = None
                if target is None and len(labels.get(row["atc_name"].lower(), ())) == 1:
                    named = labels[row["atc_name"].lower()][0]  # "amoxicillin and beta-lactamase inhibitor"
                    target = (f"code:{named}",)
                if target is None:
                    self.unresolved.append(f"{US_NAMES_FILE}: {row['name']} -> {row['atc_name']}")
                    continue
                self._aliases.setdefault(substance_key(row["name"]), target)
                via = "brand" if row.get("kind") == "brand" else "us-name"
                toks = whole_if_inorganic(name_tokens(row["name"]), row["name"]) or (fold(row["name"]),)
                self._add(toks, _Entry(target, via, named), row["name"])
        everyday = self.everyday = everyday_words()
        self._everyday_folded = frozenset(fold(w) for w in everyday)
        for generic, brands in rabbits_brands(self._file(RABBITS_FILE)):
            target = self.resolve(generic)
            if target is None:
                continue
            for brand in brands:
                toks = name_tokens(brand)
                if toks and len(brand) >= 4 and not _is_everyday(brand, everyday):
                    self._add(toks, _Entry(target, "brand"), brand)
        for node in self.onto.iter_nodes():
            for product in node.notes.get("combination_products", ()):
                brand = product.split(" (")[0]
                toks = name_tokens(brand)
                if toks and len(brand) >= 4 and not _is_everyday(brand, everyday):
                    combo = self._combination_keys(node.code)
                    self._add(toks, _Entry(combo or (f"code:{node.code}",), "combination-brand", node.code))
        products = self._file(PRODUCTS_FILE)
        if products.is_file():
            for brand, ingredients in product_rows(products):
                target = self.ingredients(ingredients)
                words = product_brand_words(brand)
                toks = tuple(fold(w) for w in words)
                if (
                    target
                    and toks
                    and 1 <= len(toks) <= 3
                    and len(" ".join(toks)) >= 5
                    and not _is_everyday(" ".join(words), everyday)
                ):
                    self._add(toks, _Entry(target, "product-brand"))

    def _combination_keys(self, code: str) -> tuple[str, ...]:
        for keys, codes in self.atc.combos.items():
            if code in codes:
                return tuple(sorted(keys))
        return ()

    def ingredients(self, text: str) -> tuple[str, ...]:
        """A product's ingredient list ("METFORMIN HYDROCHLORIDE|SITAGLIPTIN (…)") as substance keys."""
        out: list[str] = []
        for part in re.split(r"\||;", text):
            part = re.sub(r"\([^)]*\)", " ", part).strip()
            if not part:
                continue
            keys = self.resolve(part, prefix=False) or self._resolve_product_name(part) or self.resolve(part)
            if keys is None:
                found = self.find(part, fuzzy=False)
                keys = tuple(k for m in found for k in m.substances) if found else (substance_key(part),)
            out += [k for k in keys if k and k not in out]
        return tuple(out)

    def _resolve_product_name(self, part: str) -> tuple[str, ...] | None:
        """A product ingredient the ATC names otherwise, by general rules that hold for unseen products too:
        qualifier words dropped ("LITHIUM CARBONATE" lithium), an -ate salt read as its -ic acid ("FUSIDATE
        SODIUM" fusidic acid, "GADOTERATE MEGLUMINE" gadoteric acid), the ATC's "coagulation" before a factor
        ("FACTOR XIII"), an INN stem as its substance ("MOROCTOCOG ALFA" factor VIII), a name written in two
        words ("HYDROXYETHYL STARCH"), and a biologic's greek suffix dropped where the parent is the ATC name
        ("EPOETIN ALFA": epoetin, an alias of erythropoietin)."""
        words = [w.lower() for w in TOKEN.findall(part)]
        kept = [w for w in words if w not in SALTS and w not in PRODUCT_QUALIFIERS]
        if not kept:
            return None
        variants = [kept]
        if " ".join(kept) in PRODUCT_ONLY_NAMES:
            variants.append([PRODUCT_ONLY_NAMES[" ".join(kept)]])
        if kept[-1] in _GREEK and len(kept) > 1:
            variants.append(kept[:-1])
        for ws in list(variants):
            acid = [w[:-3] + "ic acid" if w.endswith("ate") and len(w) > 6 else w for w in ws]
            if acid != ws:
                variants.append(acid)
            if ws[0] == "factor":
                variants.append(["coagulation", *ws])
        if len(kept) == 2:
            variants.append(["".join(kept)])  # "HYDROXYETHYL STARCH" hydroxyethylstarch
        for w in kept:
            variants += [[name] for stem, name in _STEMS if stem in w]
        for ws in variants:
            keys = self.resolve(" ".join(ws), prefix=False)
            if keys is not None:
                return keys
        return None

    def codes_of(self, key: str) -> list[str]:
        return list(self.atc.single.get(key, ()))

    # -- matching ----------------------------------------------------------------------------
    def find(self, text: str, fuzzy: bool = True) -> list[DrugMention]:
        """Every drug named in `text`, longest match first, with exact character spans."""
        toks = [(m.start(), m.end(), m.group()) for m in TOKEN.finditer(text)]
        folded = [fold(t[2]) for t in toks]
        found: list[DrugMention] = []
        i = 0
        while i < len(toks):
            entry, j = self._longest(folded, i, text, toks)
            via = entry.via if entry else ""
            word = toks[i][2].lower()
            if entry is not None and j == i + 1 and self._everyday_not_named(word, entry):
                entry = None  # "Normal" is not the brand Normaloe, "Cooper" not copper, "topicals" not Topicale
            if entry is None and fuzzy and self._may_misspell(word, folded[i]):
                key = self._fuzzy(folded[i])
                if key:
                    entry, j, via = self._trie[key]["$"], i + 1, "fuzzy"
            if entry is None:
                i += 1
                continue
            if j == i + 1 and toks[i][2].lower() in CONTEXT_ONLY and not _FORM_AFTER.match(text, toks[i][1]):
                i += 1
                continue
            end = toks[j - 1][1]
            while j < len(toks) and toks[j][2].lower() in _TRAILING and text[end : toks[j][0]].strip() == "":
                end = toks[j][1]
                j += 1
            found.append(DrugMention(toks[i][0], end, text[toks[i][0] : end], entry.substances, via, entry.code))
            i = j
        return _join_combinations(text, found)

    def _longest(
        self, folded: list[str], i: int, text: str, toks: list[tuple[int, int, str]]
    ) -> tuple[_Entry | None, int]:
        node: dict[str, Any] | None = self._trie
        best, end = None, i
        for j in range(i, min(len(folded), i + 12)):
            if j > i and not _GAP.fullmatch(text, toks[j - 1][1], toks[j][0]):
                break  # a name does not run over a number, a comma or a line end
            node = node.get(folded[j]) if node is not None else None
            if node is None:
                break
            if "$" in node:
                best, end = node["$"], j + 1
        return best, end

    def _everyday_not_named(self, word: str, entry: _Entry) -> bool:
        """A one-word match that is an everyday word (or its inflection) other than the entry's own name."""
        if word == entry.raw or entry.raw in stems(word):
            return False  # "heparins" is heparin
        return is_everyday_word(word, self.everyday)

    def _may_misspell(self, word: str, folded: str) -> bool:
        """Whether a word unknown to the lexicon may be read as a misspelt generic: long enough, and neither an
        everyday or instruction word nor an inflection of one."""
        return (
            len(folded) >= FUZZY_MIN
            and folded not in self._everyday_folded
            and not is_everyday_word(word, self.everyday)
            and not is_instruction_word(word)
        )

    def _fuzzy(self, word: str) -> str | None:
        """A generic name one edit away (insertion, deletion, transposition, a sound-alike substitution in a
        short word), unless the word may as well be another generic with letters dropped."""
        cands: set[str] = set()
        for d in (word, *deletes(word)):
            cands |= self._deletes.get(d, set())
            if d in self._trie and "$" in self._trie[d] and d != word and self._trie[d]["$"].via in FUZZY_VIA:
                cands.add(d)
        cands = {c for c in cands if c[0] == word[0] and within_one(word, c) and sounds_alike(word, c)}
        if len(cands) != 1:
            return None
        key = min(cands)
        return None if self._has_rival(word, key) else key

    def _has_rival(self, word: str, key: str) -> bool:
        """Another generic (another substance) the word is, with up to FUZZY_RIVAL letters dropped: writers drop
        letters more than they change them, so "propranol" may be propranolol as well as propanol."""
        mine = self._trie[key]["$"].substances
        for other in self._generics.get(word[0], ()):
            if (
                0 < len(other) - len(word) <= FUZZY_RIVAL
                and self._trie[other]["$"].substances != mine
                and dropped_from(word, other)
            ):
                return True
        return False


def _may_name(tokens: tuple[str, ...], via: str) -> bool:
    """Whether these folded tokens may be a lexicon entry: no one-word entry is a class word, an instruction
    word ("nightly", "topical") or, for a brand, a word of the brand stop list ("tact", "schiff")."""
    if len(tokens) != 1:
        return True
    word = tokens[0]
    if word in NEVER or word in _INSTRUCTION_FOLDED:
        return False
    return not (via in _BRAND_VIA and word in _NOT_BRANDS_FOLDED)


def _join_combinations(text: str, found: list[DrugMention]) -> list[DrugMention]:
    """Two drugs joined by -, / or + ("losartan-hydrochlorothiazide") are one combination product."""
    out: list[DrugMention] = []
    for m in found:
        prev = out[-1] if out else None
        if (
            prev is not None
            and _JOINERS.fullmatch(text[prev.end : m.start])
            and not set(m.substances) & set(prev.substances)
        ):
            out[-1] = DrugMention(
                prev.start,
                m.end,
                text[prev.start : m.end],
                tuple(dict.fromkeys(prev.substances + m.substances)),
                prev.via,
                prev.code if prev.code == m.code else None,
            )
        else:
            out.append(m)
    return out


_LEXICONS: dict[int, DrugLexicon] = {}


def drug_lexicon(onto: CodeSystem) -> DrugLexicon:
    """One lexicon per loaded ATC in a process (building it takes about a second)."""
    if id(onto) not in _LEXICONS:
        _LEXICONS[id(onto)] = DrugLexicon(onto)
    return _LEXICONS[id(onto)]
