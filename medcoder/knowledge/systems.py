"""The code systems medcoder knows: found through the `medcoder.code_systems` entry points.

Callers ask here for a system by name (`code_system`) or for its class without loading its
data (`system_class`: the FHIR URI, entity kind and prompt name are class attributes).
"""

from __future__ import annotations

import logging
from typing import Annotated

from pydantic import AfterValidator

from medcoder import plugins
from medcoder.errors import MedcoderError
from medcoder.knowledge.ontology import CodeSystem

logger = logging.getLogger(__name__)


class UnknownSystemError(MedcoderError, ValueError):
    """A code-system name that no installed plugin provides (a ValueError, so pydantic reports it as a field error)."""


DEFAULT_SYSTEM = plugins.DEFAULT_SYSTEM


def system_names() -> list[str]:
    """Every installed code system, by registry name."""
    return plugins.code_systems.names()


def system_class(name: str) -> type[CodeSystem]:
    """The CodeSystem subclass registered under `name` (nothing loaded yet)."""
    try:
        cls = plugins.code_systems.get(name)
    except plugins.PluginError as exc:
        raise UnknownSystemError(f"unknown code system {name!r}; installed: {', '.join(system_names())}") from exc
    if not (isinstance(cls, type) and issubclass(cls, CodeSystem)):
        raise MedcoderError(f"code system {name!r} is registered as {cls!r}, not a CodeSystem subclass")
    return cls


def load_system(name: str) -> CodeSystem:
    """The code system `name` with its data loaded."""
    return system_class(name).load()


def register_system(cls: type[CodeSystem]) -> type[CodeSystem]:
    """Make a CodeSystem available at run time (tests, notebooks); usable as a class decorator."""
    if not cls.system:
        raise MedcoderError(f"{cls.__name__} has no `system` name")
    plugins.code_systems.register(cls.system, cls)
    return cls


def guess_system(code: str, default: str = DEFAULT_SYSTEM) -> str:
    """Which system a code a person typed belongs to, by its shape (`A10BA02` -> atc, `E11.9` -> icd10cm)."""
    matches = [cls for cls in map(system_class, system_names()) if cls.looks_like(code)]
    if not matches:
        return default
    return max(matches, key=lambda c: c.guess_priority).system


def _known(name: str) -> str:
    system_class(name)  # raises with the installed names
    return name


SystemName = Annotated[str, AfterValidator(_known)]
"""A code-system name in user-written settings: checked against the installed systems."""
