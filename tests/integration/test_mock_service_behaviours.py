"""The mock plays what the real Realtime service was recorded doing, by name: each
behaviour a test can ask for, seen from a plain websockets client."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import orjson
import pytest

from harness.mock_openai import MockRealtime, reply
from harness.mock_openai.steps import SERVER_ERROR_MESSAGE
from tests.realtime_client import running_mock, session, types

pytestmark = pytest.mark.integration


@pytest.fixture
async def mock() -> AsyncIterator[MockRealtime]:
    async with running_mock() as mock:
        yield mock


async def test_server_error_names_no_client_event_and_creates_no_response(
    mock: MockRealtime,
) -> None:
    mock.on_client_event("response.create").server_error().once()
    async with session(mock) as client:
        await client.say_text("hi")
        error = await client.recv()
        assert error["type"] == "error"
        assert error["error"] == {
            "type": "server_error",
            "code": None,
            "message": SERVER_ERROR_MESSAGE,
            "param": None,
            "event_id": None,
        }
        await client.send({"type": "response.create", "event_id": "evt_next"})
        assert (await client.recv())["type"] == "response.created"  # nothing was active


async def test_a_validation_error_still_names_the_client_event(mock: MockRealtime) -> None:
    async with session(mock) as client:
        await client.send({"type": "input_audio_buffer.commit", "event_id": "evt_commit"})
        error = await client.recv()
    assert error["error"]["code"] == "input_audio_buffer_commit_empty"
    assert error["error"]["event_id"] == "evt_commit"


@pytest.mark.parametrize(
    ("status", "reason", "details"),
    [
        ("failed", None, {"type": "failed", "error": {"type": "server_error", "code": None}}),
        ("incomplete", "content_filter", {"type": "incomplete", "reason": "content_filter"}),
        ("incomplete", None, {"type": "incomplete", "reason": "max_output_tokens"}),
        ("cancelled", None, {"type": "cancelled", "reason": "turn_detected"}),
    ],
)
async def test_fail_response_ends_it_with_that_status(
    mock: MockRealtime, status: str, reason: str | None, details: dict[str, object]
) -> None:
    mock.on_user_text().reply_with_audio("Half a", stop_after_events=None).fail_response(
        status, reason=reason
    )
    async with session(mock) as client:
        await client.say_text("hi")
        events = await client.recv_until("response.done")
    done = events[-1]["response"]
    assert done["status"] == status
    assert {k: v for k, v in done["status_details"].items() if v is not None} == details
    assert done["output"][0]["content"][0]["transcript"] == "Half a"


async def test_fail_response_alone_is_an_empty_failed_response(mock: MockRealtime) -> None:
    mock.on_user_text().fail_response(error_code="internal_error")
    async with session(mock) as client:
        await client.say_text("hi")
        events = await client.recv_until("response.done")
    assert types(events) == ["response.created", "response.done"]
    done = events[-1]["response"]
    assert done["output"] == [] and done["status_details"]["error"]["code"] == "internal_error"
    with pytest.raises(ValueError, match="reason"):
        mock.on_user_text().fail_response("cancelled", reason="max_output_tokens")


async def test_odd_length_deltas_keep_every_byte(mock: MockRealtime) -> None:
    mock.on_user_text().reply_with_audio("Odd", chunks=3, chunk_ms=100, delta_bytes=4801)
    async with session(mock) as client:
        await client.say_text("hi")
        events = await client.recv_until("response.done")
    sizes = [
        len(base64.b64decode(e["delta"]))
        for e in events
        if e["type"] == "response.output_audio.delta"
    ]
    assert sizes == [4801, 4801, 4798]  # 3 x 100 ms = 14,400 bytes
    assert events[-1]["response"]["usage"]["output_token_details"]["audio_tokens"] == 6


async def test_reply_only_in_response_done(mock: MockRealtime) -> None:
    mock.on_user_text().reply_only_in_response_done("Only here.")
    async with session(mock) as client:
        await client.say_text("hi")
        events = await client.recv_until("response.done")
        assert types(events) == ["response.created", "response.done"]
        (item,) = events[-1]["response"]["output"]
        assert item["role"] == "assistant"
        assert item["content"] == [{"type": "output_audio", "transcript": "Only here."}]
        await client.send({"type": "conversation.item.retrieve", "item_id": item["id"]})
        retrieved = await client.recv()
    assert retrieved["type"] == "conversation.item.retrieved"  # it is in the conversation


async def test_responses_can_leave_out_the_metadata(mock: MockRealtime) -> None:
    assert mock.echo_metadata
    mock.echo_metadata = False
    async with session(mock) as client:
        await client.send(
            {
                "type": "response.create",
                "response": {"conversation": "none", "metadata": {"k": "v"}},
            }
        )
        events = await client.recv_until("response.done")
    assert events[0]["response"]["metadata"] is None
    assert events[-1]["response"]["metadata"] is None
    assert events[-1]["response"]["conversation_id"] is None
    mock.reset()
    assert mock.echo_metadata


async def test_an_unvalidated_event_goes_out_as_given(mock: MockRealtime) -> None:
    odd = {"type": "response.output_audio.delta", "event_id": "e1", "delta": "AAAA"}
    mock.on_user_text().send_unvalidated_event(odd).reply_with_text("ok")
    async with session(mock) as client:
        await client.say_text("hi")
        assert (await client.recv())["type"] == "response.created"
        assert (
            orjson.loads(await client.ws.recv()) == odd
        )  # no response_id, item_id, ...: the SDK would refuse it
        await client.recv_until("response.done")


async def test_the_new_steps_travel_as_json_and_in_responders(mock: MockRealtime) -> None:
    mock.load_rules(
        [
            {"on": "user_text", "text": "a", "do": [{"server_error": {}}], "once": True},
            {
                "on": "user_text",
                "text": "b",
                "do": [{"reply_with_audio": {"text": "x", "delta_bytes": 1001}}],
                "once": True,
            },
            {"on": "user_text", "text": "c", "do": [{"fail_response": "incomplete"}], "once": True},
            {"on": "user_text", "text": "d", "do": [{"reply_only_in_response_done": "t"}]},
        ]
    )
    mock.on_user_text("e").respond_with(lambda turn: [reply.audio("y", delta_bytes=3)]).once()
    async with session(mock) as client:
        await client.say_text("a")
        assert (await client.recv())["error"]["type"] == "server_error"
        await client.say_text("b")
        events = await client.recv_until("response.done")
        assert (
            len(base64.b64decode(next(e["delta"] for e in events if "audio.delta" in e["type"])))
            == 1001
        )
        await client.say_text("c")
        assert (await client.recv_until("response.done"))[-1]["response"]["status"] == "incomplete"
        await client.say_text("d")
        assert types(await client.recv_until("response.done")) == [
            "response.created",
            "response.done",
        ]
        await client.say_text("e")
        events = await client.recv_until("response.done")
        assert (
            len(base64.b64decode(next(e["delta"] for e in events if "audio.delta" in e["type"])))
            == 3
        )


@pytest.mark.mock_openai(session_lifetime=90)
def test_the_marker_sets_the_session_lifetime(mock_openai: MockRealtime) -> None:
    assert mock_openai.session_lifetime == 90


async def test_leave_out_sends_events_without_those_fields(mock: MockRealtime) -> None:
    mock.leave_out("response.output_audio.delta", "response_id")
    mock.leave_out("conversation.item.done", "item.content.type", "previous_item_id")
    async with session(mock) as client:
        await client.send(
            {
                "type": "conversation.item.create",
                "item": {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": "hi"}],
                },
            }
        )
        assert (await client.recv())["type"] == "conversation.item.added"
        done = orjson.loads(await client.ws.recv())
        assert "previous_item_id" not in done
        assert done["item"]["content"] == [{"text": "hi"}]
        await client.send({"type": "response.create"})
        frames = []
        while not frames or frames[-1]["type"] != "response.done":
            frames.append(orjson.loads(await client.ws.recv()))
    deltas = [f for f in frames if f["type"] == "response.output_audio.delta"]
    assert deltas and all("response_id" not in d and d["item_id"] for d in deltas)
    with pytest.raises(ValueError, match="fields"):
        mock.leave_out("session.updated")
    mock.reset()
    async with session(mock) as client:
        await client.say_text("hi")  # validates every event: nothing is left out now
        await client.recv_until("response.done")


async def test_send_error_can_leave_out_the_client_events_id(mock: MockRealtime) -> None:
    mock.load_rules(
        {
            "on": "client_event",
            "type": "response.cancel",
            "do": [
                {
                    "send_error": {
                        "code": "response_cancel_not_active",
                        "message": "Cancellation failed: no active response found",
                        "names_client_event": False,
                    }
                }
            ],
        }
    )
    async with session(mock) as client:
        await client.send({"type": "response.cancel", "event_id": "evt_cancel"})
        error = await client.recv()
    assert error["error"]["code"] == "response_cancel_not_active"
    assert error["error"]["event_id"] is None
