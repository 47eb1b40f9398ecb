"""Connections not yet past their upgrade request: bounded in all and per address, TLS
included.

A connection is pending from the moment it is accepted until its HTTP request has
arrived (or it is gone). A stalled TLS handshake holds OpenSSL's buffers, about 300 KiB
each, and a plain one a socket and a task, for up to the handshake timeout; so at most
`total` are pending at once, and at most `per_address` from one client address (its
`counting_key`, so an IPv6 /64 is one address). A trusted proxy's connections carry many
clients: they count in the total only. A connection past a cap is dropped as it is
accepted, before any TLS work (nothing is written: its request was never read).

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

__all__ = ["PendingHandshakes", "PendingSlot"]


class PendingSlot:
    """One pending connection's place; `release()` gives it back (more calls do nothing)."""

    __slots__ = ("_key", "_owner")

    def __init__(self, owner: PendingHandshakes, key: str | None) -> None:
        self._owner: PendingHandshakes | None = owner
        self._key = key

    def release(self) -> None:
        owner, self._owner = self._owner, None
        if owner is not None:
            owner._release(self._key)


class PendingHandshakes:
    """Counts pending connections and starts TLS on those let in (see the module
    docstring). `refused` is called with "total" or "per_address" for each one dropped."""

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
    ) -> None:
        self.total = total
        self.per_address = per_address
        self.tls = tls
        self.tls_timeout = tls_timeout
        self.pending = 0
        self._trusted = tuple(trusted)
        self._ipv6_prefix = ipv6_prefix
        self._by_address: Counter[str] = Counter()
        self._refused = refused
        self._tls_tasks: set[asyncio.Task[None]] = set()

    def enter(self, transport: asyncio.BaseTransport) -> PendingSlot | None:
        """A place for this newly accepted connection, or None: drop it."""
        key = self._key(transport.get_extra_info("peername"))
        if self.pending >= self.total:
            self._refused("total")
            return None
        if key is not None:
            if self._by_address[key] >= self.per_address:
                self._refused("per_address")
                return None
            self._by_address[key] += 1
        self.pending += 1
        return PendingSlot(self, key)

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
        opened(transport)
        waiting.hand_over(transport)

    def _key(self, peername: Any) -> str | None:
        """The counting key of a peer; None for a trusted proxy (total only)."""
        host = peername[0] if isinstance(peername, tuple) and peername else None
        ip = normalised_ip(str(host)) if host is not None else None
        if ip is None or any(ip in network for network in self._trusted):
            return None
        return counting_key(ip, self._ipv6_prefix)

    def _release(self, key: str | None) -> None:
        self.pending -= 1
        if key is not None:
            self._by_address[key] -= 1
            if self._by_address[key] <= 0:
                del self._by_address[key]  # only addresses with a pending connection


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
