"""AzureOpenAIServerModel: an Azure OpenAI deployment through `openai.AzureOpenAI`."""

from __future__ import annotations

import os
from typing import Any

from hydragent.models.openai import OpenAIServerModel


class AzureOpenAIServerModel(OpenAIServerModel):
    """`model_id` is the deployment name; endpoint, key and API version fall back to the
    environment (`AZURE_OPENAI_ENDPOINT`, `AZURE_OPENAI_API_KEY`, `OPENAI_API_VERSION`)."""

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
            api_key=api_key or os.environ.get("AZURE_OPENAI_API_KEY"),
            client_kwargs=client_kwargs,
            custom_role_conversions=custom_role_conversions,
            **kwargs,
        )

    def create_client(self) -> Any:
        openai = self._openai_module()
        missing = [
            f"{name} (or {env})"
            for name, env, value in (
                ("azure_endpoint", "AZURE_OPENAI_ENDPOINT", self.azure_endpoint),
                ("api_version", "OPENAI_API_VERSION", self.api_version),
            )
            if not value
        ]
        if missing:
            raise ValueError(f"AzureOpenAIServerModel needs {' and '.join(missing)}")
        return openai.AzureOpenAI(
            **{
                "azure_endpoint": self.azure_endpoint,
                "api_key": self.api_key,
                "api_version": self.api_version,
                "max_retries": 0,
                **self.client_kwargs,
            }
        )


AzureOpenAIModel = AzureOpenAIServerModel
