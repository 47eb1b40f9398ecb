"""Replies a responder returns: ``from harness.mock_openai import reply``.

    def answer(turn: Turn) -> reply.Reply:
        if "weather" in turn.text:
            return reply.function_call("get_weather", {"city": "Paris"})
        return reply.audio(f"You have said {len(turn.messages())} things.")

    mock_openai.on_user_text().respond_with(answer)

Each function returns one step of the same family rules hold, checked when built;
events are validated against the schema when built and again when sent. Return a list
to do several things in order, or None for the mock's default answer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .rules import arguments_json, checked_event
from .steps import (
    SERVER_ERROR_MESSAGE,
    CallFunction,
    CloseConnection,
    EndResponse,
    ReplyAudio,
    ReplyOnlyInResponseDone,
    ReplyText,
    ResponderResult,
    Send,
    SendError,
    SendRaw,
    Sleep,
)

__all__ = [
    "Reply",
    "audio",
    "close",
    "error",
    "event",
    "events",
    "failed_response",
    "function_call",
    "garbage",
    "only_in_response_done",
    "pause",
    "server_error",
    "text",
]

#: What a responder returns.
Reply = ResponderResult


def text(content: str, *, output_modalities: Sequence[str] | None = None) -> ReplyText:
    """An assistant message in the session's form (or `output_modalities`')."""
    modalities = tuple(output_modalities) if output_modalities is not None else None
    return ReplyText(content, output_modalities=modalities)


def audio(
    content: str,
    *,
    chunks: int = 3,
    chunk_ms: int = 100,
    chunk_interval_ms: int = 0,
    delta_bytes: int | None = None,
) -> ReplyAudio:
    """An assistant message with audio paced (and cut) as in `Rule.reply_with_audio`."""
    return ReplyAudio(content, chunks, chunk_ms, chunk_interval_ms, None, delta_bytes)


def only_in_response_done(content: str) -> ReplyOnlyInResponseDone:
    """An assistant message only `response.done`'s output holds
    (`Rule.reply_only_in_response_done`)."""
    return ReplyOnlyInResponseDone(content)


def failed_response(
    status: str = "failed",
    *,
    reason: str | None = None,
    error_type: str = "server_error",
    error_code: str | None = None,
) -> EndResponse:
    """End the response with a terminal status other than completed
    (`Rule.fail_response`)."""
    return EndResponse(status, reason, error_type, error_code)


def server_error(message: str = SERVER_ERROR_MESSAGE) -> SendError:
    """The real service's unattributed `server_error` (`Rule.server_error`)."""
    return SendError(None, message, "server_error", None, attributed=False)


def function_call(
    name: str, arguments: Mapping[str, Any] | str | None = None, *, call_id: str | None = None
) -> CallFunction:
    """A function_call item (`arguments` as a dict or a JSON string)."""
    return CallFunction(name, arguments_json(arguments), call_id)


def error(
    code: str,
    message: str,
    *,
    type: str = "invalid_request_error",
    param: str | None = None,
    names_client_event: bool = True,
) -> SendError:
    """An `error` event naming the client event that caused it (or not)."""
    return SendError(code, message, type, param, attributed=names_client_event)


def event(server_event: Mapping[str, Any]) -> Send:
    """Any server event, validated now (raising `SchemaError`) and when sent."""
    return checked_event(server_event)


def events(server_events: Sequence[Mapping[str, Any]]) -> list[Send]:
    """Several server events, in order."""
    return [checked_event(e) for e in server_events]


def garbage(data: str | bytes = "not json{") -> SendRaw:
    """A frame the real API never sends (fault injection)."""
    return SendRaw(data)


def pause(ms: float) -> Sleep:
    """Wait before what follows."""
    return Sleep(ms / 1000)


def close(code: int = 1011, reason: str = "") -> CloseConnection:
    """Close the connection."""
    return CloseConnection(code, reason)
