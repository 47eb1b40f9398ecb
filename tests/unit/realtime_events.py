"""OpenAI Realtime GA server events as the real service shapes them, for unit tests.

Every builder's result is checked against the SDK's models, so a test can only feed the
session what upstream could really send (malformed events are built by hand, on purpose).
"""

from __future__ import annotations

import base64
import itertools
from typing import Any

from harness.schema import validate_server_event

_ids = itertools.count(1)


def _event(kind: str, **fields: Any) -> dict[str, Any]:
    event = {"type": kind, "event_id": f"event_{next(_ids)}", **fields}
    validate_server_event(event)
    return event


def session_created(session_id: str = "sess_1") -> dict[str, Any]:
    return _event(
        "session.created",
        session={"type": "realtime", "id": session_id, "object": "realtime.session"},
    )


def session_updated() -> dict[str, Any]:
    return _event("session.updated", session={"type": "realtime"})


def _response(response_id: str, status: str, metadata: dict[str, str] | None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "id": response_id,
        "object": "realtime.response",
        "status": status,
        "output": [],
    }
    if metadata is not None:
        response["metadata"] = metadata
    return response


def response_created(
    response_id: str = "resp_1",
    metadata: dict[str, str] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """`fields` go into the response (e.g. `conversation_id=None` for out-of-band)."""
    response = _response(response_id, "in_progress", metadata) | fields
    return _event("response.created", response=response)


def response_done(
    response_id: str = "resp_1",
    status: str = "completed",
    metadata: dict[str, str] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """`fields` go into the response (`status_details`, `output`, `conversation_id`)."""
    response = _response(response_id, status, metadata) | fields
    return _event("response.done", response=response)


def assistant_message(item_id: str, text: str, *, part: str = "output_audio") -> dict[str, Any]:
    """An assistant message item as the service writes it in `response.output`."""
    content = {"type": part, "transcript" if part == "output_audio" else "text": text}
    return {
        "id": item_id,
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "object": "realtime.item",
        "content": [content],
    }


def item_added(item: dict[str, Any]) -> dict[str, Any]:
    return _event("conversation.item.added", previous_item_id=None, item=item)


def audio_committed(item_id: str = "item_user") -> dict[str, Any]:
    return _event("input_audio_buffer.committed", item_id=item_id, previous_item_id=None)


def _content(item_id: str, response_id: str) -> dict[str, Any]:
    return {"response_id": response_id, "item_id": item_id, "output_index": 0, "content_index": 0}


def audio_delta(item_id: str, pcm: bytes, response_id: str = "resp_1") -> dict[str, Any]:
    delta = base64.b64encode(pcm).decode()
    return _event("response.output_audio.delta", **_content(item_id, response_id), delta=delta)


def audio_done(item_id: str, response_id: str = "resp_1") -> dict[str, Any]:
    return _event("response.output_audio.done", **_content(item_id, response_id))


def transcript_done(item_id: str, text: str, response_id: str = "resp_1") -> dict[str, Any]:
    return _event(
        "response.output_audio_transcript.done", **_content(item_id, response_id), transcript=text
    )


def text_done(item_id: str, text: str, response_id: str = "resp_1") -> dict[str, Any]:
    return _event("response.output_text.done", **_content(item_id, response_id), text=text)


def function_call(
    call_id: str, name: str, arguments: str = "{}", response_id: str = "resp_1"
) -> dict[str, Any]:
    return _event(
        "response.function_call_arguments.done",
        response_id=response_id,
        item_id=f"item_{call_id}",
        output_index=0,
        call_id=call_id,
        name=name,
        arguments=arguments,
    )


def assistant_item_done(item_id: str, text: str) -> dict[str, Any]:
    item = {
        "id": item_id,
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "object": "realtime.item",
        "content": [{"type": "output_audio", "transcript": text}],
    }
    return _event("conversation.item.done", previous_item_id=None, item=item)


def item_done(item: dict[str, Any]) -> dict[str, Any]:
    return _event("conversation.item.done", previous_item_id=None, item=item)


def speech_started(item_id: str = "item_user", at_ms: int = 0) -> dict[str, Any]:
    return _event("input_audio_buffer.speech_started", audio_start_ms=at_ms, item_id=item_id)


def speech_stopped(end_ms: int, item_id: str = "item_user") -> dict[str, Any]:
    return _event("input_audio_buffer.speech_stopped", audio_end_ms=end_ms, item_id=item_id)


def transcription_delta(item_id: str, delta: str) -> dict[str, Any]:
    return _event(
        "conversation.item.input_audio_transcription.delta",
        item_id=item_id,
        content_index=0,
        delta=delta,
    )


def transcription_completed(item_id: str, transcript: str) -> dict[str, Any]:
    return _event(
        "conversation.item.input_audio_transcription.completed",
        item_id=item_id,
        content_index=0,
        transcript=transcript,
        usage={"type": "duration", "seconds": 1},
    )


def error(
    code: str | None,
    message: str,
    *,
    event_id: str | None = None,
    type: str = "invalid_request_error",
    param: str | None = None,
) -> dict[str, Any]:
    return _event(
        "error",
        error={
            "type": type,
            "code": code,
            "message": message,
            "param": param,
            "event_id": event_id,
        },
    )
