"""Plugins by entry points: code systems, agents and model backends, built-in or installed.

Each kind is one entry-point group (the way simonw/llm finds its plugins). The built-ins
are declared in medcoder's own `pyproject.toml` under the same groups, so a plugin
distribution is found exactly like them: `pip install` it and its names appear.

    [project.entry-points."medcoder.code_systems"]
    icd10pcs = "my_pkg.pcs:ICD10PCS"          # a CodeSystem subclass
    [project.entry-points."medcoder.agents"]
    my_agent = "my_pkg.agents:my_agent"       # a function decorated with @agent(...)
    [project.entry-points."medcoder.llm_backends"]
    my_backend = "my_pkg.backend:load"        # (settings) -> LLM
"""

from __future__ import annotations

import logging
import threading
from importlib import metadata
from typing import Any

from medcoder.errors import MedcoderError

logger = logging.getLogger(__name__)

DEFAULT_SYSTEM = "icd10cm"  # what a workflow codes when it names no code system (a user-facing default)

CODE_SYSTEMS = "medcoder.code_systems"
AGENTS = "medcoder.agents"
LLM_BACKENDS = "medcoder.llm_backends"
GROUPS = (CODE_SYSTEMS, AGENTS, LLM_BACKENDS)


class PluginError(MedcoderError):
    """A plugin that is named but cannot be loaded."""


class Registry:
    """One entry-point group: names found in installed distributions, loaded on first use.

    `register` adds a name at run time (tests, notebooks); it wins over an entry point of
    the same name, so a user can replace a built-in without uninstalling anything.
    """

    def __init__(self, group: str, what: str) -> None:
        self.group, self.what = group, what
        self._points: dict[str, metadata.EntryPoint] | None = None
        self._loaded: dict[str, Any] = {}
        self._lock = threading.RLock()  # loading a plugin may register names (decorators at import)

    def _entry_points(self) -> dict[str, metadata.EntryPoint]:
        if self._points is None:
            self._points = {ep.name: ep for ep in metadata.entry_points(group=self.group)}
            if not self._points:
                logger.warning(
                    "no %s registered under the entry-point group %s: is medcoder installed (pip install -e .)?",
                    self.what,
                    self.group,
                )
        return self._points

    def names(self) -> list[str]:
        return sorted({*self._entry_points(), *self._loaded})

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (name in self._loaded or name in self._entry_points())

    def get(self, name: str) -> Any:
        """The object registered under `name`; a clear error listing the names there are."""
        with self._lock:
            if name in self._loaded:
                return self._loaded[name]
            point = self._entry_points().get(name)
            if point is None:
                raise PluginError(f"unknown {self.what} {name!r}; installed: {', '.join(self.names()) or 'none'}")
            try:
                obj = point.load()
            except Exception as exc:  # a broken plugin must say which one
                raise PluginError(
                    f"{self.what} {name!r} from {point.value} cannot be loaded: {type(exc).__name__}: {exc}"
                ) from exc
            self._loaded[name] = obj
            return obj

    def register(self, name: str, obj: Any) -> None:
        with self._lock:
            self._loaded[name] = obj

    def unregister(self, name: str) -> None:
        with self._lock:
            self._loaded.pop(name, None)


code_systems = Registry(CODE_SYSTEMS, "code system")
agents = Registry(AGENTS, "agent")
llm_backends = Registry(LLM_BACKENDS, "model backend")
