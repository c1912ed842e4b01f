"""LangChain tools over the knowledge graphs: the same functions the agents and the chat call."""

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
from medcoder.tools.langchain_tools import ToolCallback, make_tools

__all__ = [
    "ToolCallback", "children", "code_notes", "drug_lookup", "excludes1_conflicts", "index_lookup",
    "lookup_code", "make_tools", "neoplasm_lookup", "path_to_root", "search_codes", "validate_code",
    "validate_codes",
]
