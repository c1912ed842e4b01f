"""Where a ranker lives: a folder a workflow or `learn` names, or the one shipped for a code system."""

from __future__ import annotations

from pathlib import Path

from medcoder.errors import MedcoderError
from medcoder.knowledge.systems import system_class

BUILTIN_RANKERS = Path(__file__).resolve().parent / "data"


def ranker_folder(system: str, name: str = "builtin") -> Path:
    """The folder a workflow names: a path, or the ranker shipped for the system."""
    if name != "builtin":
        return Path(name).expanduser()
    shipped = system_class(system).builtin_ranker
    folder = BUILTIN_RANKERS / (shipped or system)
    if not folder.is_dir():
        raise MedcoderError(
            f"no built-in ranker for {system}; learn one with `medcoder learn DATASET --system {system}`"
        )
    return folder
