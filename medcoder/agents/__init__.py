"""The agents a workflow is built from; importing this package registers the built-in ones."""

from medcoder.agents import critic, extractor, finalize, navigator, ranker, retriever, sections  # noqa: F401 - registration
from medcoder.agents.base import AGENTS, AgentContext, AgentDef, AgentParams, register_agent, resolve_agent

__all__ = ["AGENTS", "AgentContext", "AgentDef", "AgentParams", "register_agent", "resolve_agent"]
