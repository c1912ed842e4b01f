"""What every agent gets (`AgentContext`) and how agents are named in a workflow (the registry).

An agent is a factory `(params, ctx) -> node function`, where the node function maps a state
(or a fan-out payload) to a state update. Parameters are validated by the agent's own
pydantic model, so a typo in a workflow YAML is an error, not a silently ignored key.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass, field
from string import Template
from typing import Any, Callable, Protocol

from pydantic import BaseModel, ConfigDict

from medcoder.errors import MedcoderError
from medcoder.knowledge import KnowledgeBase
from medcoder.llm import LLM

logger = logging.getLogger(__name__)

NodeFn = Callable[[dict[str, Any]], dict[str, Any]]
EventSink = Callable[[str, dict[str, Any]], None]


class AgentParams(BaseModel):
    """Base for agent parameters: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")

    def models_needed(self) -> list[str]:
        """The workflow models this node calls (checked against the workflow's `models`)."""
        model = getattr(self, "model", None)
        return [model] if isinstance(model, str) else []


@dataclass
class AgentContext:
    """The model(s), knowledge and event sink an agent works with, plus its prompt templates."""

    llms: dict[str, LLM]
    kb: KnowledgeBase
    prompts: dict[str, str] = field(default_factory=dict)
    emit: EventSink = lambda kind, data: None  # noqa: E731 - the audit trail replaces this
    retriever: Any = None  # entry points for the navigator; None: walk from the root

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


AGENTS: dict[str, AgentDef] = {}


def register_agent(name: str, params: type[AgentParams]) -> Callable[[AgentFactory], AgentFactory]:
    """Decorator: make an agent available to workflows under `name`."""

    def wrap(factory: AgentFactory) -> AgentFactory:
        AGENTS[name] = AgentDef(name, factory, params, (factory.__doc__ or "").strip().split("\n")[0])
        return factory

    return wrap


class _AnyParams(AgentParams):
    model_config = ConfigDict(extra="allow")


def resolve_agent(ref: str) -> AgentDef:
    """A built-in agent by name, or `package.module:callable` for a user's own.

    A user callable is either a factory `(params, ctx) -> node` (set `medcoder_agent = True`
    on it, and optionally `params` to a pydantic model) or a plain node function `state -> update`.
    """
    import medcoder.agents  # noqa: F401 - registers the built-in agents

    if ref in AGENTS:
        return AGENTS[ref]
    if ":" not in ref:
        raise MedcoderError(f"unknown agent {ref!r}; built-in agents: {', '.join(sorted(AGENTS))}, "
                            "or give module:callable")
    module_name, _, attr = ref.partition(":")
    try:
        obj = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise MedcoderError(f"cannot import agent {ref!r}: {exc}") from exc
    if getattr(obj, "medcoder_agent", False):
        return AgentDef(ref, obj, getattr(obj, "params", _AnyParams))
    return AgentDef(ref, lambda params, ctx: obj, _AnyParams)
