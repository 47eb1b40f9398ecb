"""Connections not yet past their upgrade request: bounded in all and per address, TLS
included.

A connection is pending from the moment it is accepted until its HTTP request has
arrived (or it is gone). A stalled TLS handshake holds OpenSSL's buffers, about 300 KiB
each, and a plain one a socket and a task, for up to the handshake timeout; so at most
`total` are pending at once, and at most `per_address` from one client address (its
`counting_key`, so an IPv6 /64 is one address). A trusted proxy's connections carry many
clients: they count in the total only. A connection past its address's cap is dropped as
it is accepted, before any TLS work (nothing is written: its request was never read).

Idle connections from many addresses must not lock everyone out: when the total is
full, the oldest pending connection that has sent nothing yet is dropped to make room
(a new one is refused only when every pending connection has sent something); and a
plain connection that sends nothing for `SILENT_TIMEOUT` is dropped (one that sent some
bytes has the server's open timeout; a TLS one, the TLS handshake timeout). For a TLS
connection "has sent something" means its TLS handshake is done.

TLS is therefore started here, on the accepted socket, rather than by the event loop
before the protocol sees the connection: the peer's address is known before the
handshake costs anything.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from .access import Network, normalised_ip
from .limits import counting_key

__all__ = ["SILENT_TIMEOUT", "PendingHandshakes", "PendingSlot"]

#: Seconds a plain connection may stay without sending a byte (a real client sends its
#: request within a round trip of connecting).
SILENT_TIMEOUT = 3.0


class PendingSlot:
    """One pending connection's place; `release()` gives it back (more calls do nothing)."""

    __slots__ = ("_key", "_owner", "_timer", "heard", "transport")

    def __init__(
        self, owner: PendingHandshakes, key: str | None, transport: asyncio.BaseTransport
    ) -> None:
        self._owner: PendingHandshakes | None = owner
        self._key = key
        self.transport = transport
        self.heard = False  # the peer has sent something
        self._timer: asyncio.TimerHandle | None = None

    def release(self) -> None:
        owner, self._owner = self._owner, None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if owner is not None:
            owner._release(self)

    def was_heard(self) -> None:
        self.heard = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def drop(self) -> None:
        """Give the place back at once and drop the connection (no answer)."""
        self.release()
        transport = self.transport
        if isinstance(transport, asyncio.Transport):
            transport.abort()
        else:
            transport.close()

    def _silent(self) -> None:
        self._timer = None
        owner = self._owner
        if owner is not None and not self.heard:
            owner._refused("silent")
            self.drop()


class PendingHandshakes:
    """Counts pending connections and starts TLS on those let in (see the module
    docstring). `refused` is called with "total" or "per_address" for each one refused,
    "evicted" for each silent one dropped to make room, "silent" for each timed out."""

    def __init__(
        self,
        *,
        total: int,
        per_address: int,
        trusted: Sequence[Network],
        ipv6_prefix: int,
        tls: ssl.SSLContext | None,
        tls_timeout: float,
        refused: Callable[[str], None] = lambda reason: None,
        silent_timeout: float = SILENT_TIMEOUT,
    ) -> None:
        self.silent_timeout = silent_timeout
        self.total = total
        self.per_address = per_address
        self.tls = tls
        self.tls_timeout = tls_timeout
        self.pending = 0
        self._trusted = tuple(trusted)
        self._ipv6_prefix = ipv6_prefix
        self._by_address: Counter[str] = Counter()
        self._slots: dict[asyncio.BaseTransport, PendingSlot] = {}  # oldest first
        self._refused = refused
        self._tls_tasks: set[asyncio.Task[None]] = set()

    def enter(self, transport: asyncio.BaseTransport) -> PendingSlot | None:
        """A place for this newly accepted connection, or None: drop it."""
        key = self._key(transport.get_extra_info("peername"))
        if key is not None and self._by_address[key] >= self.per_address:
            self._refused("per_address")
            return None
        if self.pending >= self.total:
            silent = next((s for s in self._slots.values() if not s.heard), None)
            if silent is None:
                self._refused("total")
                return None
            self._refused("evicted")
            silent.drop()
        if key is not None:
            self._by_address[key] += 1
        self.pending += 1
        slot = self._slots[transport] = PendingSlot(self, key, transport)
        if self.tls is None and isinstance(transport, asyncio.Transport):
            protocol = transport.get_protocol()
            if isinstance(protocol, asyncio.Protocol):
                transport.set_protocol(_FirstBytes(slot, transport, protocol))
                loop = asyncio.get_running_loop()
                slot._timer = loop.call_later(self.silent_timeout, slot._silent)
        return slot

    def start_tls(
        self,
        raw: asyncio.Transport,
        loop: asyncio.AbstractEventLoop,
        opened: Callable[[asyncio.Transport], None],
        lost: Callable[[], None],
    ) -> None:
        """Run the TLS handshake on `raw`; then `opened(tls_transport)` (what arrived
        meanwhile follows, in order), or `lost()` if it failed or timed out."""
        task = loop.create_task(self._handshake(raw, loop, opened, lost))
        self._tls_tasks.add(task)
        task.add_done_callback(self._tls_tasks.discard)

    def abort_all(self) -> None:
        """The server stops: handshakes still running end now."""
        for task in list(self._tls_tasks):
            task.cancel()

    async def _handshake(
        self,
        raw: asyncio.Transport,
        loop: asyncio.AbstractEventLoop,
        opened: Callable[[asyncio.Transport], None],
        lost: Callable[[], None],
    ) -> None:
        assert self.tls is not None
        waiting = _WhileHandshaking()
        try:
            transport = await loop.start_tls(
                raw,
                waiting,
                self.tls,
                server_side=True,
                ssl_handshake_timeout=self.tls_timeout,
            )
        except (Exception, asyncio.CancelledError):  # failed, timed out, or the server stops
            raw.abort()
            lost()
            return
        if transport is None or waiting.lost:
            raw.abort()
            lost()
            return
        slot = self._slots.get(raw)
        if slot is not None:
            slot.was_heard()
        opened(transport)
        waiting.hand_over(transport)

    def _key(self, peername: Any) -> str | None:
        """The counting key of a peer; None for a trusted proxy (total only)."""
        host = peername[0] if isinstance(peername, tuple) and peername else None
        ip = normalised_ip(str(host)) if host is not None else None
        if ip is None or any(ip in network for network in self._trusted):
            return None
        return counting_key(ip, self._ipv6_prefix)

    def _release(self, slot: PendingSlot) -> None:
        self.pending -= 1
        self._slots.pop(slot.transport, None)
        key = slot._key
        if key is not None:
            self._by_address[key] -= 1
            if self._by_address[key] <= 0:
                del self._by_address[key]  # only addresses with a pending connection


class _FirstBytes(asyncio.Protocol):
    """Stands before a plain connection's protocol until its first bytes: notes that the
    peer spoke, then steps aside (later bytes go straight to the protocol)."""

    def __init__(
        self, slot: PendingSlot, transport: asyncio.Transport, protocol: asyncio.Protocol
    ) -> None:
        self._slot = slot
        self._transport = transport
        self._protocol = protocol

    def data_received(self, data: bytes) -> None:
        self._slot.was_heard()
        self._transport.set_protocol(self._protocol)
        self._protocol.data_received(data)

    def eof_received(self) -> bool | None:
        return self._protocol.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._protocol.connection_lost(exc)

    def pause_writing(self) -> None:
        self._protocol.pause_writing()

    def resume_writing(self) -> None:
        self._protocol.resume_writing()


class _WhileHandshaking(asyncio.Protocol):
    """The TLS transport's protocol until the handshake is done: keeps what arrives
    (a request may come with the handshake's last flight) for the real protocol."""

    def __init__(self) -> None:
        self.data: list[bytes] = []
        self.eof = False
        self.lost = False

    def data_received(self, data: bytes) -> None:
        self.data.append(data)

    def eof_received(self) -> bool:
        self.eof = True
        return True  # the real protocol decides, once it has the connection

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True

    def hand_over(self, transport: asyncio.Transport) -> None:
        protocol = transport.get_protocol()
        assert isinstance(protocol, asyncio.Protocol)
        for chunk in self.data:
            protocol.data_received(chunk)
        if self.eof:
            protocol.eof_received()
