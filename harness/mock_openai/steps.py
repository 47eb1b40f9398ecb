"""The vocabulary between the behaviour (deciding what to do) and the server (doing it).

The behaviour turns what a client sent into `Step`s; the server carries them out in
order: send an event, pause, close, start or stop a concurrent response run, record a
failure. Also here: the ids and JSON helpers every step builder needs.
"""

from __future__ import annotations

import itertools
import random
import string
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, TypeAlias

import orjson

from .script import Action, Close, SendError, SendEvent, SendGarbage, Stall

if TYPE_CHECKING:
    from .responses import ResponseRun

__all__ = [
    "CloseConnection",
    "Fail",
    "Send",
    "SendRaw",
    "Sleep",
    "StartResponse",
    "Step",
    "StopResponse",
    "copy_json",
    "error_event",
    "inline_steps",
    "new_id",
]


@dataclass(frozen=True, slots=True)
class Send:
    """Send this server event (the server validates it and fills a missing event_id)."""

    event: dict[str, Any]


@dataclass(frozen=True, slots=True)
class SendRaw:
    """Send this frame as is (a fault: text for str, binary for bytes)."""

    data: str | bytes


@dataclass(frozen=True, slots=True)
class Sleep:
    """Pause this sequence of steps."""

    seconds: float


@dataclass(frozen=True, slots=True)
class CloseConnection:
    """Close the connection after what is already queued."""

    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class StartResponse:
    """Pull `run.steps` concurrently with further client events."""

    run: ResponseRun


@dataclass(frozen=True, slots=True)
class StopResponse:
    """Stop pulling `run.steps` (the response was cancelled)."""

    run: ResponseRun


@dataclass(frozen=True, slots=True)
class Fail:
    """Record a failure in the mock (re-raised by `MockRealtime.check()`)."""

    message: str
    invalid_client_event: bool = False


Step: TypeAlias = Send | SendRaw | Sleep | CloseConnection | StartResponse | StopResponse | Fail

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


def inline_steps(actions: Sequence[Action], client_event_id: str | None = None) -> Iterator[Step]:
    """Scripted actions outside any response: delays, errors, events, faults, close.

    Output actions (replies, function calls) and annotations are not inline actions and
    are skipped here.
    """
    for action in actions:
        if isinstance(action, Stall):
            yield Sleep(action.ms / 1000)
        elif isinstance(action, SendError):
            yield Send(
                error_event(
                    action.code,
                    action.message,
                    param=action.param,
                    type=action.type,
                    client_event_id=client_event_id,  # as the real service names the culprit
                )
            )
        elif isinstance(action, SendEvent):
            yield Send(copy_json(action.event))
        elif isinstance(action, SendGarbage):
            yield SendRaw(action.data)
        elif isinstance(action, Close):
            yield CloseConnection(action.code, action.reason)
            return
