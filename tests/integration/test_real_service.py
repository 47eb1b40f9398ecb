"""What the real Realtime service does that the proxy must survive, one test each,
over real sockets with the mock playing the service (docs/real-service.md lists
the sources). Both oracles stay on: every event the mock sends validates against the
`openai` SDK's models, every frame the proxy sends against the deepgram-sdk's."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from harness.client import ComponentClient, default_settings
from harness.mock_openai import MockRealtime, silence_pcm16, tone_pcm16
from harness.mock_openai.steps import SERVER_ERROR_MESSAGE

pytestmark = pytest.mark.integration

#: Long enough to tell "at once" from the proxy's 30 s silent-response timeout.
PROMPTLY_S = 5.0
FUNCTIONS = [
    {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
    {
        "name": "get_time",
        "description": "The time in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
]
THINK_WITH_FUNCTIONS = {
    "provider": {"type": "open_ai", "model": "gpt-4o-mini"},
    "functions": FUNCTIONS,
}


def tone(ms: int) -> bytes:
    return tone_pcm16(ms, frequency=300, rate=16000)


def silence(ms: int) -> bytes:
    return silence_pcm16(ms, rate=16000)


def assistant(message: dict[str, Any]) -> bool:
    return message.get("type") == "ConversationText" and message.get("role") == "assistant"


def assistant_texts(client: ComponentClient) -> list[str]:
    return [m["content"] for m in client.messages if assistant(m)]


def index_of(client: ComponentClient, kind: str, *, after: int = -1) -> int:
    return next(i for i, m in enumerate(client.messages) if i > after and m["type"] == kind)


async def settled(mock: MockRealtime) -> None:
    """Let anything late arrive: the mock is idle and the proxy had time to answer."""
    await mock.wait_idle()
    await asyncio.sleep(0.3)


# ------------------------------------------------------------------ errors


async def test_an_unattributed_server_error_releases_the_greeting(
    mock_openai: MockRealtime, component_client: ComponentClient
) -> None:
    """The reference recorded a `server_error` with no `event_id` after a client-created
    assistant item and response.create: the path of our greeting."""
    mock_openai.on_client_event(
        "response.create", where={"response": {"conversation": "none"}}
    ).server_error().once()
    await component_client.start(greeting="Hello there.")
    await component_client.wait_for("Error", timeout=PROMPTLY_S)
    await component_client.inject("Are you there?")
    reply = await component_client.wait_for_reply(count=2, timeout=PROMPTLY_S)
    assert reply == "You said: Are you there?"
    await settled(mock_openai)
    (error,) = component_client.received("Error")  # told once
    assert "server had an error" in error["description"]


async def test_an_unattributed_server_error_releases_injected_speech(
    mock_openai: MockRealtime, component_client: ComponentClient
) -> None:
    mock_openai.on_client_event(
        "response.create", where={"response": {"conversation": "none"}}
    ).server_error().once()
    await component_client.start()
    await component_client.send({"type": "InjectAgentMessage", "message": "One moment."})
    await component_client.wait_for("Error", timeout=PROMPTLY_S)
    await component_client.inject("Still there?")
    reply = await component_client.wait_for_reply(count=2, timeout=PROMPTLY_S)
    assert reply == "You said: Still there?"
    await settled(mock_openai)
    assert len(component_client.received("Error")) == 1


# ------------------------------------------------------------------ terminal statuses


@pytest.mark.parametrize(
    ("status", "reason", "told"),
    [
        ("failed", None, "Error"),
        ("incomplete", "max_output_tokens", "Warning"),
        ("incomplete", "content_filter", "Warning"),
        ("cancelled", "turn_detected", None),
    ],
)
async def test_a_response_that_ends_without_completing_ends_the_turn(
    mock_openai: MockRealtime,
    component_client: ComponentClient,
    status: str,
    reason: str | None,
    told: str | None,
) -> None:
    """response.done `failed`, `incomplete` or `cancelled`: the client leaves
    "thinking", is told why (cancelled: the turn was taken from it, nothing to say),
    and gets AgentAudioDone."""
    mock_openai.on_user_text("hi").fail_response(status, reason=reason)
    await component_client.start()
    await component_client.inject("hi")
    await component_client.wait_for("AgentThinking")
    done = await component_client.wait_for("AgentAudioDone", timeout=PROMPTLY_S)
    thinking = index_of(component_client, "AgentThinking")
    finished = component_client.messages.index(done)
    if told is not None:
        said = [
            m
            for m in component_client.messages[thinking:finished]
            if m["type"] in ("Error", "Warning")
        ]
        assert said, f"nothing said why the {status} turn ended: {component_client.describe()}"
    await settled(mock_openai)
    # The next turn works.
    await component_client.inject("again")
    assert await component_client.wait_for_reply(timeout=PROMPTLY_S) == "You said: again"


# ------------------------------------------------------------------ server VAD race


async def test_force_end_turn_after_the_servers_commit_asks_for_nothing_more(
    mock_openai: MockRealtime, component_client: ComponentClient
) -> None:
    # The answer takes a second: the ForceEndTurn comes while it runs, as in the issue.
    mock_openai.on_user_speech().transcribe_as("what time is it").reply_with_audio(
        "Noon.", chunks=10, chunk_interval_ms=100
    ).once()
    await component_client.start()
    await component_client.send_audio(silence(200) + tone(800) + silence(800))
    await mock_openai.wait_for("input_audio_buffer.append")
    await component_client.wait_for("AgentThinking")  # the service committed and answers
    await component_client.send({"type": "ForceEndTurn"})
    await component_client.wait_for("AgentAudioDone")
    await settled(mock_openai)
    assert len(mock_openai.sent("response.created")) == 1  # one answer only
    assert not mock_openai.received("response.create")
    assert not component_client.received("Error"), component_client.describe()
    assert assistant_texts(component_client) == ["Noon."]


# ------------------------------------------------------------------ audio


async def test_odd_length_audio_deltas_become_whole_sample_frames(
    mock_openai: MockRealtime, component_client: ComponentClient
) -> None:
    mock_openai.on_user_text("hi").reply_with_audio("Buzz free.", chunks=3, delta_bytes=4801)
    await component_client.start()
    await component_client.inject("hi")
    await component_client.wait_for("AgentAudioDone")
    sent = b"".join(
        base64.b64decode(e["delta"]) for e in mock_openai.sent("response.output_audio.delta")
    )
    assert {
        len(base64.b64decode(e["delta"])) for e in mock_openai.sent("response.output_audio.delta")
    } >= {4801}
    assert all(size % 2 == 0 for size in component_client.audio_frame_sizes), (
        component_client.audio_frame_sizes
    )
    assert bytes(component_client.audio) == sent  # every byte, in order


# ------------------------------------------------------------------ assistant text


async def test_assistant_text_only_in_response_done_is_reported_once(
    mock_openai: MockRealtime, component_client: ComponentClient
) -> None:
    mock_openai.on_user_text("hi").reply_only_in_response_done("Only in the summary.")
    await component_client.start()
    await component_client.inject("hi")
    assert await component_client.wait_for_reply(timeout=PROMPTLY_S) == "Only in the summary."
    await component_client.wait_for("AgentAudioDone")
    await settled(mock_openai)
    assert assistant_texts(component_client) == ["Only in the summary."]


async def test_agent_audio_done_comes_after_the_turns_text(
    mock_openai: MockRealtime, component_client: ComponentClient
) -> None:
    """The service sends the audio's .done before the transcript's .done; Deepgram
    sends the turn's ConversationText first and AgentAudioDone last."""
    mock_openai.on_user_text("hi").reply_with_audio("Text, then done.")
    await component_client.start()
    await component_client.inject("hi")
    await component_client.wait_for("AgentAudioDone")
    kinds = [
        "text" if assistant(m) else m["type"]
        for m in component_client.messages
        if assistant(m) or m["type"] == "AgentAudioDone"
    ]
    assert kinds == ["text", "AgentAudioDone"]
    sent = [e["type"] for e in mock_openai.sent()]
    assert sent.index("response.output_audio.done") < sent.index(
        "response.output_audio_transcript.done"
    )


async def test_a_spoken_turns_text_comes_before_its_final_transcript(
    mock_openai: MockRealtime, component_client: ComponentClient
) -> None:
    mock_openai.on_user_speech().transcribe_as("what time is it").reply_with_audio("Noon.")
    await component_client.start()
    await component_client.send_audio(silence(200) + tone(800) + silence(800))
    await component_client.wait_for("Transcript", where=lambda m: m["is_final"])
    await component_client.wait_for("ConversationText", where=lambda m: m["role"] == "user")
    order = [
        m["type"]
        for m in component_client.messages
        if (m["type"] == "Transcript" and m["is_final"])
        or (m["type"] == "ConversationText" and m["role"] == "user")
    ]
    assert order == ["ConversationText", "Transcript"]


# ------------------------------------------------------------------ functions


async def test_two_calls_in_one_response_get_one_follow_up(
    mock_openai: MockRealtime, component_client: ComponentClient
) -> None:
    mock_openai.on_user_text("both").call_function("get_weather", {"city": "Paris"}).call_function(
        "get_time", {"city": "Paris"}
    ).once()
    mock_openai.on_function_output().reply_with_audio("Sunny, and noon.").once()
    await component_client.start(think=THINK_WITH_FUNCTIONS)
    await component_client.inject("Weather and time in Paris, both please")
    calls: list[dict[str, Any]] = []
    for count in (1, 2):
        if len(calls) < 2:
            request = await component_client.wait_for("FunctionCallRequest", count=count)
            calls += request["functions"]
    assert [c["name"] for c in calls] == ["get_weather", "get_time"]
    asked = len(mock_openai.received("response.create"))  # the user's turn's
    await component_client.answer_function(calls[0]["id"], calls[0]["name"], '{"sky": "sunny"}')
    await mock_openai.wait_for(
        "conversation.item.create", where=lambda e: e["item"]["type"] == "function_call_output"
    )
    await asyncio.sleep(0.3)
    follow_ups = len(mock_openai.received("response.create")) - asked
    assert follow_ups == 0, "a follow-up before every call was answered"
    await component_client.answer_function(calls[1]["id"], calls[1]["name"], '{"time": "12:00"}')
    assert await component_client.wait_for_reply(timeout=PROMPTLY_S) == "Sunny, and noon."
    await settled(mock_openai)
    assert len(mock_openai.received("response.create")) - asked == 1
    assert assistant_texts(component_client) == ["Sunny, and noon."]


async def test_history_of_a_client_side_call_keeps_its_arguments(
    mock_openai: MockRealtime, component_client: ComponentClient
) -> None:
    mock_openai.on_user_text("weather").call_function("get_weather", {"city": "Paris"})
    mock_openai.on_function_output().reply_with_audio("Sunny.")
    settings = default_settings(think=THINK_WITH_FUNCTIONS)
    settings["flags"] = {"history": True}
    await component_client.start(settings)
    await component_client.inject("weather in Paris?")
    request = await component_client.wait_for("FunctionCallRequest")
    (call,) = request["functions"]
    await component_client.answer_function(call["id"], call["name"], '{"sky": "sunny"}')
    history = await component_client.wait_for("History", where=lambda m: "function_calls" in m)
    (result,) = history["function_calls"]
    assert result["id"] == call["id"]
    assert result["arguments"] == call["arguments"] == '{"city":"Paris"}'
    assert result["response"] == '{"sky": "sunny"}'
    assert await component_client.wait_for_reply() == "Sunny."


# ------------------------------------------------------------------ the API grows


async def test_events_missing_fields_the_proxy_does_not_read_still_count(
    mock_openai: MockRealtime, component_client: ComponentClient
) -> None:
    """The service adds and renames fields over time: an event without a field the
    proxy never reads is still understood."""
    mock_openai.leave_out("session.updated", "session")
    mock_openai.leave_out("response.output_audio.delta", "response_id", "content_index")
    mock_openai.leave_out("response.output_audio.done", "response_id", "content_index")
    mock_openai.leave_out("response.output_audio_transcript.done", "content_index")
    mock_openai.leave_out("conversation.item.done", "item.content.type")
    mock_openai.on_user_text("hi").reply_with_audio("Fields come and go.", chunks=2)
    await component_client.start()
    await component_client.inject("hi")
    assert await component_client.wait_for_reply(timeout=PROMPTLY_S) == "Fields come and go."
    await component_client.wait_for("AgentAudioDone", timeout=PROMPTLY_S)
    assert len(component_client.audio) == 2 * 4800
    assert not component_client.received("Error"), component_client.describe()


# ------------------------------------------------------------------ out of band


async def test_out_of_band_speech_is_known_without_a_metadata_echo(
    mock_openai: MockRealtime, component_client: ComponentClient
) -> None:
    mock_openai.echo_metadata = False
    await component_client.start(greeting="Welcome back.")
    await component_client.wait_for("AgentAudioDone", timeout=PROMPTLY_S)
    await settled(mock_openai)
    (created,) = mock_openai.sent("response.created")
    assert created["response"]["metadata"] is None
    assert created["response"]["conversation_id"] is None
    assert assistant_texts(component_client) == ["Welcome back."]  # said once
    assert component_client.audio
    await component_client.inject("hi")
    assert await component_client.wait_for_reply(count=2, timeout=PROMPTLY_S) == "You said: hi"


# ------------------------------------------------------------------ more the reference recorded


async def test_a_server_error_while_idle_is_told_and_the_session_goes_on(
    mock_openai: MockRealtime, component_client: ComponentClient
) -> None:
    """The reference saw "The server had an error..." seconds after a finished turn
    (and when the service's idle timeout fired): nothing was asked for."""
    await component_client.start()
    await component_client.inject("hi")
    await component_client.wait_for("AgentAudioDone")
    await mock_openai.wait_idle()
    mock_openai.push(
        {
            "type": "error",
            "error": {
                "type": "server_error",
                "code": None,
                "message": SERVER_ERROR_MESSAGE,
                "param": None,
                "event_id": None,
            },
        }
    )
    error = await component_client.wait_for("Error")
    assert error["code"] == "server_error"
    await component_client.inject("again")
    assert await component_client.wait_for_reply(count=2) == "You said: again"
    assert len(component_client.received("Error")) == 1


async def test_a_chained_function_call_is_the_next_agent_turn(
    mock_openai: MockRealtime, component_client: ComponentClient
) -> None:
    """After a function's output the next agent turn may be another call."""
    mock_openai.on_user_text("plan").call_function("get_weather", {"city": "Oslo"}).once()
    mock_openai.on_function_output("get_weather").call_function("get_time", {"city": "Oslo"})
    mock_openai.on_function_output("get_time").reply_with_audio("Cold, and late.").once()
    await component_client.start(think=THINK_WITH_FUNCTIONS)
    await component_client.inject("plan my evening")
    first = (await component_client.wait_for("FunctionCallRequest"))["functions"][0]
    await component_client.answer_function(first["id"], first["name"], '{"sky": "snow"}')
    second = (await component_client.wait_for("FunctionCallRequest", count=2))["functions"][0]
    assert second["name"] == "get_time"
    await component_client.answer_function(second["id"], second["name"], '{"time": "23:00"}')
    assert await component_client.wait_for_reply() == "Cold, and late."
    assert not component_client.received("Error"), component_client.describe()


async def test_a_refused_handshake_is_an_error_then_a_close(
    mock_openai: MockRealtime, connect_component: Callable[[], Awaitable[ComponentClient]]
) -> None:
    """The reference saw `Unexpected server response: 504` on the upgrade."""
    mock_openai.on_connect().reject_handshake(504)
    client = await connect_component()
    error = await client.wait_for("Error")
    assert error["code"] == "upstream_unavailable", error
    assert await client.wait_closed() == 1011


# ------------------------------------------------------------------ errors without the echo


async def test_a_late_cancel_refused_without_its_event_id_is_not_reported(
    mock_openai: MockRealtime, component_client: ComponentClient
) -> None:
    """The proxy's own `response.cancel` can come after the response ended; the
    service's `response_cancel_not_active` may not echo the cancel's event_id."""
    mock_openai.on_user_text("story").reply_with_audio(
        "Once upon a time, a long story.", chunks=20, chunk_interval_ms=50
    ).once()
    mock_openai.on_client_event("response.cancel").send_error(
        "response_cancel_not_active",
        "Cancellation failed: no active response found",
        names_client_event=False,
    )
    await component_client.start()
    await component_client.inject("Tell me a story")
    await component_client.wait_for_audio(4800 * 2)
    await component_client.send(
        {"type": "InjectAgentMessage", "message": "Sorry, one moment.", "behavior": "interrupt"}
    )
    await mock_openai.wait_for("response.cancel")
    await component_client.wait_for("AgentAudioDone", count=2)
    await settled(mock_openai)
    assert not component_client.received("Error"), component_client.describe()


async def test_a_refused_settings_without_its_event_id_can_be_corrected(
    mock_openai: MockRealtime, component_client: ComponentClient
) -> None:
    mock_openai.on_client_event("session.update").send_error(
        "invalid_value",
        "Invalid value: 'robot'. Supported values are: 'alloy', 'ash', ...",
        param="session.audio.output.voice",
        names_client_event=False,
    ).once()
    await component_client.send_settings()
    error = await component_client.wait_for("Error", timeout=PROMPTLY_S)
    assert error["code"] == "invalid_value"
    await component_client.start()  # corrected Settings
    assert len(component_client.received("SettingsApplied")) == 1
    await component_client.inject("hi")
    assert await component_client.wait_for_reply(timeout=PROMPTLY_S) == "You said: hi"
