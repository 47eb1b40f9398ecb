"""What the proxy sends the component: Deepgram Voice Agent v1 server messages.

Plain dataclasses that orjson serialises natively, so the hot path never pays for
dataclasses-json's encoder; the mixin keeps `to_dict`/`from_dict` for tests. Every
message here validates against the `deepgram-sdk` model of its `type`, except
`UserStoppedSpeaking`, `UtteranceEnd` and `Transcript`, which v1 lacks but the
dg_react_agent component consumes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson
from dataclasses_json import DataClassJsonMixin

__all__ = [
    "PROXY_OWNED",
    "AgentAudioDone",
    "AgentStartedSpeaking",
    "AgentThinking",
    "ConversationText",
    "Error",
    "FunctionCallCancelled",
    "FunctionCallRequest",
    "FunctionCallResponse",
    "FunctionCallResult",
    "FunctionRef",
    "FunctionRequest",
    "History",
    "InjectionRefused",
    "LatencyReport",
    "ListenUpdated",
    "PromptUpdated",
    "ServerMessage",
    "SettingsApplied",
    "SpeakUpdated",
    "ThinkUpdated",
    "Transcript",
    "UserStartedSpeaking",
    "UserStoppedSpeaking",
    "UtteranceEnd",
    "Warning",
    "Welcome",
    "encode",
]


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
class ThinkUpdated(DataClassJsonMixin):
    type: str = "ThinkUpdated"


@dataclass(kw_only=True, slots=True)
class ListenUpdated(DataClassJsonMixin):
    type: str = "ListenUpdated"


@dataclass(kw_only=True, slots=True)
class ConversationText(DataClassJsonMixin):
    type: str = "ConversationText"
    role: str
    content: str


@dataclass(kw_only=True, slots=True)
class History(DataClassJsonMixin):
    """A finished text turn, as Deepgram reports it when `flags.history` is on."""

    type: str = "History"
    role: str
    content: str


@dataclass(kw_only=True, slots=True)
class FunctionCallResult(DataClassJsonMixin):
    id: str
    name: str
    client_side: bool
    arguments: str
    response: str


@dataclass(kw_only=True, slots=True)
class FunctionCallHistory(DataClassJsonMixin):
    """A finished function call, as a `History` message."""

    type: str = "History"
    function_calls: list[FunctionCallResult]


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
class LatencyReport(DataClassJsonMixin):
    """The proxy's own measurements of one agent turn, in seconds."""

    type: str = "LatencyReport"
    total_latency: float
    ttt_token_latency: float
    tts_latency: float


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
class FunctionCallResponse(DataClassJsonMixin):
    """A server-side function's result, told to the client as Deepgram does."""

    type: str = "FunctionCallResponse"
    id: str
    name: str
    content: str


@dataclass(kw_only=True, slots=True)
class FunctionRef(DataClassJsonMixin):
    id: str
    name: str


@dataclass(kw_only=True, slots=True)
class FunctionCallCancelled(DataClassJsonMixin):
    type: str = "FunctionCallCancelled"
    functions: list[FunctionRef]


@dataclass(kw_only=True, slots=True)
class InjectionRefused(DataClassJsonMixin):
    type: str = "InjectionRefused"
    message: str


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
class Warning(DataClassJsonMixin):
    type: str = "Warning"
    description: str
    code: str


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
    | ThinkUpdated
    | ListenUpdated
    | ConversationText
    | History
    | FunctionCallHistory
    | AgentThinking
    | AgentStartedSpeaking
    | AgentAudioDone
    | LatencyReport
    | FunctionCallRequest
    | FunctionCallResponse
    | FunctionCallCancelled
    | InjectionRefused
    | UserStartedSpeaking
    | UserStoppedSpeaking
    | UtteranceEnd
    | Transcript
    | Warning
    | Error
)


#: Messages whose every field the proxy sets from its own constants and numbers: no text
#: a peer sent can be in them, so there is no secret to scrub. Any message with a string
#: that came from upstream or the client (ids, texts, codes, descriptions) is not here.
PROXY_OWNED: frozenset[type[ServerMessage]] = frozenset(
    {
        SettingsApplied,
        PromptUpdated,
        SpeakUpdated,
        ThinkUpdated,
        ListenUpdated,
        AgentThinking,
        AgentStartedSpeaking,
        AgentAudioDone,
        LatencyReport,
        UserStartedSpeaking,
        UserStoppedSpeaking,
        UtteranceEnd,
    }
)


def encode(message: ServerMessage) -> bytes:
    """UTF-8 JSON for a text frame (orjson serialises dataclasses natively)."""
    return orjson.dumps(message)
