"""One structured-output constraint that every backend translates into its own mechanism."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, model_validator

GrammarType = Literal["none", "json_object", "json_schema", "regex", "choice"]
GRAMMAR_TYPES: tuple[str, ...] = ("none", "json_object", "json_schema", "regex", "choice")


class Grammar(BaseModel):
    """The `grammar=` config node; `schema` may be a dict or a path to a JSON schema file."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, defer_build=True)

    type: GrammarType = "none"
    json_schema: dict[str, Any] | str | None = None
    name: str = "answer"
    strict: bool = True
    pattern: str | None = None
    choices: list[str] | None = None

    def __init__(self, **data: Any) -> None:
        if "schema" in data:  # `schema` reads better in YAML but shadows a pydantic name
            data["json_schema"] = data.pop("schema")
        super().__init__(**data)

    @model_validator(mode="after")
    def _check_fields(self) -> Grammar:
        if self.type == "json_schema":
            if self.json_schema is None:
                raise ValueError("grammar=json_schema needs grammar.schema (a dict or a file path)")
            if isinstance(self.json_schema, str):
                path = Path(self.json_schema).expanduser()
                if not path.is_file():
                    raise ValueError(f"grammar.schema file not found: {path}")
                self.json_schema = json.loads(path.read_text())
        if self.type == "regex" and not self.pattern:
            raise ValueError("grammar=regex needs grammar.pattern")
        if self.type == "choice" and not self.choices:
            raise ValueError("grammar=choice needs grammar.choices (a non-empty list)")
        return self

    @property
    def active(self) -> bool:
        return self.type != "none"

    @property
    def schema(self) -> dict[str, Any] | None:
        """The schema as a dict (resolved from a file at validation time)."""
        return self.json_schema if isinstance(self.json_schema, dict) else None

    def value_schema(self) -> dict[str, Any]:
        """The JSON schema of one value that obeys this grammar, for a tool argument that
        carries the answer (the tool-calling agent's `final_answer`)."""
        if self.type == "json_schema":
            return dict(self.schema or {})
        if self.type == "json_object":
            return {"type": "object"}
        if self.type == "choice":
            return {"type": "string", "enum": list(self.choices or [])}
        if self.type == "regex":
            return {"type": "string", "pattern": self.pattern}
        return {}

    def to_response_format(self) -> dict[str, Any]:
        """OpenAI-style `response_format`; only JSON kinds have one."""
        if self.type == "json_object":
            return {"type": "json_object"}
        if self.type == "json_schema":
            return {
                "type": "json_schema",
                "json_schema": {"name": self.name, "schema": self.schema, "strict": self.strict},
            }
        raise ValueError(f"grammar={self.type} has no response_format form")

    @classmethod
    def coerce(cls, value: Any) -> Grammar | None:
        """Accept a Grammar, a mapping (e.g. a DictConfig) or None; `type: none` becomes None."""
        if value is None:
            return None
        if not isinstance(value, Grammar):
            if hasattr(value, "items"):
                value = cls(**{str(k): _plain(v) for k, v in value.items()})
            else:
                raise TypeError(f"grammar must be a mapping, got {type(value).__name__}")
        return value if value.active else None

    @classmethod
    def from_response_format(cls, response_format: dict[str, Any]) -> Grammar:
        kind = response_format.get("type")
        if kind == "json_object":
            return cls(type="json_object")
        if kind == "json_schema":
            spec = response_format.get("json_schema", {})
            return cls(
                type="json_schema",
                schema=spec.get("schema", {}),
                name=spec.get("name", "answer"),
                strict=spec.get("strict", True),
            )
        raise ValueError(
            f"unsupported response_format type {kind!r}; valid: json_object, json_schema"
        )


def _plain(value: Any) -> Any:
    """OmegaConf containers to plain Python, without importing OmegaConf eagerly."""
    if hasattr(value, "_metadata"):
        from omegaconf import OmegaConf

        return OmegaConf.to_container(value, resolve=True)
    return value
