"""Pending handshakes (proxy.handshakes): idle connections cannot lock new clients out.

When the total is full, the oldest connection that has sent nothing yet makes room; a
plain connection that sends nothing is dropped after `silent_timeout`.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from proxy.handshakes import PendingHandshakes, PendingSlot

pytestmark = pytest.mark.unit


class _Leg(asyncio.Protocol):
    def __init__(self) -> None:
        self.data: list[bytes] = []

    def data_received(self, data: bytes) -> None:
        self.data.append(data)


class _Transport(asyncio.Transport):
    """An accepted connection from `address` (what PendingHandshakes reads of it)."""

    def __init__(self, address: str) -> None:
        super().__init__()
        self.address = address
        self.leg = _Leg()
        self.protocol: asyncio.BaseProtocol = self.leg
        self.aborted = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return (self.address, 40000) if name == "peername" else default

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self.protocol

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.protocol = protocol

    def abort(self) -> None:
        self.aborted = True

    def receive(self, data: bytes) -> None:
        assert isinstance(self.protocol, asyncio.Protocol)
        self.protocol.data_received(data)


def _pending(refused: list[str], silent_timeout: float = 60.0) -> PendingHandshakes:
    return PendingHandshakes(
        total=4,
        per_address=2,
        trusted=(),
        ipv6_prefix=64,
        tls=None,
        tls_timeout=10.0,
        refused=refused.append,
        silent_timeout=silent_timeout,
    )


async def test_a_full_table_drops_its_oldest_silent_connection_for_a_new_one() -> None:
    refused: list[str] = []
    pending = _pending(refused)
    transports = [_Transport(f"127.0.0.{2 + n // 2}") for n in range(4)]
    slots = [pending.enter(t) for t in transports]
    assert all(isinstance(s, PendingSlot) for s in slots)
    transports[0].receive(b"GET / HTTP/1.1\r\n")  # the oldest has spoken: it stays
    assert transports[0].leg.data == [b"GET / HTTP/1.1\r\n"]
    newcomer = _Transport("127.0.0.9")
    assert pending.enter(newcomer) is not None
    assert not transports[0].aborted and transports[1].aborted  # the oldest silent one
    assert refused == ["evicted"] and pending.pending == 4
    # Its address got its place back.
    assert pending.enter(_Transport(transports[1].address)) is not None
    assert transports[2].aborted


async def test_a_full_table_of_connections_that_spoke_refuses_the_newest() -> None:
    refused: list[str] = []
    pending = _pending(refused)
    transports = [_Transport(f"127.0.0.{2 + n}") for n in range(4)]
    for transport in transports:
        pending.enter(transport)
        transport.receive(b"G")
    assert pending.enter(_Transport("127.0.0.9")) is None
    assert refused == ["total"] and not any(t.aborted for t in transports)


async def test_the_per_address_cap_does_not_evict() -> None:
    refused: list[str] = []
    pending = _pending(refused)
    ours = [_Transport("127.0.0.2") for _ in range(2)]
    for transport in ours:
        pending.enter(transport)
    assert pending.enter(_Transport("127.0.0.2")) is None
    assert refused == ["per_address"] and not any(t.aborted for t in ours)


async def test_a_connection_that_sends_nothing_is_dropped_after_the_silent_timeout() -> None:
    refused: list[str] = []
    pending = _pending(refused, silent_timeout=0.05)
    quiet, talking = _Transport("127.0.0.2"), _Transport("127.0.0.3")
    pending.enter(quiet)
    pending.enter(talking)
    talking.receive(b"GET")
    await asyncio.sleep(0.2)
    assert quiet.aborted and not talking.aborted
    assert refused == ["silent"] and pending.pending == 1
