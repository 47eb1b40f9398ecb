"""Pure translation between component messages and OpenAI Realtime GA events.

One place builds each upstream event; nothing here keeps state or touches a socket.
"""

from __future__ import annotations

from typing import Any

from . import base64_audio
from .audio_formats import ClientAudio
from .client_messages import (
    Agent,
    ContextMessage,
    FunctionDefinition,
    Listen,
    Settings,
    Speak,
    Think,
    first,
)
from .errors import ErrorCode, WarningCode
from .server_messages import Error, FunctionCallRequest, FunctionRequest, Warning
from .upstream_events import ErrorDetail, Item, ResponseInfo
from .validation import shown

__all__ = [
    "OPENAI_VOICES",
    "assistant_text_of",
    "audio_append",
    "component_error",
    "context_items",
    "function_call_request",
    "function_output_item",
    "ignored_settings",
    "input_commit",
    "is_realtime_model",
    "listen_update",
    "openai_voice",
    "prompt_update",
    "response_cancel",
    "response_create",
    "response_outcome",
    "settings_update",
    "speak_response",
    "text_item",
    "think_update",
    "truncate_item",
    "voice_update",
]

OPENAI_VOICES = frozenset(
    {"alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer", "verse", "marin", "cedar"}
)
TRANSCRIPTION_MODEL = "gpt-4o-mini-transcribe"
#: `metadata` key that marks the out-of-band responses the proxy uses to speak exact text.
SPEAK_METADATA_KEY = "proxy_speak"
_INCOMPLETE_BECAUSE = {
    "max_output_tokens": "it reached the response's max_output_tokens",
    "content_filter": "the service's content filter stopped it",
}
_SPEAK_INSTRUCTIONS = (
    "You are reading a script aloud. Say the text of the user's message exactly as written, "
    "word for word, in your usual voice. Do not add, drop, translate or answer anything."
)


def is_realtime_model(model: str | None) -> bool:
    """The component defaults to chat model names the Realtime API rejects."""
    return bool(model) and "realtime" in str(model)


def openai_voice(speak: Speak | None) -> str | None:
    """The speak provider's voice when it names an OpenAI Realtime voice, else None."""
    provider = speak.provider if speak else None
    for candidate in (provider.voice, provider.model) if provider else ():
        if isinstance(candidate, str) and candidate in OPENAI_VOICES:
            return candidate
    return None


# ---------------------------------------------------------------- session.update


def settings_update(settings: Settings, audio: ClientAudio, *, event_id: str) -> dict[str, Any]:
    """`Settings` -> `session.update` in the GA shape (docs/protocol-mapping.md, its section
    "Settings → session.update")."""
    agent = settings.agent_config
    think = settings.think
    output: dict[str, Any] = {"format": audio.upstream_format("output")}
    voice = openai_voice(settings.speak)
    if voice:
        output["voice"] = voice
    session: dict[str, Any] = {
        "type": "realtime",
        "audio": {
            "input": {
                "format": audio.upstream_format("input"),
                "turn_detection": {
                    "type": "server_vad",
                    "create_response": True,
                    "interrupt_response": True,
                },
                "transcription": _transcription(agent.listen, agent.language),
            },
            "output": output,
        },
        "tools": _tools(think),
    }
    if think and think.prompt is not None:
        session["instructions"] = think.prompt
    model = think.provider.model if think and think.provider else None
    if model and is_realtime_model(model):
        session["model"] = model
    return _session_update(session, event_id)


def prompt_update(prompt: str, *, event_id: str) -> dict[str, Any]:
    return _session_update({"type": "realtime", "instructions": prompt}, event_id)


def voice_update(voice: str, *, event_id: str) -> dict[str, Any]:
    return _session_update({"type": "realtime", "audio": {"output": {"voice": voice}}}, event_id)


def think_update(think: Think | list[Think], *, event_id: str) -> dict[str, Any]:
    """`UpdateThink`: the prompt and the functions (a model change cannot be made live)."""
    primary: Think | None = first(think)
    session: dict[str, Any] = {"type": "realtime", "tools": _tools(primary)}
    if primary is not None and primary.prompt is not None:
        session["instructions"] = primary.prompt
    return _session_update(session, event_id)


def listen_update(listen: Listen, language: str | None, *, event_id: str) -> dict[str, Any]:
    """`UpdateListen`: language and keyterms reach the transcription settings."""
    transcription = _transcription(listen, language)
    return _session_update(
        {"type": "realtime", "audio": {"input": {"transcription": transcription}}}, event_id
    )


def _session_update(session: dict[str, Any], event_id: str) -> dict[str, Any]:
    return {"type": "session.update", "event_id": event_id, "session": session}


def _tools(think: Think | None) -> list[dict[str, Any]]:
    if think is None or not think.functions:
        return []
    return [_tool(function) for function in think.functions if function.name]


def _tool(function: FunctionDefinition) -> dict[str, Any]:
    assert function.name
    return {
        "type": "function",
        "name": function.name,
        "description": function.description or "",
        "parameters": function.parameters or {"type": "object", "properties": {}},
    }


def _transcription(listen: Listen | None, agent_language: str | None) -> dict[str, Any]:
    provider = listen.provider if listen else None
    transcription: dict[str, Any] = {"model": TRANSCRIPTION_MODEL}
    language = (provider.language if provider else None) or agent_language
    if language and language.lower() not in ("multi", "auto"):
        transcription["language"] = language.split("-")[0].lower()  # ISO-639-1: en-US -> en
    keyterms = provider.keyterms if provider else None
    if keyterms:
        transcription["prompt"] = "Expect these terms: " + ", ".join(keyterms)
    return transcription


def ignored_settings(settings: Settings) -> list[str]:
    """What a Settings asks for that the Realtime API has no place for (one Warning)."""
    ignored: list[str] = []
    agent = settings.agent
    if isinstance(agent, str):
        return [f"agent {shown(agent)} (a stored Deepgram agent; send the agent object instead)"]
    if agent is None:
        return ignored
    ignored += _think_ignored(agent.think)
    speak = first(agent.speak)
    if speak is not None and speak.provider is not None and openai_voice(speak) is None:
        voice = speak.provider.voice or speak.provider.model or speak.provider.model_id
        ignored.append(f"speak voice {shown(voice)} (not an OpenAI Realtime voice)")
    if isinstance(agent.speak, list) and len(agent.speak) > 1:
        ignored.append("fallback speak providers")
    if speak is not None and speak.endpoint is not None:
        ignored.append("speak.endpoint")
    if agent.think_live is not None:
        ignored.append("think_live")
    audio_out = settings.audio.output if settings.audio else None
    if audio_out is not None and audio_out.bitrate is not None:
        ignored.append("audio.output.bitrate")
    return ignored


def _think_ignored(think: Think | list[Think] | None) -> list[str]:
    ignored: list[str] = []
    primary: Think | None = first(think)
    if primary is None:
        return ignored
    provider = primary.provider
    if provider is not None and provider.model and not is_realtime_model(provider.model):
        ignored.append(f"think model {shown(provider.model)} (not a Realtime model)")
    if provider is not None and provider.temperature is not None:
        ignored.append("think temperature")
    if primary.endpoint is not None:
        ignored.append("think.endpoint")
    if any(not function.name for function in primary.functions or ()):
        ignored.append("functions without a name")
    if primary.context_length is not None:
        ignored.append("think.context_length")
    if isinstance(think, list) and len(think) > 1:
        ignored.append("fallback think providers")
    return ignored


def think_model_change(think: Think | list[Think], agent: Agent) -> str | None:
    """An `UpdateThink` provider/model change a live session cannot make, described."""
    new: Think | None = first(think)
    old: Think | None = first(agent.think)
    new_model = new.provider.model if new and new.provider else None
    old_model = old.provider.model if old and old.provider else None
    if new_model and new_model != old_model:
        return f"think model {shown(new_model)} (a live Realtime session keeps its model)"
    return None


# ---------------------------------------------------------------- conversation


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


def context_items(message: ContextMessage, own_id: str) -> list[dict[str, Any]]:
    """The items that restore one context entry: a text turn, or function calls and
    their outputs. `own_id` prefixes ids of assistant items the proxy creates."""
    if message.function_calls is not None:
        events: list[dict[str, Any]] = []
        for call in message.function_calls:
            events.append(
                {
                    "type": "conversation.item.create",
                    "item": {
                        "type": "function_call",
                        "call_id": call.id,
                        "name": call.name,
                        "arguments": call.arguments,
                    },
                }
            )
            events.append(function_output_item(call.id, call.response))
        return events
    assert message.role is not None and message.content is not None
    item_id = own_id if message.role == "assistant" else None
    return [text_item(message.role, message.content, item_id=item_id)]


def function_output_item(call_id: str, output: str) -> dict[str, Any]:
    return {
        "type": "conversation.item.create",
        "item": {"type": "function_call_output", "call_id": call_id, "output": output},
    }


def response_create(event_id: str) -> dict[str, Any]:
    return {"type": "response.create", "event_id": event_id}


def speak_response(text: str, *, event_id: str) -> dict[str, Any]:
    """An out-of-band response that says `text`: outside the conversation, so the model's
    own rendering never enters it (the proxy adds the exact text as an item itself)."""
    return {
        "type": "response.create",
        "event_id": event_id,
        "response": {
            "conversation": "none",
            "instructions": _SPEAK_INSTRUCTIONS,
            "input": [
                {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": text}],
                }
            ],
            "tool_choice": "none",
            "metadata": {SPEAK_METADATA_KEY: event_id},
        },
    }


def response_cancel(event_id: str, response_id: str | None = None) -> dict[str, Any]:
    event: dict[str, Any] = {"type": "response.cancel", "event_id": event_id}
    if response_id:
        event["response_id"] = response_id
    return event


def truncate_item(item_id: str, audio_end_ms: int) -> dict[str, Any]:
    return {
        "type": "conversation.item.truncate",
        "item_id": item_id,
        "content_index": 0,
        "audio_end_ms": audio_end_ms,
    }


def audio_append(audio: bytes) -> bytes:
    """`input_audio_buffer.append` as JSON bytes (the hot path: no dict, no encoder)."""
    return b'{"type":"input_audio_buffer.append","audio":"' + base64_audio.encode(audio) + b'"}'


def input_commit(event_id: str) -> dict[str, Any]:
    return {"type": "input_audio_buffer.commit", "event_id": event_id}


# ---------------------------------------------------------------- to the component


def function_call_request(
    call_id: str, name: str, arguments: str, *, client_side: bool
) -> FunctionCallRequest:
    return FunctionCallRequest(
        functions=[
            FunctionRequest(id=call_id, name=name, arguments=arguments, client_side=client_side)
        ]
    )


def assistant_text_of(item: Item) -> str | None:
    """The text of an assistant message item (text parts or audio transcripts)."""
    if item.type != "message" or item.role != "assistant":
        return None
    parts = [part.text or part.transcript or "" for part in item.content or ()]
    return "".join(parts) or None


def component_error(detail: ErrorDetail) -> Error:
    """Upstream `error` -> `Error` (the session scrubs secrets from every frame)."""
    message = detail.message or "upstream error"
    code = detail.code or detail.type or "upstream_error"
    return Error(description=message, code=code)


def response_outcome(response: ResponseInfo) -> Error | Warning | None:
    """What the client is told about how a response ended, besides its AgentAudioDone.

    `failed`: an Error with the service's code (or `response_failed`); `incomplete`: a
    Warning saying why it was cut short; `cancelled` (barge-in, or the proxy's own
    cancel, already explained) and `completed`: nothing.
    """
    details = response.status_details
    if response.status == "failed":
        error = details.error if details is not None else None
        code = (error.code if error is not None else None) or ErrorCode.RESPONSE_FAILED.value
        why = (error.message or error.type) if error is not None else None
        return Error(
            description="the agent's response failed" + (f": {why}" if why else ""), code=code
        )
    if response.status == "incomplete":
        reason = details.reason if details is not None else None
        why = _INCOMPLETE_BECAUSE.get(reason or "", f"reason {shown(reason)}" if reason else "")
        return Warning(
            description="the agent's response was cut short" + (f": {why}" if why else ""),
            code=WarningCode.RESPONSE_INCOMPLETE.value,
        )
    return None
