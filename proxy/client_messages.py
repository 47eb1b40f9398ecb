"""What the component sends: the Deepgram Voice Agent v1 client messages, typed.

Shapes follow Deepgram's v1 API (the `deepgram-sdk` models are the test oracle). Every
field the proxy reads is declared here and checked by `proxy.validation` before use;
keys we do not model are ignored, as a Deepgram server ignores what it does not know.
Where v1 allows one object or a list of them (fallback think/speak providers), both are
accepted and the first entry is the one applied.

The dataclasses-json mixin gives `to_dict`/`from_dict` for tests and users; parsing
itself goes through `parse_client_frame` (a text frame: its typed message or the
`Rejection` the component is told) and `parse_client_message` (a decoded object), which
refuse wrong shapes instead of coercing them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal

import orjson
from dataclasses_json import DataClassJsonMixin

from .errors import ErrorCode
from .validation import MAX_DEPTH, InvalidMessage, decode, shown
from .wire import Rejection, Unreadable, typed_object

__all__ = [
    "CLIENT_MESSAGE_TYPES",
    "KEEP_ALIVE",
    "Agent",
    "AudioFormat",
    "AudioSettings",
    "ClientMessage",
    "ContextMessage",
    "ForceEndTurn",
    "FunctionCallHistory",
    "FunctionCallResponse",
    "FunctionDefinition",
    "FunctionEndpoint",
    "InjectAgentMessage",
    "InjectUserMessage",
    "InvalidMessage",
    "KeepAlive",
    "Listen",
    "ListenProvider",
    "Settings",
    "Speak",
    "SpeakProvider",
    "Think",
    "ThinkProvider",
    "UpdateListen",
    "UpdatePrompt",
    "UpdateSpeak",
    "UpdateThink",
    "UpdateThinkLive",
    "parse_client_frame",
    "parse_client_message",
]


# ---------------------------------------------------------------- Settings parts


@dataclass(kw_only=True, slots=True)
class AudioFormat(DataClassJsonMixin):
    """`audio.input` / `audio.output`; what is supported is decided in audio_formats.py."""

    encoding: str | None = None
    sample_rate: int | None = None
    bitrate: int | None = None
    container: str | None = None


@dataclass(kw_only=True, slots=True)
class AudioSettings(DataClassJsonMixin):
    input: AudioFormat | None = None
    output: AudioFormat | None = None


@dataclass(kw_only=True, slots=True)
class FunctionEndpoint(DataClassJsonMixin):
    """Where a server-side function is called (optional in v1: no url, no call)."""

    url: str | None = None
    method: str | None = None
    headers: dict[str, str] | None = None


@dataclass(kw_only=True, slots=True)
class FunctionDefinition(DataClassJsonMixin):
    name: str | None = None  # optional in v1; a function without one is not offered
    description: str | None = None
    parameters: dict[str, Any] | None = None
    endpoint: FunctionEndpoint | None = None


@dataclass(kw_only=True, slots=True)
class ThinkProvider(DataClassJsonMixin):
    type: str | None = None
    model: str | None = None
    temperature: float | None = None


@dataclass(kw_only=True, slots=True)
class ProviderEndpoint(DataClassJsonMixin):
    """A custom LLM or TTS endpoint (v1 `think.endpoint`, `speak.endpoint`)."""

    url: str | None = None
    headers: dict[str, str] | None = None


@dataclass(kw_only=True, slots=True)
class Think(DataClassJsonMixin):
    provider: ThinkProvider | None = None
    prompt: str | None = None
    functions: list[FunctionDefinition] | None = None
    endpoint: ProviderEndpoint | None = None
    context_length: str | float | None = None


@dataclass(kw_only=True, slots=True)
class SpeakProvider(DataClassJsonMixin):
    type: str | None = None
    model: str | None = None
    model_id: str | None = None
    # A name for most providers; Cartesia's is an object {mode, id}.
    voice: str | dict[str, Any] | None = None


@dataclass(kw_only=True, slots=True)
class Speak(DataClassJsonMixin):
    provider: SpeakProvider | None = None
    endpoint: ProviderEndpoint | None = None


@dataclass(kw_only=True, slots=True)
class ListenProvider(DataClassJsonMixin):
    type: str | None = None
    version: str | None = None
    model: str | None = None
    language: str | None = None
    language_hints: list[str] | None = None
    keyterms: list[str] | None = None


@dataclass(kw_only=True, slots=True)
class Listen(DataClassJsonMixin):
    provider: ListenProvider | None = None


@dataclass(kw_only=True, slots=True)
class FunctionCallHistory(DataClassJsonMixin):
    id: str
    name: str
    client_side: bool | None = None
    arguments: str = ""
    response: str = ""


@dataclass(kw_only=True, slots=True)
class ContextMessage(DataClassJsonMixin):
    """One `agent.context.messages[]` entry: a text turn or a record of function calls."""

    type: str | None = None
    role: Literal["user", "assistant"] | None = None
    content: str | None = None
    function_calls: list[FunctionCallHistory] | None = None

    def __post_init__(self) -> None:
        if self.function_calls is None and (self.role is None or self.content is None):
            raise InvalidMessage(
                "agent.context.messages[] entries need role and content, or function_calls"
            )


@dataclass(kw_only=True, slots=True)
class Context(DataClassJsonMixin):
    messages: list[ContextMessage] | None = None


@dataclass(kw_only=True, slots=True)
class Flags(DataClassJsonMixin):
    history: bool | None = None


@dataclass(kw_only=True, slots=True)
class Agent(DataClassJsonMixin):
    language: str | None = None
    listen: Listen | None = None
    think: Think | list[Think] | None = None
    speak: Speak | list[Speak] | None = None
    greeting: str | None = None
    context: Context | None = None
    think_live: dict[str, Any] | None = None


# ---------------------------------------------------------------- messages


@dataclass(kw_only=True, slots=True)
class Settings(DataClassJsonMixin):
    type: Literal["Settings"] = "Settings"
    audio: AudioSettings | None = None
    # v1 also allows the id of an agent stored at Deepgram (a string): not resolvable here.
    agent: Agent | str | None = None
    flags: Flags | None = None
    tags: list[str] | None = None
    experimental: bool | None = None
    mip_opt_out: bool | None = None

    @property
    def agent_config(self) -> Agent:
        return self.agent if isinstance(self.agent, Agent) else Agent()

    @property
    def think(self) -> Think | None:
        primary: Think | None = first(self.agent_config.think)
        return primary

    @property
    def speak(self) -> Speak | None:
        primary: Speak | None = first(self.agent_config.speak)
        return primary

    @property
    def context_messages(self) -> list[ContextMessage]:
        context = self.agent_config.context
        return (context.messages or []) if context else []

    @property
    def history_enabled(self) -> bool:
        return bool(self.flags and self.flags.history)


@dataclass(kw_only=True, slots=True)
class InjectUserMessage(DataClassJsonMixin):
    type: Literal["InjectUserMessage"] = "InjectUserMessage"
    content: str


@dataclass(kw_only=True, slots=True)
class InjectAgentMessage(DataClassJsonMixin):
    type: Literal["InjectAgentMessage"] = "InjectAgentMessage"
    message: str | None = None
    content: str | None = None  # the older name of `message`
    behavior: Literal["default", "queue", "interrupt"] | None = None
    is_dynamic: bool | None = None

    def __post_init__(self) -> None:
        if self.message is None and self.content is None and not self.is_dynamic:
            raise InvalidMessage("InjectAgentMessage.message is required")

    @property
    def text(self) -> str:
        return self.message if self.message is not None else (self.content or "")


@dataclass(kw_only=True, slots=True)
class FunctionCallResponse(DataClassJsonMixin):
    type: Literal["FunctionCallResponse"] = "FunctionCallResponse"
    id: str | None = None  # optional in v1: then the pending call of that name is meant
    name: str = ""
    content: str


@dataclass(kw_only=True, slots=True)
class UpdatePrompt(DataClassJsonMixin):
    type: Literal["UpdatePrompt"] = "UpdatePrompt"
    prompt: str


@dataclass(kw_only=True, slots=True)
class UpdateSpeak(DataClassJsonMixin):
    type: Literal["UpdateSpeak"] = "UpdateSpeak"
    speak: Speak | list[Speak]


@dataclass(kw_only=True, slots=True)
class UpdateThink(DataClassJsonMixin):
    type: Literal["UpdateThink"] = "UpdateThink"
    think: Think | list[Think]


@dataclass(kw_only=True, slots=True)
class UpdateThinkLive(DataClassJsonMixin):
    type: Literal["UpdateThink_Live"] = "UpdateThink_Live"
    think_live: dict[str, Any] | None = None


@dataclass(kw_only=True, slots=True)
class UpdateListen(DataClassJsonMixin):
    type: Literal["UpdateListen"] = "UpdateListen"
    listen: Listen


@dataclass(kw_only=True, slots=True)
class ForceEndTurn(DataClassJsonMixin):
    type: Literal["ForceEndTurn"] = "ForceEndTurn"


@dataclass(kw_only=True, slots=True)
class KeepAlive(DataClassJsonMixin):
    type: Literal["KeepAlive"] = "KeepAlive"


ClientMessage = (
    Settings
    | InjectUserMessage
    | InjectAgentMessage
    | FunctionCallResponse
    | UpdatePrompt
    | UpdateSpeak
    | UpdateThink
    | UpdateThinkLive
    | UpdateListen
    | ForceEndTurn
    | KeepAlive
)

_BY_TYPE: dict[str, type[Any]] = {
    "Settings": Settings,
    "InjectUserMessage": InjectUserMessage,
    "InjectAgentMessage": InjectAgentMessage,
    "FunctionCallResponse": FunctionCallResponse,
    "UpdatePrompt": UpdatePrompt,
    "UpdateSpeak": UpdateSpeak,
    "UpdateThink": UpdateThink,
    "UpdateThink_Live": UpdateThinkLive,
    "UpdateListen": UpdateListen,
    "ForceEndTurn": ForceEndTurn,
    "KeepAlive": KeepAlive,
}
#: Every message type a component may send.
CLIENT_MESSAGE_TYPES = frozenset(_BY_TYPE)


#: Every KeepAlive frame parses to this one message: it carries nothing to decode.
KEEP_ALIVE: Final = KeepAlive()

_ALLOWED_TYPES = ", ".join(sorted(CLIENT_MESSAGE_TYPES))
_UNREADABLE: Final = {
    Unreadable.NOT_JSON: Rejection(ErrorCode.INVALID_JSON, "message is not valid JSON"),
    Unreadable.TOO_DEEP: Rejection(
        ErrorCode.INVALID_MESSAGE, f"message nests deeper than {MAX_DEPTH} levels"
    ),
    Unreadable.UNTYPED: Rejection(
        ErrorCode.DISALLOWED_CLIENT_MESSAGE_TYPE,
        f"unknown message type missing or not a string; allowed: {_ALLOWED_TYPES}",
    ),
}


def parse_client_frame(text: str) -> ClientMessage | Rejection:
    """A text frame from the component: its typed message, or why it is refused (the
    frame's size and the rates are the session's to judge, before this)."""
    data = typed_object(text)
    if isinstance(data, Unreadable):
        return _UNREADABLE[data]
    kind = data["type"]
    if kind not in _BY_TYPE:
        return Rejection(
            ErrorCode.DISALLOWED_CLIENT_MESSAGE_TYPE,
            f"unknown message type {shown(kind)}; allowed: {_ALLOWED_TYPES}",
        )
    if kind == "KeepAlive":
        return KEEP_ALIVE
    try:
        return parse_client_message(data)
    except InvalidMessage as exc:
        return Rejection(ErrorCode.INVALID_MESSAGE, str(exc))


def parse_client_message(data: dict[str, Any]) -> ClientMessage:
    """The typed message for a decoded JSON object whose `type` is a known string.

    Raises KeyError for an unknown type and InvalidMessage for a malformed one.
    """
    kind: str = data["type"]
    cls = _BY_TYPE[kind]
    if cls is FunctionCallResponse and type(data.get("content")) in (dict, list, int, float, bool):
        # Handlers often return objects; the model wants the output as a string.
        try:
            data = {**data, "content": orjson.dumps(data["content"]).decode()}
        except orjson.JSONEncodeError:  # nested past what orjson writes
            raise InvalidMessage("FunctionCallResponse.content cannot be encoded") from None
    message: ClientMessage = decode(cls, data, kind)
    return message


def first(value: Any) -> Any:
    """The primary entry of a v1 "one or a list of fallbacks" field."""
    if isinstance(value, list):
        return value[0] if value else None
    return value
