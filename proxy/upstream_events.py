"""The OpenAI Realtime (GA) server events the proxy acts on, typed.

Only the fields the session reads are declared; `proxy.validation` checks them before
the session sees the event, so a mistyped event from a misbehaving upstream is dropped
at the edge instead of failing deep inside a handler. Events not listed in
`UPSTREAM_EVENTS` are ignored without being checked (the API grows; new events are fine).

A field is required only when the session cannot act without it; a field it can do
without has a default, so an event that lacks it (the service adds and renames fields
over time) is still handled. A field that is present is type-checked all the same.

`parse_upstream_frame` turns one frame into its typed event, an `Ignored` (a type the
proxy does not act on) or the `Rejection` the client is told.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from .errors import ErrorCode
from .validation import MAX_DEPTH, InvalidMessage, decoder
from .wire import Rejection, Unreadable, typed_object

__all__ = [
    "IGNORED_PREFIXES",
    "UPSTREAM_EVENTS",
    "AudioCommitted",
    "AudioDelta",
    "AudioDone",
    "ErrorDetail",
    "ErrorEvent",
    "FunctionArgumentsDone",
    "Ignored",
    "Item",
    "ItemDone",
    "ItemPart",
    "ResponseCreated",
    "ResponseDone",
    "ResponseInfo",
    "SessionCreated",
    "SessionInfo",
    "SessionUpdated",
    "SpeechStarted",
    "SpeechStopped",
    "StatusDetails",
    "StatusError",
    "TextDone",
    "TranscriptDone",
    "TranscriptionCompleted",
    "TranscriptionDelta",
    "UpstreamEvent",
    "parse_upstream_frame",
]


@dataclass(slots=True)
class SessionInfo:
    id: str | None = None
    expires_at: float | None = None  # epoch seconds: the service ends the session then


@dataclass(slots=True)
class SessionCreated:
    session: SessionInfo | None = None


@dataclass(slots=True)
class SessionUpdated:
    """Only its arrival matters: it answers the oldest `session.update` we sent."""


@dataclass(slots=True)
class StatusError:
    type: str | None = None
    code: str | None = None
    message: str | None = None


@dataclass(slots=True)
class StatusDetails:
    """Why a response ended other than `completed` (`failed`, `incomplete`, `cancelled`)."""

    type: str | None = None
    reason: str | None = None
    error: StatusError | None = None


@dataclass(slots=True)
class ResponseInfo:
    id: str
    status: str | None = None
    # A string for a response in the default conversation; null (per OpenAI's reference)
    # for an out-of-band one (`conversation: "none"`).
    conversation_id: str | None = None
    metadata: dict[str, Any] | None = None
    status_details: StatusDetails | None = None
    output: list[Item] | None = None  # on response.done: what the response produced


@dataclass(slots=True)
class ResponseCreated:
    response: ResponseInfo


@dataclass(slots=True)
class ResponseDone:
    response: ResponseInfo


@dataclass(slots=True)
class AudioDelta:
    item_id: str
    delta: str


@dataclass(slots=True)
class AudioDone:
    item_id: str
    response_id: str | None = None  # without it, the latest response is meant


@dataclass(slots=True)
class TranscriptDone:
    """`response.output_audio_transcript.done`: what the agent said."""

    item_id: str
    transcript: str
    response_id: str | None = None  # without it, the active response is meant


@dataclass(slots=True)
class TextDone:
    """`response.output_text.done`: what the agent wrote (a text-only session)."""

    item_id: str
    text: str
    response_id: str | None = None


@dataclass(slots=True)
class ItemPart:
    text: str | None = None
    transcript: str | None = None


@dataclass(slots=True)
class Item:
    type: str
    id: str | None = None
    role: str | None = None
    content: list[ItemPart] | None = None
    # A function_call item (in response.done's output): the call, should its
    # response.function_call_arguments.done not have come.
    call_id: str | None = None
    name: str | None = None
    arguments: str | None = None


@dataclass(slots=True)
class ItemDone:
    """`conversation.item.added` / `.done`: an item, which may already hold an
    assistant's text."""

    item: Item


@dataclass(slots=True)
class FunctionArgumentsDone:
    call_id: str
    name: str
    arguments: str
    response_id: str | None = None  # without it, the active response is meant


@dataclass(slots=True)
class SpeechStarted:
    """Only its arrival matters: the user started speaking."""


@dataclass(slots=True)
class SpeechStopped:
    audio_end_ms: int  # UtteranceEnd's last_word_end


@dataclass(slots=True)
class AudioCommitted:
    """The input buffer became a user item: whatever VAD said, the user's turn is over."""

    item_id: str | None = None


@dataclass(slots=True)
class TranscriptionDelta:
    item_id: str
    delta: str | None = None


@dataclass(slots=True)
class TranscriptionCompleted:
    transcript: str
    item_id: str | None = None  # which spoken turn (what a renewal carries over)


@dataclass(slots=True)
class ErrorDetail:
    type: str | None = None
    code: str | None = None
    message: str | None = None
    param: str | None = None
    event_id: str | None = None


@dataclass(slots=True)
class ErrorEvent:
    error: ErrorDetail


UpstreamEvent = (
    SessionCreated
    | SessionUpdated
    | ResponseCreated
    | ResponseDone
    | AudioDelta
    | AudioDone
    | TranscriptDone
    | TextDone
    | ItemDone
    | FunctionArgumentsDone
    | SpeechStarted
    | SpeechStopped
    | AudioCommitted
    | TranscriptionDelta
    | TranscriptionCompleted
    | ErrorEvent
)

#: The event types the proxy acts on, and the class each one is checked against.
UPSTREAM_EVENTS: dict[str, type[Any]] = {
    "session.created": SessionCreated,
    "session.updated": SessionUpdated,
    "response.created": ResponseCreated,
    "response.done": ResponseDone,
    "response.output_audio.delta": AudioDelta,
    "response.output_audio.done": AudioDone,
    "response.output_audio_transcript.done": TranscriptDone,
    "response.output_text.done": TextDone,
    "conversation.item.added": ItemDone,
    "conversation.item.done": ItemDone,
    "response.function_call_arguments.done": FunctionArgumentsDone,
    "input_audio_buffer.speech_started": SpeechStarted,
    "input_audio_buffer.speech_stopped": SpeechStopped,
    "input_audio_buffer.committed": AudioCommitted,
    "conversation.item.input_audio_transcription.delta": TranscriptionDelta,
    "conversation.item.input_audio_transcription.completed": TranscriptionCompleted,
    "error": ErrorEvent,
}

#: Frames the proxy skips without decoding: events it never acts on, as the API writes
#: them (`{"type":"<type>",` first). Most of a turn's events are these (every token of
#: the transcript is a delta; the proxy reports the text when it is done), so a prefix
#: test spares them the JSON decoder. A frame written any other way is decoded and judged
#: in full; only an event of these types with broken JSON after its type goes unreported.
IGNORED_PREFIXES: Final = tuple(
    b'{"type":"' + kind.encode() + b'",'
    for kind in (
        "response.output_audio_transcript.delta",
        "response.output_text.delta",
        "response.function_call_arguments.delta",
        "response.output_item.added",
        "response.output_item.done",  # its item comes again in conversation.item.done
        "response.content_part.added",
        "response.content_part.done",
        "rate_limits.updated",
        "conversation.item.input_audio_transcription.segment",
    )
)
assert not any(prefix[9:-2].decode() in UPSTREAM_EVENTS for prefix in IGNORED_PREFIXES)


@dataclass(frozen=True, slots=True)
class Ignored:
    """A well-formed event of a type the proxy does not act on (the API grows)."""

    type: str


# Compiled once: an audio delta, many times a second, costs one table lookup.
_DECODERS: Final[dict[str, Callable[[Any], UpstreamEvent]]] = {
    kind: decoder(model, kind) for kind, model in UPSTREAM_EVENTS.items()
}
_NOT_AN_EVENT: Final = Rejection(
    ErrorCode.UNMAPPED_UPSTREAM_EVENT,
    "upstream sent a non-event frame",
    log="upstream sent a frame that is not a JSON event; dropped",
)
_UNREADABLE: Final = {
    Unreadable.NOT_JSON: _NOT_AN_EVENT,
    Unreadable.TOO_DEEP: Rejection(
        ErrorCode.UNMAPPED_UPSTREAM_EVENT,
        "upstream sent an event nested too deep",
        log=f"upstream event nested deeper than {MAX_DEPTH} levels; dropped",
    ),
    Unreadable.UNTYPED: _NOT_AN_EVENT,
}


def parse_upstream_frame(frame: str | bytes | bytearray) -> UpstreamEvent | Ignored | Rejection:
    """A frame from upstream: its typed event, `Ignored`, or why it is refused (an
    upstream that sends it is broken: the rejection says what to log)."""
    data = typed_object(frame)
    if isinstance(data, Unreadable):
        return _UNREADABLE[data]
    kind: str = data["type"]
    decode_event = _DECODERS.get(kind)
    if decode_event is None:
        return Ignored(kind)
    try:
        return decode_event(data)
    except InvalidMessage as exc:
        return Rejection(
            ErrorCode.UNMAPPED_UPSTREAM_EVENT,
            f"malformed upstream event: {exc}",
            log=f"upstream sent a malformed event; dropped: {exc}",
        )
