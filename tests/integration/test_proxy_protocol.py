"""The proxy on real sockets against the mock upstream: the rows of docs/protocol-mapping.md."""

from __future__ import annotations

import base64
import time
from typing import Any

import numpy as np
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from harness.client import ComponentClient, default_settings
from harness.mock_openai import MockRealtime, silence_pcm16, tone_pcm16
from harness.pytest_plugin import ProxyEndpoint


def tone(ms: int) -> bytes:
    """Microphone audio: a 300 Hz tone at the component's 16 kHz."""
    return tone_pcm16(ms, frequency=300, rate=16000)


def silence(ms: int) -> bytes:
    return silence_pcm16(ms, rate=16000)


# ------------------------------------------------------------------ connection and settings


async def test_other_paths_are_not_found(proxy: ProxyEndpoint) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(proxy.url.replace("/openai", "/elsewhere")):
            pass
    assert refused.value.response.status_code == 404


async def test_settings_get_welcome_then_settings_applied(
    mock_openai: MockRealtime, component_client: ComponentClient
) -> None:
    await component_client.start()
    welcome = component_client.received("Welcome")[0]
    assert welcome["request_id"].startswith("sess_")
    assert component_client.types().index("Welcome") < component_client.types().index(
        "SettingsApplied"
    )
    # What the session.update holds is translation: tests/unit/test_session.py.
    mock_openai.assert_received("session.update", times=1)


async def test_greeting_is_spoken_shown_and_held_upstream(
    mock_openai: MockRealtime, component_client: ComponentClient
) -> None:
    await component_client.start(greeting="Hi, I am your agent.")
    text = await component_client.wait_for("ConversationText")
    assert text == {
        "type": "ConversationText",
        "role": "assistant",
        "content": "Hi, I am your agent.",
    }
    item = await mock_openai.wait_for("conversation.item.create")
    assert item["item"]["role"] == "assistant"
    assert item["item"]["content"][0] == {"type": "output_text", "text": "Hi, I am your agent."}
    # Spoken by an out-of-band response: audio reaches the client, the text once.
    speak = await mock_openai.wait_for("response.create")
    assert speak["response"]["conversation"] == "none"
    await component_client.wait_for("AgentAudioDone")
    assert component_client.audio
    assert [m["content"] for m in component_client.received("ConversationText")] == [
        "Hi, I am your agent."
    ]


async def test_context_in_settings_is_replayed_in_order_without_greeting(
    mock_openai: MockRealtime, component_client: ComponentClient
) -> None:
    history = [
        {"type": "History", "role": "user", "content": "My name is Ada."},
        {"type": "History", "role": "assistant", "content": "Nice to meet you, Ada."},
        {"type": "History", "role": "user", "content": "I like tea."},
    ]
    await component_client.start(greeting="Hello!", context={"messages": history})
    await mock_openai.wait_for("conversation.item.create", count=3)
    mock_openai.assert_received_in_order(
        ["session.update", "conversation.item.create", "conversation.item.create"]
    )
    items = [e["item"] for e in mock_openai.received("conversation.item.create")]
    assert [(i["role"], i["content"][0]["text"]) for i in items] == [
        ("user", "My name is Ada."),
        ("assistant", "Nice to meet you, Ada."),
        ("user", "I like tea."),
    ]
    await component_client.inject("What is my name?")
    await component_client.wait_for_reply()
    assert "Hello!" not in [m["content"] for m in component_client.received("ConversationText")]


# ------------------------------------------------------------------ text turns


async def test_inject_round_trip_with_user_echo_and_agent_audio(
    mock_openai: MockRealtime, component_client: ComponentClient
) -> None:
    mock_openai.on_user_text("weather").reply_with_audio("It is sunny today.", chunks=3)
    await component_client.start()
    await component_client.inject("How is the weather?")
    assert await component_client.wait_for_reply() == "It is sunny today."
    await component_client.wait_for("AgentAudioDone")
    types = component_client.types()
    echo = component_client.received("ConversationText")[0]
    assert echo == {"type": "ConversationText", "role": "user", "content": "How is the weather?"}
    assert types.index("AgentThinking") < types.index("AgentStartedSpeaking")
    started = component_client.received("AgentStartedSpeaking")[0]
    assert {"total_latency", "tts_latency", "ttt_latency"} <= started.keys()
    assert len(component_client.audio) == 3 * 4800  # three 100 ms chunks of 24 kHz PCM16
    mock_openai.assert_received_in_order(
        ["session.update", "conversation.item.create", "response.create"]
    )
    created = mock_openai.received("conversation.item.create")[-1]
    assert created["item"]["content"] == [{"type": "input_text", "text": "How is the weather?"}]


async def test_text_only_replies_reach_the_client_as_text(
    mock_openai: MockRealtime, component_client: ComponentClient
) -> None:
    # The upstream answers in text (output_text deltas, no audio): the client still gets
    # the reply, and no speech.
    mock_openai.on_user_text("hi").reply_with_text("Hello in text.", output_modalities=["text"])
    await component_client.start()
    await component_client.inject("hi")
    assert await component_client.wait_for_reply() == "Hello in text."
    assert mock_openai.sent("response.output_text.done")  # the mock did answer in text
    assert not mock_openai.sent("response.output_audio.delta")
    assert not component_client.audio and not component_client.received("AgentStartedSpeaking")


async def test_multi_turn_keeps_one_response_at_a_time(
    mock_openai: MockRealtime, component_client: ComponentClient
) -> None:
    # A slow first answer: the second question arrives while it is still running.
    mock_openai.on_user_text("first").reply_with_audio("One.", chunks=5, chunk_interval_ms=60)
    await component_client.start()
    await component_client.inject("first question")
    await component_client.wait_for("AgentStartedSpeaking")
    await component_client.inject("second question")
    await component_client.wait_for("AgentAudioDone", count=2, timeout=10)
    await component_client.wait_for(
        "ConversationText", where=lambda m: m["content"] == "You said: second question"
    )
    assistant = [
        m["content"]
        for m in component_client.received("ConversationText")
        if m["role"] == "assistant"
    ]
    assert assistant == ["One.", "You said: second question"]
    assert not component_client.received("Error")  # no conversation_already_has_active_response
    assert len(mock_openai.received("response.create")) == 2


async def test_inject_agent_message_and_keepalive(
    mock_openai: MockRealtime, component_client: ComponentClient
) -> None:
    await component_client.start()
    await component_client.send({"type": "KeepAlive"})
    await component_client.send({"type": "InjectAgentMessage", "message": "I will wait."})
    text = await component_client.wait_for("ConversationText")
    assert text == {"type": "ConversationText", "role": "assistant", "content": "I will wait."}
    item = await mock_openai.wait_for("conversation.item.create")
    assert item["item"]["content"] == [{"type": "output_text", "text": "I will wait."}]
    assert not component_client.received("Error")


async def test_update_prompt_and_update_speak(
    mock_openai: MockRealtime, component_client: ComponentClient
) -> None:
    await component_client.start()
    await component_client.send({"type": "UpdatePrompt", "prompt": "Answer in French."})
    await component_client.wait_for("PromptUpdated")
    await component_client.send(
        {"type": "UpdateSpeak", "speak": {"provider": {"type": "open_ai", "voice": "verse"}}}
    )
    await component_client.wait_for("SpeakUpdated")
    updates = mock_openai.received("session.update")
    assert updates[1]["session"]["instructions"] == "Answer in French."
    assert updates[2]["session"]["audio"]["output"]["voice"] == "verse"


# ------------------------------------------------------------------ function calls


async def test_function_call_round_trip_then_text_in_order(
    mock_openai: MockRealtime, component_client: ComponentClient
) -> None:
    mock_openai.on_user_text("time").call_function("get_current_time", {"timezone": "UTC"})
    mock_openai.on_function_output("get_current_time").reply_with_audio("It is noon in UTC.")
    functions = [
        {
            "name": "get_current_time",
            "description": "The current time",
            "parameters": {"type": "object", "properties": {"timezone": {"type": "string"}}},
        }
    ]
    await component_client.start(
        think={"provider": {"type": "open_ai", "model": "gpt-4o-mini"}, "functions": functions}
    )
    tools = mock_openai.received("session.update")[0]["session"]["tools"]
    assert [t["name"] for t in tools] == ["get_current_time"]
    await component_client.inject("What time is it?")
    request = await component_client.wait_for("FunctionCallRequest")
    (call,) = request["functions"]
    assert call["name"] == "get_current_time" and call["client_side"] is True
    (arguments_done,) = mock_openai.sent("response.function_call_arguments.done")
    assert call["arguments"] == arguments_done["arguments"]  # passed through untouched
    await component_client.answer_function(call["id"], call["name"], '{"time": "12:00"}')
    output = await mock_openai.wait_for(
        "conversation.item.create", where=lambda e: e["item"]["type"] == "function_call_output"
    )
    assert output["item"] == {
        "type": "function_call_output",
        "call_id": call["id"],
        "output": '{"time": "12:00"}',
    }
    assert await component_client.wait_for_reply() == "It is noon in UTC."
    order = [
        m["type"]
        for m in component_client.messages
        if m["type"] == "FunctionCallRequest" or m.get("role") == "assistant"
    ]
    assert order == ["FunctionCallRequest", "ConversationText"]


async def test_transcript_only_response_gives_text_and_no_function_request(
    mock_openai: MockRealtime, component_client: ComponentClient
) -> None:
    mock_openai.on_client_event("response.create").send_event(
        {
            "type": "response.output_audio_transcript.done",
            "response_id": "resp_transcript",
            "item_id": "item_transcript",
            "output_index": 0,
            "content_index": 0,
            "transcript": "Function call: get_current_time()",
        }
    )
    await component_client.start()
    await component_client.inject("What time is it?")
    assert await component_client.wait_for_reply() == "Function call: get_current_time()"
    assert not component_client.received("FunctionCallRequest")


# ------------------------------------------------------------------ audio


async def test_binary_audio_is_appended_upstream_at_24k(
    mock_openai: MockRealtime, component_client: ComponentClient
) -> None:
    await component_client.start()
    audio = tone(1000)
    await component_client.send_audio(audio, frame_bytes=641)  # odd frame length on purpose
    await component_client.send_audio(silence(200))
    # Total at 24 kHz: 1.2 s of input makes 57600 bytes, less the resampler's filter delay.
    received = bytearray()

    def all_but_the_filter_delay(event: dict[str, Any]) -> bool:
        received.extend(base64.b64decode(event["audio"]))  # each append is seen once, in order
        return len(received) > 56000

    await mock_openai.wait_for("input_audio_buffer.append", where=all_but_the_filter_delay)
    appended = b"".join(
        base64.b64decode(e["audio"]) for e in mock_openai.received("input_audio_buffer.append")
    )
    assert 56000 < len(appended) <= 57600
    assert len(appended) % 2 == 0
    samples = np.frombuffer(appended[: 24000 * 2], dtype="<i2").astype(float)
    spectrum = np.abs(np.fft.rfft(samples))
    assert abs(np.argmax(spectrum) * 24000 / len(samples) - 300) < 3  # the tone survived


async def test_spoken_turn_gives_vad_events_transcript_and_reply(
    mock_openai: MockRealtime, component_client: ComponentClient
) -> None:
    mock_openai.on_user_speech().transcribe_as("what time is it").reply_with_audio("Noon.")
    await component_client.start()
    await component_client.send_audio(silence(200) + tone(800) + silence(800))
    await component_client.wait_for("UserStartedSpeaking")
    await component_client.wait_for("UserStoppedSpeaking")
    end = await component_client.wait_for("UtteranceEnd")
    assert end["channel"] == [0, 1] and end["last_word_end"] > 0.5
    final = await component_client.wait_for("Transcript", where=lambda m: m["is_final"])
    assert final["transcript"] == "what time is it"
    user = await component_client.wait_for("ConversationText", where=lambda m: m["role"] == "user")
    assert user["content"] == "what time is it"
    assert await component_client.wait_for_reply() == "Noon."
    types = component_client.types()
    assert types.index("UserStoppedSpeaking") < types.index("UtteranceEnd")


async def test_barge_in_truncates_the_agent_item_to_what_was_heard(
    mock_openai: MockRealtime, component_client: ComponentClient
) -> None:
    mock_openai.on_user_text("story").reply_with_audio(
        "Once upon a time, a long story.", chunks=40, chunk_interval_ms=50
    )
    await component_client.start()
    await component_client.inject("Tell me a story")
    await component_client.wait_for_audio(4800 * 4)  # 400 ms received, less of it played
    playing_since = time.monotonic() - 0.1  # at least one 50 ms pacing step per chunk
    await component_client.send_audio(tone(600) + silence(100))
    await component_client.wait_for("UserStartedSpeaking")
    truncate = await mock_openai.wait_for("conversation.item.truncate")
    assert truncate["content_index"] == 0
    played_ms = (time.monotonic() - playing_since) * 1000
    # Cut at what was played (audio plays in real time), never beyond what was sent.
    assert 50 <= truncate["audio_end_ms"] <= min(len(component_client.audio) / 48, played_ms + 200)
    # After the barge-in no more of that item is played.
    heard = len(component_client.audio)
    await mock_openai.wait_for("input_audio_buffer.append", count=2)
    assert len(component_client.audio) - heard <= 4800 * 2
    assert not component_client.received("Error")


async def test_output_audio_at_the_component_rate(
    mock_openai: MockRealtime, component_client: ComponentClient
) -> None:
    settings = default_settings()
    settings["audio"]["output"]["sample_rate"] = 16000
    await component_client.start(settings)
    await component_client.inject("hello")
    await component_client.wait_for("AgentAudioDone")
    # 300 ms at 16 kHz is 9600 bytes; the filter is drained at the end of the item.
    assert abs(len(component_client.audio) - 9600) <= 4


async def test_client_token_is_required_when_configured(
    mock_openai: MockRealtime, proxy_factory: object
) -> None:
    endpoint = proxy_factory(client_token="let-me-in")  # type: ignore[operator]
    with pytest.raises(InvalidStatus) as refused:
        async with connect(endpoint.url):
            pass
    assert refused.value.response.status_code == 401
    client = await ComponentClient.connect(endpoint.url, token="let-me-in")
    async with client:
        await client.start()
