"""Wrap the knowledge functions as LangChain `StructuredTool`s with pydantic argument schemas.

A callback sees every call (name, arguments, result or error), which is how tool calls
reach the audit trail without the tools knowing about it.
"""

from __future__ import annotations

import functools
import logging
from typing import Any, Callable, Protocol

from langchain_core.tools import StructuredTool
from pydantic import BaseModel, ConfigDict, Field

from medcoder.errors import MedcoderError
from medcoder.knowledge import KnowledgeBase, default_kb
from medcoder.knowledge.systems import DEFAULT_SYSTEM, SystemName
from medcoder.tools import functions as fn

logger = logging.getLogger(__name__)

System = SystemName


class ToolCallback(Protocol):
    def __call__(self, name: str, args: dict[str, Any], result: Any, error: str | None) -> None: ...


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CodeArgs(_Args):
    code: str = Field(description="a code, with or without its dot: E11.65, e1165, A10BA02")
    system: System = Field(DEFAULT_SYSTEM, description="code system: icd10cm, atc, or an installed plugin's")


class CodesArgs(_Args):
    codes: list[str] = Field(description="codes to check", min_length=1)
    system: System = DEFAULT_SYSTEM


class IcdCodesArgs(_Args):
    codes: list[str] = Field(description="ICD-10-CM codes assigned together", min_length=2)


class SearchArgs(_Args):
    text: str = Field(description="words to look for, e.g. 'type 2 diabetes with hyperglycemia'")
    system: System = DEFAULT_SYSTEM
    k: int = Field(10, ge=1, le=100)
    billable_only: bool = False
    chapter: str | None = Field(None, description="only this chapter: ICD 'CH4' or 'E00-E89', ATC 'A'")


class TermArgs(_Args):
    term: str = Field(description="index term path, comma separated: 'diabetes, type 2'")
    k: int = Field(5, ge=1, le=50)


_SPECS: list[tuple[str, Callable[..., Any], type[BaseModel], str]] = [
    ("lookup_code", fn.lookup_code, CodeArgs, "Look up a code: label, kind, billable, notes, path."),
    ("get_children", fn.children, CodeArgs, "List the children of a code in the tree."),
    ("get_path", fn.path_to_root, CodeArgs, "The path from the top of the tree down to a code."),
    ("get_notes", fn.code_notes, CodeArgs, "Instructional notes for a code: includes, excludes, code first..."),
    (
        "validate_codes",
        fn.validate_codes,
        CodesArgs,
        "Check codes: exist, billable, need a 7th character or placeholder X.",
    ),
    (
        "excludes1_conflicts",
        fn.excludes1_conflicts,
        IcdCodesArgs,
        "Find pairs of ICD-10-CM codes that an Excludes1 note forbids together.",
    ),
    (
        "search_codes",
        fn.search_codes,
        SearchArgs,
        "Search codes by the words a clinician writes (lexical, vector and Alphabetic Index search fused).",
    ),
    ("index_lookup", fn.index_lookup, TermArgs, "Look a term up in the ICD-10-CM Alphabetic Index."),
    (
        "drug_lookup",
        fn.drug_lookup,
        TermArgs,
        "Look a substance up in the Table of Drugs and Chemicals (poisoning, adverse effect, underdosing).",
    ),
    ("neoplasm_lookup", fn.neoplasm_lookup, TermArgs, "Look a site up in the Neoplasm Table."),
]


def _wrap(name: str, func: Callable[..., Any], kb: KnowledgeBase, callback: ToolCallback | None) -> Callable[..., Any]:
    @functools.wraps(func)
    def run(**kwargs: Any) -> Any:
        try:
            result = func(**kwargs, kb=kb)
        except MedcoderError as exc:  # a wrong code is an answer for the model, not a crash
            if callback:
                callback(name, kwargs, None, str(exc))
            return {"error": str(exc)}
        if callback:
            callback(name, kwargs, result, None)
        return result

    return run


def make_tools(kb: KnowledgeBase | None = None, callback: ToolCallback | None = None) -> list[StructuredTool]:
    """All knowledge tools, bound to one knowledge base and an optional audit callback."""
    kb = kb or default_kb()
    return [
        StructuredTool.from_function(
            func=_wrap(name, func, kb, callback), name=name, description=desc, args_schema=schema
        )
        for name, func, schema, desc in _SPECS
    ]
