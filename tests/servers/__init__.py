"""Loopback HTTP servers that speak real provider protocols, for testing real client libraries.

Each server runs on 127.0.0.1 with a free port in a background thread, records every request
it receives, replies from a script, and can inject faults (see `Fault`).
"""

from tests.servers.base import Fault, LoopbackServer, Recorded, Reply, running
from tests.servers.bedrock import bedrock_app
from tests.servers.ollama import ollama_app
from tests.servers.openai import openai_app

__all__ = [
    "Fault",
    "LoopbackServer",
    "Recorded",
    "Reply",
    "bedrock_app",
    "ollama_app",
    "openai_app",
    "running",
]
