"""The component side of the wire: Deepgram Voice Agent protocol messages, typed.

Inbound messages (component -> proxy) are parsed with dataclasses-json, which drops
unknown keys (the component sends more than we use). Outbound messages are plain
dataclasses that orjson serialises natively, so the hot path never pays for
dataclasses-json's encoder; `to_dict`/`from_dict` stay available for tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, is_dataclass
from functools import cache
from types import UnionType
from typing import Any, Union, get_args, get_origin, get_type_hints

import orjson
from dataclasses_json import DataClassJsonMixin, Undefined
from dataclasses_json import config as json_config

__all__ = [
    "INBOUND_TYPES",
    "AgentAudioDone",
    "AgentStartedSpeaking",
    "AgentThinking",
    "ClientMessage",
    "ContextMessage",
    "ConversationText",
    "Error",
    "FunctionCallRequest",
    "FunctionCallResponse",
    "FunctionDefinition",
    "FunctionRequest",
    "InjectAgentMessage",
    "InjectUserMessage",
    "InvalidMessage",
    "KeepAlive",
    "PromptUpdated",
    "ServerMessage",
    "Settings",
    "SettingsApplied",
    "SpeakUpdated",
    "Transcript",
    "UpdatePrompt",
    "UpdateSpeak",
    "UserStartedSpeaking",
    "UserStoppedSpeaking",
    "UtteranceEnd",
    "Welcome",
    "encode",
    "parse_client_message",
]


class InvalidMessage(ValueError):
    """A component message with a known type but fields of the wrong shape."""


class _Lenient(DataClassJsonMixin):
    """Inbound base: ignore keys we do not model instead of failing on them."""

    dataclass_json_config = json_config(undefined=Undefined.EXCLUDE)["dataclasses_json"]


def _require(value: object, kind: type | tuple[type, ...], where: str) -> None:
    if not isinstance(value, kind):
        raise InvalidMessage(f"{where} has the wrong type ({type(value).__name__})")


# ---------------------------------------------------------------- Settings (nested)


@dataclass(kw_only=True)
class AudioFormat(_Lenient):
    encoding: str = "linear16"
    sample_rate: int = 0  # 0: the side's default (16000 in, 24000 out)

    def __post_init__(self) -> None:
        _require(self.sample_rate, int, "audio sample_rate")
        if self.sample_rate < 0 or self.sample_rate > 192_000:
            raise InvalidMessage(f"audio sample_rate {self.sample_rate} is out of range")


@dataclass(kw_only=True)
class AudioSettings(_Lenient):
    input: AudioFormat | None = None
    output: AudioFormat | None = None


@dataclass(kw_only=True)
class Provider(_Lenient):
    type: str | None = None
    model: str | None = None
    voice: str | None = None


@dataclass(kw_only=True)
class FunctionDefinition(_Lenient):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.parameters is not None:
            _require(self.parameters, dict, f"function {self.name} parameters")


@dataclass(kw_only=True)
class Think(_Lenient):
    provider: Provider | None = None
    prompt: str | None = None
    functions: list[FunctionDefinition] = field(default_factory=list)


@dataclass(kw_only=True)
class Speak(_Lenient):
    provider: Provider | None = None


@dataclass(kw_only=True)
class ContextMessage(_Lenient):
    """One `agent.context.messages[]` entry; only text turns are replayed upstream."""

    type: str = "History"
    role: str | None = None
    content: str | None = None

    def __post_init__(self) -> None:
        if self.role is not None and self.role not in ("user", "assistant"):
            raise InvalidMessage(f"context message role must be user or assistant, not {self.role}")

    @property
    def is_text_turn(self) -> bool:
        return self.role is not None and self.content is not None


@dataclass(kw_only=True)
class Context(_Lenient):
    messages: list[ContextMessage] = field(default_factory=list)


@dataclass(kw_only=True)
class Agent(_Lenient):
    think: Think | None = None
    speak: Speak | None = None
    greeting: str | None = None
    context: Context | None = None


# ---------------------------------------------------------------- inbound messages


@dataclass(kw_only=True)
class Settings(_Lenient):
    type: str = "Settings"
    audio: AudioSettings | None = None
    agent: Agent = field(default_factory=Agent)

    @property
    def input_sample_rate(self) -> int:
        fmt = self.audio.input if self.audio else None
        return fmt.sample_rate if fmt and fmt.sample_rate else 16_000

    @property
    def output_sample_rate(self) -> int:
        fmt = self.audio.output if self.audio else None
        return fmt.sample_rate if fmt and fmt.sample_rate else 24_000

    @property
    def context_messages(self) -> list[ContextMessage]:
        return self.agent.context.messages if self.agent.context else []


@dataclass(kw_only=True)
class InjectUserMessage(_Lenient):
    type: str = "InjectUserMessage"
    content: str


@dataclass(kw_only=True)
class InjectAgentMessage(_Lenient):
    type: str = "InjectAgentMessage"
    message: str | None = None
    content: str | None = None  # the older name of `message`

    def __post_init__(self) -> None:
        _require(self.text, str, "InjectAgentMessage.message")

    @property
    def text(self) -> str | None:
        return self.message if self.message is not None else self.content


@dataclass(kw_only=True)
class FunctionCallResponse(_Lenient):
    type: str = "FunctionCallResponse"
    id: str
    name: str = ""
    content: str = ""


@dataclass(kw_only=True)
class UpdatePrompt(_Lenient):
    type: str = "UpdatePrompt"
    prompt: str


@dataclass(kw_only=True)
class UpdateSpeak(_Lenient):
    type: str = "UpdateSpeak"
    speak: Speak


@dataclass(kw_only=True)
class KeepAlive(_Lenient):
    type: str = "KeepAlive"


ClientMessage = (
    Settings
    | InjectUserMessage
    | InjectAgentMessage
    | FunctionCallResponse
    | UpdatePrompt
    | UpdateSpeak
    | KeepAlive
)

_INBOUND: dict[str, type[_Lenient]] = {
    "Settings": Settings,
    "InjectUserMessage": InjectUserMessage,
    "InjectAgentMessage": InjectAgentMessage,
    "FunctionCallResponse": FunctionCallResponse,
    "UpdatePrompt": UpdatePrompt,
    "UpdateSpeak": UpdateSpeak,
    "KeepAlive": KeepAlive,
}
INBOUND_TYPES = frozenset(_INBOUND)


def parse_client_message(data: dict[str, Any]) -> ClientMessage:
    """Build the typed message for a decoded JSON object whose `type` is known.

    Raises KeyError for an unknown type and InvalidMessage for a malformed one.
    """
    cls = _INBOUND[data["type"]]
    if cls is FunctionCallResponse and not isinstance(data.get("content", ""), str):
        # Handlers often return objects; the model wants the output as a string.
        data = {**data, "content": orjson.dumps(data["content"]).decode()}
    _check_shapes(cls, data, data["type"])
    try:
        if _is_flat(cls):  # the per-turn messages: 5x cheaper than from_dict, same result
            message = cls(**{name: data[name] for name in _field_names(cls) if name in data})
        else:
            message = cls.from_dict(data)
    except InvalidMessage:
        raise
    except KeyError as missing:
        raise InvalidMessage(f"{data['type']} is missing the field {missing}") from None
    except (TypeError, ValueError, AttributeError) as exc:
        raise InvalidMessage(f"{data['type']} is malformed: {exc}") from None
    return message  # type: ignore[return-value]


@cache
def _hints(cls: type) -> dict[str, Any]:
    return get_type_hints(cls)


@cache
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(spec.name for spec in fields(cls))


@cache
def _is_flat(cls: type) -> bool:
    """Only str/int/bool fields: nothing for dataclasses-json to decode."""
    primitives = (str, int, bool, type(None))
    hints = _hints(cls)
    return all(
        all(option in primitives for option in (get_args(hints[name]) or (hints[name],)))
        for name in _field_names(cls)
    )


def _check_shapes(cls: type, data: dict[str, Any], where: str) -> None:
    """dataclasses-json turns 5 or {} into a string silently; refuse wrong shapes instead."""
    hints = _hints(cls)
    for spec in fields(cls):
        value = data.get(spec.name)
        if value is None:
            continue
        path = f"{where}.{spec.name}"
        hint = hints[spec.name]
        options = get_args(hint) if get_origin(hint) in (Union, UnionType) else (hint,)
        nested = next((o for o in options if isinstance(o, type) and is_dataclass(o)), None)
        if str in options and not isinstance(value, str):
            raise InvalidMessage(f"{path} must be a string")
        if nested is not None:
            if not isinstance(value, dict):
                raise InvalidMessage(f"{path} must be an object")
            _check_shapes(nested, value, path)
        elif get_origin(hint) is list:
            (element,) = get_args(hint)
            if not isinstance(value, list):
                raise InvalidMessage(f"{path} must be a list")
            for index, entry in enumerate(value):
                if isinstance(element, type) and is_dataclass(element):
                    if not isinstance(entry, dict):
                        raise InvalidMessage(f"{path}[{index}] must be an object")
                    _check_shapes(element, entry, f"{path}[{index}]")


# ---------------------------------------------------------------- outbound messages


@dataclass(kw_only=True, slots=True)
class Welcome(DataClassJsonMixin):
    type: str = "Welcome"
    request_id: str


@dataclass(kw_only=True, slots=True)
class SettingsApplied(DataClassJsonMixin):
    type: str = "SettingsApplied"


@dataclass(kw_only=True, slots=True)
class PromptUpdated(DataClassJsonMixin):
    type: str = "PromptUpdated"


@dataclass(kw_only=True, slots=True)
class SpeakUpdated(DataClassJsonMixin):
    type: str = "SpeakUpdated"


@dataclass(kw_only=True, slots=True)
class ConversationText(DataClassJsonMixin):
    type: str = "ConversationText"
    role: str
    content: str


@dataclass(kw_only=True, slots=True)
class AgentThinking(DataClassJsonMixin):
    type: str = "AgentThinking"
    content: str = ""


@dataclass(kw_only=True, slots=True)
class AgentStartedSpeaking(DataClassJsonMixin):
    type: str = "AgentStartedSpeaking"
    total_latency: float
    tts_latency: float
    ttt_latency: float


@dataclass(kw_only=True, slots=True)
class AgentAudioDone(DataClassJsonMixin):
    type: str = "AgentAudioDone"


@dataclass(kw_only=True, slots=True)
class FunctionRequest(DataClassJsonMixin):
    id: str
    name: str
    arguments: str
    client_side: bool = True


@dataclass(kw_only=True, slots=True)
class FunctionCallRequest(DataClassJsonMixin):
    type: str = "FunctionCallRequest"
    functions: list[FunctionRequest]


@dataclass(kw_only=True, slots=True)
class UserStartedSpeaking(DataClassJsonMixin):
    type: str = "UserStartedSpeaking"


@dataclass(kw_only=True, slots=True)
class UserStoppedSpeaking(DataClassJsonMixin):
    type: str = "UserStoppedSpeaking"


@dataclass(kw_only=True, slots=True)
class UtteranceEnd(DataClassJsonMixin):
    type: str = "UtteranceEnd"
    channel: list[int] = field(default_factory=lambda: [0, 1])
    last_word_end: float


@dataclass(kw_only=True, slots=True)
class Transcript(DataClassJsonMixin):
    """User speech as text: interim (`is_final` false) while it streams, then final."""

    type: str = "Transcript"
    transcript: str
    is_final: bool
    speech_final: bool


@dataclass(kw_only=True, slots=True)
class Error(DataClassJsonMixin):
    type: str = "Error"
    description: str
    code: str


ServerMessage = (
    Welcome
    | SettingsApplied
    | PromptUpdated
    | SpeakUpdated
    | ConversationText
    | AgentThinking
    | AgentStartedSpeaking
    | AgentAudioDone
    | FunctionCallRequest
    | UserStartedSpeaking
    | UserStoppedSpeaking
    | UtteranceEnd
    | Transcript
    | Error
)


def encode(message: ServerMessage) -> bytes:
    """UTF-8 JSON for a text frame (orjson serialises dataclasses natively)."""
    return orjson.dumps(message)
