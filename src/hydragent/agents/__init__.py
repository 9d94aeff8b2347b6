"""Agents: how a task is worked on (direct, tool_calling, code)."""

from hydragent.agents.base import Agent, AgentResult
from hydragent.agents.code import CodeAgent
from hydragent.agents.direct import DirectAgent
from hydragent.agents.tool_calling import ToolCallingAgent

__all__ = ["Agent", "AgentResult", "CodeAgent", "DirectAgent", "ToolCallingAgent"]
