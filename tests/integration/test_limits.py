"""Limits on real sockets (docs/security.md): sessions, addresses, frames, bytes, time.

Each test configures a proxy with small limits and plays the client or upstream that
breaks them: a flood, a client that never reads, an upstream that never reads or never
answers, frames over the limits, silence.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress

import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from harness.client import ComponentClient
from harness.mock_openai import MockRealtime, tone_pcm16
from harness.pytest_plugin import ProxyEndpoint
from tests.http_raw import (
    http_get,
    open_upgrade,
    raw_upgrade_status,
    upgrade_request,
    upgrade_status,
)

ProxyFactory = Callable[..., ProxyEndpoint]
MiB = 1 << 20


def no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    """Expected conditions are one log line each, never a traceback."""
    noisy = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not noisy, [f"{r.name}: {r.getMessage()}" for r in noisy]


async def status_of(url: str, **kwargs: object) -> int:
    """An upgrade's status; an accepted one has its session (Welcome) before it closes."""
    return await upgrade_status(url, first_message=True, **kwargs)


async def wait_until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    """For state that no event announces (the proxy's side of a closed connection)."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.05)


def server_of(endpoint: ProxyEndpoint) -> object:
    assert endpoint.server is not None
    return endpoint.server


# ------------------------------------------------------------------ sessions and addresses


async def test_sessions_past_the_limit_get_503_and_readyz_says_so(
    mock_openai: MockRealtime, proxy_factory: ProxyFactory
) -> None:
    endpoint = proxy_factory(max_sessions=2, max_sessions_per_ip=10)
    base = "http://" + endpoint.url.split("/")[2]
    async with (
        await ComponentClient.connect(endpoint.url),
        await ComponentClient.connect(endpoint.url),
    ):
        assert await status_of(endpoint.url) == 503
        assert (await asyncio.to_thread(http_get, f"{base}/readyz")).status == 503
    await endpoint.wait_idle(timeout=5)
    assert await status_of(endpoint.url) == 101  # places are given back
    assert (await asyncio.to_thread(http_get, f"{base}/readyz")).status == 200


async def test_a_connection_flood_from_one_address_is_capped_and_others_still_get_in(
    mock_openai: MockRealtime, proxy_factory: ProxyFactory, caplog: pytest.LogCaptureFixture
) -> None:
    # All at once, so the pending-handshake caps are raised for this test.
    endpoint = proxy_factory(
        max_sessions=1000,
        max_sessions_per_ip=20,
        max_pending_handshakes=1000,
        max_pending_handshakes_per_ip=1000,
    )
    flood = await asyncio.gather(*(_hold(endpoint.url) for _ in range(200)), return_exceptions=True)
    statuses = [r if isinstance(r, int) else 0 for r in flood]
    try:
        assert statuses.count(101) == 20 and statuses.count(429) == 180
        await mock_openai.wait_for_connections(20)
        await asyncio.sleep(0.2)
        assert len(mock_openai.connections) == 20  # refused floods cost nothing upstream
        # Another address (127.0.0.2 is loopback too) is not affected by the flood.
        status = await status_of(endpoint.url, local_addr=("127.0.0.2", 0))
        assert status == 101
    finally:
        for task in _held:
            task.cancel()
        await asyncio.gather(*_held, return_exceptions=True)
        _held.clear()
    no_tracebacks(caplog)


_held: list[asyncio.Task[None]] = []


async def _hold(url: str) -> int:
    """Open a session and keep it open (until the test cancels it); returns the status."""
    opened: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def keep() -> None:
        try:
            async with connect(url, open_timeout=10) as ws:
                opened.set_result(101)
                await ws.wait_closed()
        except InvalidStatus as refused:
            opened.set_result(refused.response.status_code)
        except Exception as failed:  # dropped: the caller sees it, rather than waiting
            if not opened.done():
                opened.set_exception(failed)

    _held.append(asyncio.create_task(keep()))
    return await opened


async def test_forwarded_addresses_count_only_from_trusted_proxies(
    mock_openai: MockRealtime, proxy_factory: ProxyFactory
) -> None:
    trusting = proxy_factory(max_sessions_per_ip=1, trusted_proxies=("127.0.0.0/8",))
    first = {"X-Forwarded-For": "203.0.113.7"}
    async with connect(trusting.url, additional_headers=first) as one:
        await one.recv()
        other = {"X-Forwarded-For": "198.51.100.9, 203.0.113.7"}  # nearest hop decides
        assert await status_of(trusting.url, additional_headers=other) == 429
        elsewhere = {"X-Forwarded-For": "198.51.100.9"}
        assert await status_of(trusting.url, additional_headers=elsewhere) == 101
    untrusting = proxy_factory(max_sessions_per_ip=1)
    async with connect(untrusting.url, additional_headers=first) as one:
        await one.recv()
        spoofed = {"X-Forwarded-For": "198.51.100.9"}  # not believed: the peer is 127.0.0.1
        assert await status_of(untrusting.url, additional_headers=spoofed) == 429


# ------------------------------------------------------------------ frames


async def test_a_turn_flood_is_rate_limited_over_the_wire(
    mock_openai: MockRealtime, proxy_factory: ProxyFactory
) -> None:
    endpoint = proxy_factory(turn_rate=5, turn_burst=3)
    async with await ComponentClient.connect(endpoint.url) as client:
        await client.start()
        for n in range(6):
            await client.inject(f"turn {n}")
        refused = await client.wait_for("Error", count=3)
        assert refused["code"] == "rate_limited"
        assert [e["code"] for e in client.received("Error")] == ["rate_limited"] * 3
        texts = [m["content"] for m in client.received("ConversationText") if m["role"] == "user"]
        assert texts == ["turn 0", "turn 1", "turn 2"]


async def test_an_upstream_frame_over_16_mib_is_a_protocol_error(
    mock_openai: MockRealtime, component_client: ComponentClient
) -> None:
    await component_client.start()
    mock_openai.push_garbage('{"type": "x", "pad": "' + "a" * (17 * MiB) + '"}')
    error = await component_client.wait_for("Error", timeout=20)
    assert error["code"] == "upstream_protocol_error"
    assert await component_client.wait_closed() == 1011


async def test_agent_audio_reaches_the_client_in_frames_of_at_most_64_kib(
    mock_openai: MockRealtime, proxy: ProxyEndpoint
) -> None:
    mock_openai.on_user_text("long").reply_with_audio("A long answer.", chunks=2, chunk_ms=3000)
    sizes: list[int] = []
    async with connect(proxy.url) as ws:
        await ws.send(orjson.dumps({"type": "Settings"}), text=True)
        await ws.send(orjson.dumps({"type": "InjectUserMessage", "content": "long"}), text=True)
        async for frame in ws:
            if isinstance(frame, bytes):
                sizes.append(len(frame))
            elif '"AgentAudioDone"' in frame:
                break
    assert max(sizes) == 64 * 1024 and sum(sizes) == 2 * 3000 * 48


# ------------------------------------------------------------------ bytes held for slow peers


@asynccontextmanager
async def non_reading_client(url: str) -> AsyncIterator[object]:
    """A client whose socket buffer is tiny and who never reads."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    host, port = url.split("/")[2].split(":")
    sock.connect((host, int(port)))
    async with connect(url, sock=sock, max_queue=1, open_timeout=5) as ws:
        yield ws


async def test_a_client_that_stops_reading_holds_at_most_the_byte_bound_then_is_evicted(
    mock_openai: MockRealtime,
    proxy_factory: ProxyFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    endpoint = proxy_factory(max_buffered_bytes=2 * MiB, stall_timeout=1.5)
    mock_openai.on_user_text("flood").reply_with_audio("x", chunks=300, chunk_ms=1000)  # 14 MB
    async with non_reading_client(endpoint.url) as ws:
        await ws.send(orjson.dumps({"type": "Settings"}), text=True)  # type: ignore[attr-defined]
        await ws.send(  # type: ignore[attr-defined]
            orjson.dumps({"type": "InjectUserMessage", "content": "flood me"}), text=True
        )
        server = server_of(endpoint)
        # The proxy gives up on the client (after the stall timeout) and closes upstream.
        await wait_until(
            lambda: bool(mock_openai.connections) and mock_openai.connections[0].closed
        )
        high_water = server.buffered_high_water()  # type: ignore[attr-defined]
        assert 1 * MiB < high_water <= 2 * MiB + 2 * 64 * 1024
        # The client reads at last, within the close grace: the audio it was sent, then
        # why it was dropped.
        frames = [frame async for frame in _drain(ws)]
        await endpoint.wait_idle(timeout=10)
    errors = [orjson.loads(f) for f in frames if isinstance(f, str)]
    assert errors and errors[-1]["code"] == "client_too_slow"
    assert ws.close_code == 1008  # type: ignore[attr-defined]
    no_tracebacks(caplog)


async def _drain(ws: object) -> AsyncIterator[str | bytes]:
    try:
        async for frame in ws:  # type: ignore[attr-defined]
            yield frame
    except ConnectionClosed:
        return


async def test_an_upstream_that_stops_reading_holds_at_most_the_byte_bound_then_is_dropped(
    mock_openai: MockRealtime,
    proxy_factory: ProxyFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The stall timeout is long enough for the queue to reach its bound first, even on a
    # loaded machine (4 s was not, twice: the client had sent too little by then).
    endpoint = proxy_factory(max_buffered_bytes=1 * MiB, stall_timeout=8)
    async with await ComponentClient.connect(endpoint.url) as client:
        await client.start()
        mock_openai.stop_reading()
        audio = tone_pcm16(30_000, rate=16_000)  # 960 KB in, about 4 MB upstream

        async def stream() -> None:
            with suppress(ConnectionClosed):
                for _ in range(5):
                    await client.send_audio(audio, frame_bytes=64 * 1024)

        sender = asyncio.create_task(stream())
        error = await client.wait_for("Error", timeout=30)
        assert error["code"] == "upstream_stalled"
        assert await client.wait_closed() == 1011
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)
    server = server_of(endpoint)
    high_water = server.buffered_high_water()  # type: ignore[attr-defined]
    # The bound, plus the socket's own 64 KiB buffer and the frame being written (an
    # append of 64 KB of 16 kHz audio is about 130 KB).
    assert 768 * 1024 < high_water <= 1 * MiB + 64 * 1024 + 140 * 1024
    await endpoint.wait_idle(timeout=10)
    no_tracebacks(caplog)


async def test_a_client_hanging_up_under_backpressure_logs_no_traceback(
    mock_openai: MockRealtime, proxy_factory: ProxyFactory, caplog: pytest.LogCaptureFixture
) -> None:
    endpoint = proxy_factory(max_buffered_bytes=MiB)
    mock_openai.on_user_text("flood").reply_with_audio("x", chunks=200, chunk_ms=1000)
    async with non_reading_client(endpoint.url) as ws:
        await ws.send(orjson.dumps({"type": "Settings"}), text=True)  # type: ignore[attr-defined]
        await ws.send(orjson.dumps({"type": "InjectUserMessage", "content": "flood"}), text=True)  # type: ignore[attr-defined]
        await mock_openai.wait_for("response.create")
        await asyncio.sleep(0.3)  # the proxy is now blocked on this client
        ws.transport.abort()  # type: ignore[attr-defined]
    await endpoint.wait_idle(timeout=10)  # the proxy has seen the hang-up and cleaned up
    no_tracebacks(caplog)


async def test_a_client_that_sends_pings_and_never_reads_is_evicted(
    mock_openai: MockRealtime,
    proxy_factory: ProxyFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Each Ping is answered with a Pong the WebSocket layer writes itself: nothing waits
    # in the outbox, but the socket's write buffer grows. That counts as stalled too.
    caplog.set_level(logging.INFO, "proxy.session")
    endpoint = proxy_factory(stall_timeout=1.5)
    host, port = endpoint.url.split("/")[2].split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(5)
    sock.connect((host, int(port)))
    sock.sendall(upgrade_request(host))
    assert b" 101 " in sock.recv(1024)  # then never read again
    ping = bytes([0x89, 0x80 | 125]) + bytes(4) + b"p" * 125  # masked with a zero key
    stop = threading.Event()

    def flood() -> int:
        """At most 8 MiB of Pings over at most 15 s (the proxy's kernel buffers take up to
        4 MB of Pongs before its own buffer grows); how many bytes went out."""
        sent, budget, deadline = 0, 8 * MiB, time.monotonic() + 15
        while sent < budget and time.monotonic() < deadline and not stop.is_set():
            try:
                sock.sendall(ping * 64)
            except OSError:  # reset by the proxy (or a full pipe): done
                break
            sent += len(ping) * 64
            time.sleep(0.008)  # about 1 MB/s
        return sent

    flooding = asyncio.create_task(asyncio.to_thread(flood))
    try:
        await endpoint.wait_idle(timeout=15)
    finally:
        stop.set()
        sent = await flooding
        sock.close()
    assert sent < 8 * MiB  # evicted while the flood went on
    assert any("client_too_slow" in r.getMessage() for r in caplog.records)
    no_tracebacks(caplog)


# ------------------------------------------------------------------ time


async def test_an_upstream_that_never_sends_session_created_times_out(
    mock_openai: MockRealtime, proxy_factory: ProxyFactory
) -> None:
    mock_openai.on_connect().stall(30_000)
    endpoint = proxy_factory(ready_timeout=0.5)
    async with await ComponentClient.connect(endpoint.url) as client:
        error = await client.wait_for("Error")
        assert error["code"] == "upstream_timeout" and "session.created" in error["description"]
        assert await client.wait_closed() == 1011


async def test_an_upstream_that_never_confirms_settings_times_out(
    mock_openai: MockRealtime, proxy_factory: ProxyFactory
) -> None:
    mock_openai.on_client_event("session.update").stall(30_000)
    endpoint = proxy_factory(ready_timeout=0.5)
    async with await ComponentClient.connect(endpoint.url) as client:
        await client.send_settings()
        error = await client.wait_for("Error")
        assert error["code"] == "upstream_timeout"
        assert await client.wait_closed() == 1011


async def test_a_response_that_goes_silent_is_abandoned_and_the_next_turn_answered(
    mock_openai: MockRealtime, proxy_factory: ProxyFactory
) -> None:
    mock_openai.on_user_text("hang").reply_with_audio("never finished", stop_after_events=2)
    endpoint = proxy_factory(response_timeout=0.5)
    async with await ComponentClient.connect(endpoint.url) as client:
        await client.start()
        await client.inject("hang please")
        error = await client.wait_for("Error")
        assert error["code"] == "upstream_timeout"
        assert await mock_openai.wait_for("response.cancel")
        await client.inject("and now?")
        assert await client.wait_for_reply() == "You said: and now?"


async def test_an_idle_client_is_told_and_closed(
    mock_openai: MockRealtime, proxy_factory: ProxyFactory
) -> None:
    endpoint = proxy_factory(client_idle_timeout=0.6)
    async with await ComponentClient.connect(endpoint.url) as client:
        await client.start()
        for _ in range(4):  # KeepAlive counts as activity
            await asyncio.sleep(0.3)
            await client.send({"type": "KeepAlive"})
        assert not client.received("Error")
        error = await client.wait_for("Error", timeout=5)
        assert error["code"] == "client_idle"
        assert await client.wait_closed() == 1000


async def test_pings_fail_a_client_that_never_answers(
    mock_openai: MockRealtime, proxy_factory: ProxyFactory
) -> None:
    endpoint = proxy_factory(ping_interval=0.3, ping_timeout=0.3)
    host, port = endpoint.url.split("/")[2].split(":")
    reader, writer = await open_upgrade(int(port), host=host)
    assert b"101" in await reader.readline()
    # Dead from here on: never reads, never answers a ping.
    await endpoint.wait_idle(timeout=5)
    writer.close()


async def test_pings_fail_an_upstream_that_never_answers(proxy_factory: ProxyFactory) -> None:
    async with black_hole_upstream() as url:
        endpoint = proxy_factory(upstream_url=url, ping_interval=0.3, ping_timeout=0.3)
        async with await ComponentClient.connect(endpoint.url) as client:
            await client.wait_for("Welcome")
            error = await client.wait_for("Error", timeout=5)
            assert error["code"] == "upstream_closed"
            assert await client.wait_closed() == 1011


@asynccontextmanager
async def black_hole_upstream() -> AsyncIterator[str]:
    """Accepts the upgrade, says session.created, then never reads or answers again."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readuntil(b"\r\n\r\n")
        key = next(
            line.split(b":", 1)[1].strip()
            for line in request.split(b"\r\n")
            if line.lower().startswith(b"sec-websocket-key")
        )
        accept = base64.b64encode(
            hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest()
        )
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
        )
        event = orjson.dumps(
            {"type": "session.created", "event_id": "e1", "session": {"id": "sess_hole"}}
        )
        writer.write(bytes([0x81, len(event)]) + event)  # one unmasked text frame
        await writer.drain()
        await asyncio.sleep(30)

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"ws://127.0.0.1:{port}/v1/realtime"
    finally:
        server.close()


async def test_torn_handshakes_give_their_places_back(
    mock_openai: MockRealtime, proxy_factory: ProxyFactory
) -> None:
    # Only the session places are under test: no connection rate, no pending cap.
    endpoint = proxy_factory(
        max_sessions_per_ip=5, connection_rate=0, max_pending_handshakes_per_ip=100
    )
    port = int(endpoint.url.split(":")[2].split("/")[0])
    for _ in range(30):  # each upgrade request is admitted, then the client resets
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(upgrade_request())
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()  # RST
    statuses = []
    for _ in range(20):  # at most a moment for the server to see the resets
        statuses.append(await status_of(endpoint.url))
        if statuses[-1] == 101:
            break
        await asyncio.sleep(0.1)
    assert statuses[-1] == 101, statuses


async def test_duplicate_host_or_origin_headers_are_refused_cleanly(
    mock_openai: MockRealtime, proxy: ProxyEndpoint, caplog: pytest.LogCaptureFixture
) -> None:
    port = int(proxy.url.split(":")[2].split("/")[0])

    status = raw_upgrade_status
    assert await status(port, "Host: evil.example") == 400
    assert await status(port, "Origin: http://localhost", "Origin: https://evil.example") == 403
    no_tracebacks(caplog)
