"""The listening proxy: who gets in (before the upgrade), and one `Bridge` per session.

Before a WebSocket upgrade is accepted the request is checked in this order: the
endpoint, the client token (401), the browser origin (403), draining (503), the client
address (400 if a trusted proxy's X-Forwarded-For does not name one), the per-address
connection rate (429 with Retry-After), the per-address limit (429) and the session
limit (503). Plain HTTP requests get the health endpoints or the optional static handler
(the test-app). Even before the request, a connection counts as a pending handshake
(proxy.handshakes), capped in all and per address.
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import logging
import math
import time
from collections.abc import Sequence
from http import HTTPStatus
from urllib.parse import urlsplit

import anyio
from websockets.datastructures import Headers
from websockets.frames import CloseCode
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.typing import Subprotocol

from .access import (
    TOKEN_SUBPROTOCOLS,
    NotAnAddress,
    OriginPolicy,
    client_address,
    offered_token,
    token_matches,
    trusted_host,
    url_host,
)
from .bounds import OPEN_TIMEOUT as _OPEN_TIMEOUT
from .bridge import Bridge
from .config import DEFAULT_UPSTREAM_URL, ProxyConfig
from .function_http import FunctionCaller
from .handshakes import PendingHandshakes
from .legs import ClientLeg, SelectSubprotocol
from .limits import Admission, ConnectionRate, Refusal, counting_key
from .metrics import CONTENT_TYPE, ProxyMetrics
from .outbox import CLOSE_GRACE
from .redaction import redacting_logger

__all__ = ["DEFAULT_UPSTREAM_URL", "ProxyConfig", "ProxyServer"]

log = logging.getLogger("proxy.server")


_REFUSAL_TEXT = {
    Refusal.TOO_MANY_SESSIONS: "the proxy is at its session limit; try again later\n",
    Refusal.TOO_MANY_FROM_ADDRESS: "too many sessions from this address\n",
}


class ProxyServer:
    """The listening proxy. `await start()`, read `url`, `await stop()`."""

    def __init__(self, config: ProxyConfig) -> None:
        self.config = config
        self.draining = False
        self._server: asyncio.Server | None = None
        self._legs: set[ClientLeg] = set()  # every accepted connection not yet lost
        self._handlers: set[asyncio.Task[None]] = set()
        self._idle: anyio.Event | None = None  # created on the serving loop
        self._admission = Admission(
            config.max_sessions, config.max_sessions_per_ip, on_change=self._publish_room
        )
        self._origins = OriginPolicy.for_listener(config.host, config.allowed_origins)
        self._trusted = tuple(
            ipaddress.ip_network(entry, strict=False) for entry in config.trusted_proxies
        )
        self._connection_rate = ConnectionRate(config.connection_rate, config.connection_burst)
        self._pending = PendingHandshakes(
            total=config.max_pending_handshakes,
            per_address=config.max_pending_handshakes_per_ip,
            trusted=self._trusted,
            ipv6_prefix=config.ipv6_prefix,
            tls=config.ssl,
            tls_timeout=_OPEN_TIMEOUT,
            refused=self._pending_refused,
        )
        self._session_ids = itertools.count(1)
        self._bridges: set[Bridge] = set()
        self._finished_high_water = 0
        self.metrics = ProxyMetrics()
        self._tokens = (config.client_token,) if config.client_token else ()
        self.functions = FunctionCaller(
            timeout=config.function_timeout, max_answer_bytes=config.function_max_answer_bytes
        )

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the proxy is not started")
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def active_sessions(self) -> int:
        return len(self._bridges)

    @property
    def url(self) -> str:
        scheme = "wss" if self.config.ssl is not None else "ws"
        return f"{scheme}://{url_host(self.config.host)}:{self.port}{self.config.path}"

    async def start(self) -> None:
        self._idle = anyio.Event()
        self._idle.set()
        self._publish_room()
        loop = asyncio.get_running_loop()
        # TLS is started per connection, once it is let in (handshakes.py); no
        # compression (audio does not compress; deflate would cost CPU per frame); no
        # keepalive task (each session's timer pings both legs).
        listener = _Listener(self, self._pending, self.config.hard_frame_bytes)
        self._server = await loop.create_server(
            lambda: ClientLeg(listener, loop),
            self.config.host,
            self.config.port,
            reuse_port=self.config.reuse_port,
        )

    async def stop(self) -> None:
        """Close every session (1001 going away) and stop listening."""
        self._pending.abort_all()
        server, self._server = self._server, None
        if server is not None:
            server.close()  # no new connections
            legs = list(self._legs)
            for leg in legs:
                if leg.state is not State.OPEN:
                    leg.transport.abort()  # still in its handshake
            closing = [asyncio.create_task(_close(leg, CloseCode.GOING_AWAY)) for leg in legs]
            if closing:
                await asyncio.wait(closing)
            if self._handlers:
                await asyncio.wait(list(self._handlers))
            await server.wait_closed()
        await self.functions.aclose()

    async def drain(self, seconds: float) -> None:
        """Stop taking sessions; let each end once quiet (a response in progress
        finishes) for up to `seconds`; then close the rest (1001) and stop listening."""
        self.draining = True
        self._publish_room()
        for bridge in list(self._bridges):
            await bridge.drain()
        assert self._idle is not None
        with anyio.move_on_after(seconds):
            await self._idle.wait()
        for bridge in list(self._bridges):
            await bridge.shut_down()
        with anyio.move_on_after(CLOSE_GRACE + 1):
            await self._idle.wait()
        await self.stop()

    async def wait_idle(self, timeout: float = 5.0) -> None:
        """Wait until no session is open (on the serving loop); TimeoutError after `timeout`."""
        assert self._idle is not None, "the proxy is not started"
        with anyio.fail_after(timeout):
            await self._idle.wait()

    def buffered_high_water(self) -> int:
        """The most any session held for one of its peers, in bytes (queue + socket)."""
        live = (bridge.buffered_high_water for bridge in list(self._bridges))
        return max(self._finished_high_water, *live, 0)

    # ------------------------------------------------------------ before the upgrade

    def _check_request(self, connection: ClientLeg, request: Request) -> Response | None:
        path = urlsplit(request.path).path
        if path == "/healthz":
            return _plain(HTTPStatus.OK, "ok\n")
        if path == "/readyz":
            if self.draining or not self._has_room():
                return _plain(HTTPStatus.SERVICE_UNAVAILABLE, "not accepting sessions\n")
            return _plain(HTTPStatus.OK, "ready\n")
        if path == "/metrics":
            self._observe_buffers()
            return _plain(HTTPStatus.OK, self.metrics.render(), CONTENT_TYPE)
        if path not in self.config.paths:
            if self.config.http_handler is not None:
                # The handler reads the request only (the connection is websockets'
                # type in its signature).
                return self.config.http_handler(connection, request)  # type: ignore[arg-type]
            return _plain(HTTPStatus.NOT_FOUND, f"no endpoint at {path}\n")
        headers = request.headers
        hosts, origins = headers.get_all("Host"), headers.get_all("Origin")
        if len(hosts) > 1:
            return _plain(HTTPStatus.BAD_REQUEST, "more than one Host header\n")
        if self._tokens and not token_matches(offered_token(request.path, headers), self._tokens):
            return self._refuse("token", HTTPStatus.UNAUTHORIZED, "missing or wrong client token\n")
        same_origin = (
            trusted_host(hosts[0] if hosts else None, self.config.host)
            if self.config.same_origin_pages
            else None
        )
        origin = origins[0] if len(origins) == 1 else ("" if origins else None)  # two: refused
        if not self._origins.allows(origin, same_origin_host=same_origin):
            log.info("refused a connection from origin %r", ", ".join(origins)[:200])
            return self._refuse("origin", HTTPStatus.FORBIDDEN, "origin not allowed\n")
        if self.draining:
            return self._refuse(
                "draining", HTTPStatus.SERVICE_UNAVAILABLE, "the proxy is shutting down\n"
            )
        remote = connection.remote_address
        peer = remote[0] if isinstance(remote, tuple) and remote else "?"
        forwarded = ", ".join(headers.get_all("X-Forwarded-For")) or None
        try:
            address = client_address(str(peer), forwarded, self._trusted)
        except NotAnAddress as exc:
            log.warning("refused a connection from %s: %s", peer, exc)
            return self._refuse(
                "bad_forwarded_for",
                HTTPStatus.BAD_REQUEST,
                "X-Forwarded-For does not name the client by an IP address\n",
            )
        key = counting_key(address, self.config.ipv6_prefix)
        wait = self._connection_rate.admit(key, time.monotonic())
        if wait:
            # Not logged one line each: a churning client would flood the log.
            refusal = self._refuse(
                "connection_rate",
                HTTPStatus.TOO_MANY_REQUESTS,
                "too many new sessions from this address; try again later\n",
            )
            refusal.headers["Retry-After"] = str(max(1, math.ceil(wait)))
            return refusal
        ticket = self._admission.admit(key)
        if isinstance(ticket, Refusal):
            log.warning("refused a session from %s: %s", address, ticket.name.lower())
            return self._refuse(
                ticket.name.lower(), HTTPStatus(ticket.value), _REFUSAL_TEXT[ticket]
            )
        # Released when the session ends, or when the connection is lost if the upgrade
        # fails after this point: a torn handshake cannot keep a place.
        connection.admit(ticket)
        return None

    def _has_room(self) -> bool:
        """This worker's room, or with --workers the pod's (worker_board.py)."""
        if self.config.worker_board is not None:
            return self.config.worker_board.pod_has_room()
        return not self._admission.full

    def _publish_room(self) -> None:
        if self.config.worker_board is not None:
            self.config.worker_board.publish(not (self.draining or self._admission.full))

    def _refuse(self, reason: str, status: HTTPStatus, text: str) -> Response:
        self.metrics.refused.labels(reason=reason).inc()
        return _plain(status, text)

    def _pending_refused(self, cap: str) -> None:
        self.metrics.refused.labels(reason=f"pending_handshakes_{cap}").inc()

    def _observe_buffers(self) -> None:
        self.metrics.buffered_high_water.set(self.buffered_high_water())

    # ------------------------------------------------------------ sessions

    def _opened(self, client: ClientLeg) -> None:
        task = asyncio.get_running_loop().create_task(self._handle(client))
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)

    async def _handle(self, client: ClientLeg) -> None:
        """One session, in one coroutine (each frame of the task waits while the
        session is idle)."""
        if not client.finish_upgrade():
            return  # gone before its session started
        code = CloseCode.NORMAL_CLOSURE
        try:
            if self._idle is None or self._idle.is_set():
                self._idle = anyio.Event()
            session_id = f"s{next(self._session_ids):x}"
            bridge = Bridge(client, self.config, session_id, self.metrics, self.functions)
            if bridge.log.isEnabledFor(logging.INFO):  # the peer's name costs a lookup
                bridge.log.info("client connected from %s", _peer(client))
            self._bridges.add(bridge)
            self.metrics.sessions_active.inc()
            try:
                await bridge.run(drain_at_once=self.draining)
            finally:
                self._session_ended(bridge)
        except Exception:
            log.exception("connection handler failed")
            code = CloseCode.INTERNAL_ERROR
        await _close(client, code)

    def _session_ended(self, bridge: Bridge) -> None:
        self._bridges.discard(bridge)
        self.metrics.sessions_active.dec()
        reason = bridge.session.close_reason or "client_closed"
        self.metrics.sessions.labels(close_reason=reason).inc()
        self._finished_high_water = max(self._finished_high_water, bridge.buffered_high_water)
        if not self._bridges and self._idle is not None:
            self._idle.set()
        bridge.log.info("client gone")


class _Listener:
    """What each client leg needs from the server (legs.Listener)."""

    __slots__ = ("logger", "max_size", "open_timeout", "pending", "select_subprotocol", "server")

    def __init__(self, server: ProxyServer, pending: PendingHandshakes, max_size: int) -> None:
        self.server = server
        self.pending = pending
        self.open_timeout = _OPEN_TIMEOUT
        self.max_size = max_size
        self.select_subprotocol: SelectSubprotocol = _token_subprotocol
        self.logger: logging.Logger = redacting_logger(
            "proxy.client_ws", server.config.api_key, server.config.client_token
        )

    def check_request(self, leg: ClientLeg, request: Request) -> Response | None:
        return self.server._check_request(leg, request)

    def opened(self, leg: ClientLeg) -> None:
        self.server._opened(leg)

    def accepted(self, leg: ClientLeg) -> None:
        self.server._legs.add(leg)

    def gone(self, leg: ClientLeg) -> None:
        self.server._legs.discard(leg)


async def _close(leg: ClientLeg, code: int) -> None:
    """The closing handshake, bounded; the connection is dropped past CLOSE_GRACE."""
    if leg.state is State.CLOSED:
        return
    with anyio.move_on_after(CLOSE_GRACE):
        await leg.close(code)
    leg.abort()


def _token_subprotocol(
    protocol: ServerProtocol, offered: Sequence[Subprotocol]
) -> Subprotocol | None:
    """Answer Deepgram's `token, <key>` (or `bearer`) convention; never refuse others."""
    return next((name for name in offered if name.lower() in TOKEN_SUBPROTOCOLS), None)


def _plain(
    status: HTTPStatus, text: str | bytes, content_type: str = "text/plain; charset=utf-8"
) -> Response:
    body = text.encode() if isinstance(text, str) else text
    headers = Headers(
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("X-Content-Type-Options", "nosniff"),
            ("Cache-Control", "no-store"),
        ]
    )
    return Response(status.value, status.phrase, headers, body)


def _peer(connection: ClientLeg) -> str:
    address = connection.remote_address
    return f"{address[0]}:{address[1]}" if isinstance(address, tuple) and address else "?"
