"""Serve a loopback protocol server until interrupted: `python -m tests.servers openai|bedrock`.

Prints the base URL on its first line, so a script in another virtual environment (one with
only a backend's extra installed: .ci/extras) can talk to it. Every request gets the default
reply, with reasoning and usage, in the protocol's own shape.
"""

from __future__ import annotations

import sys
import threading

from tests.servers import LoopbackServer, Reply, bedrock_app, openai_app

APPS = {"openai": openai_app, "bedrock": bedrock_app}


def main() -> None:
    if len(sys.argv) != 2 or sys.argv[1] not in APPS:
        sys.exit(f"usage: python -m tests.servers {{{'|'.join(APPS)}}}")
    server = LoopbackServer(APPS[sys.argv[1]])
    server.default_reply = Reply(reasoning="thinking it over")
    server.start()
    print(server.url, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
