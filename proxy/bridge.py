"""One client connection and its upstream connection, joined by a `ProxySession`.

No task reads a socket: each leg hands the bridge every message as it is parsed
(`proxy.legs`), the bridge feeds it to the session and puts what the session returns
into the socket's `Outbox`; when the batch read from a socket is done, each outbox
writes what it got in one write. One timer (a loop callback, not a task) wakes the
session at its next deadline, sends the keepalive pings on both legs and notices a peer
that stopped reading. The connection's handler task only opens upstream and then waits
for the client to go.

Backpressure: when a frame would take an outbox over its byte bound, that action and
every later one wait here, in the session's order, and both legs stop reading (what
they already parsed waits in them). When the outbox drains, the actions go out and the
legs read again. So the session's order is the wire's order, and what a session holds
for a peer is bounded by the outbox's limit plus what one read brought in.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import deque
from collections.abc import Coroutine
from http import HTTPStatus
from typing import Any

import anyio
from websockets.exceptions import InvalidHandshake, InvalidProxy, InvalidStatus, InvalidURI
from websockets.frames import CloseCode
from websockets.protocol import State

from .actions import (
    Action,
    CallEndpoint,
    CloseClient,
    CloseNextUpstream,
    CloseUpstream,
    OpenNextUpstream,
    SendNextUpstream,
    SendToClient,
    SendUpstream,
    SwitchUpstream,
)
from .bounds import TRAFFIC_REPORT_SECONDS as _REPORT_EVERY
from .config import ProxyConfig
from .errors import ErrorCode
from .function_http import FunctionCaller
from .legs import ClientLeg, Leg, UpstreamLeg
from .logs import SessionLog
from .metrics import ProxyMetrics
from .outbox import CLOSE_GRACE, Outbox
from .redaction import redact, redacting_logger
from .session import ProxySession
from .upstream import open_upstream

__all__ = ["Bridge"]

log = logging.getLogger("proxy.session")


class Bridge:
    """Runs one proxied session from the client's upgrade to the last close."""

    __slots__ = (
        "_held",
        "_holding",
        "_loop",
        "_next_ping",
        "_next_wanted",
        "_opening",
        "_opening_next",
        "_reported",
        "_reported_at",
        "_retired",
        "_tasks",
        "_timer",
        "_timer_at",
        "_upstream_bytes_before",
        "bytes_from_client",
        "bytes_from_upstream",
        "client",
        "config",
        "functions",
        "log",
        "metrics",
        "next_upstream",
        "session",
        "to_client",
        "to_next_upstream",
        "to_upstream",
        "upstream",
    )

    def __init__(
        self,
        client: ClientLeg,
        config: ProxyConfig,
        session_id: str,
        metrics: ProxyMetrics,
        functions: FunctionCaller,
    ) -> None:
        self.client = client
        self.config = config
        self.functions = functions  # the server's one HTTP client for function calls
        self.metrics = metrics
        self.log = SessionLog(log, session_id)
        self.session = ProxySession(
            config.session_options(), log=self.log, observer=metrics.session()
        )
        self.bytes_from_client = self.bytes_from_upstream = 0
        self._reported = [0.0] * 6  # what report_traffic counted, in TRAFFIC order
        self._reported_at = 0.0
        self.upstream: UpstreamLeg | None = None
        self._loop = client.loop
        self._tasks: set[asyncio.Task[None]] | None = set()  # closes, function calls
        self._opening: anyio.CancelScope | None = None  # while upstream is being opened
        self._held: deque[Action] | None = None  # actions waiting for room, in order
        self._holding = False
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf
        self._next_ping = self._loop.time() + config.ping_interval
        self.to_client = self._outbox()
        self.to_client.attach(client)
        self.to_upstream = self._outbox()
        # The next upstream session while a renewal prepares it (docs/protocol-mapping.md).
        self.next_upstream: UpstreamLeg | None = None
        self.to_next_upstream: Outbox[Leg] | None = None
        self._opening_next: anyio.CancelScope | None = None
        self._next_wanted = False
        self._upstream_bytes_before = 0  # written to upstream sessions renewed since
        # Renewed upstream sessions still closing (each close is bounded by CLOSE_GRACE;
        # the session's end drops any that is left).
        self._retired: list[UpstreamLeg] = []

    def _outbox(self) -> Outbox[Leg]:
        config = self.config
        return Outbox(
            limit_bytes=config.max_buffered_bytes,
            stall_timeout=config.stall_timeout,
            start_close=self._start_close,
        )

    @property
    def buffered_high_water(self) -> int:
        """The most this session ever held in one direction (queue + socket buffer)."""
        return max(self.to_client.high_water, self.to_upstream.high_water)

    async def run(self, *, drain_at_once: bool = False) -> None:
        client = self.client
        try:
            client.attach(self)
            client.handshake_done()
            if drain_at_once:  # the server began draining while this client connected
                self._execute(self.session.drain())
            client.release()  # what the client sent with its upgrade
            self._flush()
            await self._open_upstream()
            await client.wait_closed()
            # The client is gone: close upstream, let queued frames go, then stop.
            self._execute(self.session.client_closed())
            self._flush()
            upstream = self.upstream
            if upstream is not None:
                with anyio.move_on_after(CLOSE_GRACE):
                    await upstream.wait_closed()
                if upstream.protocol.state is not State.CLOSED:
                    upstream.transport.abort()
        finally:
            if self.next_upstream is not None:
                self.next_upstream.transport.abort()
            for retired in self._retired:
                if retired.protocol.state is not State.CLOSED:
                    retired.transport.abort()
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._timer_at = -math.inf  # never armed again
            tasks, self._tasks = self._tasks or set(), None
            for task in tasks:
                task.cancel()
            with anyio.CancelScope(shield=True):
                await asyncio.gather(*tasks, return_exceptions=True)
            self.report_traffic()

    async def drain(self) -> None:
        """The server is going away: end when quiet (see ProxySession.drain)."""
        self._execute(self.session.drain())
        self._flush()

    async def shut_down(self) -> None:
        self._execute(self.session.shut_down())
        self._flush()

    def report_traffic(self) -> None:
        """Add the bytes and audio moved since the last report to the metrics."""
        self._reported_at = self._loop.time()
        session = self.session
        totals = (
            self.bytes_from_client,
            self.to_client.bytes_out,
            self.bytes_from_upstream,
            self._upstream_bytes_before + self.to_upstream.bytes_out,
            session.microphone.seconds_in,
            session.agent_audio.seconds_out,
        )
        reported = self._reported
        for index, counter in enumerate(self.metrics.traffic):
            delta = totals[index] - reported[index]
            if delta > 0:
                counter.inc(delta)
                reported[index] = totals[index]

    # ------------------------------------------------------------ what the legs report

    def message_received(self, leg: Leg, data: bytes | bytearray | str, text: bool) -> None:
        session = self.session
        try:
            if leg is self.client:
                self.bytes_from_client += len(data)
                if text:
                    assert isinstance(data, str)
                    actions = session.client_text(data)
                else:
                    assert isinstance(data, bytes)
                    actions = session.client_binary(data)
            elif leg is self.upstream:
                self.bytes_from_upstream += len(data)
                actions = session.upstream_message(data)
            elif leg is self.next_upstream:
                self.bytes_from_upstream += len(data)
                actions = session.next_upstream_message(data)
            else:
                return  # a renewed session's last words: it is no longer heard
            if actions:
                self._execute(actions)
        except Exception:
            self._crash()

    def control_received(self, leg: Leg) -> None:
        try:
            actions = self.session.client_ping()
            if actions:
                self._execute(actions)
        except Exception:
            self._crash()

    def batch_done(self) -> None:
        self._flush()

    def writes_paused(self, leg: Leg) -> None:
        outbox = self._outbox_of(leg)
        if outbox is not None:
            outbox.writes_paused()

    def room_made(self, leg: Leg) -> None:
        outbox = self._outbox_of(leg)
        if outbox is None:
            return
        try:
            if outbox.pump() and self._holding:
                self._resume()
        except Exception:
            self._crash()
        self._flush()

    def leg_lost(self, leg: Leg) -> None:
        try:
            if leg is self.client:
                if self._opening is not None:
                    self._opening.cancel()  # no need for upstream any more
            elif leg is self.upstream:
                self._upstream_gone(leg)
            elif leg is self.next_upstream:
                self._next_upstream_gone(leg)
        except Exception:
            self._crash()
        self._flush()

    def _outbox_of(self, leg: Leg) -> Outbox[Leg] | None:
        if leg is self.client:
            return self.to_client
        if leg is self.upstream:
            return self.to_upstream
        return self.to_next_upstream if leg is self.next_upstream else None

    # ------------------------------------------------------------ upstream

    async def _open_upstream(self) -> None:
        result = None
        try:
            with anyio.CancelScope() as self._opening:
                result = await self._connect()
        finally:
            self._opening = None
        if isinstance(result, UpstreamLeg):
            self._upstream_open(result)
        elif result is not None:
            code, description = result
            self.log.warning("upstream connection failed: %s", description)
            self._execute(self.session.upstream_failed(code, description))
            self._flush()

    async def _connect(self) -> UpstreamLeg | tuple[ErrorCode, str]:
        """A connection to the upstream service, or why there is none."""
        config = self.config
        headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
        failure: tuple[ErrorCode, str]
        try:
            with anyio.fail_after(config.upstream_connect_timeout):
                upstream = await open_upstream(
                    config.upstream_url,
                    headers=headers,
                    proxy=config.upstream_proxy,
                    max_size=config.hard_frame_bytes,
                    logger=redacting_logger("proxy.upstream_ws", config.api_key),
                )
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
        except (OSError, InvalidHandshake, InvalidURI, InvalidProxy) as exc:
            failure = (ErrorCode.UPSTREAM_UNAVAILABLE, f"cannot reach upstream: {exc}")
        else:
            return upstream
        code, description = failure
        return code, redact(description, config.api_key)

    def _upstream_open(self, upstream: UpstreamLeg) -> None:
        self.upstream = upstream
        upstream.attach(self)
        upstream.handshake_done()
        self.to_upstream.attach(upstream)
        if self._holding:
            upstream.hold()
        if self.to_upstream.closed:  # the session ended while upstream was opening
            self._start_close(upstream, CloseCode.NORMAL_CLOSURE, "client closed")
        else:
            self._execute(self.session.upstream_connected())
            upstream.release()  # session.created, if it came with the handshake
        self._flush()

    # ------------------------------------------------------------ the next upstream session

    async def _open_next_upstream(self) -> None:
        result = None
        try:
            with anyio.CancelScope() as self._opening_next:
                result = await self._connect()
        finally:
            self._opening_next = None
        if isinstance(result, UpstreamLeg):
            if not self._next_wanted:  # given up while it was opening
                self._start_close(result, CloseCode.NORMAL_CLOSURE, "renewal abandoned")
                return
            self.next_upstream = result
            result.attach(self)
            result.handshake_done()
            self.to_next_upstream = self._outbox()
            self.to_next_upstream.attach(result)
            self._execute(self.session.next_upstream_connected())
            result.release()
        elif result is not None:
            code, description = result
            self.log.warning("next upstream session: connection failed: %s", description)
            self._execute(self.session.next_upstream_failed(code, description))
        self._flush()

    def _next_upstream_gone(self, leg: UpstreamLeg) -> None:
        received = leg.protocol.close_rcvd
        self.next_upstream = self.to_next_upstream = None
        self._next_wanted = False
        code = received.code if received else None
        reason = redact(received.reason, self.config.api_key) if received else ""
        self._execute(self.session.next_upstream_closed(code, reason))

    def _close_next_upstream(self, code: int, reason: str) -> None:
        self._next_wanted = False
        if self._opening_next is not None:
            self._opening_next.cancel()
        outbox, self.to_next_upstream, self.next_upstream = self.to_next_upstream, None, None
        if outbox is not None:
            outbox.close(code, reason)

    def _switch_upstream(self) -> None:
        """The next session takes over; the old one is closed at once. What still waited
        for it is dropped: the new session got the conversation and the settings, and the
        old one may have stopped reading (its close is bounded: `_close`)."""
        old, new, outbox = self.upstream, self.next_upstream, self.to_next_upstream
        if new is None or outbox is None:  # lost meanwhile: the session hears of it
            return
        self._upstream_bytes_before += self.to_upstream.bytes_out
        self.to_upstream.abandon(CloseCode.NORMAL_CLOSURE, "session renewed")
        self.upstream, self.to_upstream = new, outbox
        self.next_upstream = self.to_next_upstream = None
        self._next_wanted = False
        if old is not None:
            old.release()  # what it still says is ignored; its closing handshake completes
            self._retired = [leg for leg in self._retired if leg.protocol.state is not State.CLOSED]
            self._retired.append(old)
        if self._holding:
            new.hold()

    def _upstream_gone(self, upstream: UpstreamLeg) -> None:
        protocol = upstream.protocol
        sent, received = protocol.close_sent, protocol.close_rcvd
        if sent is not None and sent.code == CloseCode.MESSAGE_TOO_BIG:
            limit = self.config.hard_frame_bytes
            self.log.warning("upstream sent a frame over %d bytes; closing", limit)
            self._execute(
                self.session.upstream_protocol_error(f"upstream sent a frame over {limit} bytes")
            )
            return
        code = received.code if received else None
        reason = redact(received.reason, self.config.api_key) if received else ""
        if not self.session.closed:
            self.log.info("upstream closed (code %s)", code)
        self._execute(self.session.upstream_closed(code, reason))

    # ------------------------------------------------------------ time

    def _on_timer(self) -> None:
        self._timer, self._timer_at = None, math.inf
        try:
            now = self._loop.time()
            if self.to_client.check_stall(now):
                self._react(self.session.client_stalled(self.config.stall_timeout))
            if self.to_upstream.check_stall(now):
                self._react(self.session.upstream_stalled(self.config.stall_timeout))
            self._execute(self.session.tick())
            self._keepalive(now)
            if now - self._reported_at >= _REPORT_EVERY:
                self.report_traffic()
        except Exception:
            self._crash()
        self._flush()

    def _keepalive(self, now: float) -> None:
        """Pings on both legs; a leg whose ping went unanswered for `ping_timeout` fails."""
        timeout = self.config.ping_timeout
        legs = (self.client, self.upstream)
        for leg in legs:
            if leg is not None and leg.ping_at is not None and now - leg.ping_at >= timeout:
                leg.fail(CloseCode.INTERNAL_ERROR, "keepalive ping timeout")
        if now >= self._next_ping:
            self._next_ping = now + self.config.ping_interval
            for leg in legs:
                if leg is not None and leg.ping_at is None:
                    leg.send_keepalive_ping()

    def _rearm(self) -> None:
        """Set the timer to the earliest deadline: the session's, a ping's, a stall's."""
        deadline = self.session.next_deadline
        if deadline is None or self._next_ping < deadline:
            deadline = self._next_ping
        timeout = self.config.ping_timeout
        for leg in (self.client, self.upstream):
            if leg is not None and leg.ping_at is not None:
                deadline = min(deadline, leg.ping_at + timeout)
        for outbox in (self.to_client, self.to_upstream):
            stall = outbox.stall_deadline
            if stall is not None and stall < deadline:
                deadline = stall
        if deadline < self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
            self._timer_at = deadline
            self._timer = self._loop.call_at(deadline, self._on_timer)

    # ------------------------------------------------------------ carrying out actions

    def _execute(self, actions: list[Action]) -> None:
        """Carry out the session's actions in order; from the first frame that would
        take an outbox over its bound, they wait (see the module docstring)."""
        if self._held:
            self._held.extend(actions)
            return
        for index, action in enumerate(actions):
            if not self._carry_out(action):
                self._hold(actions, index)
                return

    def _react(self, actions: list[Action]) -> None:
        """Carry out actions at once, without waiting (a stalled peer's last words)."""
        for action in actions:
            self._carry_out(action, may_wait=False)

    def _carry_out(self, action: Action, *, may_wait: bool = True) -> bool:
        """Send or perform one action; False (and nothing done) when its frame must
        wait for room in its outbox."""
        if isinstance(action, SendToClient):
            outbox, text = self.to_client, action.text
        elif isinstance(action, SendUpstream):
            outbox, text = self.to_upstream, True
        elif isinstance(action, SendNextUpstream):
            if self.to_next_upstream is None:
                return True  # it went away; the session hears of it
            outbox, text = self.to_next_upstream, True
        else:
            self._perform(action)
            return True
        if may_wait and outbox.must_wait(len(action.payload)):
            return False
        outbox.put(action.payload, text)
        return True

    def _perform(self, action: Action) -> None:
        if isinstance(action, CloseClient):
            self.to_client.close(action.code, action.reason)
        elif isinstance(action, CloseUpstream):
            self.to_upstream.close(action.code, action.reason)
        elif isinstance(action, CallEndpoint):
            self._spawn(self._call_function(action))
            return
        elif isinstance(action, OpenNextUpstream):
            self._next_wanted = True
            self._spawn(self._open_next_upstream())
            return
        elif isinstance(action, SwitchUpstream):
            self._switch_upstream()
            return
        elif isinstance(action, CloseNextUpstream):
            self._close_next_upstream(action.code, action.reason)
        if self.session.closed and self._holding:
            # Nothing more will be sent: what waits is dropped, and the legs read again
            # so the closing handshakes complete.
            self._held = None
            self._release_legs()

    def _hold(self, actions: list[Action], index: int) -> None:
        self._held = deque(actions[index:])
        if not self._holding:
            self._holding = True
            self.client.hold()
            if self.upstream is not None:
                self.upstream.hold()

    def _resume(self) -> None:
        """An outbox made room: send what waits, then let the legs read again."""
        held = self._held
        while held:
            action = held.popleft()
            if not self._carry_out(action):
                held.appendleft(action)
                return
            if self._held is not held:
                return  # the session ended: what waited was dropped
        self._held = None
        self._release_legs()

    def _release_legs(self) -> None:
        self._holding = False
        self.client.release()
        if self.upstream is not None and not self._holding:
            self.upstream.release()

    def _flush(self) -> None:
        self.to_client.flush()
        self.to_upstream.flush()
        if self.to_next_upstream is not None:
            self.to_next_upstream.flush()
        self._rearm()

    def _start_close(self, ws: Leg, code: int, reason: str) -> None:
        if not self._spawn(_close(ws, code, reason)):
            ws.transport.abort()

    def _spawn(self, work: Coroutine[Any, Any, None]) -> bool:
        """Run `work` in a task the session ends with (False: the session has ended)."""
        if self._tasks is None:
            work.close()
            return False
        task = self._loop.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    def _crash(self) -> None:
        """A bug, not a peer's fault: say so once, drop both connections."""
        self.log.exception("session failed; dropping both connections")
        self.client.transport.abort()
        for upstream in (self.upstream, self.next_upstream):
            if upstream is not None:
                upstream.transport.abort()

    async def _call_function(self, call: CallEndpoint) -> None:
        try:
            output, failure = await self.functions.call(call.request)
        except Exception:  # a bug, not the endpoint's fault: the model is still answered
            self.log.exception("function call failed")
            output, failure = None, "the proxy failed to make the call"
        self._execute(self.session.function_result(call.call_id, output, failure))
        self._flush()


async def _close(ws: Leg, code: int, reason: str) -> None:
    """The closing handshake, bounded: a peer that reads nothing cannot hold it open."""
    try:
        with anyio.move_on_after(CLOSE_GRACE):
            await ws.close(code, reason)
    finally:
        if ws.state is not State.CLOSED:
            ws.transport.abort()
