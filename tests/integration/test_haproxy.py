"""deploy/haproxy/haproxy.cfg: checked by `haproxy -c`, and run in front of real proxies.

The live tests use `haproxy_factory` (tests/haproxy.py): the shipped config with its
addresses replaced, health-checking `/readyz` as shipped.
"""

from __future__ import annotations

import asyncio
import re
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from http import HTTPStatus
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from harness.background import BackgroundLoop
from harness.mock_openai import MockRealtime
from harness.pytest_plugin import MOCK_API_KEY, ProxyEndpoint
from proxy.test_app import http_response
from tests.haproxy import (
    SHIPPED_CONFIG,
    RunningHAProxy,
    haproxy_binary,
    make_certificate,
    render_config,
)
from tests.http_raw import http_get
from tests.processes import clean_env, free_port, running

SHIPPED_CERT = "/etc/haproxy/certs/voice-agent-proxy.pem"
CHECK_PATH = "/readyz"

HAProxyFactory = Callable[..., RunningHAProxy]


def haproxy_check(config_text: str, directory: Path) -> subprocess.CompletedProcess[str]:
    """`haproxy -c` of a config whose certificate path points at a throwaway certificate."""
    combined, _ = make_certificate(directory)
    assert config_text.count(SHIPPED_CERT) == 1
    config = directory / "haproxy.cfg"
    config.write_text(config_text.replace(SHIPPED_CERT, str(combined)))
    return subprocess.run(
        [haproxy_binary(), "-c", "-f", str(config)], capture_output=True, text=True, timeout=30
    )


def sessions_on(endpoint: ProxyEndpoint, expected: int, timeout: float = 5.0) -> int:
    """The proxy's open sessions, once they reach `expected` (its handler counts a session
    a moment after the client's handshake returns) or the timeout passes."""
    deadline = time.monotonic() + timeout
    while (count := getattr(endpoint.server, "active_sessions", -1)) != expected:
        if time.monotonic() > deadline:
            break
        time.sleep(0.01)
    return int(count)


def port_of(endpoint: ProxyEndpoint) -> int:
    port = urlsplit(endpoint.url).port
    assert port is not None
    return port


# ---------------------------------------------------------------- static


def test_the_shipped_config_is_valid_without_warnings(tmp_path: Path) -> None:
    result = haproxy_check(SHIPPED_CONFIG.read_text(), tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Configuration file is valid" in output
    assert "[WARNING]" not in output and "[ALERT]" not in output, output


def test_haproxy_c_catches_a_broken_config(tmp_path: Path) -> None:
    """The check above can fail: a misspelt timeout is rejected."""
    broken = SHIPPED_CONFIG.read_text().replace("timeout tunnel 1h", "timeout tunel 1h")
    result = haproxy_check(broken, tmp_path)
    assert result.returncode != 0
    assert "tunel" in result.stdout + result.stderr


def test_the_shipped_config_says_what_the_deployment_needs() -> None:
    words = [line.split() for line in SHIPPED_CONFIG.read_text().splitlines()]
    assert ["http-request", "del-header", "X-Forwarded-For"] in words  # no spoofed client IP
    assert ["option", "forwardfor"] in words
    assert ["timeout", "tunnel", "1h"] in words  # WebSockets outlive the HTTP timeouts
    check = next(w for w in words if w[:2] == ["http-check", "send"])
    assert check[check.index("uri") + 1] == "/readyz"
    assert "503" in next(w for w in words if w[:1] == ["retry-on"])
    assert not any("shutdown-sessions" in w for w in words)  # a DOWN replica keeps its sessions


def frontends(config: str) -> dict[str, list[list[str]]]:
    """Each frontend's lines, as words (comments left out)."""
    found: dict[str, list[list[str]]] = {}
    current: list[list[str]] | None = None
    for line in config.splitlines():
        words = line.split("#")[0].split()
        if line and not line[0].isspace():
            current = found.setdefault(words[1], []) if words[:1] == ["frontend"] else None
        elif current is not None and words:
            current.append(words)
    return found


def test_metrics_are_bound_internally_and_refused_publicly() -> None:
    public, internal = frontends(SHIPPED_CONFIG.read_text()).values()
    assert any(w[:2] == ["http-request", "deny"] and "/metrics" in w for w in public)
    assert not any("prometheus-exporter" in w for w in public)
    binds = [w[1] for w in internal if w[0] == "bind"]
    assert binds == ["127.0.0.1:8405"]  # loopback as shipped: an operator picks a private one
    assert [
        "http-request",
        "use-service",
        "prometheus-exporter",
        "if",
        "{",
        "path",
        "/metrics",
        "}",
    ] in internal


def test_render_config_fails_loudly_when_the_shipped_config_changes(tmp_path: Path) -> None:
    without_servers = "\n".join(
        line for line in SHIPPED_CONFIG.read_text().splitlines() if " server " not in line
    )
    with pytest.raises(ValueError, match="server"):
        render_config(without_servers, frontend_port=1, certificate=tmp_path, backend_ports=[2])


# ---------------------------------------------------------------- live


@pytest.fixture
def recorded_requests() -> list[Request]:
    return []


@pytest.fixture
def app_proxy(
    proxy_factory: Callable[..., ProxyEndpoint], recorded_requests: list[Request]
) -> ProxyEndpoint:
    """A proxy (against the mock) that serves the test-app files and records those requests."""

    def recording(connection: ServerConnection, request: Request) -> Response:
        recorded_requests.append(request)
        return http_response(connection, request)

    return proxy_factory(http_handler=recording)


async def test_a_websocket_session_through_haproxy_with_tls(
    mock_openai: MockRealtime, app_proxy: ProxyEndpoint, haproxy_factory: HAProxyFactory
) -> None:
    mock_openai.on_user_text("weather").reply_with_audio("Sunny over the load balancer.")
    lb = haproxy_factory([port_of(app_proxy)], check_path=CHECK_PATH)
    lb.wait_for_status({"proxy-1": "UP"})
    async with await lb.connect_component("/openai") as client:
        await client.start()
        assert sessions_on(app_proxy, 1) == 1  # it went to our proxy
        await client.inject("weather please")
        assert await client.wait_for_reply() == "Sunny over the load balancer."
        assert client.audio  # binary frames pass the tunnel untouched


def test_haproxy_sets_the_client_address_and_drops_a_claimed_one(
    app_proxy: ProxyEndpoint, recorded_requests: list[Request], haproxy_factory: HAProxyFactory
) -> None:
    lb = haproxy_factory([port_of(app_proxy)], check_path=CHECK_PATH)
    lb.wait_for_status({"proxy-1": "UP"})
    status, _ = lb.get("/app.js", {"X-Forwarded-For": "203.0.113.9"})
    assert status == HTTPStatus.OK
    forwarded = [r.headers for r in recorded_requests if r.path == "/app.js"]
    assert len(forwarded) == 1
    assert forwarded[0].get_all("X-Forwarded-For") == ["127.0.0.1"]
    assert forwarded[0]["X-Forwarded-Proto"] == "https"


async def test_a_replica_failing_its_health_check_gets_no_sessions(
    app_proxy: ProxyEndpoint,
    proxy_factory: Callable[..., ProxyEndpoint],
    haproxy_factory: HAProxyFactory,
) -> None:
    failing = proxy_factory(max_sessions=0)  # full: /readyz says 503
    lb = haproxy_factory(
        [port_of(failing), port_of(app_proxy)], check_path=CHECK_PATH, check_interval="100ms"
    )
    lb.wait_for_status({"proxy-1": "DOWN", "proxy-2": "UP"})
    clients = [await lb.connect_component() for _ in range(4)]
    try:
        assert sessions_on(app_proxy, 4) == 4
        assert sessions_on(failing, 0) == 0
    finally:
        await asyncio.gather(*(client.close() for client in clients))


def test_metrics_are_not_served_on_the_public_frontend_but_on_the_internal_one(
    app_proxy: ProxyEndpoint, haproxy_factory: HAProxyFactory
) -> None:
    lb = haproxy_factory([port_of(app_proxy)], check_path=CHECK_PATH)
    lb.wait_for_status({"proxy-1": "UP"})
    direct = urlsplit(app_proxy.url)._replace(scheme="http", path="/metrics").geturl()
    assert b"voice_proxy_sessions_active" in http_get(direct).body  # the replica has them
    for path in ("/metrics", "/metrics?format=text", "/%6Detrics", "/METRICS"):
        status, body = lb.get(path)
        assert status == HTTPStatus.NOT_FOUND and b"voice_proxy" not in body, path
    status, body = lb.get_internal("/metrics")
    assert status == HTTPStatus.OK and b"haproxy_process_" in body
    assert lb.get_internal("/openai")[0] == HTTPStatus.NOT_FOUND  # nothing else, no proxy


async def test_plain_http_is_rate_limited_per_address_and_sessions_are_not(
    mock_openai: MockRealtime, app_proxy: ProxyEndpoint, haproxy_factory: HAProxyFactory
) -> None:
    limit = int(re.findall(r"sc_http_req_rate\(0\) gt (\d+)", SHIPPED_CONFIG.read_text())[0])
    lb = haproxy_factory([port_of(app_proxy)], check_path=CHECK_PATH)
    lb.wait_for_status({"proxy-1": "UP"})
    statuses = [(await asyncio.to_thread(lb.get, "/healthz"))[0] for _ in range(limit + 10)]
    assert statuses == [HTTPStatus.OK] * limit + [HTTPStatus.TOO_MANY_REQUESTS] * 10
    async with await lb.connect_component("/openai") as client:  # upgrades are not counted
        await client.start()
        assert sessions_on(app_proxy, 1) == 1


def _kept(port: int, seconds: float) -> socket.socket | None:
    """A TCP connection to `port` that the peer neither refuses nor closes within
    `seconds`; None if it does either."""
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    except ConnectionResetError:
        return None
    sock.settimeout(seconds)
    try:
        closed = sock.recv(1) == b""
    except TimeoutError:
        return sock
    except OSError:
        closed = True
    sock.close()
    return None if closed else sock


async def test_one_address_cannot_hold_more_raw_connections_than_its_share(
    app_proxy: ProxyEndpoint, haproxy_factory: HAProxyFactory
) -> None:
    """Idle TCP connections (no TLS, no HTTP) from one address stop at the shipped bound:
    the next ones are closed at once; one of the held ones closing makes room again."""
    limit = int(re.findall(r"sc1_conn_cur gt (\d+)", SHIPPED_CONFIG.read_text())[0])
    lb = haproxy_factory([port_of(app_proxy)], check_path=CHECK_PATH)
    lb.wait_for_status({"proxy-1": "UP"})
    held = [socket.create_connection(("127.0.0.1", lb.port), timeout=5) for _ in range(limit)]
    try:
        extra = [await asyncio.to_thread(_kept, lb.port, 1.0) for _ in range(3)]
        assert extra == [None] * 3
        still = [await asyncio.to_thread(_kept_open, sock) for sock in (held[0], held[-1])]
        assert still == [True, True]
        held.pop().close()
        await asyncio.sleep(0.2)  # HAProxy sees the close
        status, _ = await asyncio.to_thread(lb.get, "/healthz")
        assert status == HTTPStatus.OK
    finally:
        for sock in held:
            sock.close()


def _kept_open(sock: socket.socket) -> bool:
    sock.settimeout(0.2)
    try:
        return sock.recv(1) != b""
    except TimeoutError:
        return True
    except OSError:
        return False


@pytest.fixture
def refusing_replica(harness_loop: BackgroundLoop) -> Iterator[int]:
    """A replica that passes its health check but refuses every upgrade with 503, as a
    proxy does between starting to drain and HAProxy's next check."""

    def refuse(connection: ServerConnection, request: Request) -> Response:
        if request.path == CHECK_PATH:
            return connection.respond(HTTPStatus.OK, "ok\n")
        return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "draining\n")

    async def never_called(connection: ServerConnection) -> None:
        raise AssertionError("the refusing replica accepted a WebSocket")

    port = free_port()

    async def start() -> Server:
        return await serve(never_called, "127.0.0.1", port, process_request=refuse)

    async def stop(server: Server) -> None:
        server.close()
        await server.wait_closed()

    server = harness_loop.run(start())
    yield port
    harness_loop.run(stop(server))


async def test_a_503_from_a_draining_replica_is_retried_on_another(
    app_proxy: ProxyEndpoint, refusing_replica: int, haproxy_factory: HAProxyFactory
) -> None:
    lb = haproxy_factory([refusing_replica, port_of(app_proxy)], check_path=CHECK_PATH)
    lb.wait_for_status({"proxy-1": "UP", "proxy-2": "UP"})
    clients = [await lb.connect_component() for _ in range(4)]  # leastconn tries both
    try:
        assert sessions_on(app_proxy, 4) == 4
    finally:
        await asyncio.gather(*(client.close() for client in clients))


# ---------------------------------------------------------------- scale-out and drain


def _metric(port: int, name: str) -> float:
    text = http_get(f"http://127.0.0.1:{port}/metrics").text
    match = re.search(rf"^{name} ([0-9.e+]+)$", text, re.MULTILINE)
    assert match is not None, name
    return float(match.group(1))


@pytest.mark.scaleout
async def test_draining_one_of_two_proxies_behind_haproxy_loses_nothing(
    mock_openai: MockRealtime, haproxy_factory: HAProxyFactory
) -> None:
    mock_openai.on_user_text("story").reply_with_audio(
        "A story told slowly.", chunks=10, chunk_ms=100, chunk_interval_ms=120
    )
    env = clean_env(OPENAI_API_KEY=MOCK_API_KEY, OPENAI_REALTIME_URL=mock_openai.url)
    args = ["-m", "proxy", "--port", "0", "--trusted-proxy", "127.0.0.1", "--log-level", "warning"]
    ready = r"listening on ws://"
    with (
        running(args, env, ready) as (first, first_lines),
        running(args, env, ready) as (
            _,
            second_lines,
        ),
    ):
        ports = [
            int(re.findall(r":(\d+)/openai", lines[-1])[0]) for lines in (first_lines, second_lines)
        ]
        lb = haproxy_factory(ports, check_path=CHECK_PATH, check_interval="100ms")
        lb.wait_for_status({"proxy-1": "UP", "proxy-2": "UP"})
        clients = [await lb.connect_component() for _ in range(6)]
        try:
            await asyncio.gather(*(client.start() for client in clients))
            spread = [_metric(port, "voice_proxy_sessions_active") for port in ports]
            assert spread == [3.0, 3.0]  # leastconn spreads them over both
            for client in clients:
                await client.inject("tell me a story")
            await asyncio.gather(*(client.wait_for("AgentStartedSpeaking") for client in clients))

            first.send_signal(signal.SIGTERM)  # mid-answer

            # Every answer completes, on both proxies: nothing is lost.
            replies = await asyncio.gather(*(client.wait_for_reply() for client in clients))
            assert replies == ["A story told slowly."] * 6
            await asyncio.gather(*(client.wait_for("AgentAudioDone") for client in clients))
            assert [len(client.audio) for client in clients] == [10 * 100 * 48] * 6
            # The drained proxy then closes its (quiet) sessions, says 1001 and exits 0.
            assert await asyncio.to_thread(first.wait, 20) == 0
            lb.wait_for_status({"proxy-1": "DOWN", "proxy-2": "UP"})
            async with asyncio.timeout(5):
                while sum(c.close_code is not None for c in clients) < 3:
                    await asyncio.sleep(0.05)
            closed = [client.close_code for client in clients if client.close_code is not None]
            assert closed == [1001] * 3

            # New sessions go to the proxy that stays, and are answered.
            newcomers = [await lb.connect_component() for _ in range(3)]
            clients += newcomers
            await asyncio.gather(*(client.start() for client in newcomers))
            for client in newcomers:
                await client.inject("tell me a story")
            assert (
                await asyncio.gather(*(c.wait_for_reply() for c in newcomers))
                == ["A story told slowly."] * 3
            )
            assert _metric(ports[1], "voice_proxy_sessions_active") == 6.0
        finally:
            await asyncio.gather(*(client.close() for client in clients))
