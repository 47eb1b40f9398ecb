"""Frames on their way to one socket: in order, bounded in bytes, never stuck forever.

While the socket has room (its write buffer under `WRITE_LIMIT`), `put` serializes a
frame at once and `flush` writes everything put since the last flush in one write: the
frames one batch of input produced leave in one system call, not one each. When the
peer is slower than its feed, frames wait in a queue counted in bytes, and go out as the
socket drains (`pump`, called when the transport says it has room again): no task and
no timer while all is well. Whoever feeds the outbox asks `must_wait` first and holds
its input while the queue is at its limit, so the queue never holds more than its limit
(or one frame, if a single frame is larger).

A peer that reads nothing for `stall_timeout` while frames wait is stalled
(`stall_deadline` says when, the owner's timer asks `check_stall`); from then on the
outbox writes what it is given straight into the socket, so the session's last Error
and close frame still go out before the connection is dropped. Frames wait here, or in
the socket's own buffer while it is over its limit (the owner says when that began,
`writes_paused`): the WebSocket layer writes Pongs there itself, so a peer that sends
Pings and reads nothing fills it with nothing queued here.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

from websockets.protocol import State

from .bounds import CLOSE_GRACE, WRITE_LIMIT

if TYPE_CHECKING:
    import asyncio

    from websockets.protocol import Protocol as WebSocketProtocol


class Leg(Protocol):
    """What an outbox writes through (a leg of `proxy.legs`; named here by shape, so
    the legs import the outbox and not the other way round)."""

    protocol: WebSocketProtocol
    transport: asyncio.Transport
    paused: bool


LegT = TypeVar("LegT", bound=Leg)


__all__ = ["CLOSE_GRACE", "WRITE_LIMIT", "Outbox"]


log = logging.getLogger("proxy.outbox")
_OPEN = State.OPEN

# A queued entry: a frame (payload, text), or a close (code, reason) after the frames.
_Entry = tuple[bytes, bool] | tuple[int, str]


class Outbox(Generic[LegT]):
    """The outgoing frames of one WebSocket (see the module docstring)."""

    __slots__ = (
        "_clock",
        "_limit",
        "_paused_at",
        "_progress_at",
        "_queue",
        "_stall_timeout",
        "_start_close",
        "_unflushed",
        "bytes_out",
        "closed",
        "high_water",
        "queued_bytes",
        "stalled",
        "ws",
    )

    def __init__(
        self,
        *,
        limit_bytes: int,
        stall_timeout: float,
        start_close: Callable[[LegT, int, str], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limit = limit_bytes
        self._stall_timeout = stall_timeout
        self._start_close = start_close  # runs the closing handshake (bounded) for us
        self._clock = clock
        self.ws: LegT | None = None  # attached once the socket exists
        self._queue: deque[_Entry] | None = None  # made when a frame first has to wait
        self.queued_bytes = 0
        self._unflushed = 0  # payload bytes serialized since the last flush
        self._progress_at = 0.0  # when the queue last moved (or began to wait)
        self._paused_at = 0.0  # when the socket's buffer last went over its limit
        self.high_water = 0  # most bytes ever held (queue + socket buffer)
        self.bytes_out = 0  # payload bytes handed to the socket
        self.stalled = False
        self.closed = False

    def attach(self, ws: LegT) -> None:
        self.ws = ws
        if self._queue:
            self._progress_at = self._clock()
            self.pump()

    @property
    def buffered_bytes(self) -> int:
        """Queued here plus what the socket's own write buffer holds."""
        ws = self.ws
        in_socket = ws.transport.get_write_buffer_size() if ws is not None else 0
        return self.queued_bytes + self._unflushed + int(in_socket)

    def must_wait(self, size: int) -> bool:
        """Would a frame of `size` bytes take the queue over its limit?"""
        return bool(self._queue) and self.queued_bytes + size > self._limit

    def put(self, payload: bytes, text: bool) -> None:
        """Send `payload` with the next flush if the socket has room, else queue it."""
        if self.closed:
            return
        ws = self.ws
        if ws is not None:
            if (
                not self._queue
                and ws.transport.get_write_buffer_size() + self._unflushed + len(payload)
                <= WRITE_LIMIT
            ):
                protocol = ws.protocol  # _serialize, inlined: this is every frame's path
                if protocol.state is _OPEN:
                    self.bytes_out += len(payload)
                    self._unflushed += len(payload) or 1
                    if text:
                        protocol.send_text(payload)
                    else:
                        protocol.send_binary(payload)
                if self.stalled:
                    self.flush()
                return
            if self.stalled:
                self._serialize(ws, payload, text)
                self.flush()
                return
        if not self._queue:
            self._progress_at = self._clock()
            if self._queue is None:
                self._queue = deque()
        self._queue.append((payload, text))
        self.queued_bytes += len(payload)
        held = self.buffered_bytes
        if held > self.high_water:
            self.high_water = held

    def flush(self) -> None:
        """Write what `put` serialized since the last flush, in one write."""
        ws = self.ws
        if ws is not None:
            self._write_serialized(ws)
            if self._queue:
                self.pump()

    def pump(self) -> bool:
        """Move queued frames into the socket until the transport says it is full (it
        then calls back when it has room again); True if any moved."""
        ws = self.ws
        if ws is None or self.stalled:
            return False
        moved = False
        queue = self._queue
        transport = ws.transport
        while queue and not ws.paused:
            while queue and transport.get_write_buffer_size() + self._unflushed <= WRITE_LIMIT:
                entry = queue.popleft()
                if type(entry[0]) is int:  # a close after the queued frames
                    queue.clear()
                    self.queued_bytes = 0
                    self._write_serialized(ws)
                    self.closed = True
                    self._start_close(ws, entry[0], str(entry[1]))
                    return True
                payload, text = entry
                assert isinstance(payload, bytes) and isinstance(text, bool)
                self.queued_bytes -= len(payload)
                self._serialize(ws, payload, text)
                moved = True
            if not self._unflushed:
                break  # the socket is closing: frames are not written any more
            self._write_serialized(ws)
        if moved:
            self._progress_at = self._clock()
        return moved

    def close(self, code: int, reason: str) -> None:
        """Close after what is queued (at once when the peer has stalled)."""
        if self.closed:
            return
        if self.stalled or not self._queue:
            self.closed = True
            self._forget()
            ws = self.ws
            if ws is not None:
                self._write_serialized(ws)
                self._start_close(ws, code, reason)
            return
        self._queue.append((code, reason))

    def abandon(self, code: int, reason: str) -> None:
        """Close now, dropping what waits: for a peer whose unsent frames no longer
        matter (a renewed upstream session), which may have stopped reading."""
        self._forget()
        self.stalled = False
        self.close(code, reason)

    def writes_paused(self) -> None:
        """The socket's write buffer went over its limit (the transport paused writing)."""
        self._paused_at = self._clock()

    @property
    def stall_deadline(self) -> float | None:
        """When the waiting frames count as stalled (None: nothing waits)."""
        ws = self.ws
        if self.stalled or ws is None:
            return None
        if self._queue:
            return self._progress_at + self._stall_timeout
        if ws.paused:  # nothing queued here, but the socket's buffer is over its limit
            return self._paused_at + self._stall_timeout
        return None

    def check_stall(self, now: float) -> bool:
        """True once, when the peer has read nothing for `stall_timeout` while frames
        waited; the queue is dropped and later frames go straight to the socket."""
        deadline = self.stall_deadline
        if deadline is None or now < deadline:
            return False
        self.stalled = True
        queue = self._queue
        close = queue[-1] if queue and type(queue[-1][0]) is int else None
        self._forget()
        if close is not None:  # a close waited behind the dropped frames: it goes now
            self.close(close[0], str(close[1]))
        return True

    # ------------------------------------------------------------ internals

    def _serialize(self, ws: LegT, payload: bytes, text: bool) -> None:
        protocol = ws.protocol
        if protocol.state is not State.OPEN:
            return  # closing: the legs see the close
        self.bytes_out += len(payload)
        self._unflushed += len(payload) or 1
        if text:
            protocol.send_text(payload)
        else:
            protocol.send_binary(payload)

    def _write_serialized(self, ws: LegT) -> None:
        if self._unflushed:
            self._unflushed = 0
            chunks = ws.protocol.data_to_send()
            if chunks:
                ws.transport.write(b"".join(chunks))

    def _forget(self) -> None:
        self._queue = None
        self.queued_bytes = 0
