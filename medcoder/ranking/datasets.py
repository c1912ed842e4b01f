"""Evaluation datasets in the layouts people have: CodiEsp, the Drug Product Database, generic JSONL.

Each loader takes any path in its layout (not only the copies in ../shared/data) and yields
`Example`s: a note (or drug product) with its gold codes. `load_dataset(path)` picks the layout.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from medcoder.errors import MedcoderError
from medcoder.jsonl import numbered_rows
from medcoder.knowledge.systems import DEFAULT_SYSTEM
from medcoder.notetext import sentences as split_sentences

logger = logging.getLogger(__name__)


# what each dataset layout is coded in, declared by the layout (a JSONL says it per line)
CODIESP_SYSTEM = "icd10cm"  # CodiEsp's ICD-10 codes, mapped to ICD-10-CM
DPD_SYSTEM = "atc"  # Health Canada's Drug Product Database gives each product its ATC code
PRODUCT_RECORD = ("route", "dosage_form")  # a product record's optional columns beyond its name and ingredients


@dataclass(slots=True)
class Example:
    """One item to code and what a careful coder assigned to it."""

    id: str
    text: str
    codes: list[str]
    system: str = DEFAULT_SYSTEM
    meta: dict[str, str] = field(default_factory=dict)


@dataclass
class Dataset:
    name: str
    layout: str  # codiesp | dpd | jsonl
    system: str
    examples: list[Example]

    def __len__(self) -> int:
        return len(self.examples)

    def head(self, n: int | None) -> "Dataset":
        return self if n is None else Dataset(self.name, self.layout, self.system, self.examples[:n])


def load_codiesp(path: str | Path, language: str = "en") -> Dataset:
    """A CodiEsp split folder: `*D.tsv` (article id, code) and `text_files_en/` (or `text_files/`)."""
    root = Path(path)
    gold_files = sorted(root.glob("*D.tsv"))
    if not gold_files:
        raise MedcoderError(f"{root}: no *D.tsv gold file (CodiEsp layout: *D.tsv, *X.tsv, text_files_en/)")
    texts = root / ("text_files_en" if language == "en" else "text_files")
    if not texts.is_dir():
        raise MedcoderError(f"{root}: no {texts.name}/ folder of notes")
    gold: dict[str, list[str]] = {}
    with open(gold_files[0], encoding="utf-8") as fh:
        for row in csv.reader(fh, delimiter="\t"):
            if len(row) >= 2 and row[0].strip():
                codes = gold.setdefault(row[0].strip(), [])
                if row[1].strip().upper() not in codes:
                    codes.append(row[1].strip().upper())
    examples = []
    for doc_id in sorted(gold):
        f = texts / f"{doc_id}.txt"
        if not f.is_file():
            logger.warning("CodiEsp %s: no text for %s", root, doc_id)
            continue
        examples.append(Example(doc_id, f.read_text(encoding="utf-8"), gold[doc_id], CODIESP_SYSTEM))
    return Dataset(f"codiesp/{root.name}", "codiesp", CODIESP_SYSTEM, examples)


def load_dpd(path: str | Path) -> Dataset:
    """A Drug Product Database extract (TSV or CSV with brand_name, ingredients, atc_code; `route` and
    `dosage_form` are read when the file has them, as a pharmacy system's product record does)."""
    f = Path(path)
    if f.is_dir():
        found = sorted([*f.glob("*.tsv"), *f.glob("*.csv")])
        if not found:
            raise MedcoderError(f"{f}: no .tsv or .csv drug product file")
        f = found[0]
    with open(f, encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh, delimiter="\t" if f.suffix == ".tsv" else ",")
        missing = {"brand_name", "ingredients", "atc_code"} - set(reader.fieldnames or ())
        if missing:
            raise MedcoderError(f"{f}: missing columns {', '.join(sorted(missing))} (DPD layout)")

        def cell(row: dict[str, Any], key: str) -> str:
            return str(row.get(key) or "").strip()  # a short row has None cells

        examples = [
            Example(
                cell(row, "din") or str(i),
                cell(row, "ingredients"),
                [cell(row, "atc_code").upper()],
                DPD_SYSTEM,
                {
                    "brand": cell(row, "brand_name"),
                    "ingredients": cell(row, "ingredients"),
                    **{k: cell(row, k) for k in PRODUCT_RECORD if cell(row, k)},
                },
            )
            for i, row in enumerate(reader)
            if cell(row, "atc_code")
        ]
    return Dataset(f"dpd/{f.stem}", "dpd", DPD_SYSTEM, examples)


def load_jsonl(path: str | Path, system: str | None = None) -> Dataset:
    """One JSON object per line: `{"id", "text", "codes"}` (codes optional for batch input). A file coded in
    several systems (a `system` per line, as the coded ACI-Bench notes) gives the lines of `system`
    (default: ICD-10-CM)."""
    f = Path(path)
    asked = system
    system = system or DEFAULT_SYSTEM
    examples = []
    for n, obj, why in numbered_rows(f):
        try:
            if obj is None:
                raise ValueError(why)
            examples.append(
                Example(
                    str(obj["id"]),
                    str(obj["text"]),
                    [str(c).upper() for c in obj.get("codes", [])],
                    str(obj.get("system", system)),
                )
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise MedcoderError(f"{f}:{n}: not a {{id, text, codes}} JSON line ({exc})") from exc
    systems = {e.system for e in examples}
    if asked is None and len(systems) == 1:  # a file coded in one system is that system's dataset
        system = next(iter(systems))
    if len(systems) > 1 or (systems and system not in systems):
        kept = [e for e in examples if e.system == system]
        logger.info(
            "%s: %d of %d lines coded in %s (the file also holds %s)",
            f,
            len(kept),
            len(examples),
            system,
            ", ".join(sorted(systems - {system})),
        )
        examples = kept
    return Dataset(f"jsonl/{f.stem}" + (f"/{system}" if len(systems) > 1 else ""), "jsonl", system, examples)


def detect_layout(path: str | Path) -> str:
    p = Path(path)
    if p.is_dir() and list(p.glob("*D.tsv")):
        return "codiesp"
    if p.suffix == ".jsonl":
        return "jsonl"
    if p.suffix in (".tsv", ".csv") or (p.is_dir() and list(p.glob("*.tsv")) + list(p.glob("*.csv"))):
        return "dpd"
    raise MedcoderError(f"{p}: not a dataset layout medcoder knows (CodiEsp folder, DPD .tsv/.csv, or .jsonl)")


def jsonl_systems(path: str | Path) -> list[str]:
    """The code systems a JSONL dataset's lines are coded in, in order of first appearance (empty: not a JSONL)."""
    f = Path(path)
    if not (f.is_file() and f.suffix.lower() in (".jsonl", ".ndjson")):
        return []
    seen = {str(row.get("system") or DEFAULT_SYSTEM): None for _, row, _ in numbered_rows(f) if row is not None}
    return sorted(seen, key=lambda s: s != DEFAULT_SYSTEM)


def load_dataset(path: str | Path, layout: str | None = None, system: str | None = None) -> Dataset:
    """Load any supported layout; `layout` overrides detection; `system` picks the lines of a JSONL coded in
    several systems."""
    if not Path(path).exists():
        raise MedcoderError(f"dataset not found: {path}")
    layout = layout or detect_layout(path)
    loaders = {"codiesp": load_codiesp, "dpd": load_dpd, "jsonl": load_jsonl}
    if layout not in loaders:
        raise MedcoderError(f"unknown dataset layout {layout!r}; choose {', '.join(loaders)}")
    try:
        return load_jsonl(path, system) if layout == "jsonl" else loaders[layout](path)
    except UnicodeDecodeError as exc:
        raise MedcoderError(f"{path}: not UTF-8 text (byte {exc.start} of a file in it); save it as UTF-8") from exc
    except csv.Error as exc:
        raise MedcoderError(f"{path}: not a readable {layout} table ({exc})") from exc


def sentences(text: str) -> Iterator[str]:
    """The note's sentences, by the one splitter (`notetext.sentences`)."""
    return (s for _, _, s in split_sentences(text))
