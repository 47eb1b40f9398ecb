"""The one vocabulary of the mock: steps.

A rule holds steps (`on_user_text("hi").stall(200).reply_with_audio("Hello")` is
``[Sleep(0.2), ReplyAudio("Hello")]``), a responder returns steps, and the service model
(`service.py`) turns what a client sent into steps that the connection carries out.
Steps are data: this module imports nothing of the mock that runs them (the runtime
instructions the service adds, such as starting a response, live with the response
runner in `responses.py`).

Two kinds share the family:

* **wire steps** the connection carries out as they are: send an event, send a raw
  frame, pause, close, refuse the handshake;
* **content steps** the service model first turns into events, because their form depends
  on the session: a reply (audio + transcript, or text), a function call, an `error`
  naming the client event that caused it, the transcript of a spoken turn, or a
  responder to call.

Also here: ids, JSON copies and the `error` event every step builder needs.
"""

from __future__ import annotations

import itertools
import random
import string
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

import orjson

from .turn import Turn

__all__ = [
    "OUTPUT_STEPS",
    "PASSIVE_STEPS",
    "SERVER_ERROR_MESSAGE",
    "CallFunction",
    "CloseConnection",
    "EndResponse",
    "RejectHandshake",
    "ReplyAudio",
    "ReplyOnlyInResponseDone",
    "ReplyText",
    "Respond",
    "Responder",
    "ResponderResult",
    "RuleStep",
    "Send",
    "SendError",
    "SendRaw",
    "Sleep",
    "TranscribeAs",
    "copy_json",
    "error_event",
    "new_id",
]


# --- wire steps ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Send:
    """Send this server event. It is copied, validated against the schema and given an
    `event_id` when it goes out."""

    event: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class SendRaw:
    """Send this frame as is, never validated (a fault: text for str, binary for bytes)."""

    data: str | bytes


@dataclass(frozen=True, slots=True)
class Sleep:
    """Pause before the next step (or the default handling)."""

    seconds: float

    def __post_init__(self) -> None:
        if self.seconds < 0:
            raise ValueError("a pause needs a duration >= 0")


@dataclass(frozen=True, slots=True)
class CloseConnection:
    """Close the connection with this code, after what is already queued."""

    code: int = 1011
    reason: str = ""


@dataclass(frozen=True, slots=True)
class RejectHandshake:
    """Refuse the WebSocket upgrade with this HTTP status (on_connect rules only)."""

    status: int = 401


# --- content steps -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReplyAudio:
    """An assistant message saying `text`: audio + transcript in an audio session (or
    response), text otherwise. Audio comes in `chunk_ms` pieces; with the tone voice
    there are `chunks` of them, with the speech voice as many as the speech needs.
    `delta_bytes` cuts the same audio into deltas of that many bytes instead (odd sizes
    too: the real service sends odd-length deltas)."""

    text: str
    chunks: int = 3
    chunk_ms: int = 100
    chunk_interval_ms: int = 0
    stop_after_events: int | None = None
    delta_bytes: int | None = None

    def __post_init__(self) -> None:
        if self.chunks < 1 or self.chunk_ms < 1 or self.chunk_interval_ms < 0:
            raise ValueError("need chunks >= 1, chunk_ms >= 1 and chunk_interval_ms >= 0")
        if self.delta_bytes is not None and self.delta_bytes < 1:
            raise ValueError("delta_bytes counts the bytes of each audio delta: use N >= 1")
        _check_stop_after(self.stop_after_events)


@dataclass(frozen=True, slots=True)
class ReplyText:
    """An assistant message saying `text` in the form the session (or
    `output_modalities`, as a response.create may ask) chooses; default audio pacing."""

    text: str
    stop_after_events: int | None = None
    output_modalities: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        _check_stop_after(self.stop_after_events)
        modalities = self.output_modalities
        if modalities is not None and (len(set(modalities)) != 1 or modalities[0] not in _FORMS):
            raise ValueError("output_modalities is ['text'] or ['audio'], as on the real API")


@dataclass(frozen=True, slots=True)
class ReplyOnlyInResponseDone:
    """An assistant message saying `text` that appears only in `response.done`'s
    `output`: no deltas, no `.done` of a part or transcript, no item events (the real
    service was recorded doing this)."""

    text: str


@dataclass(frozen=True, slots=True)
class EndResponse:
    """End the response here with a terminal `status` other than completed, as the
    real service does: `failed` (with `status_details.error`), `incomplete` (`reason`
    `max_output_tokens` or `content_filter`) or `cancelled` (`reason` `turn_detected`
    or `client_cancelled`). Items in progress end `incomplete`."""

    status: str = "failed"
    reason: str | None = None
    error_type: str = "server_error"
    error_code: str | None = None

    def __post_init__(self) -> None:
        reasons = _END_REASONS.get(self.status)
        if reasons is None:
            raise ValueError(f"status is one of {sorted(_END_REASONS)}, got {self.status!r}")
        if self.reason is not None and self.reason not in reasons:
            raise ValueError(f"a {self.status} response's reason is one of {reasons}")

    def status_details(self) -> dict[str, Any]:
        details: dict[str, Any] = {"type": self.status}
        if self.status == "failed":
            details["error"] = {"type": self.error_type, "code": self.error_code}
        else:
            details["reason"] = self.reason or _END_REASONS[self.status][0]
        return details


_END_REASONS: Final[dict[str, tuple[str, ...]]] = {
    "failed": (),
    "incomplete": ("max_output_tokens", "content_filter"),
    "cancelled": ("turn_detected", "client_cancelled"),
}


@dataclass(frozen=True, slots=True)
class CallFunction:
    """A function_call output item; `arguments` is a JSON string."""

    name: str
    arguments: str = "{}"
    call_id: str | None = None


@dataclass(frozen=True, slots=True)
class TranscribeAs:
    """What the mock "hears" in a spoken user turn (on_user_speech rules only)."""

    text: str


@dataclass(frozen=True, slots=True)
class SendError:
    """An `error` event shaped like the real service's, naming the client event that
    caused it (`error.event_id`), or none when not `attributed` (as the service's own
    `server_error` does)."""

    code: str | None
    message: str
    type: str = "invalid_request_error"
    param: str | None = None
    attributed: bool = True


#: The real service's unattributed error (community reports and the TS reference's
#: records: `type` server_error, `code` and `event_id` null).
SERVER_ERROR_MESSAGE: Final = (
    "The server had an error while processing your request. Sorry about that! You can "
    "retry your request, or contact us through our help center at help.openai.com if the "
    "error persists. (Please include the session ID in your message.)"
)


@dataclass(frozen=True, slots=True)
class Respond:
    """Call `responder(turn)` when the rule fires; what it returns is the reply."""

    responder: Responder

    @property
    def name(self) -> str:
        return getattr(self.responder, "__qualname__", repr(self.responder))


#: Steps a rule (or a responder) may hold.
RuleStep: TypeAlias = (
    Send
    | SendRaw
    | Sleep
    | CloseConnection
    | RejectHandshake
    | ReplyAudio
    | ReplyText
    | ReplyOnlyInResponseDone
    | EndResponse
    | CallFunction
    | TranscribeAs
    | SendError
    | Respond
)
#: What a responder may return: one step, text (a `ReplyText`), a sequence of them, or
#: None for the mock's default answer.
ResponderResult: TypeAlias = RuleStep | str | Sequence[RuleStep | str] | None
#: A callable that computes the reply when its rule fires, sync or async.
Responder: TypeAlias = Callable[[Turn], ResponderResult | Awaitable[ResponderResult]]

#: Steps that produce the output items of a response.
OUTPUT_STEPS: Final = (ReplyAudio, ReplyText, ReplyOnlyInResponseDone, EndResponse, CallFunction)
#: Steps after which the default handling still runs (they only delay or annotate).
PASSIVE_STEPS: Final = (Sleep, TranscribeAs)

_FORMS: Final = ("text", "audio")


def _check_stop_after(stop_after_events: int | None) -> None:
    if stop_after_events is not None and stop_after_events < 1:
        raise ValueError("stop_after_events counts from response.created: use N >= 1")


# --- ids and JSON ----------------------------------------------------------------------------

_ID_TAG: Final = "".join(random.choices(string.ascii_letters + string.digits, k=8))
_ID_COUNTER = itertools.count(1)


def new_id(prefix: str) -> str:
    """A unique id shaped like the real ones: ``event_…``, ``item_…``, ``resp_…``."""
    return f"{prefix}_{_ID_TAG}{next(_ID_COUNTER):012d}"


def copy_json(value: Any) -> Any:
    """Deep copy of JSON data: an event must not change after it is sent."""
    return orjson.loads(orjson.dumps(value))


def error_event(
    code: str | None,
    message: str,
    *,
    param: str | None = None,
    client_event_id: str | None = None,
    type: str = "invalid_request_error",
) -> dict[str, Any]:
    """An `error` event shaped exactly like the real service's."""
    return {
        "type": "error",
        "event_id": new_id("event"),
        "error": {
            "type": type,
            "code": code,
            "message": message,
            "param": param,
            "event_id": client_event_id,
        },
    }
