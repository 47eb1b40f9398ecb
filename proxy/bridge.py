"""One client connection and its upstream connection, joined by a `ProxySession`.

Three tasks per connection, in one anyio task group: the client pump (the connection's
own handler task), the upstream pump, and a timer that wakes the session at its next
deadline. Each socket has an `Outbox`; frames are written by whichever task produced
them while the socket has room, so the session's order is the wire's order.
"""

from __future__ import annotations

import logging
import math
from http import HTTPStatus

import anyio
from anyio.abc import TaskGroup
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import (
    ConnectionClosed,
    InvalidHandshake,
    InvalidStatus,
    InvalidURI,
)
from websockets.protocol import State

from .actions import (
    Action,
    CallFunction,
    CloseClient,
    CloseUpstream,
    SendToClient,
    SendUpstream,
)
from .config import ProxyConfig
from .errors import ErrorCode
from .function_calls import call_function_endpoint
from .logs import SessionLog
from .metrics import ProxyMetrics
from .outbox import CLOSE_GRACE, WRITE_LIMIT, Outbox
from .redaction import redact, redacting_logger
from .session import ProxySession

__all__ = ["Bridge"]

log = logging.getLogger("proxy.session")


class Bridge:
    """Runs one proxied session from the client's upgrade to the last close."""

    def __init__(
        self,
        client: ServerConnection,
        config: ProxyConfig,
        session_id: str,
        metrics: ProxyMetrics,
    ) -> None:
        self.client = client
        self.config = config
        self.metrics = metrics
        self.log = SessionLog(log, session_id)
        self.session = ProxySession(
            config.session_options(), log=self.log, observer=metrics.session()
        )
        self.bytes_from_client = self.bytes_from_upstream = 0
        self._reported: dict[tuple[str, str], float] = {}  # what report_traffic counted
        self.upstream: ClientConnection | None = None
        self._timer_scope: anyio.CancelScope | None = None
        self._tg: TaskGroup | None = None
        self.to_client: Outbox | None = None
        self.to_upstream: Outbox | None = None

    @property
    def buffered_bytes(self) -> int:
        """What this session holds for its peers now: queues, socket buffers, readiness."""
        held = self.session.pending_bytes
        for outbox in (self.to_client, self.to_upstream):
            if outbox is not None:
                held += outbox.buffered_bytes
        return held

    @property
    def buffered_high_water(self) -> int:
        """The most this session ever held in one direction (queue + socket buffer)."""
        outboxes = (self.to_client, self.to_upstream)
        return max(o.high_water for o in outboxes if o is not None) if self.to_client else 0

    async def run(self, *, drain_at_once: bool = False) -> None:
        async with anyio.create_task_group() as tg:
            self._tg = tg
            self.to_client = Outbox(
                tg,
                limit_bytes=self.config.max_buffered_bytes,
                stall_timeout=self.config.stall_timeout,
                on_stall=lambda seconds: self._react(self.session.client_stalled(seconds)),
            )
            self.to_client.attach(self.client)
            self.to_upstream = Outbox(
                tg,
                limit_bytes=self.config.max_buffered_bytes,
                stall_timeout=self.config.stall_timeout,
                on_stall=lambda seconds: self._react(self.session.upstream_stalled(seconds)),
            )
            tg.start_soon(self._upstream_pump)
            tg.start_soon(self._timer)
            if drain_at_once:  # the server began draining while this client connected
                await self.drain()
            await self._client_pump()
            # The client is gone: close upstream, let queued frames go, then stop.
            await self._dispatch(self.session.client_closed())
            with anyio.move_on_after(CLOSE_GRACE):
                await self.to_upstream.wait_idle()
            tg.cancel_scope.cancel()
        self.report_traffic()

    async def drain(self) -> None:
        """The server is going away: end when quiet (see ProxySession.drain)."""
        await self._dispatch(self.session.drain())

    async def shut_down(self) -> None:
        await self._dispatch(self.session.shut_down())

    def report_traffic(self) -> None:
        """Add the bytes and audio moved since the last report to the metrics."""
        session = self.session
        totals = {
            ("bytes", "client_in"): self.bytes_from_client,
            ("bytes", "client_out"): self.to_client.bytes_out if self.to_client else 0,
            ("bytes", "upstream_in"): self.bytes_from_upstream,
            ("bytes", "upstream_out"): self.to_upstream.bytes_out if self.to_upstream else 0,
            ("audio", "in"): session.microphone.seconds_in,
            ("audio", "out"): session.agent_audio.seconds_out,
        }
        for key, total in totals.items():
            delta = total - self._reported.get(key, 0)
            if delta > 0:
                counter = self.metrics.bytes if key[0] == "bytes" else self.metrics.audio_seconds
                counter.labels(direction=key[1]).inc(delta)
                self._reported[key] = total

    # ------------------------------------------------------------ pumps

    async def _client_pump(self) -> None:
        session = self.session
        try:
            async for message in self.client:
                self.bytes_from_client += len(message)
                if isinstance(message, str):
                    await self._dispatch(session.client_text(message))
                else:
                    await self._dispatch(session.client_binary(message))
        except ConnectionClosed:
            pass  # the client went away, or we closed it: both end the session

    async def _upstream_pump(self) -> None:
        upstream = await self._connect_upstream()
        if upstream is None:
            return
        session = self.session
        try:
            await self._dispatch(session.upstream_connected())
            while True:
                message = await upstream.recv(decode=False)
                self.bytes_from_upstream += len(message)
                await self._dispatch(session.upstream_message(message))
        except ConnectionClosed as closed:
            await self._upstream_gone(closed)
        finally:
            with anyio.CancelScope(shield=True):
                with anyio.move_on_after(CLOSE_GRACE):
                    await upstream.close()
                if upstream.state is not State.CLOSED:
                    upstream.transport.abort()

    async def _upstream_gone(self, closed: ConnectionClosed) -> None:
        sent = closed.sent
        if sent is not None and sent.code == 1009:
            limit = self.config.hard_frame_bytes
            self.log.warning("upstream sent a frame over %d bytes; closing", limit)
            await self._dispatch(
                self.session.upstream_protocol_error(f"upstream sent a frame over {limit} bytes")
            )
            return
        received = closed.rcvd
        code = received.code if received else None
        reason = redact(received.reason, self.config.api_key) if received else ""
        if not self.session.closed:
            self.log.info("upstream closed (code %s)", code)
        await self._dispatch(self.session.upstream_closed(code, reason))

    async def _connect_upstream(self) -> ClientConnection | None:
        config = self.config
        headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
        failure: tuple[ErrorCode, str]
        try:
            with anyio.fail_after(config.upstream_connect_timeout):
                self.upstream = await connect(
                    config.upstream_url,
                    additional_headers=headers,
                    max_size=config.hard_frame_bytes,
                    max_queue=4,
                    write_limit=WRITE_LIMIT,
                    compression=None,
                    open_timeout=None,
                    ping_interval=config.ping_interval,
                    ping_timeout=config.ping_timeout,
                    close_timeout=CLOSE_GRACE,
                    logger=redacting_logger("proxy.upstream_ws", config.api_key),
                )
            assert self.to_upstream is not None
            self.to_upstream.attach(self.upstream)
            return self.upstream
        except InvalidStatus as refused:
            status = refused.response.status_code
            code = (
                ErrorCode.UPSTREAM_AUTH_FAILED
                if status in (HTTPStatus.UNAUTHORIZED, HTTPStatus.FORBIDDEN)
                else ErrorCode.UPSTREAM_UNAVAILABLE
            )
            failure = (code, f"upstream refused the connection (HTTP {status})")
        except TimeoutError:
            failure = (
                ErrorCode.UPSTREAM_UNAVAILABLE,
                f"upstream did not answer within {config.upstream_connect_timeout:g} s",
            )
        except (OSError, InvalidHandshake, InvalidURI) as exc:
            failure = (ErrorCode.UPSTREAM_UNAVAILABLE, f"cannot reach upstream: {exc}")
        code, description = failure
        description = redact(description, config.api_key)
        self.log.warning("upstream connection failed: %s", description)
        await self._dispatch(self.session.upstream_failed(code, description))
        return None

    async def _timer(self) -> None:
        """Wake the session at its next deadline (moved earlier by `_rearm`)."""
        while True:
            deadline = self.session.next_deadline
            with anyio.CancelScope(deadline=math.inf if deadline is None else deadline) as scope:
                self._timer_scope = scope
                await anyio.sleep_forever()
            self._timer_scope = None
            await self._dispatch(self.session.tick())
            self.report_traffic()

    # ------------------------------------------------------------ routing

    async def _dispatch(self, actions: list[Action]) -> None:
        """Carry out the session's actions in order, waiting for room in an outbox."""
        to_client, to_upstream = self.to_client, self.to_upstream
        assert to_client is not None and to_upstream is not None
        for action in actions:
            if isinstance(action, SendUpstream):
                if to_upstream.must_wait(len(action.payload)):
                    await to_upstream.wait_room(len(action.payload))
                to_upstream.put(action.payload, True)
            elif isinstance(action, SendToClient):
                if to_client.must_wait(len(action.payload)):
                    await to_client.wait_room(len(action.payload))
                to_client.put(action.payload, action.text)
            else:
                self._react([action])
        self._rearm()  # also when there were no actions: a deadline may have moved

    def _react(self, actions: list[Action]) -> None:
        """Carry out actions at once, without waiting (a stalled peer's last words)."""
        to_client, to_upstream = self.to_client, self.to_upstream
        assert to_client is not None and to_upstream is not None
        for action in actions:
            if isinstance(action, SendUpstream):
                to_upstream.put(action.payload, True)
            elif isinstance(action, SendToClient):
                to_client.put(action.payload, action.text)
            elif isinstance(action, CloseClient):
                to_client.close(action.code, action.reason)
            elif isinstance(action, CloseUpstream):
                to_upstream.close(action.code, action.reason)
            elif isinstance(action, CallFunction):
                assert self._tg is not None
                self._tg.start_soon(self._call_function, action)
        self._rearm()

    def _rearm(self) -> None:
        scope = self._timer_scope
        deadline = self.session.next_deadline
        if scope is not None and deadline is not None and deadline < scope.deadline:
            scope.deadline = deadline

    async def _call_function(self, call: CallFunction) -> None:
        output, failure = await call_function_endpoint(call, timeout=self.config.function_timeout)
        await self._dispatch(self.session.function_result(call.call_id, output, failure))
