"""The mock OpenAI Realtime API over real sockets, driven by a plain websockets client."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from harness.background import BackgroundLoop
from harness.mock_openai import MockRealtime, silence_pcm16, tone_pcm16
from harness.schema import SchemaError
from tests.realtime_client import (
    API_KEY,
    AUDIO_REPLY,
    AUDIO_REPLY_END,
    AUTH,
    Client,
    running_mock,
    session,
    types,
)

pytestmark = pytest.mark.integration


@pytest.fixture
async def mock() -> AsyncIterator[MockRealtime]:
    async with running_mock() as mock:
        yield mock


# --- connecting -----------------------------------------------------------------------


async def test_a_connection_gets_a_full_ga_session(mock: MockRealtime) -> None:
    url = mock.url.replace("gpt-realtime", "gpt-realtime-mini")
    async with connect(url, additional_headers=AUTH) as ws:
        created = await Client(ws).recv()
    assert created["type"] == "session.created"
    assert created["event_id"].startswith("event_")
    session_ = created["session"]
    assert session_["id"].startswith("sess_")
    assert session_["object"] == "realtime.session"
    assert session_["type"] == "realtime"
    assert session_["model"] == "gpt-realtime-mini"
    assert session_["output_modalities"] == ["audio"]
    assert session_["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
    assert session_["audio"]["input"]["turn_detection"] == {
        "type": "server_vad",
        "threshold": 0.5,
        "prefix_padding_ms": 300,
        "silence_duration_ms": 500,
        "idle_timeout_ms": None,
        "create_response": True,
        "interrupt_response": True,
    }
    assert session_["audio"]["input"]["transcription"] is None
    assert session_["audio"]["output"]["voice"] == "alloy"
    assert session_["tools"] == [] and session_["tool_choice"] == "auto"
    (connection,) = await mock.wait_for_connections(1)
    assert connection.path == "/v1/realtime?model=gpt-realtime-mini"
    assert connection.request_headers["authorization"] == f"Bearer {API_KEY}"
    assert API_KEY not in repr(connection)


async def test_no_api_key_is_refused_with_401(mock: MockRealtime) -> None:
    with pytest.raises(InvalidStatus) as caught:
        async with connect(mock.url):
            pass
    response = caught.value.response
    assert response.status_code == 401
    body = orjson.loads(response.body)
    assert "didn't provide an API key" in body["error"]["message"]
    assert body["error"]["type"] == "invalid_request_error"


async def test_a_wrong_api_key_is_refused_with_401_without_echoing_it(mock: MockRealtime) -> None:
    with pytest.raises(InvalidStatus) as caught:
        async with connect(mock.url, additional_headers={"Authorization": "Bearer sk-wrong"}):
            pass
    response = caught.value.response
    assert response.status_code == 401
    assert response.headers["Content-Type"] == "application/json"
    body = orjson.loads(response.body)
    assert body["error"]["code"] == "invalid_api_key"
    assert b"sk-wrong" not in response.body
    (connection,) = mock.connections
    assert connection.rejected_status == 401 and connection.closed


async def test_without_a_journal_nothing_is_kept() -> None:
    mock = MockRealtime(journal=False)
    await mock.start()
    try:
        async with session(mock) as client:
            await client.say_text("hi")
            await client.recv_until("response.done")
        assert mock.received() == [] and mock.sent() == []
        assert len(mock.connections) == 1  # connections are still listed
    finally:
        await mock.stop()


async def test_the_api_key_never_reaches_the_mocks_logs(
    mock: MockRealtime, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="harness.mock_openai"):
        async with session(mock) as client:
            await client.say_text("hi")
            await client.recv_until("response.done")
    assert "authorization" in caplog.text.lower()  # the handshake was logged...
    assert API_KEY not in caplog.text  # ...without the key


async def test_the_beta_header_is_recorded_as_a_failure(mock: MockRealtime) -> None:
    headers = {**AUTH, "OpenAI-Beta": "realtime=v1"}
    async with connect(mock.url, additional_headers=headers) as ws:
        await Client(ws).recv()
    with pytest.raises(AssertionError, match="OpenAI-Beta"):
        mock.check()


async def test_connections_are_independent(mock: MockRealtime) -> None:
    async with session(mock) as first, session(mock) as second:
        await first.send(
            {"type": "session.update", "session": {"type": "realtime", "instructions": "first"}}
        )
        await second.say_text("hello")
        (updated,) = await first.recv_until("session.updated")
        assert updated["session"]["instructions"] == "first"
        events = await second.recv_until("response.done")
        assert "session.updated" not in types(events)
        assert len(mock.connections) == 2
        assert types(mock.connections[0].received) == ["session.update"]
        assert types(mock.connections[1].received) == [
            "conversation.item.create",
            "response.create",
        ]


# --- session and conversation -----------------------------------------------------------


async def test_session_update_merges_and_answers_with_the_full_session(mock: MockRealtime) -> None:
    async with session(mock) as client:
        await client.send(
            {
                "type": "session.update",
                "session": {
                    "type": "realtime",
                    "instructions": "Be brief.",
                    "audio": {
                        "input": {
                            "transcription": {"model": "gpt-4o-transcribe"},
                            "turn_detection": {"type": "server_vad", "silence_duration_ms": 800},
                        },
                        "output": {"voice": "marin"},
                    },
                },
            }
        )
        updated = (await client.recv())["session"]
        assert updated["instructions"] == "Be brief."
        assert updated["audio"]["output"]["voice"] == "marin"
        assert updated["audio"]["output"]["format"] == {"type": "audio/pcm", "rate": 24000}
        assert updated["audio"]["input"]["transcription"] == {"model": "gpt-4o-transcribe"}
        detection = updated["audio"]["input"]["turn_detection"]
        assert detection["silence_duration_ms"] == 800 and detection["threshold"] == 0.5
        # null clears
        await client.send(
            {
                "type": "session.update",
                "session": {"type": "realtime", "audio": {"input": {"turn_detection": None}}},
            }
        )
        cleared = (await client.recv())["session"]
        assert cleared["audio"]["input"]["turn_detection"] is None
        assert cleared["instructions"] == "Be brief."
    mock.check()


async def test_item_create_is_added_then_done_and_kept_in_order(mock: MockRealtime) -> None:
    async with session(mock) as client:
        for text in ("one", "two"):
            await client.send(
                {
                    "type": "conversation.item.create",
                    "item": {
                        "type": "message",
                        "role": "user",
                        "content": [{"type": "input_text", "text": text}],
                    },
                }
            )
        first_added, first_done, second_added, second_done = [await client.recv() for _ in range(4)]
        assert types([first_added, first_done]) == [
            "conversation.item.added",
            "conversation.item.done",
        ]
        first_id = first_added["item"]["id"]
        assert first_id.startswith("item_")
        assert first_added["previous_item_id"] is None
        assert first_done["item"]["status"] == "completed"
        assert second_added["previous_item_id"] == first_id
        assert second_done["item"]["content"] == [{"type": "input_text", "text": "two"}]
        await client.send(
            {
                "type": "conversation.item.create",
                "previous_item_id": "item_nope",
                "item": {
                    "type": "message",
                    "role": "system",
                    "content": [{"type": "input_text", "text": "x"}],
                },
            }
        )
        error = await client.recv()
        assert error["type"] == "error" and error["error"]["param"] == "previous_item_id"
        await client.send({"type": "conversation.item.retrieve", "item_id": first_id})
        retrieved = await client.recv()
        assert retrieved["type"] == "conversation.item.retrieved"
        assert retrieved["item"]["id"] == first_id
        await client.send({"type": "conversation.item.delete", "item_id": first_id})
        assert (await client.recv())["type"] == "conversation.item.deleted"
        await client.send({"type": "conversation.item.delete", "item_id": first_id})
        assert (await client.recv())["type"] == "error"
    assert [i["content"][0]["text"] for i in mock.connections[0].conversation()] == ["two"]


# --- responses ----------------------------------------------------------------------------


async def test_an_audio_response_has_the_ga_event_sequence(mock: MockRealtime) -> None:
    mock.on_user_text("weather").reply_with_audio("It is sunny today", chunks=2, chunk_ms=50)
    async with session(mock) as client:
        await client.say_text("what's the weather?")
        events = await client.recv_until("response.done")
    kinds = types(events)
    assert kinds[:4] == AUDIO_REPLY
    assert kinds[-6:] == AUDIO_REPLY_END
    middle = kinds[4:-6]
    assert middle.count("response.output_audio.delta") == 2
    assert set(middle) == {"response.output_audio.delta", "response.output_audio_transcript.delta"}
    transcript = "".join(e["delta"] for e in events if e["type"].endswith("transcript.delta"))
    assert transcript == "It is sunny today"
    pcm = b"".join(
        base64.b64decode(e["delta"]) for e in events if e["type"] == "response.output_audio.delta"
    )
    assert len(pcm) == 2 * 50 * 48  # 50 ms of PCM16 at 24 kHz, twice
    assert (
        max(abs(int.from_bytes(pcm[i : i + 2], "little", signed=True)) for i in range(0, 400, 2))
        > 1000
    )
    done = events[-1]["response"]
    assert done["status"] == "completed"
    assert done["output"][0]["content"] == [
        {"type": "output_audio", "transcript": "It is sunny today"}
    ]
    assert done["usage"]["output_token_details"]["audio_tokens"] == 2
    assert len({e["event_id"] for e in events}) == len(events)
    item_ids = {e.get("item_id") for e in events if "item_id" in e}
    assert item_ids == {done["output"][0]["id"]}


async def test_the_default_reply_echoes_the_user_text(mock: MockRealtime) -> None:
    async with session(mock) as client:
        await client.say_text("hello mock")
        events = await client.recv_until("response.done")
    done = next(e for e in events if e["type"] == "response.output_audio_transcript.done")
    assert done["transcript"] == "You said: hello mock"


async def test_a_text_session_answers_with_output_text(mock: MockRealtime) -> None:
    mock.on_user_text(re.compile(r"^ping$")).reply_with_text("pong pong")
    async with session(mock) as client:
        await client.send(
            {
                "type": "session.update",
                "session": {"type": "realtime", "output_modalities": ["text"]},
            }
        )
        await client.recv_until("session.updated")
        await client.say_text("ping")
        events = await client.recv_until("response.done")
    assert types(events) == [
        *AUDIO_REPLY,
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "conversation.item.done",
        "response.done",
    ]
    assert events[-5]["text"] == "pong pong"
    assert events[-1]["response"]["output_modalities"] == ["text"]


async def test_a_function_call_and_its_output(mock: MockRealtime) -> None:
    mock.on_user_text("weather").call_function("get_weather", {"city": "Paris"}, call_id="call_42")
    mock.on_function_output("get_weather").reply_with_text("Sunny in Paris")
    async with session(mock) as client:
        await client.say_text("weather in Paris?")
        events = await client.recv_until("response.done")
        deltas = [e for e in events if e["type"] == "response.function_call_arguments.delta"]
        assert 1 <= len(deltas) <= 3
        assert [t for t in types(events) if t != "response.function_call_arguments.delta"] == [
            "response.created",
            "response.output_item.added",
            "conversation.item.added",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "conversation.item.done",
            "response.done",
        ]
        assert types(events).index("response.function_call_arguments.delta") == 3
        args_done = next(e for e in events if e["type"] == "response.function_call_arguments.done")
        assert args_done["call_id"] == "call_42"
        assert args_done["name"] == "get_weather"
        assert "".join(d["delta"] for d in deltas) == args_done["arguments"]
        assert orjson.loads(args_done["arguments"]) == {"city": "Paris"}
        answer = await client.answer_function("call_42", '{"temp": 21}')
    transcript = next(e for e in answer if e["type"] == "response.output_audio_transcript.done")
    assert transcript["transcript"] == "Sunny in Paris"


async def test_the_default_reply_after_a_function_output_quotes_it(mock: MockRealtime) -> None:
    async with session(mock) as client:
        await client.send(
            {
                "type": "conversation.item.create",
                "item": {"type": "function_call_output", "call_id": "call_1", "output": "42"},
            }
        )
        await client.recv_until("conversation.item.done")
        await client.send({"type": "response.create"})
        events = await client.recv_until("response.done")
    done = next(e for e in events if e["type"] == "response.output_audio_transcript.done")
    assert done["transcript"] == "The function returned: 42"


async def test_a_second_response_create_while_one_is_active_is_an_error(mock: MockRealtime) -> None:
    mock.on_user_text().reply_with_audio("slow answer", chunks=4, chunk_interval_ms=150)
    async with session(mock) as client:
        await client.say_text("hi")
        created = await client.recv()
        assert created["type"] == "response.created"
        await client.send({"type": "response.create", "event_id": "evt_again"})
        events = await client.recv_until("error")
        error = events[-1]["error"]
        assert error["code"] == "conversation_already_has_active_response"
        active_id = created["response"]["id"]
        assert error["message"] == (
            f"Conversation already has an active response in progress: {active_id}. "
            "Wait until the response is finished before creating a new one."
        )
        assert error["event_id"] == "evt_again"
        await client.recv_until("response.done")
        await client.send({"type": "response.create"})  # now it may
        assert (await client.recv())["type"] == "response.created"


async def test_response_cancel_stops_the_active_response(mock: MockRealtime) -> None:
    mock.on_user_text().reply_with_audio("long answer", chunks=10, chunk_interval_ms=100)
    async with session(mock) as client:
        await client.say_text("hi")
        await client.recv_until("response.output_audio.delta")
        await client.send({"type": "response.cancel"})
        events = await client.recv_until("response.done")
        done = events[-1]["response"]
        assert done["status"] == "cancelled"
        assert done["status_details"] == {"type": "cancelled", "reason": "client_cancelled"}
        assert done["output"][0]["status"] == "incomplete"
        await client.send({"type": "response.cancel"})
        error = await client.recv()
        assert error["error"]["code"] == "response_cancel_not_active"
        await mock.wait_idle()  # a response still running would end, or time out, first
        sent = types(mock.sent())
        assert sent[sent.index("response.done") + 1 :] == ["error"]  # nothing more of it


# --- input audio ---------------------------------------------------------------------------


async def test_server_vad_commits_transcribes_and_answers_speech(mock: MockRealtime) -> None:
    mock.on_user_speech().transcribe_as("what time is it").reply_with_text("It is noon")
    async with session(mock) as client:
        await client.send(
            {
                "type": "session.update",
                "session": {
                    "type": "realtime",
                    "audio": {"input": {"transcription": {"model": "gpt-4o-transcribe"}}},
                },
            }
        )
        await client.recv_until("session.updated")
        # Faster than real time: the VAD counts audio, not wall-clock time.
        await client.append_audio(silence_pcm16(500) + tone_pcm16(1000) + silence_pcm16(700))
        events = await client.recv_until("response.done")
    kinds = types(events)
    assert kinds[:5] == [
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "conversation.item.added",
        "conversation.item.done",
    ]
    started, stopped, committed, added = events[:4]
    assert started["audio_start_ms"] == 500 - 300  # prefix padding
    assert stopped["audio_end_ms"] == 1500
    assert started["item_id"] == stopped["item_id"] == committed["item_id"] == added["item"]["id"]
    assert added["item"]["content"] == [{"type": "input_audio", "transcript": None}]
    completed = next(e for e in events if e["type"].endswith("input_audio_transcription.completed"))
    assert completed["transcript"] == "what time is it"
    deltas = [e["delta"] for e in events if e["type"].endswith("input_audio_transcription.delta")]
    assert "".join(deltas) == "what time is it"
    assert kinds.index("conversation.item.input_audio_transcription.completed") < kinds.index(
        "response.created"
    )
    answer = next(e for e in events if e["type"] == "response.output_audio_transcript.done")
    assert answer["transcript"] == "It is noon"


async def test_speech_without_transcription_or_rules_gets_the_default_reply(
    mock: MockRealtime,
) -> None:
    async with session(mock) as client:
        await client.append_audio(tone_pcm16(600) + silence_pcm16(600))
        events = await client.recv_until("response.done")
    assert not any("transcription" in kind for kind in types(events))
    answer = next(e for e in events if e["type"] == "response.output_audio_transcript.done")
    assert answer["transcript"] == "I heard: [speech 600 ms]"


async def test_barge_in_cancels_the_response_and_truncate_checks_the_audio(
    mock: MockRealtime,
) -> None:
    mock.on_user_text().reply_with_audio(
        "a long story", chunks=20, chunk_ms=100, chunk_interval_ms=100
    )
    async with session(mock) as client:
        await client.say_text("tell me a story")
        events = await client.recv_until("response.output_audio.delta")
        item_id = events[-1]["item_id"]
        await client.append_audio(tone_pcm16(300))
        events = await client.recv_until("response.done")
        assert "input_audio_buffer.speech_started" in types(events)
        assert types(events).index("input_audio_buffer.speech_started") < len(events) - 1
        done = events[-1]["response"]
        assert done["status"] == "cancelled"
        assert done["status_details"]["reason"] == "turn_detected"
        produced = sum(1 for e in events if e["type"] == "response.output_audio.delta") + 1
        await client.send(
            {
                "type": "conversation.item.truncate",
                "item_id": item_id,
                "content_index": 0,
                "audio_end_ms": produced * 100 + 1,
            }
        )
        error = await client.recv()
        assert error["error"]["message"] == (
            f"Audio content of {produced * 100}ms is already shorter than {produced * 100 + 1}ms"
        )
        await client.send(
            {
                "type": "conversation.item.truncate",
                "item_id": item_id,
                "content_index": 0,
                "audio_end_ms": 50,
            }
        )
        truncated = await client.recv()
        assert truncated["type"] == "conversation.item.truncated"
        assert truncated["audio_end_ms"] == 50
    mock.check()


async def test_commit_needs_100_ms_of_audio(mock: MockRealtime) -> None:
    async with session(mock) as client:
        await client.send(
            {
                "type": "session.update",
                "session": {"type": "realtime", "audio": {"input": {"turn_detection": None}}},
            }
        )
        await client.recv_until("session.updated")
        await client.append_audio(tone_pcm16(50))
        await client.send({"type": "input_audio_buffer.commit"})
        error = (await client.recv())["error"]
        assert error["code"] == "input_audio_buffer_commit_empty"
        assert error["message"].endswith("but buffer only has 50.00ms of audio.")
        await client.append_audio(tone_pcm16(100))
        await client.send({"type": "input_audio_buffer.commit"})
        events = await client.recv_until("conversation.item.done")
        assert types(events) == [
            "input_audio_buffer.committed",
            "conversation.item.added",
            "conversation.item.done",
        ]
        # A response would have been queued with the commit's events, before this error.
        await client.send({"type": "output_audio_buffer.clear"})
        assert (await client.recv())["type"] == "error"


# --- validation and faults -------------------------------------------------------------------


async def test_an_invalid_client_event_gets_an_error_and_check_fails(mock: MockRealtime) -> None:
    async with session(mock) as client:
        await client.send(
            {
                "type": "session.update",
                "event_id": "evt_7",
                "session": {"type": "realtime", "temperature": 0.8},
            }
        )
        error = await client.recv()
    assert error["type"] == "error"
    assert error["error"] == {
        "type": "invalid_request_error",
        "code": "unknown_parameter",
        "message": "Unknown parameter: 'session.temperature'.",
        "param": "session.temperature",
        "event_id": "evt_7",
    }
    assert mock.received("session.update")[0]["session"]["temperature"] == 0.8  # journal first
    with pytest.raises(AssertionError, match=r"session\.temperature"):
        mock.check()


async def test_invalid_events_can_be_allowed(mock: MockRealtime) -> None:
    mock.allow_invalid_client_events(True)
    async with session(mock) as client:
        await client.send({"type": "no.such.event"})
        assert (await client.recv())["error"]["param"] == "type"
        await client.ws.send("not json{")
        assert (await client.recv())["error"]["code"] == "invalid_json"
        await client.ws.send(b"\x00\x01")
        assert (await client.recv())["error"]["code"] == "invalid_json"
    mock.check()
    mock.reset()
    assert mock.received() == []


async def test_a_non_json_frame_is_a_failure_but_the_connection_survives(
    mock: MockRealtime,
) -> None:
    async with session(mock) as client:
        await client.ws.send("not json{")
        assert (await client.recv())["error"]["code"] == "invalid_json"
        await client.say_text("still there?")
        await client.recv_until("response.done")
    assert len(mock.failures) == 1
    assert "not json{" in mock.failures[0]


async def test_push_validates_and_fills_the_event_id(mock: MockRealtime) -> None:
    async with session(mock) as client:
        with pytest.raises(SchemaError):
            mock.push({"type": "rate_limits.updated", "rate_limits": [{"nme": "requests"}]})
        mock.push(
            {"type": "rate_limits.updated", "rate_limits": [{"name": "requests", "limit": 5}]}
        )
        pushed = await client.recv()
    assert pushed["type"] == "rate_limits.updated"  # the invalid one never went out
    assert pushed["event_id"].startswith("event_")
    assert mock.sent("rate_limits.updated") == [pushed]


async def test_push_garbage_and_close_connections(mock: MockRealtime) -> None:
    async with session(mock) as client:
        mock.push_garbage("}{")
        assert await client.ws.recv() == "}{"
        mock.close_connections(4000, "bye")
        with pytest.raises(ConnectionClosed):
            await client.ws.recv()
        assert client.ws.close_code == 4000


async def test_wait_for_times_out_naming_what_was_received(mock: MockRealtime) -> None:
    async with session(mock) as client:
        await client.say_text("hi")
        await mock.wait_for("response.create")
        with pytest.raises(AssertionError) as caught:
            await mock.wait_for("response.cancel", timeout=0.2)
    message = str(caught.value)
    assert "'response.cancel'" in message
    assert "conversation.item.create, response.create" in message
    mock.assert_received_in_order(["conversation.item.create", "response.create"])
    with pytest.raises(AssertionError, match="Actual sequence"):
        mock.assert_received_in_order(["response.create", "conversation.item.create"])
    (created,) = mock.assert_received("response.create", times=1)
    assert created == {"type": "response.create"}
    with pytest.raises(
        AssertionError, match=r"exactly 2 client event\(s\) 'response\.create'.*found 1"
    ):
        mock.assert_received("response.create", times=2)
    with pytest.raises(AssertionError, match="at least one"):
        mock.assert_received("conversation.item.create", where={"item": {"role": "assistant"}})


async def test_wait_for_where_and_count(mock: MockRealtime) -> None:
    async with session(mock) as client:
        for text in ("a", "b", "c"):
            await client.say_text(text)
            await client.recv_until("response.done")
        second = await mock.wait_for("response.create", count=2)
        assert second is mock.received("response.create")[1]
        event = await mock.wait_for(
            "conversation.item.create", where=lambda e: e["item"]["content"][0]["text"] == "c"
        )
        assert event["item"]["content"][0]["text"] == "c"


# --- rules ------------------------------------------------------------------------------------


async def test_rule_send_error_replaces_the_default(mock: MockRealtime) -> None:
    mock.on_client_event("session.update").send_error("server_error", "boom", type="server_error")
    async with session(mock) as client:
        await client.send({"type": "session.update", "session": {"type": "realtime"}})
        error = await client.recv()
        assert error["error"]["code"] == "server_error"
        assert error["error"]["type"] == "server_error"
        await client.say_text("next")  # nothing else was queued in between
        assert (await client.recv())["type"] == "response.created"


async def test_rule_close_gives_the_client_that_code(mock: MockRealtime) -> None:
    mock.on_user_text("bye").close(1011, "upstream died")
    async with session(mock) as client:
        await client.say_text("bye")
        with pytest.raises(ConnectionClosed):
            await client.recv()
        assert client.ws.close_code == 1011
        assert client.ws.close_reason == "upstream died"
    (connection,) = await mock.wait_for_connections(1)
    assert await connection.wait_closed() == 1011


async def test_rule_stall_delays_the_default_handling(mock: MockRealtime) -> None:
    mock.on_client_event("session.update").stall(300)
    async with session(mock) as client:
        started = time.monotonic()
        await client.send(
            {"type": "session.update", "session": {"type": "realtime", "instructions": "x"}}
        )
        updated = await client.recv()
        assert updated["type"] == "session.updated"
        assert time.monotonic() - started >= 0.3


async def test_stop_after_events_then_close_models_an_upstream_dying_mid_response(
    mock: MockRealtime,
) -> None:
    mock.on_user_text().reply_with_audio("cut short", chunks=5, stop_after_events=6).close(1011)
    async with session(mock) as client:
        await client.say_text("hi")
        received: list[dict[str, Any]] = []
        with pytest.raises(ConnectionClosed):
            while True:
                received.append(await client.recv())
        assert client.ws.close_code == 1011
    assert types(received) == [
        *AUDIO_REPLY,
        "response.output_audio_transcript.delta",
        "response.output_audio.delta",
    ]


async def test_once_rules_fall_back_to_later_rules_then_the_default(mock: MockRealtime) -> None:
    first = mock.on_user_text().reply_with_text("first").once()
    mock.on_user_text("again").reply_with_text("second")
    async with session(mock) as client:
        answers = []
        for text in ("hi", "hi", "again"):
            await client.say_text(text)
            events = await client.recv_until("response.done")
            answers.append(
                next(e for e in events if e["type"].endswith("transcript.done"))["transcript"]
            )
    assert answers == ["first", "You said: hi", "second"]
    assert first.hits == 1


async def test_send_event_is_validated_when_scripted(mock: MockRealtime) -> None:
    with pytest.raises(SchemaError):
        mock.on_client_event("session.update").send_event({"type": "session.updated", "session": 5})
    mock.on_client_event("session.update").send_event(
        {"type": "session.updated", "session": {"type": "realtime", "instructions": "scripted"}}
    )
    async with session(mock) as client:
        await client.send({"type": "session.update", "session": {"type": "realtime"}})
        updated = await client.recv()
    assert updated["session"] == {"type": "realtime", "instructions": "scripted"}


async def test_send_garbage_then_the_connection_goes_on(mock: MockRealtime) -> None:
    mock.on_client_event("response.create").send_garbage(b"\x00binary")
    async with session(mock) as client:
        await client.say_text("hi")
        assert await client.ws.recv() == b"\x00binary"
        await client.send({"type": "input_audio_buffer.clear"})
        assert (await client.recv())["type"] == "input_audio_buffer.cleared"


async def test_on_connect_stall_and_reject(mock: MockRealtime) -> None:
    mock.on_connect().reject_handshake(503).once()
    mock.on_connect().stall(200).once()
    with pytest.raises(InvalidStatus) as caught:
        async with connect(mock.url, additional_headers=AUTH):
            pass
    assert caught.value.response.status_code == 503
    assert orjson.loads(caught.value.response.body)["error"]["type"] == "server_error"
    started = time.monotonic()
    async with session(mock):
        assert time.monotonic() - started >= 0.2
    assert [c.rejected_status for c in mock.connections] == [503, None]


async def test_on_connect_can_replace_session_created(mock: MockRealtime) -> None:
    mock.on_connect().send_error("server_error", "no capacity", type="server_error").close(1013)
    async with connect(mock.url, additional_headers=AUTH) as ws:
        client = Client(ws)
        assert (await client.recv())["error"]["message"] == "no capacity"
        with pytest.raises(ConnectionClosed):
            await client.recv()
        assert ws.close_code == 1013


async def test_a_failing_rule_predicate_is_recorded_and_the_server_survives(
    mock: MockRealtime,
) -> None:
    mock.on_client_event("input_audio_buffer.clear", where=lambda e: 1 / 0 > 0)
    async with session(mock) as client:
        await client.send({"type": "input_audio_buffer.clear"})
        await client.say_text("still alive?")
        events = await client.recv_until("response.done")
        assert "response.created" in types(events)
    with pytest.raises(AssertionError, match="ZeroDivisionError"):
        mock.check()


async def test_reset_closes_connections_and_forgets_everything(mock: MockRealtime) -> None:
    mock.on_user_text().reply_with_text("scripted")
    async with session(mock) as client:
        await client.say_text("hi")
        await client.recv_until("response.done")
        await client.ws.send("not json{")
        await client.recv()
        mock.reset()
        with pytest.raises(ConnectionClosed):
            await client.recv()
        assert client.ws.close_code == 1000
    assert (mock.received(), mock.connections, mock.failures) == ([], [], [])
    async with session(mock) as client:
        await client.say_text("hi")
        events = await client.recv_until("response.done")
    assert (
        next(e for e in events if e["type"].endswith("transcript.done"))["transcript"]
        == "You said: hi"
    )


# --- the mock on a background loop, used from another loop and from sync code ------------


@pytest.fixture(scope="module")
def background_mock() -> Iterator[MockRealtime]:
    loop = BackgroundLoop("mock-openai-test")
    mock = MockRealtime()
    loop.run(mock.start())
    try:
        yield mock
    finally:
        loop.run(mock.stop())
        loop.stop()


async def test_background_mock_scripted_and_awaited_from_the_test_loop(
    background_mock: MockRealtime,
) -> None:
    mock = background_mock
    mock.reset()
    mock.on_user_text("time").call_function("get_time")
    async with session(mock) as client:
        waiter = asyncio.create_task(mock.wait_for("response.create", timeout=3))
        # Waiting does not block this loop: the client below talks while it waits.
        await client.say_text("what time is it?")
        event = await waiter
        assert event == {"type": "response.create"}
        events = await client.recv_until("response.done")
        assert events[-1]["response"]["output"][0]["name"] == "get_time"
        await mock.wait_for_connections(1)
        mock.check()
        # reset() from this thread must not wait for this (blocked) loop to answer the close.
        started = time.monotonic()
        mock.reset()
        assert time.monotonic() - started < 1
        with pytest.raises(ConnectionClosed):
            await client.recv()
        assert client.ws.close_code == 1000
    assert mock.connections == []


def test_background_mock_from_a_sync_test(background_mock: MockRealtime) -> None:
    mock = background_mock
    mock.reset()
    client_loop = BackgroundLoop("client-loop")  # a sync test drives its client elsewhere

    async def talk() -> str:
        async with session(mock) as client:
            await client.say_text("sync hello")
            events = await client.recv_until("response.done")
        return str(next(e for e in events if e["type"].endswith("transcript.done"))["transcript"])

    try:
        future = asyncio.run_coroutine_threadsafe(talk(), client_loop.loop)
        event = mock.wait_for_sync("conversation.item.create", timeout=3)
        assert event["item"]["content"][0]["text"] == "sync hello"
        assert future.result(5) == "You said: sync hello"
        assert len(mock.wait_for_connections_sync(1)) == 1
        with pytest.raises(AssertionError, match=r"response\.cancel"):
            mock.wait_for_sync("response.cancel", timeout=0.1)
    finally:
        client_loop.stop()
    mock.check()


# --- standalone ---------------------------------------------------------------------------------


def test_the_cli_serves_until_sigterm() -> None:
    command = [sys.executable, "-m", "harness.mock_openai", "--host", "127.0.0.1", "--port", "0"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    ) as process:
        try:
            assert process.stdout is not None and process.stderr is not None
            line = process.stdout.readline()
            match = re.fullmatch(
                r"mock OpenAI Realtime listening on (ws://127\.0\.0\.1:\d+/v1/realtime)\n", line
            )
            assert match, line

            async def talk() -> str:
                async with connect(match.group(1), additional_headers=AUTH) as ws:
                    client = Client(ws)
                    await client.recv()
                    await client.say_text("cli")
                    events = await client.recv_until("response.done")
                return str(events[-1]["response"]["status"])

            assert asyncio.run(talk()) == "completed"
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=10) == 0
            assert "Traceback" not in process.stderr.read()
        finally:
            if process.poll() is None:
                process.kill()


# --- what the proxy's v1 mappings need from the model ----------------------------------


async def test_an_out_of_band_response_says_its_input_and_leaves_rules_alone(
    mock: MockRealtime,
) -> None:
    rule = mock.on_user_text().reply_with_text("a rule's answer").optional()
    async with session(mock) as client:
        await client.send(
            {
                "type": "response.create",
                "response": {
                    "conversation": "none",
                    "input": [
                        {
                            "type": "message",
                            "role": "user",
                            "content": [{"type": "input_text", "text": "Read me aloud."}],
                        }
                    ],
                    "metadata": {"purpose": "speak"},
                },
            }
        )
        events = await client.recv_until("response.done")
    done = events[-1]["response"]
    assert done["conversation_id"] is None and done["metadata"] == {"purpose": "speak"}
    transcript = next(e for e in events if e["type"] == "response.output_audio_transcript.done")
    assert transcript["transcript"] == "Read me aloud."
    assert not [e for e in events if e["type"].startswith("conversation.item")]  # out of band
    assert rule.hits == 0


@pytest.mark.parametrize(("format_type", "law"), [("audio/pcmu", "ulaw"), ("audio/pcma", "alaw")])
async def test_g711_sessions_hear_and_speak_g711(
    mock: MockRealtime, format_type: str, law: str
) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import audioop

    encode = audioop.lin2ulaw if law == "ulaw" else audioop.lin2alaw
    async with session(mock) as client:
        g711 = {"type": format_type}
        await client.send(
            {
                "type": "session.update",
                "session": {
                    "type": "realtime",
                    "audio": {"input": {"format": g711}, "output": {"format": g711}},
                },
            }
        )
        await client.recv_until("session.updated")
        spoken = encode(tone_pcm16(400, rate=8000), 2) + encode(silence_pcm16(800, rate=8000), 2)
        for start in range(0, len(spoken), 800):  # 100 ms at 8 kHz, one byte a sample
            chunk = base64.b64encode(spoken[start : start + 800]).decode()
            await client.send({"type": "input_audio_buffer.append", "audio": chunk})
        events = await client.recv_until("response.done", timeout=5)
    started = next(e for e in events if e["type"] == "input_audio_buffer.speech_started")
    stopped = next(e for e in events if e["type"] == "input_audio_buffer.speech_stopped")
    assert started["audio_start_ms"] == 0 and 390 <= stopped["audio_end_ms"] <= 410
    audio = b"".join(
        base64.b64decode(e["delta"]) for e in events if e["type"] == "response.output_audio.delta"
    )
    assert abs(len(audio) - 300 * 8) <= 8  # 300 ms at 8 kHz, one byte a sample
    assert events[-1]["response"]["audio"]["output"]["format"] == g711


# --- the service's session cap -------------------------------------------------------------


async def test_a_session_ends_at_expires_at_with_the_services_error(mock: MockRealtime) -> None:
    assert mock.session_lifetime == 3600
    async with connect(mock.url, additional_headers=AUTH) as ws:
        created = await Client(ws).recv()
    assert abs(created["session"]["expires_at"] - (time.time() + 3600)) <= 2
    mock.session_lifetime = 1.5
    opened = time.time()
    async with connect(mock.url, additional_headers=AUTH) as ws:
        client = Client(ws)
        created = await client.recv()
        expires_at = created["session"]["expires_at"]
        assert isinstance(expires_at, int) and opened + 1.5 <= expires_at <= time.time() + 2.5
        await client.say_text("hi")  # the session works until then
        await client.recv_until("response.done")
        error = await client.recv(timeout=4)
        assert time.time() >= expires_at - 0.05
        assert error["type"] == "error"
        assert error["error"] == {
            "type": "invalid_request_error",
            "code": "session_expired",
            "message": "Your session hit the maximum duration of 60 minutes.",
            "param": None,
            "event_id": None,
        }
        with pytest.raises(ConnectionClosed):
            await client.recv()
        assert ws.close_code == 1000
    mock.reset()
    assert mock.session_lifetime == 3600
    with pytest.raises(ValueError, match="positive"):
        mock.session_lifetime = 0
