"""Agents: how a task is worked on (direct, tool_calling, code)."""

from hydragent.agents.base import Agent, AgentResult
from hydragent.agents.direct import DirectAgent

__all__ = ["Agent", "AgentResult", "DirectAgent"]
