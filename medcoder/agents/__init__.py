"""The agents a workflow is built from. Workflows find them by name through the `medcoder.agents`
entry points (see `medcoder.plugins`), so an agent module is imported only when a workflow uses it."""

from medcoder.agents.base import (
    AgentContext,
    AgentDef,
    AgentParams,
    BoundLLM,
    agent_names,
    register_agent,
    resolve_agent,
)

__all__ = ["AgentContext", "AgentDef", "AgentParams", "BoundLLM", "agent_names", "register_agent", "resolve_agent"]
