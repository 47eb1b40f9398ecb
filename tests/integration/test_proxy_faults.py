"""Bad input, rude or dead upstreams, vanishing clients, many sessions, the key."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable

import orjson
import pytest

from harness.client import ComponentClient
from harness.mock_openai import MockRealtime
from harness.pytest_plugin import MOCK_API_KEY, ProxyEndpoint
from tests.processes import free_port

ProxyFactory = Callable[..., ProxyEndpoint]


async def assert_still_usable(client: ComponentClient, text: str = "still there?") -> None:
    """The next turn is echoed and answered, in that order."""
    before = client.received("ConversationText")
    await client.inject(text)
    await client.wait_for_reply(count=sum(m["role"] == "assistant" for m in before) + 1)
    turns = [(m["role"], m["content"]) for m in client.received("ConversationText")[len(before) :]]
    assert turns[:2] == [("user", text), ("assistant", f"You said: {text}")]


# ------------------------------------------------------------------ bad client input


async def test_a_bad_text_frame_gets_an_error_and_the_connection_stays_usable(
    mock_openai: MockRealtime, component_client: ComponentClient
) -> None:
    # Which frame gets which code is the session's job: tests/unit/test_session.py.
    await component_client.start()
    await component_client.send_raw("{this is not json")
    error = await component_client.wait_for("Error")
    assert error["code"] == "invalid_json" and error["description"]
    await assert_still_usable(component_client)
    assert [e["type"] for e in mock_openai.received()] == [
        "session.update",
        "conversation.item.create",
        "response.create",
    ]  # nothing of the bad frame reached upstream


async def test_odd_length_and_tiny_audio_frames_are_accepted(
    mock_openai: MockRealtime, component_client: ComponentClient
) -> None:
    await component_client.start()
    for frame in (b"\x01", b"\x02\x03\x04", b"\x05" * 1001, b"\x06") * 20:
        await component_client.send_raw(frame)
    await mock_openai.wait_for("input_audio_buffer.append")
    await assert_still_usable(component_client)
    assert not component_client.received("Error")


async def test_oversized_frames_get_frame_too_large(
    mock_openai: MockRealtime, proxy_factory: ProxyFactory
) -> None:
    endpoint = proxy_factory(max_frame_bytes=64 * 1024)
    async with await ComponentClient.connect(endpoint.url) as client:
        await client.start()
        await client.send_raw(b"\0" * (200 * 1024))
        await client.send_raw('{"type": "InjectUserMessage", "content": "' + "x" * 100_000 + '"}')
        await client.wait_for("Error", count=2)
        assert [e["code"] for e in client.received("Error")] == ["frame_too_large"] * 2
        await assert_still_usable(client)
    assert not mock_openai.received("input_audio_buffer.append")


async def test_a_frame_beyond_the_hard_limit_closes_only_that_connection(
    mock_openai: MockRealtime, proxy_factory: ProxyFactory
) -> None:
    endpoint = proxy_factory(max_frame_bytes=1024)  # hard limit: 16 MiB
    bystander = await ComponentClient.connect(endpoint.url)
    async with bystander, await ComponentClient.connect(endpoint.url) as rude:
        await bystander.start()
        await rude.start()
        await rude.send_raw(b"\0" * (17 << 20))
        assert await rude.wait_closed() == 1009  # message too big
        await assert_still_usable(bystander)


async def test_messages_sent_before_settings_applied_are_queued_in_order(
    mock_openai: MockRealtime, component_client: ComponentClient
) -> None:
    mock_openai.on_client_event("session.update").stall(300).once()
    await component_client.send_settings()
    await component_client.inject("one")
    await component_client.inject("two")
    await component_client.wait_for("SettingsApplied")
    await component_client.wait_for(
        "ConversationText", where=lambda m: m["content"] == "You said: one"
    )
    await component_client.wait_for(
        "ConversationText", where=lambda m: m["content"] == "You said: two"
    )
    texts = [
        e["item"]["content"][0]["text"] for e in mock_openai.received("conversation.item.create")
    ]
    assert texts == ["one", "two"]
    mock_openai.assert_received_in_order(
        ["session.update", "conversation.item.create", "conversation.item.create"]
    )


# ------------------------------------------------------------------ upstream faults


async def test_upstream_unreachable_gives_an_error_then_a_close(
    proxy_factory: ProxyFactory,
) -> None:
    endpoint = proxy_factory(upstream_url=f"ws://127.0.0.1:{free_port()}/v1/realtime")
    async with await ComponentClient.connect(endpoint.url) as client:
        error = await client.wait_for("Error")
        assert error["code"] == "upstream_unavailable"
        assert await client.wait_closed(timeout=5) == 1011


async def test_upstream_that_never_answers_times_out(proxy_factory: ProxyFactory) -> None:
    with socket.socket() as silent:  # accepts TCP, never speaks HTTP
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        endpoint = proxy_factory(
            upstream_url=f"ws://127.0.0.1:{port}/v1/realtime", upstream_connect_timeout=0.5
        )
        async with await ComponentClient.connect(endpoint.url) as client:
            error = await client.wait_for("Error", timeout=5)
            assert error["code"] == "upstream_unavailable"
            assert "did not answer" in error["description"]
            assert await client.wait_closed(timeout=5) == 1011


async def test_upstream_rejecting_the_key_gives_auth_failed_not_a_silent_close(
    mock_openai: MockRealtime, connect_component: Callable[..., Awaitable[ComponentClient]]
) -> None:
    mock_openai.on_connect().reject_handshake(401)
    component_client = await connect_component()
    error = await component_client.wait_for("Error")
    assert error["code"] == "upstream_auth_failed"
    assert await component_client.wait_closed() == 1011


async def test_wrong_key_is_refused_by_the_mock_like_the_real_service(
    mock_openai: MockRealtime, proxy_factory: ProxyFactory
) -> None:
    endpoint = proxy_factory(api_key="sk-wrong-key-123456")
    async with await ComponentClient.connect(endpoint.url) as client:
        error = await client.wait_for("Error")
        assert error["code"] == "upstream_auth_failed"
        assert "sk-wrong" not in orjson.dumps(client.messages).decode()


async def test_upstream_closing_before_the_session_is_ready(
    mock_openai: MockRealtime, connect_component: Callable[..., Awaitable[ComponentClient]]
) -> None:
    mock_openai.on_connect().close(1011, "overloaded")
    component_client = await connect_component()
    error = await component_client.wait_for("Error")
    assert error["code"] == "upstream_closed_before_session_ready"
    assert await component_client.wait_closed() == 1011


async def test_upstream_dying_mid_response_reports_and_closes_1011(
    mock_openai: MockRealtime, component_client: ComponentClient
) -> None:
    mock_openai.on_user_text("die").reply_with_audio(
        "This answer never ends.", chunks=10, stop_after_events=7
    ).close(1011, "server error")
    await component_client.start()
    await component_client.inject("please die")
    error = await component_client.wait_for("Error")
    assert error["code"] == "upstream_closed" and "1011" in error["description"]
    assert await component_client.wait_closed() == 1011
    assert component_client.audio  # what was delivered before the failure was kept


async def test_upstream_normal_close_closes_the_client_with_1000(
    mock_openai: MockRealtime, component_client: ComponentClient
) -> None:
    await component_client.start()
    mock_openai.close_connections(1000)
    assert await component_client.wait_closed() == 1000
    assert not component_client.received("Error")


async def test_upstream_error_event_becomes_error_and_the_session_goes_on(
    mock_openai: MockRealtime, component_client: ComponentClient
) -> None:
    mock_openai.on_user_text("fail").send_error(
        "server_error", "The server had an error.", type="server_error"
    ).once()
    await component_client.start()
    await component_client.inject("fail now")
    error = await component_client.wait_for("Error")
    assert error == {
        "type": "Error",
        "description": "The server had an error.",
        "code": "server_error",
    }
    # The refused response.create must not block the next turn.
    await component_client.inject("still there?")
    assert await component_client.wait_for_reply() == "You said: still there?"


async def test_upstream_garbage_is_reported_and_survived(
    mock_openai: MockRealtime, component_client: ComponentClient
) -> None:
    await component_client.start()
    mock_openai.push_garbage("}{ not an event")
    error = await component_client.wait_for("Error")
    assert error["code"] == "unmapped_upstream_event"
    await assert_still_usable(component_client)


async def test_unknown_upstream_events_are_ignored(
    mock_openai: MockRealtime, component_client: ComponentClient
) -> None:
    await component_client.start()
    mock_openai.push({"type": "rate_limits.updated", "rate_limits": []})
    await assert_still_usable(component_client)
    assert not component_client.received("Error")


async def test_rejected_settings_reach_the_client_as_an_error(
    mock_openai: MockRealtime, component_client: ComponentClient
) -> None:
    mock_openai.on_client_event("session.update").send_error(
        "invalid_value", "Invalid value for session.audio.output.voice", param="session"
    ).once()
    await component_client.send_settings()
    error = await component_client.wait_for("Error")
    assert error["code"] == "invalid_value"
    await component_client.start()  # corrected Settings are accepted


# ------------------------------------------------------------------ clients and sessions


async def test_the_client_closing_closes_upstream(
    mock_openai: MockRealtime, component_client: ComponentClient
) -> None:
    await component_client.start()
    await component_client.close()
    assert await mock_openai.connections[-1].wait_closed() == 1000


async def test_a_vanishing_client_leaks_nothing(
    mock_openai: MockRealtime, proxy: ProxyEndpoint
) -> None:
    client = await ComponentClient.connect(proxy.url)
    await client.start()
    await client.inject("hello")
    client.connection.transport.abort()  # no close frame: the TCP connection just dies
    await client.close()
    await mock_openai.connections[-1].wait_closed()
    await proxy.wait_idle()  # the proxy's session is gone too


async def test_several_sessions_at_once_do_not_cross_talk(
    mock_openai: MockRealtime, connect_component: Callable[..., Awaitable[ComponentClient]]
) -> None:
    clients = [await connect_component() for _ in range(6)]
    await asyncio.gather(*(c.start() for c in clients))

    async def converse(index: int, client: ComponentClient) -> list[str]:
        for turn in range(3):
            await client.inject(f"client {index} turn {turn}")
            await client.wait_for(
                "ConversationText",
                where=lambda m, t=turn: m["content"] == f"You said: client {index} turn {t}",
            )
        return [m["content"] for m in client.received("ConversationText")]

    transcripts = await asyncio.gather(*(converse(i, c) for i, c in enumerate(clients)))
    for index, texts in enumerate(transcripts):
        assert all(f"client {index} " in text for text in texts), texts
        assert len(texts) == 6
    assert len(mock_openai.connections) == 6


async def test_the_api_key_never_reaches_a_client_or_a_log_line(
    mock_openai: MockRealtime,
    component_client: ComponentClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    mock_openai.on_user_text("leak").send_error(
        "invalid_api_key", f"Incorrect API key provided: {MOCK_API_KEY}."
    )
    await component_client.start()
    await component_client.inject("leak the key")
    error = await component_client.wait_for("Error")
    assert "Incorrect API key provided" in error["description"]
    frames = orjson.dumps(component_client.messages).decode()
    assert MOCK_API_KEY not in frames and "mock-key" not in frames
    proxy_logs = [r.getMessage() for r in caplog.records if not r.name.startswith("harness")]
    assert proxy_logs and not any(MOCK_API_KEY in line for line in proxy_logs)
    assert mock_openai.connections[-1].request_headers["authorization"] == f"Bearer {MOCK_API_KEY}"
