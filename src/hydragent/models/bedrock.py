"""AmazonBedrockServerModel: the Bedrock Converse API through boto3 ("bedrock-runtime").

What smolagents got wrong and this does instead: system turns go into `system` blocks, stop
sequences into `inferenceConfig.stopSequences`, tools into `toolConfig` (never `tools` or
`tool_choice`, which boto3 rejects), `toolUse` blocks become tool calls, and a reply without
tool calls is simply a reply (no KeyError). Structured output is enforced through a forced
tool whose input schema is the grammar's schema; the tool input is returned as JSON text.
`generate_stream` uses ConverseStream (AWS event-stream framing, decoded by botocore).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, ClassVar

from hydragent.generation import GenerationConfig
from hydragent.messages import (
    ChatMessage,
    ChatMessageStreamDelta,
    MessageRole,
)
from hydragent.models.api import ApiModel
from hydragent.models.base import TOOL_ROLE_CONVERSIONS, ModelRequest
from hydragent.models.errors import extra_problems, missing_extra
from hydragent.models.spec import (
    Applied,
    BackendSpec,
    Field,
    apply_generation,
    declare,
    thinking_block,
)
from hydragent.models.wire.converse import (
    chat_message,
    converse_messages,
    stream_deltas,
    tool_config,
)

ALL_TO_USER = {role.value: MessageRole.USER.value for role in MessageRole}
#: call kwargs with an inferenceConfig home: OpenAI -> Converse names.
INFERENCE_KEYS = {"max_tokens": "maxTokens", "temperature": "temperature", "top_p": "topP"}
#: the generation node in a Converse request (Converse has no seed, top_k or penalties).
CONVERSE_GENERATION = {
    **dict.fromkeys(GenerationConfig.model_fields),
    **{key: f"inferenceConfig.{name}" for key, name in INFERENCE_KEYS.items()},
    "stop": Applied("inferenceConfig.stopSequences, with the call's stop sequences"),
    "reasoning_tokens": Field("additionalModelRequestFields.thinking", thinking_block),
}
#: request keys that exist in OpenAI-style APIs but not in Converse.
FOREIGN_KEYS = ("tools", "tool_choice", "response_format", "stop", "model", "messages")
REGION_FIX = "set AWS_DEFAULT_REGION (boto3 reads it), or model.client_kwargs.region_name"
CREDENTIALS_FIX = "set AWS credentials: AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"


class AmazonBedrockServerModel(ApiModel):
    """Bedrock Converse; `client_kwargs` go to `boto3.client("bedrock-runtime", ...)`.

    Roles default to all-to-user (many Bedrock models take only user content); `roles=`
    replaces that, and any turn still in the `system` role is sent as a `system` block.
    boto3's own retries are off, so the `retry` policy is the only one.
    """

    default_role_conversions: ClassVar[dict[str, str] | None] = ALL_TO_USER
    wire_roles: ClassVar[dict[str, str] | None] = dict(TOOL_ROLE_CONVERSIONS)

    def __init__(
        self,
        model_id: str,
        client: Any | None = None,
        client_kwargs: dict[str, Any] | None = None,
        custom_role_conversions: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        self.client_kwargs = dict(client_kwargs or {})
        kwargs.pop("flatten_messages_as_text", None)  # Converse takes content blocks only
        super().__init__(
            model_id=model_id,
            custom_role_conversions=custom_role_conversions,
            client=client,
            **kwargs,
        )
        self.build_client()

    def environment_problems(self) -> list[tuple[str, str]]:
        problems = extra_problems(self)
        if problems or self._client is not None:
            return problems
        # boto3 signs every request, a local endpoint_url's too: it needs a region and keys
        import boto3
        from botocore.exceptions import ProfileNotFound

        try:
            session = boto3.Session()
        except ProfileNotFound as error:  # AWS_PROFILE names a profile no file defines
            import botocore.session

            known = ", ".join(botocore.session.Session().available_profiles) or "none"
            fix = "unset AWS_PROFILE, or add the profile (aws configure --profile NAME)"
            return [("client_kwargs", f"AWS_PROFILE: {error}; profiles: {known}; {fix}")]
        if not (self.client_kwargs.get("region_name") or session.region_name):
            problems.append(
                (
                    "client_kwargs.region_name",
                    "AmazonBedrockServerModel needs a region: set "
                    "AWS_DEFAULT_REGION or model.client_kwargs.region_name",
                )
            )
        if not (self.client_kwargs.get("aws_access_key_id") or session.get_credentials()):
            problems.append(
                (
                    "client_kwargs",
                    "AmazonBedrockServerModel needs AWS credentials: set "
                    "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE (or `aws configure`)",
                )
            )
        if not problems:  # boto3 builds its client offline and checks its options doing so
            from botocore.exceptions import BotoCoreError

            try:
                self.create_client()
            except (TypeError, ValueError, BotoCoreError) as error:
                problems.append(("client_kwargs", f"boto3 refuses these options: {error}"))
        return problems

    def create_client(self) -> Any:
        try:
            import boto3
            from botocore.config import Config
        except ImportError as error:
            raise missing_extra(self) from error
        options = dict(self.client_kwargs)
        given = options.pop("config", None)
        config = Config(retries={"total_max_attempts": 1})
        if given is not None:
            config = config.merge(given if isinstance(given, Config) else Config(**dict(given)))
        return boto3.client("bedrock-runtime", config=config, **options)

    def wire_request(self, req: ModelRequest) -> dict[str, Any]:
        """The Converse request: OpenAI-style settings moved to their Converse homes, the
        generation node's too (a thinking budget goes to `additionalModelRequestFields`)."""
        if req.grammar is not None and req.tools:
            raise ValueError(
                "AmazonBedrockServerModel enforces a grammar through a forced tool, so it "
                "cannot combine grammar= with tools; drop one of them"
            )
        system, turns = converse_messages(req.messages)
        request = self.settings(req)
        tool_choice = request.pop("tool_choice", None)
        for key in FOREIGN_KEYS:
            request.pop(key, None)
        inference = dict(request.pop("inferenceConfig", None) or {})
        for key, converse_key in INFERENCE_KEYS.items():
            if key in request:
                inference[converse_key] = request.pop(key)
        if req.stop_sequences:
            inference["stopSequences"] = list(req.stop_sequences)
        if inference:
            request["inferenceConfig"] = inference
        apply_generation(request, req.generation, CONVERSE_GENERATION)
        request.update(modelId=self.model_id, messages=turns)
        if system:
            request["system"] = system
        tools = tool_config(req.tools, tool_choice, req.grammar)
        if tools:
            request["toolConfig"] = tools
        return request

    def request(self, req: ModelRequest) -> ChatMessage:
        request = self.wire_request(req)
        response = self.call_api(self.client.converse, **request)
        return chat_message(response, req.grammar)

    def request_stream(self, req: ModelRequest) -> Generator[ChatMessageStreamDelta]:
        """ConverseStream events as deltas; only opening the stream is retried."""
        request = self.wire_request(req)
        response = self.call_api(self.client.converse_stream, **request)
        yield from stream_deltas(response.get("stream") or [], as_content=req.grammar is not None)


AmazonBedrockModel = AmazonBedrockServerModel

BACKEND = declare(
    BackendSpec(
        key="bedrock",
        model=AmazonBedrockServerModel,
        extra="bedrock",
        modules=("boto3", "botocore"),
        generation=CONVERSE_GENERATION,
        grammars=frozenset({"json_object", "json_schema"}),
        native_tools=True,
        streaming=True,
        images=True,
        reasoning=True,
        helpers=frozenset({"retry"}),
        fixes={
            "noregionerror": REGION_FIX,
            "must specify a region": REGION_FIX,
            "nocredentialserror": CREDENTIALS_FIX,
            "unable to locate credentials": CREDENTIALS_FIX,
        },
    )
)
