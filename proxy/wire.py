"""What the parsers of both sides share: a frame read as a typed JSON object, and the
rejection a parser returns instead of a message.

`proxy.client_messages.parse_client_frame` and `proxy.upstream_events.parse_upstream_frame`
turn one text frame into a typed message or a `Rejection`; the session only dispatches
what they return. The first steps are the same on both sides (JSON, nesting depth, a
string `type`) and are written here once; what a failed step means (the code, the words,
whether to log) is each side's own.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

import orjson

from .errors import ErrorCode
from .validation import too_deep

__all__ = ["Rejection", "Unreadable", "typed_object"]


@dataclass(frozen=True, slots=True)
class Rejection:
    """A frame refused at the edge: the `Error` the client is told and, for a frame a
    correct peer never sends (upstream's), the WARNING line the proxy logs."""

    code: ErrorCode
    description: str
    log: str | None = None


class Unreadable(Enum):
    """Why a frame is not a JSON object with a string `type`, by the first step that failed."""

    NOT_JSON = "not JSON"
    TOO_DEEP = "nested too deep"
    UNTYPED = "no string type"


def typed_object(frame: str | bytes | bytearray) -> dict[str, Any] | Unreadable:
    """The frame's JSON object, whose `type` is a string; or why it is not one."""
    try:
        data = orjson.loads(frame)
    except orjson.JSONDecodeError:
        return Unreadable.NOT_JSON
    if too_deep(data, frame):
        return Unreadable.TOO_DEEP
    if type(data) is not dict or type(data.get("type")) is not str:
        return Unreadable.UNTYPED
    result: dict[str, Any] = data
    return result
