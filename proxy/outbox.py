"""Frames on their way to one socket: in order, bounded in bytes, never stuck forever.

While the socket has room, a frame is written at once by the task that produced it (no
queue, no extra task). When the peer is slower than its feed, frames wait in a queue
counted in bytes and one writer task sends them; a producer whose frame would take the
queue over its limit waits for room first (in turn: the first to wait is the first to
put), so backpressure reaches the socket it reads from and the queue never holds more
than its limit (or one frame, if a single frame is larger). A peer that
reads nothing for `stall_timeout` while frames wait is reported (`on_stall`) and from
then on the outbox only writes what it is given straight into the socket, so the
session's last Error and close frame still go out before the connection is dropped.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable

import anyio
from anyio.abc import TaskGroup
from websockets.asyncio.connection import Connection
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

__all__ = ["WRITE_LIMIT", "Outbox"]

#: The socket's write buffer may hold this much before a producer hands over to the
#: writer task (passed to websockets as its `write_limit`, so both agree).
WRITE_LIMIT = 64 * 1024
CLOSE_GRACE = 2.0  # seconds a close may take before the connection is dropped

log = logging.getLogger("proxy.outbox")


class Outbox:
    """The outgoing frames of one WebSocket (see the module docstring)."""

    def __init__(
        self,
        task_group: TaskGroup,
        *,
        limit_bytes: int,
        stall_timeout: float,
        on_stall: Callable[[float], None],
    ) -> None:
        self._tg = task_group
        self._limit = limit_bytes
        self._stall_timeout = stall_timeout
        self._on_stall = on_stall
        self.ws: Connection | None = None  # attached once the socket exists
        self._queue: deque[tuple[bytes, bool] | tuple[int, str]] = deque()
        self.queued_bytes = 0
        self.high_water = 0  # most bytes ever held (queue + socket buffer)
        self.bytes_out = 0  # payload bytes handed to the socket
        self._writing = False
        self._room = anyio.Event()
        self._room.set()
        self._turn = anyio.Lock()  # producers waiting for room, first come first served
        self._idle = anyio.Event()
        self._idle.set()
        self.stalled = False
        self.closed = False

    def attach(self, ws: Connection) -> None:
        self.ws = ws
        if self._queue:
            self._start_writer()

    @property
    def buffered_bytes(self) -> int:
        """Queued here plus what the socket's own write buffer holds."""
        ws = self.ws
        in_socket = ws.transport.get_write_buffer_size() if ws is not None else 0
        return self.queued_bytes + int(in_socket)

    def must_wait(self, size: int) -> bool:
        """Would a frame of `size` bytes have to wait for room (or behind others)?"""
        return self._turn.locked() or (bool(self._queue) and self.queued_bytes + size > self._limit)

    def put(self, payload: bytes, text: bool) -> None:
        """Send `payload` now if the socket has room, else queue it (see `wait_room`)."""
        if self.closed:
            return
        ws = self.ws
        if ws is not None and self.stalled:
            self._write_now(ws, payload, text)
            return
        if ws is not None and not self._queue and not self._writing and self._has_room(ws, payload):
            self._write_now(ws, payload, text)
            return
        self._queue.append((payload, text))
        self.queued_bytes += len(payload)
        self.high_water = max(self.high_water, self.buffered_bytes)
        self._start_writer()

    async def wait_room(self, size: int) -> None:
        """Backpressure: wait until a frame of `size` bytes fits the limit."""
        async with self._turn:
            while (
                self._queue
                and self.queued_bytes + size > self._limit
                and not (self.closed or self.stalled)
            ):
                self._room = anyio.Event()
                await self._room.wait()

    def close(self, code: int, reason: str) -> None:
        """Close after what is queued (at once when the peer has stalled)."""
        if self.closed:
            return
        if self.stalled or (not self._queue and not self._writing):
            self.closed = True
            if self.ws is not None:
                self._tg.start_soon(_close, self.ws, code, reason)
            self._forget()
            return
        self._queue.append((code, reason))
        self._start_writer()

    async def wait_idle(self) -> None:
        """Until queued frames are written (or dropped)."""
        await self._idle.wait()

    # ------------------------------------------------------------ internals

    def _has_room(self, ws: Connection, payload: bytes) -> bool:
        transport = ws.transport
        return bool(transport.get_write_buffer_size() + len(payload) <= WRITE_LIMIT)

    def _write_now(self, ws: Connection, payload: bytes, text: bool) -> None:
        protocol = ws.protocol
        if protocol.state is not State.OPEN:
            return  # closing: the pumps see the close
        self.bytes_out += len(payload)
        if text:
            protocol.send_text(payload)
        else:
            protocol.send_binary(payload)
        ws.transport.write(b"".join(protocol.data_to_send()))

    def _start_writer(self) -> None:
        if self._writing or self.ws is None:
            return
        self._writing = True
        self._idle = anyio.Event()
        self._tg.start_soon(self._write_queued, self.ws)

    async def _write_queued(self, ws: Connection) -> None:
        try:
            while self._queue and not self.stalled:
                entry = self._queue[0]
                if isinstance(entry[0], int):  # a close after the queued frames
                    self._queue.clear()
                    self.closed = True
                    await _close(ws, entry[0], str(entry[1]))
                    return
                payload, text = entry
                assert isinstance(payload, bytes) and isinstance(text, bool)
                self.bytes_out += len(payload)
                with anyio.move_on_after(self._stall_timeout) as waiting:
                    await ws.send(payload, text=text)
                if waiting.cancelled_caught:
                    self.stalled = True
                    self._forget()
                    self._on_stall(self._stall_timeout)
                    return
                self._queue.popleft()
                self.queued_bytes -= len(payload)
                self._room.set()
        except ConnectionClosed:
            self._forget()
        finally:
            self._writing = False
            self._room.set()
            self._idle.set()

    def _forget(self) -> None:
        self._queue.clear()
        self.queued_bytes = 0
        self._room.set()


async def _close(ws: Connection, code: int, reason: str) -> None:
    """The closing handshake, bounded: a peer that reads nothing cannot hold it open."""
    with anyio.move_on_after(CLOSE_GRACE):
        await ws.close(code, reason)
    if ws.state is not State.CLOSED:
        ws.transport.abort()
