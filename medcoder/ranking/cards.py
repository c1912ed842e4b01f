"""Ranker versions: what each learned ranker is (its card) and which one a site codes with.

A card is read from the ranker's folder (`ranker.json`, written by `learn`): the data it learned from with
their digests, when, its cross-validated figures and its auto-accept threshold with the precision measured
out of fold. Its digest (of the model files) names the exact version; every coding run records it in the
audit trail. `use_ranker` makes a folder the one `ranker: builtin` resolves to in this `MEDCODER_HOME`
(`rankers.json` there); the shipped ranker is used until then.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from medcoder import paths, records
from medcoder.errors import MedcoderError

logger = logging.getLogger(__name__)

BUILTIN_RANKERS = Path(__file__).resolve().parent / "data"  # the rankers shipped in the package
_MODEL_FILES = ("ranker.joblib", "memory.joblib", "priors.json")
_DIGESTS: dict[tuple[str, int], str] = {}  # (folder, newest mtime) -> digest, per process


# A code is accepted unseen only when it is above the auto-accept threshold and was found as itself (not only
# through a parent code) by at least this many searches: one hit is thin evidence at any probability. On CodiEsp
# dev with the shipped ranker this moves the auto-accepted codes' precision from 0.85 to 0.96 (see the card).
AUTO_ACCEPT_MIN_DIRECT = 2


def auto_acceptable(probability: float, features: dict[str, Any], threshold: float | None) -> bool:
    """Whether a ranked code may be accepted without a coder: above the threshold, and found directly twice."""
    return records.auto_acceptable(probability, features, threshold, AUTO_ACCEPT_MIN_DIRECT)


def policy_figures(correct: Sequence[bool], predicted: int) -> dict[str, Any]:
    """How the auto-accept policy did on coded notes: the codes it accepted unseen (`correct`: each right or
    not), their precision, and their share of the `predicted` codes."""
    return {
        "min_direct": AUTO_ACCEPT_MIN_DIRECT,
        "codes": len(correct),
        "precision": round(sum(correct) / len(correct), 4) if correct else None,
        "share_of_predicted": round(len(correct) / predicted, 4) if predicted else 0.0,
    }


def version_of(card: "RankerCard") -> dict[str, Any]:
    """What a coding run records about the ranker that coded it (audit trail): name, digest and its policy."""
    return {
        "system": card.system,
        "name": card.name,
        "folder": card.folder,
        "digest": card.digest,
        "threshold": card.threshold,
        "auto_accept": {
            "threshold": card.auto_accept.get("threshold"),
            "min_direct": card.auto_accept.get("min_direct", AUTO_ACCEPT_MIN_DIRECT),
            "visit_threshold": card.auto_accept.get("visit_threshold"),
        },
    }


@dataclass
class RankerCard:
    """One ranker version as a person reads it."""

    name: str
    system: str
    folder: str
    digest: str
    learned_at: str = ""  # ISO date-time ("" for a ranker learned before cards)
    threshold: float | None = None  # the probability at which it accepts a code
    data: list[dict[str, Any]] = field(default_factory=list)  # dataset, layout, notes/products, digest
    cv: dict[str, Any] = field(default_factory=dict)  # map, micro_f1 (cross-validated)
    auto_accept: dict[str, Any] = field(default_factory=dict)  # threshold, cv_precision, cv_share
    shipped: bool = False
    active: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def folder_digest(folder: str | Path) -> str:
    """The digest of a ranker's model files: the same bytes, the same digest (first 16 hex of sha256)."""
    root = Path(folder)
    files = [root / f for f in _MODEL_FILES if (root / f).is_file()]
    if not files:
        raise MedcoderError(f"{root}: not a ranker folder (no {' or '.join(_MODEL_FILES)})")
    key = (str(root.resolve()), max(f.stat().st_mtime_ns for f in files))
    if key not in _DIGESTS:
        h = hashlib.sha256()
        for f in files:
            h.update(f.name.encode())
            h.update(paths.file_digest(f).encode())
        _DIGESTS[key] = h.hexdigest()[:16]
    return _DIGESTS[key]


def examples_digest(items: Sequence[Any]) -> str:
    """The digest of what a ranker learned from: each example's id, text and codes (not the file layout)."""
    h = hashlib.sha256()
    for ex in items:
        h.update(json.dumps([ex.id, ex.text, sorted(ex.codes)], ensure_ascii=False).encode())
    return h.hexdigest()[:16]


def ranker_card(folder: str | Path, name: str = "") -> RankerCard:
    """The card of the ranker in `folder`."""
    root = Path(folder).expanduser()
    meta_path = root / "ranker.json"
    if not meta_path.is_file():
        raise MedcoderError(f"{root}: not a ranker folder (no ranker.json); learn one with `medcoder learn`")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    cv = meta.get("cv") or {}
    report = meta.get("report") or {}
    system = str(meta.get("system", ""))
    final = meta.get("final") or {}
    notes = cv.get("notes") if "products" in cv else None  # the drug ranker: its threshold from the coded notes
    source = notes if isinstance(notes, dict) else cv
    auto = {
        "threshold": source.get("auto_accept_threshold"),
        "cv_precision": source.get("auto_accept_precision"),
        "cv_share": source.get("auto_accept_share"),
        # a drug code is one substance's code: it is not found "directly" by searches, its probability says it all
        "min_direct": 0 if isinstance(notes, dict) else AUTO_ACCEPT_MIN_DIRECT,
    }
    if final:  # a visit note's final codes: their own threshold, any decision (`decisions.FinalCalibration`)
        final_report = final.get("report") or {}
        auto.update(
            visit_threshold=final.get("auto_threshold"),
            visit_cv_precision=final_report.get("auto_accept_precision"),
            visit_cv_share=final_report.get("auto_accept_share"),
        )
    data = [
        {k: v for k, v in d.items() if k != "attribution"} for d in (meta.get("learned_from") or {}).get("datasets", [])
    ]
    if (meta.get("learned_from") or {}).get("feedback_sessions"):
        data.append({"dataset": "feedback", "sessions": meta["learned_from"]["feedback_sessions"]})
    figures = {"map": cv.get("map"), "micro_f1": (cv.get("micro") or {}).get("f1")}
    if "products" in cv:  # the drug ranker: the share of products coded right to the substance (level 5)
        figures = {f"level5_by_{k}": v.get("level5") for k, v in cv["products"].items() if isinstance(v, dict)}
    return RankerCard(
        name=name or root.name,
        system=system,
        folder=str(root.resolve()),
        digest=folder_digest(root),
        learned_at=str(meta.get("learned_at", "")),
        threshold=meta.get("threshold"),
        data=data,
        cv={**figures, "notes": report.get("notes", meta.get("notes"))},
        auto_accept=auto,
        shipped=_is_shipped(root),
    )


def _is_shipped(root: Path) -> bool:
    return root.resolve().parent == BUILTIN_RANKERS.resolve()


def _registry_path() -> Path:
    return paths.home() / "rankers.json"


def _registry() -> dict[str, Any]:
    path = _registry_path()
    if not path.is_file():
        return {"active": {}, "known": []}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise MedcoderError(f"{path}: not valid JSON ({exc}); delete it to go back to the shipped rankers") from exc
    return {"active": dict(data.get("active") or {}), "known": list(data.get("known") or [])}


def _write_registry(data: dict[str, Any]) -> None:
    path = _registry_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)  # a reader sees the old registry or the new one, never half of one


def active_ranker(system: str) -> Path | None:
    """The folder `rankers use` chose for `system` in this home (None: the shipped ranker)."""
    chosen = _registry()["active"].get(system)
    if not chosen:
        return None
    folder = Path(chosen)
    if not (folder / "ranker.json").is_file():
        logger.warning("the ranker in use for %s (%s) is gone; using the shipped one", system, folder)
        return None
    return folder


def use_ranker(folder: str | Path) -> RankerCard:
    """Code with the ranker in `folder` from now on (for its system), or `builtin`: go back to the shipped one."""
    data = _registry()
    if str(folder) == "builtin":
        raise MedcoderError("say which system goes back to its shipped ranker: `rankers use builtin --system S`")
    card = ranker_card(folder)
    if not card.system:
        raise MedcoderError(f"{folder}: its ranker.json names no code system")
    data["active"][card.system] = card.folder
    if card.folder not in data["known"]:
        data["known"].append(card.folder)
    _write_registry(data)
    card.active = True
    logger.info("ranker for %s: %s (%s)", card.system, card.folder, card.digest)
    return card


def use_shipped(system: str) -> None:
    """Go back to the shipped ranker for `system`."""
    data = _registry()
    data["active"].pop(system, None)
    _write_registry(data)


def list_rankers(extra: Sequence[str | Path] = ()) -> list[RankerCard]:
    """The shipped rankers, every ranker `use` has seen in this home, and `extra` folders; the active marked."""
    data = _registry()
    folders = [p for p in sorted(BUILTIN_RANKERS.iterdir()) if (p / "ranker.json").is_file()]
    folders += [Path(p) for p in [*data["known"], *map(str, extra)] if (Path(p) / "ranker.json").is_file()]
    cards: dict[str, RankerCard] = {}
    for folder in folders:
        card = ranker_card(folder)
        cards.setdefault(card.folder, card)
    for card in cards.values():
        chosen = data["active"].get(card.system)
        card.active = card.folder == chosen if chosen else card.shipped
    return list(cards.values())
