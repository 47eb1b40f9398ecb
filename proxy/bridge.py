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
from collections.abc import Callable, Coroutine
from typing import Any

import anyio
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
from .metrics import ProxyMetrics, report_traffic
from .next_upstream import NextUpstream
from .outbox import CLOSE_GRACE, Outbox
from .redaction import redact
from .session import ProxySession
from .upstream_dial import UpstreamDial

__all__ = ["Bridge"]

log = logging.getLogger("proxy.session")


class Bridge:
    """Runs one proxied session from the client's upgrade to the last close."""

    __slots__ = (
        "_dial",
        "_held",
        "_holding",
        "_loop",
        "_next",
        "_next_ping",
        "_tasks",
        "_timer",
        "_timer_at",
        "_traffic",
        "_traffic_at",
        "bytes_from_client",
        "bytes_from_upstream",
        "client",
        "config",
        "functions",
        "log",
        "metrics",
        "session",
        "to_client",
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
        self._traffic, self._traffic_at = [0.0] * 6, 0.0  # reported so far, and when
        self.upstream: UpstreamLeg | None = None
        self._loop = client.loop
        self._tasks: set[asyncio.Task[None]] | None = set()  # closes, function calls
        self._dial: UpstreamDial | None = None  # while upstream is being opened
        self._held: deque[Action] | None = None  # actions waiting for room, in order
        self._holding = False
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf
        self._next_ping = self._loop.time() + config.ping_interval
        self.to_client = self._outbox()
        self.to_client.attach(client)
        self.to_upstream = self._outbox()
        # The next upstream session while a renewal prepares it, and the ones renewals
        # left behind (docs/protocol-mapping.md).
        self._next = NextUpstream(config)

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
            self._dial = UpstreamDial(self.config)
            await self._open(self._dial, self._upstream_open, self._upstream_failed)
            self._dial = None
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
            self._next.abort_all()
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
        self._traffic_at = self._loop.time()
        totals = (
            self.bytes_from_client,
            self.to_client.bytes_out,
            self.bytes_from_upstream,
            self._next.bytes_out + self.to_upstream.bytes_out,
            self.session.microphone.seconds_in,
            self.session.agent_audio.seconds_out,
        )
        report_traffic(self.metrics, totals, self._traffic)

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
            elif leg is self._next.leg:
                self.bytes_from_upstream += len(data)
                actions = session.next_upstream_message(data)
            elif leg is self._next.heard:  # replaced, but it still owes a transcript
                self.bytes_from_upstream += len(data)
                actions = session.retired_upstream_message(data)
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
                if self._dial is not None:
                    self._dial.call_off()  # no need for upstream any more
            elif leg is self.upstream:
                self._upstream_gone(leg)
            elif leg is self._next.leg:
                self._next_upstream_gone(leg)
        except Exception:
            self._crash()
        self._flush()

    def _outbox_of(self, leg: Leg) -> Outbox[Leg] | None:
        if leg is self.client:
            return self.to_client
        if leg is self.upstream:
            return self.to_upstream
        return self._next.outbox if leg is self._next.leg else None

    # ------------------------------------------------------------ upstream

    async def _open(
        self,
        dial: UpstreamDial,
        opened: Callable[[UpstreamLeg], None],
        failed: Callable[[ErrorCode, str], None],
    ) -> None:
        """Open an upstream connection (the current session's or the next one's): the
        leg goes to `opened`, why there is none to `failed`; called off, nothing."""
        result = await dial.open()
        if isinstance(result, UpstreamLeg):
            opened(result)
        elif result is not None:
            failed(*result)
        self._flush()

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

    def _upstream_failed(self, code: ErrorCode, description: str) -> None:
        self.log.warning("upstream connection failed: %s", description)
        self._execute(self.session.upstream_failed(code, description))

    # ------------------------------------------------------------ the next upstream session

    def _next_upstream_open(self, leg: UpstreamLeg) -> None:
        outbox = self._outbox()
        if not self._next.take(leg, outbox):  # given up while it was opening
            self._start_close(leg, CloseCode.NORMAL_CLOSURE, "renewal abandoned")
            return
        leg.attach(self)
        leg.handshake_done()
        outbox.attach(leg)
        self._execute(self.session.next_upstream_connected())
        leg.release()

    def _next_upstream_failed(self, code: ErrorCode, description: str) -> None:
        self.log.warning("next upstream session: connection failed: %s", description)
        self._execute(self.session.next_upstream_failed(code, description))

    def _next_upstream_gone(self, leg: UpstreamLeg) -> None:
        received = leg.protocol.close_rcvd
        self._next.lost()
        code = received.code if received else None
        reason = redact(received.reason, self.config.api_key) if received else ""
        self._execute(self.session.next_upstream_closed(code, reason))

    def _switch_upstream(self, hear_old_for: float = 0.0) -> None:
        """The next session takes over (see `NextUpstream.switch`)."""
        switched = self._next.switch(self.upstream, self.to_upstream, hear_old_for)
        if switched is None:  # lost meanwhile: the session hears of it
            return
        self.upstream, self.to_upstream = switched
        if self._holding:
            switched[0].hold()

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
            if now - self._traffic_at >= _REPORT_EVERY:
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
            if self._next.outbox is None:
                return True  # it went away; the session hears of it
            outbox, text = self._next.outbox, True
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
            self._spawn(
                self._open(
                    self._next.wanting(), self._next_upstream_open, self._next_upstream_failed
                )
            )
            return
        elif isinstance(action, SwitchUpstream):
            self._switch_upstream(action.hear_old_for)
            return
        elif isinstance(action, CloseNextUpstream):
            self._next.give_up(action.code, action.reason)
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
        if self._next.outbox is not None:
            self._next.outbox.flush()
        self._rearm()

    def _start_close(self, ws: Leg, code: int, reason: str) -> None:
        if not self._spawn(_close(ws, code, reason)):
            ws.transport.abort()

    def _spawn(self, work: Coroutine[Any, Any, None]) -> bool:
        """Run `work` in a task the session ends with (False: the session has ended)."""
        if self._tasks is None:
            work.close()
            return False
        # The task runs `work` itself (not a wrapper awaiting it): a task cancelled before
        # its first step closes its coroutine, a wrapper's inner one would be left unawaited.
        task = self._loop.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(self._task_done)
        return True

    def _task_done(self, task: asyncio.Task[None]) -> None:
        """A bug in a task (as `_crash`): said once; this session ends with an Error."""
        error = None if task.cancelled() else task.exception()
        if error is None:
            return
        self.log.error("session task failed; ending the session", exc_info=error)
        try:
            self._execute(self.session.internal_failure("the proxy failed; session ended"))
            self._flush()
        except Exception:  # ending it cleanly failed too: drop it
            self._crash(told=True)

    def _crash(self, *, told: bool = False) -> None:
        """A bug, not a peer's fault: say so once (unless `told`), drop both connections."""
        if not told:
            self.log.exception("session failed; dropping both connections")
        self.client.transport.abort()
        for upstream in (self.upstream, self._next.leg):
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
