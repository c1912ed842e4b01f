"""Contract suites a plugin author runs on their own backend, store, retriever or code system.

The way langgraph ships its checkpointer conformance tests: call one function from your test with your
implementation; it raises `AssertionError` naming what broke. medcoder's own tests run the same functions
over every built-in implementation (`tests/contracts/`, `tests/test_code_systems.py`), so a plugin that
passes is held to exactly what medcoder's built-ins are. No pytest needed to import this module.
"""

from medcoder.testing.contracts import (
    check_audit_store,
    check_code_system,
    check_llm_backend,
    check_retriever,
)

__all__ = ["check_audit_store", "check_code_system", "check_llm_backend", "check_retriever"]
