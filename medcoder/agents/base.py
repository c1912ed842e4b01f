"""What every agent gets (`AgentContext`) and how agents are named in a workflow (the registry).

An agent is a factory `(params, ctx) -> node function`, where the node function maps a `CodingState`
(a fan-out branch's has `item` set) to a state update: a dict of records by state field. Parameters are
validated by the agent's own pydantic model, so a typo in a workflow YAML is an error, not a silently
ignored key.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass, field
from string import Template
from typing import Any, Callable, Protocol

from pydantic import BaseModel, ConfigDict

from medcoder import faults, plugins
from medcoder.errors import MedcoderError
from medcoder.knowledge import KnowledgeBase
from medcoder.knowledge.retrieval import Retriever
from medcoder.llm import LLM, CallRecord
from medcoder.state import CodingState, StateUpdate

logger = logging.getLogger(__name__)

NodeFn = Callable[[CodingState], StateUpdate]
EventSink = Callable[[str, dict[str, Any]], None]


class AgentParams(BaseModel):
    """Base for agent parameters: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")

    def models_needed(self) -> list[str]:
        """The workflow models this node calls (checked against the workflow's `models`)."""
        model = getattr(self, "model", None)
        return [model] if isinstance(model, str) else []


class BoundLLM:
    """A model handle bound to one node of one run: every call made through it is reported with that node.

    The engine gives each node of each run its own handles, so attribution needs no thread-local
    "current node" and two runs on two threads never mix their calls. Everything else (name,
    sha256, capabilities, close ...) is the shared model's.
    """

    def __init__(self, llm: LLM, node: str, sink: Callable[[str, CallRecord], None]) -> None:
        self.inner, self.node, self._sink = llm, node, sink

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def _report(self, records: list[CallRecord]) -> None:
        for record in records:
            self._sink(self.node, record)

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        faults.point("model_call")
        try:
            result = getattr(self.inner, method)(*args, **kwargs)
        except MedcoderError as exc:  # a failed call is still a call: credit its record, then raise
            self._report(list(getattr(exc, "records", None) or []))
            raise
        self._report(list(getattr(result, "records", None) or [result.record]))
        return result

    def chat(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("chat", *args, **kwargs)

    def choose(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("choose", *args, **kwargs)

    def score(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("score", *args, **kwargs)

    def judge(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("judge", *args, **kwargs)


@dataclass
class AgentContext:
    """What one node works with: its model handles, the knowledge, its event sink and prompt templates.

    The engine builds one per node per run (`node`, `run_id` say which), so what an agent emits
    and every model call it makes land in that run's record under that node.
    """

    llms: dict[str, Any]  # name -> LLM (or the BoundLLM the engine hands each node)
    kb: KnowledgeBase
    prompts: dict[str, str] = field(default_factory=dict)
    emit: EventSink = lambda kind, data: None  # noqa: E731 - the audit trail replaces this
    retriever: Retriever | None = None  # entry points for the navigator; None: walk from the root
    node: str = ""
    run_id: str = ""

    def llm(self, name: str = "default") -> LLM:
        try:
            return self.llms[name]
        except KeyError as exc:
            raise MedcoderError(f"no model named {name!r} in this workflow (have {', '.join(self.llms)})") from exc

    def prompt(self, key: str, defaults: dict[str, str], **values: Any) -> str:
        """Fill a prompt template ($name placeholders); the workflow may override any template."""
        template = self.prompts.get(key, defaults[key])
        return Template(template).safe_substitute(**values)


class AgentFactory(Protocol):
    def __call__(self, params: Any, ctx: AgentContext) -> NodeFn: ...


@dataclass(frozen=True)
class AgentDef:
    name: str
    factory: AgentFactory
    params: type[AgentParams]
    doc: str = ""


def register_agent(name: str, params: type[AgentParams]) -> Callable[[AgentFactory], AgentFactory]:
    """Decorator: mark a factory as an agent named `name` with its parameter model.

    Workflows find agents through the `medcoder.agents` entry points (the built-ins are listed in
    medcoder's pyproject the same way); the decorator also registers the name at import time, so
    an agent defined in a notebook or test is usable without installing anything.
    """

    def wrap(factory: AgentFactory) -> AgentFactory:
        factory.medcoder_agent = True  # type: ignore[attr-defined]
        factory.params = params  # type: ignore[attr-defined]
        plugins.agents.register(name, factory)
        return factory

    return wrap


class _AnyParams(AgentParams):
    model_config = ConfigDict(extra="allow")


def _as_def(ref: str, obj: Any) -> AgentDef:
    doc = (getattr(obj, "__doc__", None) or "").strip().split("\n")[0]
    if getattr(obj, "medcoder_agent", False):
        return AgentDef(ref, obj, getattr(obj, "params", _AnyParams), doc)
    return AgentDef(ref, lambda params, ctx: obj, _AnyParams, doc)


def agent_names() -> list[str]:
    """Every agent a workflow may name: the built-ins and installed plugins."""
    return plugins.agents.names()


def resolve_agent(ref: str) -> AgentDef:
    """An agent by its registered name (entry points), or `package.module:callable` for a user's own.

    A user callable is either a factory `(params, ctx) -> node` (decorated with `register_agent`,
    or with `medcoder_agent = True` and optionally `params` set on it) or a plain node function
    `state -> update`.
    """
    if ":" not in ref:
        try:
            return _as_def(ref, plugins.agents.get(ref))
        except plugins.PluginError as exc:
            raise MedcoderError(
                f"unknown agent {ref!r}; installed agents: {', '.join(agent_names())}, or give module:callable"
            ) from exc
    module_name, _, attr = ref.partition(":")
    try:
        obj = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise MedcoderError(f"cannot import agent {ref!r}: {exc}") from exc
    return _as_def(ref, obj)
