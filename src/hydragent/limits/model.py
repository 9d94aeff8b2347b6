"""The one hook in the request path: `Limited`, a layer of the runner's request path
(runner/request_path.py), put inside the response cache (a cached reply costs no request and
no dollar) by runner/build.py.

The retry loop moves out here: the backend's `retry` policy is taken over, so that each
attempt, not each call, takes a rate slot and a lease, and each 429 is seen (and shared) the
moment it arrives rather than after the backend's own retries are spent.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from hydragent.limits.governor import BudgetExhausted, CallTooLarge, Estimate, Governor
from hydragent.messages import ChatMessage
from hydragent.models.api import ApiModel
from hydragent.models.base import ModelRequest
from hydragent.models.retry import (
    _headers_of,
    call_with_retries,
    retry_after_seconds,
    status_code_of,
)

_OUTPUT_KEYS = ("max_tokens", "max_completion_tokens", "max_new_tokens", "max_output_tokens")
MESSAGE_OVERHEAD = 8  # tokens a chat template adds around each message, at most


def output_cap(model: Any, req: ModelRequest) -> int | None:
    """The most tokens this call can generate: the call's or the model's own output cap,
    else the generation node's `max_tokens`."""
    settings: dict[str, Any] = {}
    try:
        settings = dict(model.settings(req))
    except Exception:  # a user's Model without `settings`: the portable setting decides
        settings = {}
    for source in (req.kwargs, settings, req.generation):
        for key in _OUTPUT_KEYS:
            if isinstance(source.get(key), int) and source[key] > 0:
                return int(source[key])
    return None


def estimate(model: Any, req: ModelRequest) -> Estimate:
    """The call's prompt bound (UTF-8 bytes of what is sent: a token is at least one byte)
    plus a template overhead per message, and its output cap (None: uncapped)."""
    body = json.dumps(
        {"messages": req.messages, "tools": req.tool_schemas() or []},
        ensure_ascii=False,
        default=str,
    ).encode()
    bound = len(body) + MESSAGE_OVERHEAD * (len(req.messages) + 1)
    return Estimate(
        prompt_tokens=bound, typical_prompt_tokens=len(body) // 4, max_tokens=output_cap(model, req)
    )


def ratelimit_wait(error: BaseException) -> float | None:
    """Seconds to pause every sharer after `error`: Retry-After on a 429, or the reset time
    of an `x-ratelimit-remaining-*` header that says nothing is left; None when the error
    is not a rate limit."""
    headers = _headers_of(error)
    exhausted = [
        name.removeprefix("x-ratelimit-remaining-")
        for name, value in headers.items()
        if name.startswith("x-ratelimit-remaining-") and value.strip() in ("0", "0.0")
    ]
    if status_code_of(error) != 429 and not exhausted:
        return None
    server = retry_after_seconds(error)
    if server is not None:
        return server
    for kind in exhausted:
        reset = _seconds(headers.get(f"x-ratelimit-reset-{kind}", ""))
        if reset is not None:
            return reset
    return 1.0


def _seconds(text: str) -> float | None:
    """OpenAI's reset values: `1s`, `6m0s`, `20ms`, or a bare number of seconds."""
    import re

    text = text.strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    parts = re.findall(r"([\d.]+)(ms|s|m|h)", text)
    return sum(float(n) * units[u] for n, u in parts) if parts else None


class Limited:
    """Each attempt of each call goes through the governor (docs/architecture.md Limits).

    The backend's retry policy is taken over (its `retry` set to None): each attempt, not each
    call, then takes a rate slot and a lease, and a 429 is shared the moment it arrives."""

    def __init__(self, model: Any, governor: Governor) -> None:
        self.model = model
        self.governor = governor
        self.policy = getattr(model, "retry", None) if isinstance(model, ApiModel) else None
        if self.policy is not None:
            model.retry = None  # retried here instead, one governed attempt at a time
        if isinstance(model, ApiModel):
            # a governed call sends through the sync client: built inside its first rate
            # slot, the client's import would hold that slot and bunch the slots after it
            model.build_client()

    def __call__(
        self, req: ModelRequest, send: Callable[[ModelRequest], ChatMessage]
    ) -> ChatMessage:
        guess = estimate(self.model, req)

        def attempt() -> ChatMessage | BudgetExhausted | CallTooLarge:
            try:
                with self.governor.acquire(guess) as lease:
                    try:
                        reply = send(req)
                    except Exception as error:
                        wait = ratelimit_wait(error)
                        if wait is not None:
                            self.governor.refused(lease, wait)
                        elif 400 <= (status_code_of(error) or 0) < 500:
                            lease.settle(None, billed=False)  # a rejected request costs 0
                        raise
                    lease.settle(reply.token_usage.dict())
                    return reply
            except (BudgetExhausted, CallTooLarge) as error:
                return error  # returned, not raised: the retry policy must not retry it

        result = (
            attempt()
            if self.policy is None
            else call_with_retries(
                attempt, self.policy, describe=f"{type(self.model).__name__} call"
            )
        )
        if isinstance(result, BudgetExhausted | CallTooLarge):
            raise result
        return result


def limit_key(node: Mapping[str, Any], backend: str) -> str:
    """The default `limits.key`: the endpoint (or the backend's name) and the model id."""
    endpoint = next(
        (
            node[k]
            for k in ("api_base", "base_url", "azure_endpoint", "endpoint_url")
            if node.get(k)
        ),
        backend,
    )
    return f"{endpoint}|{node.get('model_id') or node.get('model') or '?'}"


def open_governor(
    resolved: Mapping[str, Any],
    output_dir: Path,
    model: Any,
    group: str = "model",
    store: Any = None,
) -> Governor | None:
    """The governor of the job's `group` (model or judge), or None when `limits` sets no
    limit (then no store is opened at all). The judge's shares the model's `store`, so one
    budget pays for both; `pricing` prices the model only, the judge is priced by its id."""
    from hydragent.config.schemas import LimitsConfig
    from hydragent.cost import given_pricing, price
    from hydragent.limits.stores import open_store

    limits = LimitsConfig.model_validate(resolved.get("limits") or {})
    if not limits.active:
        return None
    pricing = given_pricing(resolved.get("pricing")) if group == "model" else None
    backend = model
    model_id = str(getattr(backend, "model_id", "") or "")
    key = limits.key or limit_key(resolved.get(group) or {}, type(backend).__name__)
    return Governor(
        store or open_store(limits.store, output_dir),
        key,
        requests_per_minute=limits.requests_per_minute,
        tokens_per_minute=limits.tokens_per_minute,
        max_concurrency=limits.max_concurrency,
        budget_usd=limits.budget_usd,
        price=lambda usage: price(None if pricing else model_id, usage, pricing),
        lease_ttl_s=limits.lease_ttl_s,
    )


def limit_layers(
    settings: Mapping[str, Any], output_dir: Path, model: Any, judge: Any
) -> tuple[Governor | None, Limited | None, Limited | None]:
    """The job's governor and the request-path layers of its model and judge (None when
    `limits` sets no limit). The judge's governor shares the model's store: one budget pays
    for both."""
    governor = open_governor(settings, output_dir, model)
    if governor is None:
        return None, None, None
    judge_limit = None
    if judge is not None:
        judge_governor = open_governor(settings, output_dir, judge, "judge", governor.store)
        judge_limit = Limited(judge, judge_governor) if judge_governor is not None else None
    return governor, Limited(model, governor), judge_limit
