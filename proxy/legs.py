"""The two WebSocket connections of a session: `ClientLeg` towards the component,
`UpstreamLeg` towards the OpenAI Realtime API, each handing over every message as it is
parsed (what they share, and how: proxy.leg_base).

An idle session is mostly its two legs, so a leg holds nothing it no longer needs. The
protocol that did the opening handshake (`ServerProtocol`, `ClientProtocol`) keeps its
request or response, with every header, for as long as it lives; so once the upgrade is
done, each leg goes on with a fresh protocol made in the OPEN state (websockets'
documented `Protocol(side, state=...)`, the base class that parses frames only: its
subclasses add the handshake), and the handshake's one is dropped. The bytes that
followed the HTTP head in the same read (a pipelined first message) go to the new one.
"""

from __future__ import annotations

import asyncio
import logging
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
from .leg_base import BaseLeg, LegOwner
from .limits import SessionTicket

__all__ = ["ClientLeg", "Leg", "LegOwner", "Listener", "UpstreamLeg"]

_TEXT, _BINARY, _PING, _PONG = Opcode.TEXT, Opcode.BINARY, Opcode.PING, Opcode.PONG
_OPEN = State.OPEN

#: A listener's subprotocol selection, as ServerProtocol takes it.
SelectSubprotocol = Callable[[ServerProtocol, Sequence[Subprotocol]], Subprotocol | None]


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


class ClientLeg(BaseLeg):
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


class UpstreamLeg(BaseLeg):
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
