"""Where a ranker lives: a folder a workflow or `learn` names, or the one shipped for a code system."""

from __future__ import annotations

from pathlib import Path

from medcoder.errors import MedcoderError
from medcoder.knowledge.systems import system_class
from medcoder.ranking.cards import BUILTIN_RANKERS, active_ranker

__all__ = ["BUILTIN_RANKERS", "ranker_folder"]


def ranker_folder(system: str, name: str = "builtin") -> Path:
    """The folder a workflow names: a path; `builtin`, the ranker this home uses for the system (`rankers use`;
    the shipped one until then); `shipped`, the one in the package."""
    if name == "builtin":
        chosen = active_ranker(system)
        if chosen is not None:
            return chosen
    elif name != "shipped":
        return Path(name).expanduser()
    shipped = system_class(system).builtin_ranker
    folder = BUILTIN_RANKERS / (shipped or system)
    if not folder.is_dir():
        raise MedcoderError(
            f"no built-in ranker for {system}; learn one with `medcoder learn DATASET --system {system}`"
        )
    return folder
