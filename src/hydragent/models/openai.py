"""OpenAIServerModel: OpenAI Chat Completions, or any OpenAI-compatible server via `api_base`.

The request path is ChatCompletionsModel's (chat_completions.py), the wire format
wire/openai.py's; this module holds the client and the declaration.
"""

from __future__ import annotations

import json
import os
from typing import Any, ClassVar, Literal

from hydragent.grammar import Grammar
from hydragent.models.chat_completions import ChatCompletionsModel, chat_generation
from hydragent.models.errors import extra_problems, missing_extra
from hydragent.models.spec import BackendSpec, declare

# The client settings `plain_endpoint` reads itself; any other makes the SDK build the client.
_PLAIN_SETTINGS = {"base_url", "api_key", "organization", "project", "max_retries"}
# The SDK reads these from the environment when not given; any other `OPENAI_*` variable may
# change what it sends (OPENAI_CUSTOM_HEADERS, a provider), so only the SDK is trusted then.
_PLAIN_ENVIRONMENT = {"OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID"}
SDK_DEFAULT = object()  # no timeout given: the SDK's default


def _plain_environment() -> bool:
    return not any(
        name.startswith("OPENAI_") and name not in _PLAIN_ENVIRONMENT for name in os.environ
    )


# `chat.completions.create` arguments that are request options, not body fields.
_REQUEST_OPTIONS = {
    "extra_headers": "headers",
    "extra_query": "params",
    "extra_body": "extra_json",
    "timeout": "timeout",
}


class OpenAIServerModel(ChatCompletionsModel):
    """OpenAI Chat Completions through the official client, or any compatible server.

    The client's own retries are off (`max_retries=0`) so the `retry` policy is the only one;
    with `api_base` set and no key anywhere, the key "EMPTY" is sent (local servers need none);
    set `client_kwargs={"timeout": ...}` for a per-request deadline. Tools are sent with
    `tool_choice="required"` unless a call says otherwise, as smolagents does. As in
    smolagents, the client is built at construction, so a missing key fails there (except
    inside `dry_build()`, where `environment_problems()` reports it).
    """

    key_env: ClassVar[str] = "OPENAI_API_KEY"

    def __init__(
        self,
        model_id: str,
        api_base: str | None = None,
        api_key: str | None = None,
        organization: str | None = None,
        project: str | None = None,
        client_kwargs: dict[str, Any] | None = None,
        custom_role_conversions: dict[str, str] | None = None,
        flatten_messages_as_text: bool = False,
        json_schema_style: Literal["openai", "json_object_schema"] = "openai",
        **kwargs: Any,
    ) -> None:
        if json_schema_style not in ("openai", "json_object_schema"):
            raise ValueError(
                f"json_schema_style must be 'openai' or 'json_object_schema', "
                f"got {json_schema_style!r}"
            )
        self.json_schema_style = json_schema_style
        self.api_base = api_base
        self.api_key = api_key
        self.organization = organization
        self.project = project
        self.client_kwargs = dict(client_kwargs or {})
        super().__init__(
            model_id=model_id,
            custom_role_conversions=custom_role_conversions,
            flatten_messages_as_text=flatten_messages_as_text,
            **kwargs,
        )
        self.build_client()

    def _openai_module(self) -> Any:
        try:
            import openai
        except ImportError as error:
            raise missing_extra(self) from error
        return openai

    def resolved_api_key(self) -> str | None:
        """The key the client will send: given, from the environment, or "EMPTY" for a
        local server (api_base set), which needs none."""
        api_key = self.api_key or os.environ.get(self.key_env)
        if api_key is None and self.api_base:
            api_key = "EMPTY"
        return api_key

    def environment_problems(self) -> list[tuple[str, str]]:
        problems = extra_problems(self)
        if self._client is None and not self.resolved_api_key():
            problems.append(
                (
                    "api_key",
                    f"{type(self).__name__} needs a key: set {self.key_env} or model.api_key, "
                    "or point model.api_base at a local server",
                )
            )
        return problems

    def client_settings(self) -> dict[str, Any]:
        """The SDK client's constructor arguments (the sync and the async client alike)."""
        return {
            "base_url": self.api_base,
            "api_key": self.resolved_api_key(),
            "organization": self.organization,
            "project": self.project,
            "max_retries": 0,
            **self.client_kwargs,
        }

    def create_client(self) -> Any:
        client = self._openai_module().OpenAI(**self.client_settings())
        self._built = client  # the async path posts with its settings (asend)
        return client

    def grammar_request(self, grammar: Grammar) -> dict[str, Any]:
        """The body fields that enforce `grammar` on this server.

        `json_schema_style="json_object_schema"` sends `{"type": "json_object", "schema": ...}`,
        the dialect of servers without OpenAI's `json_schema` type (llama-cpp-python's server).
        """
        if grammar.type == "json_schema" and self.json_schema_style == "json_object_schema":
            return {"response_format": {"type": "json_object", "schema": grammar.schema}}
        return {"response_format": grammar.to_response_format()}

    def send(self, body: dict[str, Any]) -> Any:
        """POST the body as built through the SDK's own `post` (auth, headers, timeouts
        and error types kept) and read the reply as plain JSON, so `message.raw` is the
        server's body. `chat.completions.create` would first walk the plain-JSON request
        against the SDK's TypedDicts, and then build a typed ChatCompletion that hydragent
        reads once; each cost about a fifth of a tool-calling call's client CPU, and that CPU
        sets the runner's pace at high concurrency (docs/benchmarks.md). Streams, and a
        client that is not the openai SDK's (a mock, a user's), go through `create`."""
        client = self.client
        if body.get("stream") or type(client).__module__.split(".")[0] != "openai":
            return client.chat.completions.create(**body)
        body = dict(body)
        options = {
            option: body.pop(argument)
            for argument, option in _REQUEST_OPTIONS.items()
            if argument in body
        }
        reply = client.post("/chat/completions", body=body, options=options, cast_to=str)
        return json.loads(reply)

    async def asend(self, body: dict[str, Any]) -> Any:
        """`send` on the event loop: the same POST with the same client settings and error
        types, through aiohttp (models/async_http.py: the SDK's async pool costs ten times
        the CPU per request at high concurrency). A client the model did not build itself
        (a mock, a user's) is called as given, in the thread pool; so are streams."""
        client = self._client
        built = getattr(self, "_built", None)
        if body.get("stream") or (client is not None and client is not built):
            return await super().asend(body)
        body = dict(body)
        options = {
            option: body.pop(argument)
            for argument, option in _REQUEST_OPTIONS.items()
            if argument in body
        }
        if getattr(self, "_poster", None) is None:
            from hydragent.models.async_http import Endpoint, SdkPoster

            endpoint = self.plain_endpoint() if client is None else None
            if endpoint is None:
                endpoint = Endpoint.of_client(self.client)
            self._poster = SdkPoster(endpoint, lambda: self.client)
        return await self._poster.post("/chat/completions", body, options)

    def client_waits(self) -> bool:
        """The runner leaves the SDK client unbuilt when the async path can post without it."""
        return self.plain_endpoint() is not None

    def plain_endpoint(self) -> Any:
        """The `Endpoint` the SDK's client would post to, said without importing the SDK
        (0.6 to 1 s of a run's start-up), or None where only the SDK can say it.

        An allow-list: this class's own client, a string key, `client_kwargs` of `timeout`
        (seconds), `default_headers` and `default_query` only, and no `OPENAI_*` variable
        in the environment but the four read here. The SDK's own telemetry headers
        (`X-Stainless-*`) are not sent. tests/test_openai_backend.py checks that the sync
        path (the SDK) and this one reach a server with the same URL, query and headers."""
        if type(self).create_client is not OpenAIServerModel.create_client:
            return None  # a subclass's client (Azure's, a user's) is its own
        settings = self.client_settings()
        extra = {k: v for k, v in settings.items() if k not in _PLAIN_SETTINGS}
        timeout = extra.pop("timeout", SDK_DEFAULT)
        headers, query = extra.pop("default_headers", None), extra.pop("default_query", None)
        if extra or not isinstance(settings["api_key"], str) or not _plain_environment():
            return None
        if not isinstance(timeout, int | float | None) and timeout is not SDK_DEFAULT:
            return None
        if not all(isinstance(v, str) for v in {**(headers or {}), **(query or {})}.values()):
            return None
        from importlib.metadata import PackageNotFoundError, version

        from hydragent.models.async_http import SDK_TIMEOUT_S, Endpoint

        try:
            sdk_version = version("openai")
        except PackageNotFoundError:
            return None  # building the client says which extra to install

        organization = settings["organization"] or os.environ.get("OPENAI_ORG_ID")
        project = settings["project"] or os.environ.get("OPENAI_PROJECT_ID")
        base_url = settings["base_url"] or os.environ.get("OPENAI_BASE_URL")
        sent = {
            "Authorization": f"Bearer {settings['api_key']}" if settings["api_key"] else None,
            "Accept": "application/json",
            "Content-Type": "application/json",
            "User-Agent": f"OpenAI/Python {sdk_version}",
            "OpenAI-Organization": organization,
            "OpenAI-Project": project,
            **(headers or {}),
        }
        return Endpoint(
            base_url=str(base_url or "https://api.openai.com/v1").rstrip("/"),
            headers={k: v for k, v in sent.items() if v is not None},
            query=dict(query or {}),
            timeout=SDK_TIMEOUT_S if timeout is SDK_DEFAULT else timeout,
        )

    async def aclose(self) -> None:
        poster = getattr(self, "_poster", None)
        if poster is not None:
            await poster.aclose()


OpenAIModel = OpenAIServerModel

BACKEND = declare(
    BackendSpec(
        key="openai",
        model=OpenAIServerModel,
        extra="openai",
        modules=("openai",),
        generation=chat_generation,
        grammars=frozenset({"json_object", "json_schema"}),
        native_tools=True,
        streaming=True,
        images=True,
        reasoning=True,
        helpers=frozenset({"retry"}),
        client="openai:OpenAI",
    )
)
