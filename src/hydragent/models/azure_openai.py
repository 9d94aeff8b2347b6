"""AzureOpenAIServerModel: an Azure OpenAI deployment through `openai.AzureOpenAI`."""

from __future__ import annotations

import os
from typing import Any, ClassVar

from hydragent.models.chat_completions import chat_generation
from hydragent.models.errors import extra_problems
from hydragent.models.openai import OpenAIServerModel
from hydragent.models.spec import BackendSpec, declare


class AzureOpenAIServerModel(OpenAIServerModel):
    """`model_id` is the deployment name; endpoint, key and API version fall back to the
    environment (`AZURE_OPENAI_ENDPOINT`, `AZURE_OPENAI_API_KEY`, `OPENAI_API_VERSION`).
    `organization` and `project` reach the client, as in smolagents."""

    key_env: ClassVar[str] = "AZURE_OPENAI_API_KEY"

    def __init__(
        self,
        model_id: str,
        azure_endpoint: str | None = None,
        api_key: str | None = None,
        api_version: str | None = None,
        client_kwargs: dict[str, Any] | None = None,
        custom_role_conversions: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        self.azure_endpoint = azure_endpoint or os.environ.get("AZURE_OPENAI_ENDPOINT")
        self.api_version = api_version or os.environ.get("OPENAI_API_VERSION")
        super().__init__(
            model_id=model_id,
            api_key=api_key or os.environ.get(self.key_env),
            client_kwargs=client_kwargs,
            custom_role_conversions=custom_role_conversions,
            **kwargs,
        )

    def _missing_settings(self) -> list[tuple[str, str]]:
        token_given = {"azure_ad_token", "azure_ad_token_provider"} & set(self.client_kwargs)
        return [
            (name, f"AzureOpenAIServerModel needs {name}: set model.{name} or {env}")
            for name, env, value in (
                ("azure_endpoint", "AZURE_OPENAI_ENDPOINT", self.azure_endpoint),
                ("api_version", "OPENAI_API_VERSION", self.api_version),
                ("api_key", self.key_env, self.api_key),
            )
            if not value and not (name == "api_key" and token_given)
        ]

    def environment_problems(self) -> list[tuple[str, str]]:
        problems = extra_problems(self)
        return problems + ([] if self._client is not None else self._missing_settings())

    def create_client(self) -> Any:
        openai = self._openai_module()
        return openai.AzureOpenAI(
            **{
                "base_url": self.api_base,
                "api_key": self.api_key,
                "api_version": self.api_version,
                "azure_endpoint": self.azure_endpoint,
                "organization": self.organization,
                "project": self.project,
                "max_retries": 0,
                **self.client_kwargs,
            }
        )


AzureOpenAIModel = AzureOpenAIServerModel

BACKEND = declare(
    BackendSpec(
        key="azure_openai",
        model=AzureOpenAIServerModel,
        extra="openai",
        modules=("openai",),
        generation=chat_generation,
        grammars=frozenset({"json_object", "json_schema"}),
        native_tools=True,
        streaming=True,
        images=True,
        reasoning=True,
        helpers=frozenset({"retry"}),
        client="openai:AzureOpenAI",
    )
)
