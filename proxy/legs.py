"""The two WebSocket connections of a session, handing over each message as it is parsed.

Each leg is an `asyncio.Protocol` around one of websockets' Sans-I/O protocols
(`ServerProtocol` towards the client, `ClientProtocol` towards upstream): bytes read from
the socket go to `receive_data`, the events it parsed come out of `events_received`, and
what it has to say (Pongs, close frames, the handshake) out of `data_to_send`. That is
websockets' public API for bringing one's own I/O, and how its own asyncio connections
are built; the handshake, the frame parser, the close handshake and the size limits are
websockets', the rest is the session's.

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

An idle session is mostly its two legs, so a leg holds nothing it no longer needs. The
protocol that did the opening handshake keeps its request or response (with every
header) for as long as it lives; so once the upgrade is done, each leg goes on with a
fresh protocol made in the OPEN state (websockets' documented `Protocol(side,
state=...)`, the base class that parses frames only: its subclasses add the handshake),
and the handshake's one is dropped. The bytes that followed the HTTP head in the same read
(a pipelined first message) go to the new protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Sequence
from typing import Protocol

from websockets.client import ClientProtocol
from websockets.exceptions import InvalidHandshake
from websockets.frames import CloseCode, Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import Protocol as WebSocketProtocol
from websockets.protocol import Side, State
from websockets.server import ServerProtocol
from websockets.typing import Subprotocol

from .handshakes import PendingHandshakes, PendingSlot
from .limits import SessionTicket
from .outbox import CLOSE_GRACE, WRITE_LIMIT

__all__ = ["ClientLeg", "Leg", "LegOwner", "Listener", "UpstreamLeg"]

_TEXT, _BINARY, _CONT, _PING, _PONG = (
    Opcode.TEXT,
    Opcode.BINARY,
    Opcode.CONT,
    Opcode.PING,
    Opcode.PONG,
)
_OPEN = State.OPEN

#: A listener's subprotocol selection, as ServerProtocol takes it.
SelectSubprotocol = Callable[[ServerProtocol, Sequence[Subprotocol]], Subprotocol | None]


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


class _Leg(asyncio.Protocol):
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
            owner.message_received(self, data, text)  # type: ignore[arg-type]
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
            self.owner.writes_paused(self)  # type: ignore[arg-type]

    def resume_writing(self) -> None:
        self.paused = False
        if self.owner is not None:
            self.owner.room_made(self)  # type: ignore[arg-type]

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
            self.owner.leg_lost(self)  # type: ignore[arg-type]

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
        owner.message_received(self, data, text)  # type: ignore[arg-type]

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


class Listener(Protocol):
    """What a listening server gives its client legs (proxy.server)."""

    pending: PendingHandshakes
    open_timeout: float
    max_size: int
    logger: logging.Logger
    #: A plain function (ServerProtocol binds it to itself).
    select_subprotocol: SelectSubprotocol

    def check_request(self, leg: ClientLeg, request: Request) -> Response | None:
        """A response that refuses `request` (or answers it over plain HTTP), or None."""

    def opened(self, leg: ClientLeg) -> None:
        """The upgrade is done: run the session."""

    def accepted(self, leg: ClientLeg) -> None: ...
    def gone(self, leg: ClientLeg) -> None: ...


class ClientLeg(_Leg):
    """The component's connection to the proxy. It counts as a pending handshake from
    its acceptance to its upgrade request, and starts TLS itself (see proxy.handshakes)."""

    __slots__ = (
        "_early",
        "_listener",
        "_open_timer",
        "_pending",
        "_ticket",
        "_upgrade",
        "request",
    )

    def __init__(self, listener: Listener, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(
            ServerProtocol(
                select_subprotocol=listener.select_subprotocol,
                max_size=listener.max_size,
                logger=listener.logger,
            ),
            loop,
        )
        self._listener = listener
        self.request: Request | None = None
        self._ticket: SessionTicket | None = None  # the client's place, given back when lost
        self._pending: PendingSlot | None = None  # until the upgrade request has arrived
        self._open_timer: asyncio.TimerHandle | None = None
        self._upgrade: Response | None = None  # the 101, until the session starts
        self._early: bytes | None = None  # what followed the accepted request, until then

    def admit(self, ticket: SessionTicket) -> None:
        """Hold the session place this connection was given at the upgrade: it goes back
        when the connection is lost, whatever stage the handshake reached."""
        self._ticket = ticket

    def handshake_done(self) -> None:
        self.request = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        pending = self._listener.pending
        slot = pending.enter(transport)
        if slot is None:  # past a cap: dropped before any TLS or HTTP work
            super().connection_made(transport)
            self._listener.accepted(self)
            self.transport.abort()
            return
        self._pending = slot
        if pending.tls is None:
            self._start(transport)
            return
        assert isinstance(transport, asyncio.Transport)
        pending.start_tls(transport, self.loop, self._tls_opened, slot.release)

    def _tls_opened(self, transport: asyncio.Transport) -> None:
        transport.set_protocol(self)
        self._start(transport)

    def _start(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._listener.accepted(self)
        # The upgrade request must come within the open timeout (TLS had its own).
        self._open_timer = self.loop.call_later(self._listener.open_timeout, self._too_slow)

    def data_received(self, data: bytes) -> None:
        if self._tail is None:
            if self._early is None:
                super().data_received(data)
            else:  # between the accepted request and its 101: kept, and no more read
                self._early += data
                self.transport.pause_reading()
            return
        end = self._head_end(data)
        if end < 0:
            super().data_received(data)
            return
        super().data_received(data[:end])  # the request: see _handshake
        rest = data[end:]
        if self._upgrade is not None:  # accepted: the rest is for the protocol after it
            self._early = rest
            if rest:
                self.transport.pause_reading()
        elif rest and not self._lost:
            super().data_received(rest)

    def _too_slow(self) -> None:
        self._open_timer = None
        if self.protocol.state is State.CONNECTING:
            self.transport.abort()

    def _handshake(self, event: Request | Response) -> None:
        assert isinstance(event, Request)
        if self._pending is not None:  # the upgrade request has arrived
            self._pending.release()
            self._pending = None
        if self._open_timer is not None:
            self._open_timer.cancel()
            self._open_timer = None
        protocol = self.protocol
        assert isinstance(protocol, ServerProtocol)
        self.request = event
        try:
            response = self._listener.check_request(self, event)
        except Exception:
            protocol.logger.error("process_request failed", exc_info=True)
            response = protocol.reject(500, "Failed to open a WebSocket connection.\n")
        if response is None:
            response = protocol.accept(event)
        if response.status_code == 101:
            # Sent by finish_upgrade() when the session's task starts, which then opens
            # upstream in the same step: a client that closes at once still finds its
            # upstream connection under way, as with websockets' own server.
            self._upgrade = response
            self._listener.opened(self)
            return
        protocol.send_response(response)
        self._write_out()
        self.transport.close()  # refused, or a plain HTTP answer: done once written

    def finish_upgrade(self) -> bool:
        """Send the accepted upgrade's 101; False if the connection went meanwhile.
        From here on a protocol made open does the talking (see the module docstring)."""
        response, self._upgrade = self._upgrade, None
        early, self._early = self._early, None
        protocol = self.protocol
        assert isinstance(protocol, ServerProtocol)
        if response is None or self._lost or self.transport.is_closing():
            return False
        protocol.send_response(response)
        self._write_out()
        if protocol.state is not _OPEN:  # pragma: no cover (send_response opens it)
            return True
        self.protocol = WebSocketProtocol(
            Side.SERVER, state=_OPEN, max_size=self._listener.max_size, logger=protocol.logger
        )
        if early:
            self.transport.resume_reading()
            self.data_received(early)
        return True

    def _frame(self, frame: Frame) -> None:
        owner, opcode = self.owner, frame.opcode
        if frame.fin and owner is not None and not self._held and not self._backlog:
            # The common case, in one step: a whole message, handed over at once.
            if opcode is _BINARY:
                owner.message_received(self, bytes(frame.data), False)
                return
            if opcode is _TEXT:
                self._deliver(bytes(frame.data), True)
                return
        if (opcode is _PING or opcode is _PONG) and owner is not None:
            # Each costs a parse and (a Ping) a Pong: counted like a message, so a
            # ping flood meets the message rate.
            owner.control_received(self)
        super()._frame(frame)

    def _deliver(self, data: bytes | bytearray | str, text: bool) -> None:
        if text and not isinstance(data, str):
            try:
                data = bytes(data).decode()  # invalid UTF-8 closes with 1007
            except UnicodeDecodeError as exc:
                self.fail(CloseCode.INVALID_DATA, f"{exc.reason} at position {exc.start}")
                return
        super()._deliver(data, text)

    def _lost_hook(self) -> None:
        if self._open_timer is not None:
            self._open_timer.cancel()
            self._open_timer = None
        if self._pending is not None:
            self._pending.release()
            self._pending = None
        if self._ticket is not None:
            self._ticket.release()
            self._ticket = None
        self._listener.gone(self)


class UpstreamLeg(_Leg):
    """The proxy's connection to the OpenAI Realtime API (opened by proxy.upstream)."""

    __slots__ = ("_opened", "_response")

    def __init__(self, protocol: ClientProtocol, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(protocol, loop)
        self._response: asyncio.Future[bool] | None = loop.create_future()
        self._opened: WebSocketProtocol | None = None  # takes over after the upgrade

    async def handshake(self, request: Request, opened: WebSocketProtocol) -> None:
        """Send the upgrade `request` and wait for the answer; the protocol's
        InvalidHandshake (InvalidStatus for a refusal) if it is not an upgrade. Once
        upgraded, `opened` (the same connection's protocol, made in the OPEN state)
        takes over (see the module docstring)."""
        protocol = self.protocol
        assert isinstance(protocol, ClientProtocol)
        self._opened = opened
        protocol.send_request(request)
        self._write_out()
        assert self._response is not None
        try:
            upgraded = await self._response
        finally:
            self._response = self._opened = None
        if protocol.handshake_exc is not None:
            raise protocol.handshake_exc
        if not upgraded:
            raise InvalidHandshake("connection lost in the handshake")
        # Open, or already closing if the service closed at once: the close frame
        # waits with the messages for the owner.

    def _handshake(self, event: Request | Response) -> None:
        if self._response is not None and not self._response.done():
            self._response.set_result(True)

    def data_received(self, data: bytes) -> None:
        if self._tail is None:
            super().data_received(data)
            return
        end = self._head_end(data) if self._opened is not None else -1
        protocol = self.protocol
        if end < 0:
            super().data_received(data)
        else:
            super().data_received(data[:end])  # the response: see _handshake
            rest = data[end:]
            if protocol.state is _OPEN and self._opened is not None:
                self.protocol, self._opened = self._opened, None
            if rest and not self._lost:
                super().data_received(rest)
        waiting = self._response
        exc = protocol.handshake_exc
        if waiting is not None and exc is not None and not waiting.done():
            waiting.set_result(False)  # an answer that does not parse

    def _lost_hook(self) -> None:
        if self._response is not None and not self._response.done():
            self._response.set_result(False)

    def _frame(self, frame: Frame) -> None:
        owner, opcode = self.owner, frame.opcode
        if (
            frame.fin
            and (opcode is _TEXT or opcode is _BINARY)
            and owner is not None
            and not self._held
            and not self._backlog
        ):
            # The common case, in one step: a whole message, handed over at once (the
            # parser's own copy of the payload; orjson reads a bytearray as it is).
            owner.message_received(self, frame.data, opcode is _TEXT)  # type: ignore[arg-type]
            return
        super()._frame(frame)


Leg = ClientLeg | UpstreamLeg
