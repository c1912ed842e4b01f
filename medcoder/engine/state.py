"""How a run's state is checkpointed: records as their JSON, so a checkpoint stays readable across versions.

The state itself (`CodingState`) lives in `medcoder.state`, where agents import it from.
"""

from __future__ import annotations

from typing import Any

from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.types import Send
from pydantic import BaseModel

from medcoder.records import to_json
from medcoder.state import STATE_VERSION, CodingState, StateUpdate, as_state, migrate_state

__all__ = ["STATE_VERSION", "CodingState", "JsonRecordSerializer", "StateUpdate", "as_state", "migrate_state"]


class JsonRecordSerializer(JsonPlusSerializer):
    """LangGraph's checkpoint serializer, with every record written as its JSON (a fan-out's payload too)."""

    def dumps_typed(self, obj: Any) -> tuple[str, bytes]:
        return super().dumps_typed(_plain(obj))


def _plain(obj: Any) -> Any:
    """`obj` with records as JSON, at any depth (a pending `Send` holds a whole state)."""
    if isinstance(obj, Send):
        return Send(obj.node, _plain(obj.arg))
    if isinstance(obj, BaseModel):
        return to_json(obj)
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_plain(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_plain(v) for v in obj)
    return obj
