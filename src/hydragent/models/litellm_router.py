"""LiteLLMRouterModel: load balancing and fallbacks over several deployments (LiteLLM Router).

Retries happen at two levels, on purpose. The Router's own `num_retries`, `fallbacks`,
`allowed_fails` and `cooldown_time` (set by `router=<strategy>`) move a failing request to
another deployment: that is the point of a router. hydragent's `retry` policy wraps the whole
routed call, so it only acts once the Router has given up (e.g. every deployment cooling
down); keep `retry.attempts` small when the Router already retries.
"""

from __future__ import annotations

from typing import Any

from hydragent.models.litellm import LiteLLMModel, import_litellm


class LiteLLMRouterModel(LiteLLMModel):
    """Routes `model_id` (a model group name) over `model_list`; `client_kwargs` go to
    `litellm.Router` (routing_strategy, num_retries, fallbacks, cooldown_time, ...).

    The deployment that answered is recorded in `message.metadata["deployment"]`: its
    `model_info.id` when the config names one, else `<litellm model> @ <api_base>`.
    """

    def __init__(
        self,
        model_id: str,
        model_list: list[dict[str, Any]],
        client_kwargs: dict[str, Any] | None = None,
        custom_role_conversions: dict[str, str] | None = None,
        flatten_messages_as_text: bool | None = None,
        **kwargs: Any,
    ) -> None:
        if not model_list:
            raise ValueError(
                "LiteLLMRouterModel needs model_list (the deployments); pick router=<strategy> "
                "or set model.model_list"
            )
        groups = {entry.get("model_name") for entry in model_list}
        if model_id not in groups:
            raise ValueError(
                f"model_id {model_id!r} names no deployment group; groups in model_list: "
                f"{', '.join(sorted(str(g) for g in groups))}"
            )
        self.model_list = [dict(entry) for entry in model_list]
        self.client_kwargs = dict(client_kwargs or {})
        super().__init__(
            model_id=model_id,
            custom_role_conversions=custom_role_conversions,
            flatten_messages_as_text=flatten_messages_as_text,
            **kwargs,
        )

    def create_client(self) -> Any:
        import_litellm()
        from litellm import Router

        return Router(model_list=self.model_list, **self.client_kwargs)

    def answering_models(self) -> list[str]:
        """Every deployment of the group: the Router may send a call to any of them."""
        return [
            str((entry.get("litellm_params") or {}).get("model"))
            for entry in self.model_list
            if entry.get("model_name") == self.model_id
        ]

    def connection_kwargs(self) -> dict[str, Any]:
        return {}  # endpoints and retries belong to the deployments and the Router

    def response_metadata(self, response: Any) -> dict[str, Any]:
        hidden = getattr(response, "_hidden_params", None) or {}
        deployment_id = hidden.get("model_id")
        for entry in self.client.get_model_list() or []:
            info = entry.get("model_info") or {}
            if deployment_id is not None and info.get("id") == deployment_id:
                return {"deployment": _deployment_name(entry)}
        api_base = hidden.get("api_base")
        return {"deployment": api_base or deployment_id} if (api_base or deployment_id) else {}


def _deployment_name(entry: dict[str, Any]) -> str:
    params = entry.get("litellm_params") or {}
    label = (entry.get("model_info") or {}).get("label")
    if label:
        return str(label)
    api_base = params.get("api_base")
    return f"{params.get('model')} @ {api_base}" if api_base else str(params.get("model"))
