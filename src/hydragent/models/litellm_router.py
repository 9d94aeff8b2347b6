"""LiteLLMRouterModel: load balancing and fallbacks over several deployments (LiteLLM Router).

Retries happen at two levels, on purpose. The Router's own `num_retries`, `fallbacks`,
`allowed_fails` and `cooldown_time` (set by `router=<strategy>`) move a failing request to
another deployment: that is the point of a router. hydragent's `retry` policy wraps the whole
routed call, so it only acts once the Router has given up (e.g. every deployment cooling
down); keep `retry.attempts` small when the Router already retries.
"""

from __future__ import annotations

import fnmatch
from typing import Any

from hydragent.models.errors import extra_problems
from hydragent.models.litellm import (
    LiteLLMModel,
    import_litellm,
    litellm_generation,
    missing_credentials,
    unknown_providers,
)
from hydragent.models.spec import BackendSpec, declare

#: LiteLLM strategies that pick a deployment only on the Router's async path: its sync
#: `completion` answers "No deployments available" every time (LiteLLM: "cost-based routing
#: has no sync pick").
ASYNC_ONLY_STRATEGIES = ("cost-based-routing",)


class LiteLLMRouterModel(LiteLLMModel):
    """Routes `model_id` (a model group name) over `model_list`; `client_kwargs` go to
    `litellm.Router` (routing_strategy, num_retries, fallbacks, cooldown_time,
    model_group_alias, ...). As in smolagents, any `model_id` is accepted: a group, a wildcard
    group's match (`openai/*`) or an alias; `environment_problems()` flags one that names none.

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
        self.model_list = [dict(entry) for entry in model_list or []]
        self.client_kwargs = dict(client_kwargs or {})
        super().__init__(
            model_id=model_id,
            custom_role_conversions=custom_role_conversions,
            flatten_messages_as_text=flatten_messages_as_text,
            **kwargs,
        )

    def create_client(self) -> Any:
        import_litellm()
        from litellm.router import Router

        return Router(model_list=self.model_list, **self.client_kwargs)

    def _deployments(self) -> list[dict[str, Any]]:
        """The deployments that may answer `model_id`: its group, through an alias, or the
        wildcard groups (`openai/*`) its name matches."""
        name = str(self.model_id)
        alias = (self.client_kwargs.get("model_group_alias") or {}).get(name)
        if alias is not None:
            name = str(alias.get("model") if isinstance(alias, dict) else alias)
        exact = [e for e in self.model_list if e.get("model_name") == name]
        if exact:
            return exact
        return [e for e in self.model_list if fnmatch.fnmatchcase(name, str(e.get("model_name")))]

    def answering_models(self) -> list[str]:
        """Every deployment that may answer: the Router may send a call to any of them. A
        wildcard deployment (`openai/*`) answers as the model id itself."""
        models = []
        for entry in self._deployments():
            model = str((entry.get("litellm_params") or {}).get("model"))
            models.append(str(self.model_id) if "*" in model else model)
        return models

    def environment_problems(self) -> list[tuple[str, str]]:
        problems = extra_problems(self)
        if not self.model_list:
            return [
                *problems,
                (
                    "model_list",
                    "LiteLLMRouterModel needs model_list (the deployments): "
                    "pick router=<strategy> or set model.model_list",
                ),
            ]
        if not self._deployments():
            groups = ", ".join(sorted(str(e.get("model_name")) for e in self.model_list))
            problems.append(
                (
                    "model_id",
                    f"model_id {self.model_id!r} names no deployment group, wildcard "
                    f"group or model_group_alias; groups in model_list: {groups}",
                )
            )
        problems += [
            ("model_list", line)
            for line in unknown_providers(
                self.answering_models(), "in its deployment's litellm_params.model"
            )
        ]
        if problems:
            return problems
        keyless = [
            m
            for e, m in zip(self._deployments(), self.answering_models(), strict=True)
            if not (e.get("litellm_params") or {}).get("api_key")
            and not (e.get("litellm_params") or {}).get("api_base")
        ]
        fix = "an api_key in its deployment's litellm_params"
        return [("model_list", line) for line in missing_credentials(keyless, fix)]

    def send(self, body: dict[str, Any]) -> Any:
        """The Router's call; for a strategy that picks only when called async, the async
        call in an event loop of its own (a stream is read whole there)."""
        if self.client_kwargs.get("routing_strategy") not in ASYNC_ONLY_STRATEGIES:
            return super().send(body)
        import asyncio

        async def routed() -> Any:
            response = await self.client.acompletion(**body)
            return [chunk async for chunk in response] if body.get("stream") else response

        return asyncio.run(routed())

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


BACKEND = declare(
    BackendSpec(
        key="litellm_router",
        model=LiteLLMRouterModel,
        extra="litellm",
        modules=("litellm",),
        generation=litellm_generation,
        grammars=frozenset({"json_object", "json_schema"}),
        native_tools=True,
        streaming=True,
        images=True,
        reasoning=True,
        helpers=frozenset({"retry", "router"}),
        client="litellm:Router",
        fixes={
            "no deployments available": (
                "no router deployment could answer: check each model.model_list entry's key, "
                "api_base and model, or widen router cooldowns"
            ),
            "no healthy deployment": (
                "no router deployment could answer: check each model.model_list entry's key, "
                "api_base and model, or widen router cooldowns"
            ),
        },
    )
)
