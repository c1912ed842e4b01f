"""LangChain tools over the knowledge graphs: the same functions the agents and the chat call."""

from typing import Any

from medcoder.tools.functions import (
    children,
    code_notes,
    drug_lookup,
    excludes1_conflicts,
    index_lookup,
    lookup_code,
    neoplasm_lookup,
    path_to_root,
    search_codes,
    validate_code,
    validate_codes,
)

__all__ = [
    "ToolCallback",
    "children",
    "code_notes",
    "drug_lookup",
    "excludes1_conflicts",
    "index_lookup",
    "lookup_code",
    "make_tools",
    "neoplasm_lookup",
    "path_to_root",
    "search_codes",
    "validate_code",
    "validate_codes",
]


def __getattr__(name: str) -> Any:
    if name in ("ToolCallback", "make_tools"):
        from medcoder.tools import langchain_tools  # lazy: LangChain loads only when tools are made

        return getattr(langchain_tools, name)
    raise AttributeError(name)
