"""What both legs of a session share (proxy.legs): an `asyncio.Protocol` around one of
websockets' Sans-I/O protocols.

Bytes read from the socket go to `receive_data`, the events it parsed come out of
`events_received`, and what it has to say (Pongs, close frames, the handshake) out of
`data_to_send`. That is websockets' public API for bringing one's own I/O, and how its
own asyncio connections are built; the handshake, the frame parser, the close handshake
and the size limits are websockets', the rest is the session's.

A session needs no message queue and no task per connection: each leg passes every
whole message to its `LegOwner` from `data_received`, then says when the batch read
from the socket is done, so the owner writes everything the batch produced in one go.

Backpressure is the owner's to decide: `hold()` stops reading the socket and keeps
messages already parsed, in order; `release()` hands them over and reads again.
Messages that arrive before the owner is attached (a client's Settings pipelined with
its upgrade, or `session.created` in the same packet as the handshake response) wait
the same way.

Keepalive is the owner's too (one timer per session instead of one task per
connection): `send_keepalive_ping()` sends a Ping, and `ping_at` says since when one is
unanswered.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Any, Protocol

from websockets.frames import CloseCode, Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import Protocol as WebSocketProtocol
from websockets.protocol import State

from .outbox import CLOSE_GRACE, WRITE_LIMIT

#: A leg as its owner sees it: proxy.legs.Leg (a `ClientLeg` or an `UpstreamLeg`; named
#: there, which imports this module).
Leg = Any

__all__ = ["BaseLeg", "LegOwner"]

_TEXT, _BINARY, _CONT, _PONG = Opcode.TEXT, Opcode.BINARY, Opcode.CONT, Opcode.PONG
_OPEN = State.OPEN


class LegOwner(Protocol):
    """Who a leg hands its messages and events to (the session's bridge)."""

    def message_received(self, leg: Leg, data: bytes | bytearray | str, text: bool) -> None:
        """A whole message: a text message from the client comes as `str` (UTF-8
        checked), a binary one as bytes, upstream's as bytes or the parser's bytearray."""

    def control_received(self, leg: Leg) -> None:
        """A Ping or Pong from the client (the protocol answers a Ping itself)."""

    def batch_done(self) -> None: ...
    def writes_paused(self, leg: Leg) -> None: ...
    def room_made(self, leg: Leg) -> None: ...
    def leg_lost(self, leg: Leg) -> None: ...


class BaseLeg(asyncio.Protocol):
    """What both legs share (see the module docstring). Slotted: an idle session is
    mostly its two legs."""

    __slots__ = (
        "_backlog",
        "_close_timer",
        "_closed",
        "_fragments",
        "_fragments_text",
        "_held",
        "_lost",
        "_pings",
        "_tail",
        "loop",
        "owner",
        "paused",
        "ping_at",
        "protocol",
        "transport",
    )

    protocol: WebSocketProtocol
    transport: asyncio.Transport

    def __init__(self, protocol: WebSocketProtocol, loop: asyncio.AbstractEventLoop) -> None:
        self.protocol = protocol
        self.loop = loop
        self.owner: LegOwner | None = None
        self.ping_at: float | None = None  # when the unanswered keepalive ping went out
        self._pings = 0
        self._backlog: deque[tuple[bytes | bytearray | str, bool]] | None = None
        self._held = False
        self._fragments: list[bytes] | None = None  # a fragmented message so far
        self._fragments_text = False
        self._close_timer: asyncio.TimerHandle | None = None
        # One future per waiter, made when someone waits: each is cancelled alone (a
        # shared one shielded would cost two futures and two callbacks more).
        self._closed: list[asyncio.Future[None]] | None = None
        self._lost = False
        self.paused = False  # the transport's write buffer is over its limit
        # Until the HTTP head has come: its last bytes so far (see _head_end).
        self._tail: bytes | None = b""

    # ------------------------------------------------------------ for the owner

    @property
    def state(self) -> State:
        return self.protocol.state

    def attach(self, owner: LegOwner) -> None:
        """Hand messages to `owner` from now on (those that wait: at `release()`)."""
        self.owner = owner

    def hold(self) -> None:
        """Stop reading: messages already parsed wait, in order, for `release()`."""
        if not self._held:
            self._held = True
            self.transport.pause_reading()

    def release(self) -> None:
        """Hand over the messages that wait (until the owner holds again), then read on."""
        self._held = False
        backlog, owner = self._backlog, self.owner
        while backlog and not self._held and owner is not None:
            data, text = backlog.popleft()
            owner.message_received(self, data, text)
        if not self._held and not backlog:
            self._backlog = None
            self.transport.resume_reading()

    def handshake_done(self) -> None:
        """Forget the opening handshake: a session never reads its headers again."""

    def send_keepalive_ping(self) -> None:
        """Send a keepalive Ping now (even while writes wait: control frames may
        interleave); `ping_at` is cleared when it is answered."""
        protocol = self.protocol
        if protocol.state is _OPEN:
            self._pings += 1
            protocol.send_ping(self._pings.to_bytes(4, "big"))
            self.transport.write(b"".join(protocol.data_to_send()))
            if self.ping_at is None:
                self.ping_at = self.loop.time()

    def fail(self, code: int, reason: str) -> None:
        """Fail the connection (a peer that stopped answering): close frame, then drop."""
        if self.protocol.state is _OPEN:
            self.protocol.fail(code, reason)
            self._write_out()
        self.loop.call_later(CLOSE_GRACE, self.abort)

    async def close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Start the closing handshake and wait until the connection is gone (the peer
        has CLOSE_GRACE to finish it, then it is dropped)."""
        if self.protocol.state is _OPEN:
            self.protocol.send_close(code, reason)
            self._write_out()
            self._expect_close()
        await self.wait_closed()

    async def wait_closed(self) -> None:
        if self._lost:
            return
        waiter = self.loop.create_future()
        if self._closed is None:
            self._closed = [waiter]
        else:
            self._closed.append(waiter)
        try:
            await waiter
        finally:
            if self._closed is not None and waiter in self._closed:
                self._closed.remove(waiter)

    def abort(self) -> None:
        """Drop the connection now, unless it is gone already."""
        if not self._lost:
            self.transport.abort()

    @property
    def remote_address(self) -> object:
        return self.transport.get_extra_info("peername")

    # ------------------------------------------------------------ asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.set_write_buffer_limits(WRITE_LIMIT)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        protocol = self.protocol
        protocol.receive_data(data)
        events = protocol.events_received()
        self._write_out()  # Pongs, close replies, the handshake response
        if protocol.close_expected():
            self._expect_close()
        for event in events:
            if type(event) is Frame:
                self._frame(event)
            else:
                self._handshake(event)  # type: ignore[arg-type]
        if self.owner is not None:
            self.owner.batch_done()

    def eof_received(self) -> None:
        # The peer sends nothing more: the protocol knows whether that was a clean
        # close; either way the transport closes (nothing is written after EOF).
        self.protocol.receive_eof()
        self.protocol.events_received()
        self._write_out()

    def pause_writing(self) -> None:
        self.paused = True
        if self.owner is not None:
            self.owner.writes_paused(self)

    def resume_writing(self) -> None:
        self.paused = False
        if self.owner is not None:
            self.owner.room_made(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.protocol.receive_eof()  # idempotent: the state is CLOSED from here on
        self._lost = True
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        waiters, self._closed = self._closed, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)
        self._lost_hook()
        if self.owner is not None:
            self.owner.leg_lost(self)

    # ------------------------------------------------------------ inside

    def _handshake(self, event: Request | Response) -> None:
        raise NotImplementedError

    def _lost_hook(self) -> None:
        pass

    def _write_out(self) -> None:
        """Write what the protocol has to send; an empty chunk is its end of stream."""
        transport = self.transport
        for data in self.protocol.data_to_send():
            if data:
                transport.write(data)
            elif transport.can_write_eof():  # half-close; TLS cannot, so close it
                with contextlib.suppress(OSError, RuntimeError):  # already going
                    transport.write_eof()
            else:
                transport.close()

    def _head_end(self, data: bytes) -> int:
        """Where in `data` the opening's HTTP head ends (-1: not in this read). Neither
        a handshake request nor a 101 has a body: the head ends at the first empty line."""
        tail = self._tail
        assert tail is not None
        seen = tail + data
        end = seen.find(b"\r\n\r\n")
        if end < 0:
            self._tail = seen[-3:]
            return -1
        self._tail = None
        return end + 4 - len(tail)

    def _expect_close(self) -> None:
        """The peer has CLOSE_GRACE to end the connection, then it is dropped."""
        if self._close_timer is None and not self._lost:
            self._close_timer = self.loop.call_later(CLOSE_GRACE, self.abort)

    def _deliver(self, data: bytes | bytearray | str, text: bool) -> None:
        owner = self.owner
        if self._held or self._backlog or owner is None:
            if self._backlog is None:
                self._backlog = deque()
            self._backlog.append((data, text))
            return
        owner.message_received(self, data, text)

    def _frame(self, frame: Frame) -> None:
        opcode = frame.opcode
        if opcode is _TEXT or opcode is _BINARY:
            if frame.fin:
                self._deliver(bytes(frame.data), opcode is _TEXT)
            else:  # a fragmented message; the protocol bounds its total size
                self._fragments = [bytes(frame.data)]
                self._fragments_text = opcode is _TEXT
        elif opcode is _CONT:
            if self._fragments is not None:
                self._fragments.append(bytes(frame.data))
                if frame.fin:
                    data, self._fragments = b"".join(self._fragments), None
                    self._deliver(data, self._fragments_text)
        elif opcode is _PONG:
            self.ping_at = None
