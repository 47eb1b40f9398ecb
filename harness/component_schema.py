"""The component-leg oracle: is this a well-formed Deepgram Voice Agent v1 server message?

The twin of `harness.schema` (the `openai` models for the upstream leg): the
`deepgram-sdk` package ships a pydantic model for every message a Voice Agent server
sends (`deepgram.agent.v1.socket_client.V1SocketClientResponse`). A message is checked
against the model(s) of its `type`, strictly (no coercion of ``"5"`` into ``5``), and
keys the model does not declare are reported (the SDK models allow any extra key).

`UserStoppedSpeaking`, `UtteranceEnd` and `Transcript` are not v1 messages, but the
dg_react_agent component consumes them; they are checked against the shapes here.
"""

from __future__ import annotations

import typing
from typing import Any, Final, Literal

import pydantic
from deepgram.agent.v1.socket_client import V1SocketClientResponse
from pydantic import BaseModel, ConfigDict, TypeAdapter

__all__ = [
    "COMPONENT_MESSAGE_TYPES",
    "ComponentSchemaError",
    "validate_component_message",
]


class ComponentSchemaError(ValueError):
    """A frame the component would not understand; the text names type, field and fault."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class _UserStoppedSpeaking(_Strict):
    type: Literal["UserStoppedSpeaking"]


class _UtteranceEnd(_Strict):
    type: Literal["UtteranceEnd"]
    channel: list[int]
    last_word_end: float


class _Transcript(_Strict):
    type: Literal["Transcript"]
    transcript: str
    is_final: bool
    speech_final: bool


def _flatten(union: Any) -> list[type[BaseModel]]:
    found: list[type[BaseModel]] = []
    for member in typing.get_args(union) or (union,):
        if isinstance(member, type) and issubclass(member, BaseModel):
            found.append(member)
        elif typing.get_args(member):
            found += _flatten(member)
    return found


def _type_of(model: type[BaseModel]) -> str:
    (literal,) = typing.get_args(model.model_fields["type"].annotation)
    return str(literal)


def _adapters() -> dict[str, TypeAdapter[Any]]:
    by_type: dict[str, list[type[BaseModel]]] = {}
    for model in _flatten(V1SocketClientResponse):
        by_type.setdefault(_type_of(model), []).append(model)
    for model in (_UserStoppedSpeaking, _UtteranceEnd, _Transcript):
        by_type[_type_of(model)] = [model]
    adapters: dict[str, TypeAdapter[Any]] = {}
    for kind, models in by_type.items():
        shape: Any = models[0] if len(models) == 1 else typing.Union[tuple(models)]  # noqa: UP007
        adapters[kind] = TypeAdapter(shape)
    return adapters


_ADAPTERS: Final = _adapters()
#: Every `type` the component may receive from a Voice Agent server.
COMPONENT_MESSAGE_TYPES: Final = frozenset(_ADAPTERS)


def validate_component_message(message: dict[str, Any]) -> None:
    """Raise ComponentSchemaError unless `message` is a valid server message."""
    kind = message.get("type")
    adapter = _ADAPTERS.get(kind) if isinstance(kind, str) else None
    if adapter is None:
        raise ComponentSchemaError(f"unknown message type {kind!r} for a Voice Agent client")
    try:
        parsed = adapter.validate_python(message, strict=True)
    except pydantic.ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or '(message)'}: {error['msg']}"
            for error in exc.errors()[:5]
        )
        raise ComponentSchemaError(f"invalid {kind}: {problems}") from None
    extras = _extra_keys(parsed)
    if extras:
        raise ComponentSchemaError(f"invalid {kind}: unknown field(s) {', '.join(extras)}")


def _extra_keys(model: Any, where: str = "") -> list[str]:
    """Keys a model accepted without declaring them, at any depth."""
    if isinstance(model, list):
        return [
            key
            for index, entry in enumerate(model)
            for key in _extra_keys(entry, f"{where}[{index}]")
        ]
    if not isinstance(model, BaseModel):
        return []
    found = [f"{where}{key}" for key in (model.model_extra or {})]
    for name in type(model).model_fields:
        found += _extra_keys(getattr(model, name), f"{where}{name}.")
    return found
