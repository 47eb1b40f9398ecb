"""Pure translation between component messages and OpenAI Realtime GA events.

One place builds each upstream event; nothing here keeps state or touches a socket.
"""

from __future__ import annotations

from typing import Any

from .messages import Error, FunctionCallRequest, FunctionRequest, Settings, Speak
from .redaction import redact

__all__ = [
    "OPENAI_VOICES",
    "UPSTREAM_SAMPLE_RATE",
    "assistant_text_of",
    "component_error",
    "function_call_request",
    "function_output_item",
    "is_realtime_model",
    "openai_voice",
    "prompt_update",
    "response_create",
    "text_item",
    "translate_settings",
    "truncate_item",
    "voice_update",
]

# The only PCM rate the Realtime API accepts, both directions.
UPSTREAM_SAMPLE_RATE = 24_000
OPENAI_VOICES = frozenset(
    {"alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer", "verse", "marin", "cedar"}
)
TRANSCRIPTION_MODEL = "gpt-4o-mini-transcribe"
_PCM_24K = {"type": "audio/pcm", "rate": UPSTREAM_SAMPLE_RATE}


def is_realtime_model(model: str | None) -> bool:
    """The component defaults to chat model names the Realtime API rejects."""
    return bool(model) and "realtime" in str(model)


def openai_voice(speak: Speak | None) -> str | None:
    """The speak provider's voice when it names an OpenAI voice, else None."""
    provider = speak.provider if speak else None
    for candidate in (provider.voice, provider.model) if provider else ():
        if candidate in OPENAI_VOICES:
            return candidate
    return None


def translate_settings(settings: Settings, *, event_id: str) -> dict[str, Any]:
    """`Settings` -> `session.update` in the GA shape (PROTOCOL.md section 4)."""
    agent = settings.agent
    think = agent.think
    output: dict[str, Any] = {"format": _PCM_24K}
    voice = openai_voice(agent.speak)
    if voice:
        output["voice"] = voice
    session: dict[str, Any] = {
        "type": "realtime",
        "audio": {
            "input": {
                "format": _PCM_24K,
                "turn_detection": {
                    "type": "server_vad",
                    "create_response": True,
                    "interrupt_response": True,
                },
                "transcription": {"model": TRANSCRIPTION_MODEL},
            },
            "output": output,
        },
        "tools": [
            {
                "type": "function",
                "name": function.name,
                "description": function.description or "",
                "parameters": function.parameters or {"type": "object", "properties": {}},
            }
            for function in (think.functions if think else [])
        ],
    }
    if think and think.prompt is not None:
        session["instructions"] = think.prompt
    model = think.provider.model if think and think.provider else None
    if model and is_realtime_model(model):
        session["model"] = model
    return {"type": "session.update", "event_id": event_id, "session": session}


def prompt_update(prompt: str, *, event_id: str) -> dict[str, Any]:
    return {
        "type": "session.update",
        "event_id": event_id,
        "session": {"type": "realtime", "instructions": prompt},
    }


def voice_update(voice: str, *, event_id: str) -> dict[str, Any]:
    return {
        "type": "session.update",
        "event_id": event_id,
        "session": {"type": "realtime", "audio": {"output": {"voice": voice}}},
    }


def text_item(role: str, text: str, *, item_id: str | None = None) -> dict[str, Any]:
    """A user (`input_text`) or assistant (`output_text`) message item to create."""
    part_type = "input_text" if role == "user" else "output_text"
    item: dict[str, Any] = {
        "type": "message",
        "role": role,
        "content": [{"type": part_type, "text": text}],
    }
    if item_id:
        item["id"] = item_id
    return {"type": "conversation.item.create", "item": item}


def function_output_item(call_id: str, output: str) -> dict[str, Any]:
    return {
        "type": "conversation.item.create",
        "item": {"type": "function_call_output", "call_id": call_id, "output": output},
    }


def response_create(event_id: str) -> dict[str, Any]:
    return {"type": "response.create", "event_id": event_id}


def truncate_item(item_id: str, audio_end_ms: int) -> dict[str, Any]:
    return {
        "type": "conversation.item.truncate",
        "item_id": item_id,
        "content_index": 0,
        "audio_end_ms": audio_end_ms,
    }


def function_call_request(event: dict[str, Any]) -> FunctionCallRequest:
    """`response.function_call_arguments.done` -> `FunctionCallRequest`."""
    return FunctionCallRequest(
        functions=[
            FunctionRequest(
                id=str(event.get("call_id", "")),
                name=str(event.get("name", "")),
                arguments=str(event.get("arguments", "")),
                client_side=True,
            )
        ]
    )


def assistant_text_of(item: dict[str, Any]) -> str | None:
    """The text of an assistant message item (text parts or audio transcripts)."""
    if item.get("type") != "message" or item.get("role") != "assistant":
        return None
    parts = [
        part.get("text") or part.get("transcript")
        for part in item.get("content") or ()
        if isinstance(part, dict)
    ]
    text = "".join(part for part in parts if isinstance(part, str))
    return text or None


def component_error(event: dict[str, Any], *, secret: str | None) -> Error:
    """Upstream `error` -> `Error`, with anything key-like removed from the text."""
    error = event.get("error") if isinstance(event.get("error"), dict) else {}
    assert isinstance(error, dict)
    message = str(error.get("message") or "upstream error")
    code = str(error.get("code") or error.get("type") or "upstream_error")
    return Error(description=redact(message, secret), code=code)
