"""Sessions past the service's cap (docs/protocol-mapping.md), over real sockets.

The mock ends each upstream session at its `expires_at` as the service does (its
`session_expired` error, then a close); here a session lives a few seconds. The proxy
renews each one at a quiet moment from the second half of its life, so a conversation
goes on across two session ends without the client noticing more than a Warning.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
import pytest

from harness.client import ComponentClient, default_settings
from harness.mock_openai import MockRealtime, silence_pcm16, tone_pcm16
from proxy.session import ProxySession

LIFETIME = 6  # seconds an upstream session lives in these tests (renewed after half)
FUNCTIONS = [
    {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
]


@pytest.fixture
def proxy(proxy_factory: Any) -> Any:
    """A proxy that renews these few-second sessions as often as they need."""
    return proxy_factory(
        session_renew_min_lifetime=0, session_renew_min_interval=0, connection_rate=0
    )


def _spoken() -> bytes:
    return (
        silence_pcm16(200, rate=16000)
        + tone_pcm16(800, rate=16000)
        + (silence_pcm16(800, rate=16000))
    )


def _is_renewal(message: dict[str, Any]) -> bool:
    return message.get("code") == "session_renewed"


def _history(messages: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(m["role"], m["content"]) for m in messages if m["type"] == "ConversationText"]


def _carried(events: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    """The items the proxy carried into a session, in short form."""
    shown: list[tuple[str, ...]] = []
    for event in events:
        if event["type"] != "conversation.item.create" or "_carry_" not in event.get(
            "event_id", ""
        ):
            continue
        item = event["item"]
        if item["type"] == "message":
            shown.append((item["role"], item["content"][0]["text"]))
        elif item["type"] == "function_call":
            shown.append(("call", item["name"], item["arguments"]))
        else:
            shown.append(("output", item["output"]))
    return shown


async def _turn_typed(client: ComponentClient, text: str, replies: int) -> None:
    await client.inject(text)
    await client.wait_for_reply(replies, timeout=10)


async def _turn_spoken(client: ComponentClient, replies: int) -> None:
    await client.send_audio(_spoken())
    await client.wait_for_reply(replies, timeout=10)


async def _renewed(client: ComponentClient, count: int) -> None:
    await client.wait_for("Warning", count=count, where=_is_renewal, timeout=LIFETIME * 2)


@pytest.mark.mock_openai(session_lifetime=LIFETIME)
async def test_a_conversation_crosses_two_upstream_session_ends(
    mock_openai: MockRealtime, component_client: ComponentClient
) -> None:
    mock_openai.on_user_text("weather").call_function("get_weather", {"city": "Paris"}).once()
    mock_openai.on_function_output("get_weather").reply_with_audio("Sunny in Paris.").once()
    mock_openai.on_user_speech().transcribe_as("thank you").reply_with_audio("Welcome.").once()
    mock_openai.on_user_text("joke").reply_with_audio("A short joke.").once()
    mock_openai.on_user_speech().transcribe_as("another one").reply_with_text("Once more.").once()
    mock_openai.on_user_text("bye").reply_with_audio("Goodbye.").once()
    client = component_client
    settings = default_settings(
        think={
            "provider": {"type": "open_ai", "model": "gpt-realtime"},
            "prompt": "You are terse.",
            "functions": FUNCTIONS,
        }
    )
    await client.start(settings)
    await client.send({"type": "UpdatePrompt", "prompt": "You are terse and kind."})
    await client.wait_for("PromptUpdated")

    # First upstream session: a typed turn answered through a function call, a spoken turn.
    await client.inject("What is the weather in Paris?")
    request = await client.wait_for("FunctionCallRequest")
    call = request["functions"][0]
    await client.answer_function(call["id"], call["name"], '{"sky": "clear"}')
    await client.wait_for_reply(1)
    await _turn_spoken(client, replies=2)
    await _renewed(client, 1)

    # Second session: a typed turn and a spoken one (answered in text).
    await _turn_typed(client, "Tell me a joke", replies=3)
    await _turn_spoken(client, replies=4)
    await _renewed(client, 2)

    # Third session.
    await _turn_typed(client, "bye", replies=5)

    assert _history(client.messages) == [
        ("user", "What is the weather in Paris?"),
        ("assistant", "Sunny in Paris."),
        ("user", "thank you"),
        ("assistant", "Welcome."),
        ("user", "Tell me a joke"),
        ("assistant", "A short joke."),
        ("user", "another one"),
        ("assistant", "Once more."),
        ("user", "bye"),
        ("assistant", "Goodbye."),
    ]
    assert not client.received("Error"), client.describe()
    assert len(client.received("FunctionCallRequest")) == 1
    assert len(client.received("Welcome")) == 1 and len(client.received("SettingsApplied")) == 1

    connections = mock_openai.connections
    assert len(connections) == 3
    for old in connections[:2]:  # closed by the proxy at the switch, before the cap
        assert await old.wait_closed() == 1000
        assert not [e for e in old.sent if e["type"] == "error"]
    first = connections[0].received
    applied = dict(next(e for e in first if e["type"] == "session.update")["session"])
    applied["instructions"] = "You are terse and kind."  # the UpdatePrompt that followed
    warnings = [i for i, m in enumerate(client.messages) if _is_renewal(m)]
    for index, connection in ((1, connections[1]), (2, connections[2])):
        received = connection.received
        updates = [e["session"] for e in received if e["type"] == "session.update"]
        assert updates[0] == applied  # the same settings, as applied
        before_switch = _history(client.messages[: warnings[index - 1]])
        carried = _carried(received)
        assert [c for c in carried if c[0] in ("user", "assistant")] == before_switch
        assert ("call", "get_weather", '{"city":"Paris"}') in carried
        assert ("output", '{"sky": "clear"}') in carried
        # Carried items came before anything live: no response asked for meanwhile.
        first_live = next(
            i
            for i, e in enumerate(received)
            if e["type"] in ("response.create", "input_audio_buffer.append")
        )
        assert all(
            i < first_live for i, e in enumerate(received) if "_carry_" in e.get("event_id", "")
        )

    # Nothing the client sent was lost or answered twice: each typed turn went upstream
    # once (live), each turn was answered by one response.
    live_texts = [
        e["item"]["content"][0]["text"]
        for c in connections
        for e in c.received
        if e["type"] == "conversation.item.create"
        and "_carry_" not in e.get("event_id", "")
        and e["item"].get("role") == "user"
    ]
    assert live_texts == ["What is the weather in Paris?", "Tell me a joke", "bye"]
    outputs = [
        e
        for c in connections
        for e in c.received
        if e["type"] == "conversation.item.create"
        and e["item"]["type"] == "function_call_output"
        and "_carry_" not in e.get("event_id", "")
    ]
    assert len(outputs) == 1
    assert len(client.received("AgentThinking")) == 6  # one per answer, none repeated


@pytest.mark.mock_openai(session_lifetime=3)
async def test_when_the_next_session_is_refused_the_client_gets_upstream_session_expired(
    mock_openai: MockRealtime, component_client: ComponentClient
) -> None:
    await component_client.start()
    mock_openai.on_connect().reject_handshake(503)  # the next sessions are refused
    error = await component_client.wait_for("Error", timeout=10)
    assert error["code"] == "upstream_session_expired", component_client.describe()
    assert await component_client.wait_closed() == 1011
    assert len(component_client.received("Error")) == 1  # not the service's raw error too
    assert len(mock_openai.connections) == 2


@pytest.mark.mock_openai(session_lifetime=2)
async def test_without_renewal_the_cap_is_upstream_session_expired(
    mock_openai: MockRealtime, proxy_factory: Any
) -> None:
    endpoint = proxy_factory(session_renew_margin=0)
    client = await ComponentClient.connect(endpoint.url)
    try:
        await client.start()
        error = await client.wait_for("Error", timeout=10)
        assert error["code"] == "upstream_session_expired"
        assert await client.wait_closed() == 1011
        assert len(mock_openai.connections) == 1
    finally:
        await client.close()
    await asyncio.sleep(0)


@pytest.mark.parametrize("after", [0.0, 0.3])  # opening; open and confirming
@pytest.mark.mock_openai(session_lifetime=4)
async def test_a_client_leaving_while_the_next_session_opens_closes_both(
    mock_openai: MockRealtime, component_client: ComponentClient, after: float
) -> None:
    await component_client.start()
    mock_openai.on_connect().stall(2000)  # the next session is slow to say session.created
    connections = await mock_openai.wait_for_connections(2, timeout=LIFETIME)
    await asyncio.sleep(after)
    await component_client.close()
    for connection in connections:
        assert await connection.wait_closed() == 1000, (connection.index, connection.close_reason)
    assert not [m for m in component_client.received("Warning") if _is_renewal(m)]


@pytest.mark.mock_openai(session_lifetime=3)
async def test_short_upstream_sessions_are_not_renewed_by_default(
    mock_openai: MockRealtime, proxy_factory: Any
) -> None:
    endpoint = proxy_factory(connection_rate=0)  # the default floor: ten minutes
    client = await ComponentClient.connect(endpoint.url)
    try:
        await client.start()
        error = await client.wait_for("Error", timeout=10)
        assert error["code"] == "upstream_session_expired"
        assert await client.wait_closed() == 1011
        assert len(mock_openai.connections) == 1
        metrics = endpoint.server.metrics.render().decode()
        assert 'voice_proxy_renewals_total{outcome="refused"} 1.0' in metrics
    finally:
        await client.close()


@pytest.mark.mock_openai(session_lifetime=3)
async def test_one_client_renews_at_most_once_per_interval(
    mock_openai: MockRealtime, proxy_factory: Any
) -> None:
    endpoint = proxy_factory(
        session_renew_min_lifetime=0, session_renew_min_interval=60, connection_rate=0
    )
    client = await ComponentClient.connect(endpoint.url)
    try:
        await client.start()
        error = await client.wait_for("Error", timeout=15)
        assert error["code"] == "upstream_session_expired"
        assert len([m for m in client.received("Warning") if _is_renewal(m)]) == 1
        assert len(mock_openai.connections) == 2
        metrics = endpoint.server.metrics.render().decode()
        assert 'voice_proxy_renewals_total{outcome="renewed"} 1.0' in metrics
        assert 'voice_proxy_renewals_total{outcome="refused"} 1.0' in metrics
    finally:
        await client.close()


def _counted(metrics: str, direction: str) -> float:
    line = next(
        line
        for line in metrics.splitlines()
        if line.startswith(f'voice_proxy_bytes_total{{direction="{direction}"}}')
    )
    return float(line.rsplit(" ", 1)[1])


@pytest.mark.mock_openai(session_lifetime=3)
async def test_bytes_sent_to_a_next_session_that_failed_are_counted(
    mock_openai: MockRealtime, proxy_factory: Any
) -> None:
    endpoint = proxy_factory(
        session_renew_min_lifetime=0, session_renew_min_interval=0, connection_rate=0
    )
    client = await ComponentClient.connect(endpoint.url)
    try:
        await client.start()
        # The next session gets the settings, then closes: the renewal fails for good.
        mock_openai.on_client_event("session.update").close(1011, "not today").once()
        error = await client.wait_for("Error", timeout=10)
        assert error["code"] == "upstream_session_expired"
        await client.wait_closed()
    finally:
        await client.close()
    connections = mock_openai.connections
    assert len(connections) == 2 and connections[1].received  # the next one got frames
    sent = sum(len(orjson.dumps(event)) for c in connections for event in c.received)
    for _ in range(50):  # the session's last report comes as its bridge ends
        counted = _counted(endpoint.server.metrics.render().decode(), "upstream_out")
        if counted >= sent:
            break
        await asyncio.sleep(0.1)
    assert counted == sent


async def _error_or_renewal(client: ComponentClient) -> dict[str, Any]:
    """The first Error or session_renewed Warning the client gets."""
    for _ in range(LIFETIME * 20):
        said = client.received("Error") + [m for m in client.received("Warning") if _is_renewal(m)]
        if said:
            return said[0]
        await asyncio.sleep(0.1)
    raise AssertionError(f"neither an Error nor a renewal: {client.describe()}")


@pytest.mark.mock_openai(session_lifetime=4)
async def test_a_bug_in_the_next_sessions_task_ends_that_session_only(
    mock_openai: MockRealtime,
    proxy: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    mock_openai.on_user_text().reply_with_text("Still here.")
    failures = [RuntimeError("a bug in the renewal")]  # the first renewal only
    real = ProxySession.next_upstream_connected

    def buggy(session: ProxySession) -> list[Any]:
        if failures:
            raise failures.pop()
        return real(session)

    monkeypatch.setattr(ProxySession, "next_upstream_connected", buggy)
    clients = [await ComponentClient.connect(proxy.url) for _ in range(2)]
    try:
        for client in clients:
            await client.start()

        ended, renewed = [], []
        for client in clients:
            message = await _error_or_renewal(client)
            (ended if message["type"] == "Error" else renewed).append((client, message))
        assert len(ended) == 1 and len(renewed) == 1, [m for _, m in ended + renewed]
        broken, error = ended[0]
        assert error["code"] == "internal_error"
        assert await broken.wait_closed() == 1011
        survivor = renewed[0][0]
        await survivor.inject("Are you there?")
        await survivor.wait_for("ConversationText", where=lambda m: m["content"] == "Still here.")
        assert not survivor.received("Error"), survivor.describe()
    finally:
        for client in clients:
            await client.close()
    failed = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(failed) == 1, [r.getMessage() for r in failed]
    assert failed[0].exc_info is not None and "a bug in the renewal" in caplog.text


@pytest.mark.mock_openai(session_lifetime=12)
async def test_a_transcript_that_comes_after_the_switch_still_reaches_the_client(
    mock_openai: MockRealtime, component_client: ComponentClient
) -> None:
    client = component_client
    await client.start()
    # A spoken turn whose transcript the service is slow with: the switch waits 5 s for
    # it, then goes; the transcript comes from the old session after that.
    mock_openai.push(
        {"type": "input_audio_buffer.committed", "previous_item_id": None, "item_id": "item_slow"},
        connection=0,
    )
    await _renewed(client, 1)
    mock_openai.push(
        {
            "type": "conversation.item.input_audio_transcription.completed",
            "item_id": "item_slow",
            "content_index": 0,
            "transcript": "said before the switch",
            "usage": {"type": "duration", "seconds": 1},
        },
        connection=0,
    )
    said = await client.wait_for("ConversationText", timeout=5)
    assert (said["role"], said["content"]) == ("user", "said before the switch")
    final = await client.wait_for("Transcript", where=lambda m: m["is_final"])
    assert final["transcript"] == "said before the switch"
    assert not client.received("Error"), client.describe()


@pytest.mark.mock_openai(session_lifetime=8)
async def test_a_call_the_client_leaves_unanswered_is_carried_and_answered_after_the_switch(
    mock_openai: MockRealtime, component_client: ComponentClient
) -> None:
    # Renewal is due from 4 s; the call holds it until the last stretch (6 s here: the
    # last half of the renewal window, as the session is short), then it goes anyway.
    mock_openai.on_user_text("weather").call_function("get_weather", {"city": "Oslo"}).once()
    mock_openai.on_function_output("get_weather").reply_with_text("Snow in Oslo.").once()
    client = component_client
    settings = default_settings(
        think={
            "provider": {"type": "open_ai", "model": "gpt-realtime"},
            "prompt": "You are terse.",
            "functions": FUNCTIONS,
        }
    )
    await client.start(settings)
    await client.inject("What is the weather in Oslo?")
    request = await client.wait_for("FunctionCallRequest")
    await _renewed(client, 1)  # the call still waits for its output
    call = request["functions"][0]
    await client.answer_function(call["id"], call["name"], '{"sky": "snow"}')
    assert await client.wait_for_reply(1) == "Snow in Oslo."
    assert not client.received("Error"), client.describe()
    old, new = mock_openai.connections[:2]
    assert ("call", "get_weather", '{"city":"Oslo"}') in _carried(new.received)
    outputs = [
        e["item"]["output"]
        for e in new.received
        if e["type"] == "conversation.item.create" and e["item"]["type"] == "function_call_output"
    ]
    assert outputs == ['{"sky": "snow"}']  # the new session got the output, the old none
    assert not any(e.get("item", {}).get("type") == "function_call_output" for e in old.received)
