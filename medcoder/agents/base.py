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
from typing import Any, Callable, Generic, Protocol, Sequence, TypeVar, cast, overload

from pydantic import BaseModel, ConfigDict

from medcoder import faults, plugins
from medcoder.errors import MedcoderError
from medcoder.knowledge import KnowledgeBase
from medcoder.knowledge.retrieval import Retriever
from medcoder.llm import LLM, CallRecord
from medcoder.llm.base import (
    CallObserver,
    CallStats,
    Capabilities,
    ChatResult,
    ChooseResult,
    Continuation,
    JudgeResult,
    Message,
    Option,
    ScoreResult,
    T,
)
from medcoder.state import CodingState, StateUpdate

logger = logging.getLogger(__name__)

NodeFn = Callable[[CodingState], StateUpdate]
EventSink = Callable[[str, dict[str, Any]], None]
R = TypeVar("R")
V = TypeVar("V")


class AgentParams(BaseModel):
    """Base for agent parameters: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")

    def models_needed(self) -> list[str]:
        """The workflow models this node calls (checked against the workflow's `models`)."""
        model = getattr(self, "model", None)
        return [model] if isinstance(model, str) else []


class _Shared(Generic[V]):
    """An attribute of a `BoundLLM` that is its shared model's: read from it, and written to it."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.attr = name

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> _Shared[V]: ...
    @overload
    def __get__(self, obj: BoundLLM, owner: type | None = None) -> V: ...
    def __get__(self, obj: BoundLLM | None, owner: type | None = None) -> _Shared[V] | V:
        return self if obj is None else cast(V, getattr(obj.inner, self.attr))

    def __set__(self, obj: BoundLLM, value: V) -> None:
        setattr(obj.inner, self.attr, value)


class BoundLLM(LLM):
    """A model handle bound to one node of one run: every call made through it is reported with that node.

    The engine gives each node of each run its own handles, so attribution needs no thread-local
    "current node" and two runs on two threads never mix their calls. It is an `LLM` with the same four
    calls, each passed to the shared model; what the model is (name, sha256, backend, capabilities), its
    observers and `close` are the shared model's, and any other attribute is read from it.
    """

    def __init__(self, llm: LLM, node: str, sink: Callable[[str, CallRecord], None]) -> None:
        # no LLM.__init__: the observers are the shared model's (`observe` below)
        self.inner, self.node, self._sink = llm, node, sink

    def __getattr__(self, name: str) -> Any:  # a backend's own attributes (the model file, the server URL ...)
        if name == "inner":  # not set yet (a copy being built): never look for it on itself
            raise AttributeError(name)
        return getattr(self.inner, name)

    # what the model is: the shared model's, read when asked (a replay learns its name from its first call)
    name = _Shared[str]()
    sha256 = _Shared[str]()
    backend = _Shared[str]()
    capabilities = _Shared[Capabilities]()
    max_options = _Shared[int]()

    def _report(self, records: Sequence[CallRecord]) -> None:
        for record in records:
            self._sink(self.node, record)

    def _call(self, call: Callable[[], R]) -> R:
        faults.point("model_call")
        try:
            result = call()
        except MedcoderError as exc:  # a failed call is still a call: credit its record, then raise
            self._report(list(getattr(exc, "records", None) or []))
            raise
        self._report(list(getattr(result, "records", None) or [getattr(result, "record")]))
        return result

    def chat(
        self,
        messages: Sequence[Message],
        schema: type[T] | None = None,
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> ChatResult[T]:
        return self._call(lambda: self.inner.chat(messages, schema, max_tokens=max_tokens, temperature=temperature))

    def choose(
        self,
        context: str | Sequence[Message],
        options: Sequence[Option | tuple[str, str]],
        k: int = 1,
        instruction: str | None = None,
    ) -> ChooseResult:
        return self._call(lambda: self.inner.choose(context, options, k, instruction))

    def score(
        self, context: str | Sequence[Message], continuations: Sequence[Continuation | str | tuple[str, str]]
    ) -> ScoreResult:
        return self._call(lambda: self.inner.score(context, continuations))

    def judge(
        self, context: str | Sequence[Message], questions: Sequence[str], yes: str = " yes", no: str = " no"
    ) -> JudgeResult:
        return self._call(lambda: self.inner.judge(context, questions, yes, no))

    def _chat(
        self, messages: list[Message], schema: dict[str, Any] | None, max_tokens: int | None, temperature: float | None
    ) -> tuple[str, CallStats]:
        """Never reached (the four calls above go to the shared model's); the shared model's, for completeness."""
        return self.inner._chat(messages, schema, max_tokens, temperature)

    def observe(self, observer: CallObserver) -> Callable[[], None]:
        return self.inner.observe(observer)

    def close(self) -> None:
        self.inner.close()


@dataclass
class AgentContext:
    """What one node works with: its model handles, the knowledge, its event sink and prompt templates.

    The engine builds one per node per run (`node`, `run_id` say which), so what an agent emits
    and every model call it makes land in that run's record under that node.
    """

    llms: dict[str, LLM]  # name -> model (during a run, the BoundLLM the engine hands each node)
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
