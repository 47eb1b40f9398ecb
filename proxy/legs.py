"""The two WebSocket connections of a session, handing over each message as it is parsed.

websockets' asyncio connection queues every incoming frame and wakes a task per
message to read it. A session needs no queue: the session core is a plain object that
takes a message and returns what to send. So each leg here is a websockets connection
(the same handshake, parser, close handshake and limits) that passes each message to
its `LegOwner` from `data_received`, then says when the batch read from the socket is
done, so the owner writes everything the batch produced in one go.

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
from collections import deque
from typing import Any, Protocol

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.messages import Assembler
from websockets.asyncio.server import ServerConnection
from websockets.frames import CloseCode, Frame, Opcode
from websockets.protocol import Event, State

from .handshakes import PendingHandshakes, PendingSlot
from .limits import SessionTicket
from .outbox import CLOSE_GRACE

__all__ = ["ClientLeg", "Leg", "LegOwner", "UpstreamLeg"]

_TEXT, _BINARY, _CONT, _PING, _PONG = (
    Opcode.TEXT,
    Opcode.BINARY,
    Opcode.CONT,
    Opcode.PING,
    Opcode.PONG,
)


class LegOwner(Protocol):
    """Who a leg hands its messages and events to (the session's bridge)."""

    def message_received(self, leg: Leg, data: bytes | bytearray | str, text: bool) -> None:
        """A whole message: a text message from the client comes as `str` (UTF-8
        checked), a binary one as bytes, upstream's as bytes or the parser's bytearray."""

    def control_received(self, leg: Leg) -> None:
        """A Ping or Pong from the client (websockets answers a Ping itself)."""

    def batch_done(self) -> None: ...
    def writes_paused(self, leg: Leg) -> None: ...
    def room_made(self, leg: Leg) -> None: ...
    def leg_lost(self, leg: Leg) -> None: ...


class _LegState:
    """A leg's own bookkeeping, in one object: each attribute added to a websockets
    connection past its shared-keys size would turn its __dict__ into a big one."""

    __slots__ = (
        "backlog",
        "fragments",
        "fragments_text",
        "held",
        "pending",
        "ping_at",
        "pings",
        "ticket",
    )

    def __init__(self) -> None:
        self.backlog: deque[tuple[bytes | str, bool]] | None = None  # made when one waits
        self.held = False
        self.fragments: list[bytes] | None = None  # a fragmented message so far
        self.fragments_text = False
        self.ping_at: float | None = None  # when the unanswered ping went out
        self.pings = 0
        self.ticket: SessionTicket | None = None  # the client's place, given back when lost
        self.pending: PendingSlot | None = None  # until the upgrade request has arrived


class _Delivery:
    """What both legs add to their websockets connection (see the module docstring)."""

    owner: LegOwner | None
    _leg: _LegState

    # Provided by websockets' Connection.
    transport: asyncio.Transport
    protocol: Any
    loop: asyncio.AbstractEventLoop
    recv_messages: Assembler
    drain_waiters: Any
    request: Any
    response: Any

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # the websockets connection's
        self.owner = None
        self._leg = _LegState()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._slim_down()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)  # type: ignore[misc]
        self._batch_done()

    def pause_writing(self) -> None:
        super().pause_writing()  # type: ignore[misc]
        if self.owner is not None:
            self.owner.writes_paused(self)  # type: ignore[arg-type]

    def resume_writing(self) -> None:
        super().resume_writing()  # type: ignore[misc]
        if self.owner is not None:
            self.owner.room_made(self)  # type: ignore[arg-type]

    def attach(self, owner: LegOwner) -> None:
        """Hand messages to `owner` from now on (those that wait: at `release()`)."""
        self.owner = owner

    def hold(self) -> None:
        """Stop reading: messages already parsed wait, in order, for `release()`."""
        state = self._leg
        if not state.held:
            state.held = True
            self.transport.pause_reading()

    def release(self) -> None:
        """Hand over the messages that wait (until the owner holds again), then read on."""
        state = self._leg
        state.held = False
        backlog, owner = state.backlog, self.owner
        while backlog and not state.held and owner is not None:
            data, text = backlog.popleft()
            owner.message_received(self, data, text)  # type: ignore[arg-type]
        if not state.held and not backlog:
            state.backlog = None
            self.transport.resume_reading()

    def handshake_done(self) -> None:
        """Forget the opening handshake: a session never reads its headers again (and the
        upstream request holds the key)."""
        self.request = None
        self.response = None

    @property
    def ping_at(self) -> float | None:
        """Since when a keepalive ping is unanswered (None: none is)."""
        return self._leg.ping_at

    def send_keepalive_ping(self) -> None:
        """Send a keepalive Ping now (even while writes wait: control frames may
        interleave); `ping_at` is cleared when it is answered."""
        if self.protocol.state is State.OPEN:
            state = self._leg
            state.pings += 1
            self.protocol.send_ping(state.pings.to_bytes(4, "big"))
            self.transport.write(b"".join(self.protocol.data_to_send()))
            if state.ping_at is None:
                state.ping_at = self.loop.time()

    def fail(self, code: int, reason: str) -> None:
        """Fail the connection (a peer that stopped answering): close frame, then drop."""
        if self.protocol.state is State.OPEN:
            self.protocol.fail(code, reason)
            self.send_data()  # type: ignore[attr-defined]
        self.loop.call_later(CLOSE_GRACE, self._abort_if_open)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)  # type: ignore[misc]
        if self._leg.pending is not None:
            self._leg.pending.release()
        if self._leg.ticket is not None:
            self._leg.ticket.release()
        if self.owner is not None:
            self.owner.leg_lost(self)  # type: ignore[arg-type]

    def _abort_if_open(self) -> None:
        if self.protocol.state is not State.CLOSED:
            self.transport.abort()

    def _deliver(self, data: bytes | str, text: bool) -> None:
        owner, state = self.owner, self._leg
        if state.held or state.backlog or owner is None:
            if state.backlog is None:
                state.backlog = deque()
            state.backlog.append((data, text))
            return
        owner.message_received(self, data, text)  # type: ignore[arg-type]

    def _slim_down(self) -> None:
        # Messages never go through websockets' Assembler (it queues frames for recv()):
        # one shared stand-in takes its place. Writers rarely wait for drain: a list
        # (all websockets asks of it) is a tenth of an empty deque. An idle session is
        # mostly its two connections, so this is a good part of its memory.
        self.recv_messages = _NO_ASSEMBLER
        self.drain_waiters = []

    def _frame(self, frame: Frame) -> None:
        opcode = frame.opcode
        if opcode is _TEXT or opcode is _BINARY:
            if frame.fin:
                self._deliver(bytes(frame.data), opcode is _TEXT)
            else:  # a fragmented message; websockets bounds its total size
                state = self._leg
                state.fragments = [bytes(frame.data)]
                state.fragments_text = opcode is _TEXT
        elif opcode is _CONT:
            state = self._leg
            if state.fragments is not None:
                state.fragments.append(bytes(frame.data))
                if frame.fin:
                    data, state.fragments = b"".join(state.fragments), None
                    self._deliver(data, state.fragments_text)
        elif opcode is _PONG:
            self._leg.ping_at = None

    def _batch_done(self) -> None:
        if self.owner is not None:
            self.owner.batch_done()


class _UnusedAssembler(Assembler):
    """Stands in for websockets' Assembler, which the legs never use."""

    def __init__(self) -> None:
        pass

    def close(self) -> None:
        pass


_NO_ASSEMBLER = _UnusedAssembler()


class ClientLeg(_Delivery, ServerConnection):
    """The component's connection to the proxy. With `pending_handshakes` (set on a
    server's own subclass, `for_server`), it counts as a pending handshake from its
    acceptance to its upgrade request, and starts TLS itself (see proxy.handshakes)."""

    pending_handshakes: PendingHandshakes | None = None

    @classmethod
    def for_server(cls, pending: PendingHandshakes) -> type[ClientLeg]:
        return type("ClientLeg", (cls,), {"pending_handshakes": pending})

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        pending = self.pending_handshakes
        if pending is None:
            super().connection_made(transport)
            return
        slot = pending.enter(transport)
        if slot is None:  # past a cap: dropped before any TLS or HTTP work
            super().connection_made(transport)  # websockets cleans up when it is lost
            self.transport.abort()
            return
        self._leg.pending = slot
        if pending.tls is None:
            super().connection_made(transport)
            return
        assert isinstance(transport, asyncio.Transport)
        pending.start_tls(transport, self.loop, self._tls_opened, slot.release)

    def _tls_opened(self, transport: asyncio.Transport) -> None:
        transport.set_protocol(self)
        super().connection_made(transport)

    def process_event(self, event: Event) -> None:
        if type(event) is not Frame:
            if self._leg.pending is not None:  # the upgrade request has arrived
                self._leg.pending.release()
                self._leg.pending = None
            super().process_event(event)  # the upgrade request
            return
        owner, opcode = self.owner, event.opcode
        if event.fin and owner is not None and not self._leg.held and not self._leg.backlog:
            # The common case, in one step: a whole message, handed over at once.
            if opcode is _BINARY:
                owner.message_received(self, bytes(event.data), False)
                return
            if opcode is _TEXT:
                self._deliver(bytes(event.data), True)
                return
        if (opcode is _PING or opcode is _PONG) and owner is not None:
            # Each costs a parse and (a Ping) a Pong: counted like a message, so a
            # ping flood meets the message rate.
            owner.control_received(self)
        self._frame(event)

    def _deliver(self, data: bytes | str, text: bool) -> None:
        if text and type(data) is bytes:
            try:
                data = data.decode()  # invalid UTF-8 closes with 1007, as websockets does
            except UnicodeDecodeError as exc:
                self.fail(CloseCode.INVALID_DATA, f"{exc.reason} at position {exc.start}")
                return
        super()._deliver(data, text)

    def admit(self, ticket: SessionTicket) -> None:
        """Hold the session place this connection was given at the upgrade: it goes back
        when the connection is lost, whatever stage the handshake reached."""
        self._leg.ticket = ticket


class UpstreamLeg(_Delivery, ClientConnection):
    """The proxy's connection to the OpenAI Realtime API."""

    def process_event(self, event: Event) -> None:
        if type(event) is not Frame:
            super().process_event(event)  # the handshake response
            return
        owner, opcode = self.owner, event.opcode
        if (
            event.fin
            and (opcode is _TEXT or opcode is _BINARY)
            and owner is not None
            and not self._leg.held
            and not self._leg.backlog
        ):
            # The common case, in one step: a whole message, handed over at once (the
            # parser's own copy of the payload; orjson reads a bytearray as it is).
            data = event.data  # a bytearray: websockets' parser copies each payload out
            owner.message_received(self, data, opcode is _TEXT)  # type: ignore[arg-type]
            return
        self._frame(event)


Leg = ClientLeg | UpstreamLeg
