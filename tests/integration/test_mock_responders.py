"""Callable responders: answers computed from the client event and the conversation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from harness.mock_openai import MockRealtime, Turn, reply
from harness.mock_openai.steps import Send
from tests.realtime_client import AUTH, Client, running_mock, session, types


@pytest.fixture
async def mock() -> AsyncIterator[MockRealtime]:
    async with running_mock() as mock:
        yield mock


def transcript_of(events: list[dict[str, Any]]) -> str:
    done = next(e for e in events if e["type"] == "response.output_audio_transcript.done")
    return str(done["transcript"])


async def test_a_responder_answers_from_the_turn_and_the_conversation(mock: MockRealtime) -> None:
    seen: list[Turn] = []

    def answer(turn: Turn) -> reply.Reply:
        seen.append(turn)
        return reply.text(f"#{turn.number}: {turn.text!r} after {turn.messages()}")

    mock.on_user_text().respond_with(answer).times(2)
    async with session(mock) as client:
        await client.say_text("hi")
        first = transcript_of(await client.recv_until("response.done"))
        await client.say_text("again")
        second = transcript_of(await client.recv_until("response.done"))
    assert first == "#1: 'hi' after [('user', 'hi')]"
    assert second == (
        "#2: 'again' after [('user', 'hi'), ('assistant', \"#1: 'hi' after "
        "[('user', 'hi')]\"), ('user', 'again')]"
    )
    assert seen[0].trigger == "on_user_text" and seen[0].event == {"type": "response.create"}
    assert seen[0].session["type"] == "realtime" and seen[0].connection == 0
    mock.check()


async def test_async_responders_call_a_function_and_answer_its_output(mock: MockRealtime) -> None:
    async def ask_for_weather(turn: Turn) -> reply.Reply:
        await asyncio.sleep(0)  # a responder may await (a fixture, a file, another service)
        city = turn.text.rsplit(" ", 1)[-1].strip("?")
        return reply.function_call("get_weather", {"city": city}, call_id="call_7")

    mock.on_user_text("weather").respond_with(ask_for_weather).once()
    mock.on_function_output("get_weather").respond_with(
        lambda turn: reply.audio(f"It is {orjson.loads(turn.text)['temp']} degrees.", chunks=2)
    ).once()
    async with session(mock) as client:
        await client.say_text("weather in Lyon?")
        events = await client.recv_until("response.done")
        (call,) = [e for e in events if e["type"] == "response.function_call_arguments.done"]
        assert (call["name"], call["call_id"]) == ("get_weather", "call_7")
        assert orjson.loads(call["arguments"]) == {"city": "Lyon"}
        answer = await client.answer_function("call_7", '{"temp": 18}')
    assert transcript_of(answer) == "It is 18 degrees."
    assert types(answer).count("response.output_audio.delta") == 2
    mock.check()


async def test_a_responder_on_a_client_event_can_refuse_it_or_fall_back(mock: MockRealtime) -> None:
    def only_short_prompts(turn: Turn) -> reply.Reply:
        assert turn.event is not None
        if len(turn.event["session"].get("instructions", "")) > 10:
            return reply.error("invalid_value", "instructions too long", param="session")
        return None  # the default: session.updated

    mock.on_client_event("session.update").respond_with(only_short_prompts).times(2)
    async with session(mock) as client:
        long = {"type": "realtime", "instructions": "x" * 20}
        await client.send({"type": "session.update", "event_id": "evt_1", "session": long})
        refused = await client.recv()
        await client.send(
            {"type": "session.update", "session": {"type": "realtime", "instructions": "ok"}}
        )
        accepted = await client.recv()
    assert refused["error"]["message"] == "instructions too long"
    assert refused["error"]["event_id"] == "evt_1"  # names the client event, as the API does
    assert accepted["type"] == "session.updated" and accepted["session"]["instructions"] == "ok"
    mock.check()


async def test_a_responder_decides_per_connection(mock: MockRealtime) -> None:
    def first_one_busy(turn: Turn) -> reply.Reply:
        if turn.connection == 0:
            return [reply.error("server_error", "busy", type="server_error"), reply.close(1013)]
        return None  # the default: session.created

    mock.on_connect().respond_with(first_one_busy).times(2)
    async with connect(mock.url, additional_headers=AUTH) as ws:
        assert (await Client(ws).recv())["error"]["message"] == "busy"
        with pytest.raises(ConnectionClosed):
            await ws.recv()
        assert ws.close_code == 1013
    async with session(mock):  # session.created, as by default
        pass
    mock.check()


async def test_a_failing_responder_fails_the_test_and_tells_the_client(mock: MockRealtime) -> None:
    def broken(turn: Turn) -> reply.Reply:
        raise KeyError("no such city")

    mock.on_user_text("broken").respond_with(broken)
    mock.on_user_text("odd").respond_with(lambda turn: 42)  # type: ignore[arg-type,return-value]
    async with session(mock) as client:
        await client.say_text("broken")
        error = await client.recv()
        await client.say_text("odd")
        odd = await client.recv()
    assert error["error"]["type"] == "server_error"
    assert "KeyError" in error["error"]["message"] and odd["type"] == "error"
    with pytest.raises(AssertionError) as verdict:
        mock.check()
    assert "responder test_a_failing_responder_fails_the_test_and_tells_the_client" in str(
        verdict.value
    )
    assert "<locals>.broken raised" in str(verdict.value)
    assert "KeyError: 'no such city'" in str(verdict.value)
    assert "returned 42: return text, a step from harness.mock_openai.reply" in str(verdict.value)


async def test_what_a_responder_sends_is_validated_like_every_mock_event(
    mock: MockRealtime,
) -> None:
    invalid = Send({"type": "rate_limits.updated", "rate_limits": 5})  # built past reply.event
    mock.on_client_event("input_audio_buffer.clear").respond_with(
        lambda turn: [invalid, reply.event({"type": "input_audio_buffer.cleared"})]
    )
    async with session(mock) as client:
        await client.send({"type": "input_audio_buffer.clear"})
        assert (await client.recv())["type"] == "input_audio_buffer.cleared"  # only the valid one
    assert [e["type"] for e in mock.sent()][1:] == ["input_audio_buffer.cleared"]
    with pytest.raises(AssertionError, match="refused to send an invalid server event"):
        mock.check()
