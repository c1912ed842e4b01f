"""medcoder: ICD-10-CM and ATC coding of clinical notes with local models, evidence and an audit trail.

The SDK surface: `load_workflow`, `Workflow`, `CodingResult`.
"""

from __future__ import annotations

from typing import Any

__all__ = ["CodingResult", "Workflow", "load_workflow"]


def __getattr__(name: str) -> Any:  # import lazily: `medcoder kb` should not pay for langgraph
    if name in ("Workflow", "load_workflow"):
        from medcoder.engine import workflow  # lazy: `import medcoder` must not load LangGraph

        return getattr(workflow, name)
    if name == "CodingResult":
        from medcoder.result import CodingResult  # lazy: `import medcoder` must not load LangGraph

        return CodingResult
    raise AttributeError(name)
