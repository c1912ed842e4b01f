"""The engine: a workflow's YAML spec, its compilation to LangGraph, the SDK's `Workflow`, and replay.

Imported lazily so that reading a spec or listing the built-ins does not load LangGraph.
"""

from __future__ import annotations

from typing import Any

__all__ = ["RunLog", "Workflow", "WorkflowRecipe", "load_workflow", "replay_run", "ReplayReport"]


def __getattr__(name: str) -> Any:
    if name in ("RunLog", "Workflow", "WorkflowRecipe", "load_workflow"):
        from medcoder.engine import workflow  # lazy: reading a spec must not load LangGraph

        return getattr(workflow, name)
    if name in ("replay_run", "ReplayReport"):
        from medcoder.engine import replay  # lazy: reading a spec must not load LangGraph

        return getattr(replay, name)
    raise AttributeError(name)
