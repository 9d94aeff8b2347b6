"""The cap that `hydragent.config.assemble` puts around a backend (which builds the rest)."""

from __future__ import annotations

import threading

from hydragent.messages import ChatMessage
from hydragent.models.base import Model, ModelRequest, send_request
from hydragent.runner.wrappers import ModelWrapper


class CappedModel(ModelWrapper):
    """Lets at most `limit` calls into the wrapped backend at once (runner.backend_concurrency),
    e.g. one for a local model that cannot batch, while other work still runs in parallel."""

    def __init__(self, inner: Model, limit: int) -> None:
        super().__init__(inner)
        self._slots = threading.BoundedSemaphore(limit)

    def request(self, req: ModelRequest) -> ChatMessage:
        """Wrappers act on the normalised request (the cache around this one calls `request`,
        never `generate`), so the cap is here."""
        with self._slots:
            return send_request(self.inner, req)
