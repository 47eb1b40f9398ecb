"""Held places, churn and floods over real sockets (issue 17): a client that sends only
KeepAlive, a session past its time limit, IPv6 /64 counting through a trusted proxy,
connection churn past the rate, stalled handshakes (plain and TLS), ping floods and
floods that go on. Loopback only; every limit is set small so each test takes seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from harness.client import ComponentClient
from harness.mock_openai import MockRealtime
from harness.pytest_plugin import ProxyEndpoint
from tests.haproxy import make_certificate
from tests.http_raw import upgrade_status

ProxyFactory = Callable[..., ProxyEndpoint]


def port_of(endpoint: ProxyEndpoint) -> int:
    return int(endpoint.url.split(":")[2].split("/")[0])


# ------------------------------------------------------------------ held places


async def test_a_client_that_sends_only_keepalive_is_closed(
    mock_openai: MockRealtime, proxy_factory: ProxyFactory
) -> None:
    endpoint = proxy_factory(client_idle_timeout=60, keepalive_only_timeout=1.5)
    async with await ComponentClient.connect(endpoint.url) as client:
        await client.start()
        started = time.monotonic()
        while not client.received("Error") and time.monotonic() - started < 5:
            await client.send({"type": "KeepAlive"})
            await asyncio.sleep(0.2)
        assert await client.wait_closed(timeout=5) == 1000
        (error,) = client.received("Error")
        assert error["code"] == "client_idle"
        assert "nothing but KeepAlive" in error["description"]
        assert 1.4 <= time.monotonic() - started <= 4


async def test_a_session_ends_at_its_time_limit_even_while_streaming_audio(
    mock_openai: MockRealtime, proxy_factory: ProxyFactory
) -> None:
    endpoint = proxy_factory(max_session_seconds=1.5)
    async with await ComponentClient.connect(endpoint.url) as client:
        await client.start()
        started = time.monotonic()
        while not client.received("Error") and time.monotonic() - started < 5:
            await client.send_raw(b"\0\0" * 320)  # 20 ms at 16 kHz
            await asyncio.sleep(0.02)
        assert await client.wait_closed(timeout=5) == 1000
        assert client.received("Error")[0]["code"] == "session_time_limit"


# ------------------------------------------------------------------ addresses


async def test_an_ipv6_64_is_one_address_in_any_spelling(
    mock_openai: MockRealtime, proxy_factory: ProxyFactory
) -> None:
    endpoint = proxy_factory(
        max_sessions_per_ip=2, trusted_proxies=("127.0.0.0/8",), connection_rate=0
    )
    same_64 = ["2001:db8:1:2::1", "2001:DB8:1:2:0:0:0:1", "2001:db8:1:2:ffff::9"]
    held = []
    try:
        for address in same_64[:2]:
            ws = await connect(endpoint.url, additional_headers={"X-Forwarded-For": address})
            held.append(ws)
        for address in [*same_64, "[2001:0db8:0001:0002::1]"]:
            headers = {"X-Forwarded-For": address}
            assert await upgrade_status(endpoint.url, additional_headers=headers) == 429, address
        other = {"X-Forwarded-For": "2001:db8:1:3::1"}  # the next /64
        assert await upgrade_status(endpoint.url, additional_headers=other) == 101
        mapped = {"X-Forwarded-For": "::ffff:198.51.100.7"}
        assert await upgrade_status(endpoint.url, additional_headers=mapped) == 101
    finally:
        for ws in held:
            await ws.close()
    narrower = proxy_factory(
        max_sessions_per_ip=1, trusted_proxies=("127.0.0.0/8",), ipv6_prefix=128
    )
    async with connect(narrower.url, additional_headers={"X-Forwarded-For": same_64[0]}):
        headers = {"X-Forwarded-For": same_64[2]}  # another address of that /64
        assert await upgrade_status(narrower.url, additional_headers=headers) == 101


async def test_a_forwarded_for_that_is_not_an_address_is_refused_with_400(
    mock_openai: MockRealtime, proxy_factory: ProxyFactory
) -> None:
    endpoint = proxy_factory(trusted_proxies=("127.0.0.0/8",))
    for garbage in ("unknown", "evil.example", "198.51.100.7:4711", "1.2.3.4.5"):
        headers = {"X-Forwarded-For": garbage}
        assert await upgrade_status(endpoint.url, additional_headers=headers) == 400, garbage
    assert not mock_openai.connections


# ------------------------------------------------------------------ churn


async def test_connection_churn_past_the_rate_is_refused_before_upstream(
    mock_openai: MockRealtime, proxy_factory: ProxyFactory
) -> None:
    endpoint = proxy_factory(connection_rate=2, connection_burst=3)
    statuses = []
    retry_after = None
    for _ in range(12):  # connect and close at once, as fast as it goes
        try:
            async with connect(endpoint.url, open_timeout=5):
                statuses.append(101)
        except InvalidStatus as refused:
            statuses.append(refused.response.status_code)
            retry_after = refused.response.headers.get("Retry-After")
    assert statuses[:3] == [101] * 3
    assert statuses.count(429) >= 12 - 3 - 2, statuses  # a token every 0.5 s at most
    assert retry_after is not None and int(retry_after) >= 1
    await asyncio.sleep(0.3)
    assert len(mock_openai.connections) == statuses.count(101)
    # Another address is not held back by this one's churn.
    assert await upgrade_status(endpoint.url, local_addr=("127.0.0.2", 0)) == 101


# ------------------------------------------------------------------ pending handshakes


def stalled(port: int, source: str) -> socket.socket:
    """A connection that says nothing: no upgrade request, no TLS ClientHello."""
    return socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))


def dropped_at_once(sock: socket.socket) -> bool:
    """Closed by the proxy within a second, without an answer."""
    sock.settimeout(1.0)
    try:
        return sock.recv(1024) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
async def test_pending_handshakes_are_capped_per_address_and_in_all(
    mock_openai: MockRealtime,
    proxy_factory: ProxyFactory,
    tmp_path: Path,
    tls: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    context = None
    client_context: ssl.SSLContext | None = None
    if tls:
        pem, ca = make_certificate(tmp_path)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(pem)
        client_context = ssl.create_default_context(cafile=str(ca))
    endpoint = proxy_factory(ssl=context, max_pending_handshakes=5, max_pending_handshakes_per_ip=3)
    port = port_of(endpoint)
    held = [await asyncio.to_thread(stalled, port, "127.0.0.1") for _ in range(3)]
    try:
        await asyncio.sleep(0.2)
        extra = await asyncio.to_thread(stalled, port, "127.0.0.1")
        assert await asyncio.to_thread(dropped_at_once, extra)  # the 4th from one address
        held += [await asyncio.to_thread(stalled, port, "127.0.0.2") for _ in range(2)]
        await asyncio.sleep(0.2)
        # The 6th in all gets in: the oldest that has said nothing makes room for it.
        newest = await asyncio.to_thread(stalled, port, "127.0.0.3")
        held.append(newest)
        assert await asyncio.to_thread(dropped_at_once, held[0])
        assert not await asyncio.to_thread(dropped_at_once, newest)  # the others wait on
    finally:
        for sock in held:
            sock.close()
    # Their places come back as they go: a real client gets in.
    url = endpoint.url
    for _ in range(20):
        try:
            async with connect(url, open_timeout=5, ssl=client_context) as ws:
                assert '"Welcome"' in str(await ws.recv())
                break
        except (OSError, ConnectionClosed, InvalidStatus):
            await asyncio.sleep(0.1)
    else:
        pytest.fail("no session after the stalled connections closed")
    assert endpoint.server is not None
    assert endpoint.server._pending.pending == 0  # type: ignore[attr-defined]
    # Expected conditions: no traceback, nothing at ERROR.
    noisy = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not noisy, [f"{r.name}: {r.getMessage()}" for r in noisy]
    metrics = endpoint.server.metrics.render().decode()
    assert 'reason="pending_handshakes_per_address"} 1.0' in metrics
    assert 'reason="pending_handshakes_evicted"} 1.0' in metrics


async def test_idle_connections_from_many_addresses_do_not_lock_a_client_out(
    mock_openai: MockRealtime, proxy_factory: ProxyFactory
) -> None:
    endpoint = proxy_factory(max_pending_handshakes=16, max_pending_handshakes_per_ip=8)
    port = port_of(endpoint)
    held = [await asyncio.to_thread(stalled, port, f"127.0.0.{2 + n // 8}") for n in range(16)]
    try:
        await asyncio.sleep(0.2)
        assert await upgrade_status(endpoint.url, local_addr=("127.0.0.9", 0)) == 101
    finally:
        for sock in held:
            sock.close()


async def test_a_connection_that_says_nothing_is_dropped_after_three_seconds(
    mock_openai: MockRealtime, proxy_factory: ProxyFactory
) -> None:
    port = port_of(proxy_factory())
    quiet = await asyncio.to_thread(stalled, port, "127.0.0.2")
    try:
        quiet.settimeout(6.0)
        started = asyncio.get_running_loop().time()
        with contextlib.suppress(ConnectionResetError):  # the proxy aborts: may reset
            assert await asyncio.to_thread(quiet.recv, 1024) == b""
        assert 2.5 < asyncio.get_running_loop().time() - started < 5.0
    finally:
        quiet.close()


# ------------------------------------------------------------------ floods


async def test_a_ping_flood_counts_in_the_message_rate(
    mock_openai: MockRealtime, proxy_factory: ProxyFactory
) -> None:
    endpoint = proxy_factory(message_rate=50, flood_close_seconds=0)  # a burst of 100
    async with await ComponentClient.connect(endpoint.url) as client:
        await client.start()
        for n in range(300):
            await client.connection.ping(n.to_bytes(4, "big"))
        error = await client.wait_for("Error", timeout=5)
        assert error["code"] == "rate_limited"


async def test_a_client_that_stays_over_the_rate_is_closed_with_1008(
    mock_openai: MockRealtime, proxy_factory: ProxyFactory
) -> None:
    endpoint = proxy_factory(message_rate=50, flood_close_seconds=1)
    async with await ComponentClient.connect(endpoint.url) as client:
        await client.start()
        started = time.monotonic()
        with pytest.raises(ConnectionClosed):
            while time.monotonic() - started < 6:  # ~1000 tiny frames a second
                for _ in range(10):
                    await client.send({"type": "KeepAlive"})
                await asyncio.sleep(0.01)
        assert await client.wait_closed(timeout=5) == 1008
        codes = [e["code"] for e in client.received("Error")]
        assert codes == ["rate_limited", "rate_limited"], client.describe()
        assert time.monotonic() - started < 5
