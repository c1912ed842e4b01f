"""The words around the drug lexicon: its source files' readers, the everyday vocabulary no brand may be made of,
and the spelling tests of the one-edit misspelling match (kept apart so `druglex` holds the lexicon itself)."""

from __future__ import annotations

import ast
import csv
import re
from importlib import resources
from pathlib import Path
from typing import Iterator

TOKEN = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:'s)?")
# below this many letters (folded) a misspelling's changed letter must sound like the one it replaces
# ("clonazepan", "diazapam"): a chance neighbour of a short word differs anywhere ("methylene" / metixene)
FUZZY_ANY_SUBSTITUTION = 9
SOUND_ALIKE = ("aeiou", "mn", "ckqsxz", "bvp", "dt", "gj")
# how a drug is taken, never its name: no one-word lexicon entry may be one, no misspelling starts from one
INSTRUCTION_WORDS = frozenset(
    "bedtime nightly night nights daily twice thrice once morning mornings evening evenings noon afternoon "
    "weekly monthly hourly tablet tablets tab tabs caplet caplets capsule capsules cap caps dose doses dosing "
    "prn needed sig qd bid tid qid qhs qam qpm qod hs po sl subq sublingual oral orally topical topically "
    "puff puffs drop drops spray sprays patch patches injection injections refill refills dispense chewable "
    "meal meals breakfast lunch dinner supper sleep hour hours day days week weeks".split()
)
# brand strings that are words in notes, where no general rule tells them from a coined name
NOT_BRANDS = {
    "tact": '"skin is in tact" (intact); a RABBITS brand of diphenhydramine',
    "schiff": "the periodic acid-Schiff stain; a brand of glucosamine supplements",
    "sunscreen": "a kind of product, not a brand (a DPD sunscreen's name)",
    "triptans": "the migraine drug class; a DPD brand of tryptophan (TRIPTAN)",
}
# brands that look like an inflected everyday word but are named in notes far more often than the word
BRANDS_LIKE_WORDS = {"versed": 'midazolam in procedure notes; "well versed" is rare there'}


def everyday_words() -> frozenset[str]:
    """Words a brand string must not consist of alone: the English wordpieces of the bundled MiniLM tokenizer
    (whole words only) and the words of the ICD-10-CM Alphabetic Index ("syncope", "status", "vision"), so noisy
    brand lists cannot turn "normal" or "dry cough" into a drug."""
    import gzip
    import json

    words: set[str] = set()
    with gzip.open(data_path("minilm-tokenizer.json.gz"), "rt", encoding="utf-8") as fh:
        words |= {w for w in json.load(fh)["model"]["vocab"] if w.isalpha()}
    with gzip.open(data_path("icd10cm_index_2025.csv.gz"), "rt", encoding="utf-8") as fh:
        for row in csv.reader(fh):
            if len(row) > 3:
                words |= {w.lower() for w in TOKEN.findall(row[3])}
    return frozenset(words)


def stems(word: str) -> set[str]:
    """The words an inflected word may come from ("topicals" topical, "nightly" night, "stopped" stop), each at
    least four letters, so an everyday word is known in every form and "Tums" is not "tum"."""
    w = word.lower()
    out: set[str] = set()
    for end, back in (
        ("ies", "y"),
        ("es", ""),
        ("s", ""),
        ("ily", "y"),
        ("ly", ""),
        ("ed", ""),
        ("ed", "e"),
        ("ing", ""),
        ("ing", "e"),
    ):
        if w.endswith(end) and not (end == "s" and w.endswith("ss")):
            stem = w[: -len(end)] + back
            out.add(stem)
            if back == "" and end in ("ed", "ing") and len(stem) > 2 and stem[-1] == stem[-2]:
                out.add(stem[:-1])  # "stopped" -> stop
    return {t for t in out if len(t) >= 4}


def is_everyday_word(word: str, words: frozenset[str]) -> bool:
    """Whether a word, or the word it is an inflection of, is everyday or clinical vocabulary."""
    w = word.lower()
    return w in words or any(s in words for s in stems(w))


def data_path(name: str) -> Path:
    return Path(str(resources.files("medcoder.knowledge") / "data" / name))


def product_brand_words(brand: str) -> tuple[str, ...]:
    """A product's brand without strength and form words ("APO-ATENOL TAB 100MG" -> APO, ATENOL)."""
    words = [w for w in TOKEN.findall(re.sub(r"\d+(\.\d+)?\s*(mg|mcg|g|ml|%|iu|units?)\b", " ", brand, flags=re.I))]
    forms = {
        "tab",
        "tabs",
        "tablet",
        "tablets",
        "cap",
        "caps",
        "capsule",
        "capsules",
        "injection",
        "usp",
        "cream",
        "ointment",
        "gel",
        "solution",
        "suspension",
        "syrup",
        "drops",
        "spray",
        "patch",
        "er",
        "sr",
        "xl",
        "cr",
    }
    return tuple(w for w in words if w.lower() not in forms)


def deletes(word: str) -> set[str]:
    return {word[:i] + word[i + 1 :] for i in range(len(word))}


def within_one(a: str, b: str) -> bool:
    if a == b:
        return True
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        return len(diff) == 1 or (
            len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]]
        )
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    return any(long_[:i] + long_[i + 1 :] == short for i in range(len(long_)))


def sounds_alike(a: str, b: str) -> bool:
    """One letter substituted for a sound-alike one (a vowel for a vowel, m/n, c/s/z) in a word shorter than
    FUZZY_ANY_SUBSTITUTION; any other edit passes."""
    if len(a) != len(b) or len(a) >= FUZZY_ANY_SUBSTITUTION:
        return True
    diff = [i for i in range(len(a)) if a[i] != b[i]]
    if len(diff) != 1:
        return True  # a transposition, or the same word
    x, y = a[diff[0]], b[diff[0]]
    return any(x in g and y in g for g in SOUND_ALIKE)


def dropped_from(short: str, long_: str) -> bool:
    """Whether `short` is `long_` with some letters left out (its letters in order)."""
    rest = iter(long_)
    return all(c in rest for c in short)


def rabbits_brands(path: Path) -> Iterator[tuple[str, list[str]]]:
    """RABBITS' rows: a US generic name and its brand strings."""
    with open(path, encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            try:
                groups = ast.literal_eval(row["brand"])
            except (ValueError, SyntaxError):
                continue
            names = sorted({b for g in groups for b in g if isinstance(b, str) and b.strip()})
            yield row["generic"].strip().lower(), names


def product_rows(path: Path) -> Iterator[tuple[str, str]]:
    with open(path, encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            yield row["brand_name"], row["ingredients"]
