"""A renewed upstream session is closed within a bound, over real sockets.

At a renewal switch the old upstream session may still have frames waiting for it (it
stopped reading, or reads slowly). Those are dropped and the close goes out at once; a
peer that never completes the closing handshake is dropped after `CLOSE_GRACE`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.protocol import State

from proxy.bridge import Bridge
from proxy.config import ProxyConfig
from proxy.legs import UpstreamLeg
from proxy.next_upstream import NextUpstream
from proxy.outbox import CLOSE_GRACE, Outbox
from proxy.upstream import open_upstream

pytestmark = pytest.mark.integration

_FRAME = b'{"type":"input_audio_buffer.append","audio":"' + b"A" * 60_000 + b'"}'


class _NextLeg:
    """The next session's leg: only what a switch asks of it."""

    def hold(self) -> None:
        pass


def _bridge_between(old: UpstreamLeg) -> Bridge:
    """A bridge at the moment of a switch: `old` current, a next session ready."""
    bridge = Bridge.__new__(Bridge)
    bridge._loop = asyncio.get_running_loop()
    bridge._tasks = set()
    bridge._holding = False
    bridge._next = NextUpstream(ProxyConfig())

    def outbox() -> Outbox:
        return Outbox(limit_bytes=8 << 20, stall_timeout=60.0, start_close=bridge._start_close)

    bridge.upstream, bridge.to_upstream = old, outbox()
    bridge.to_upstream.attach(old)
    next_leg: Any = _NextLeg()
    bridge._next.wanted = True
    bridge._next.take(next_leg, outbox())
    return bridge


async def test_an_old_upstream_that_stopped_reading_is_closed_within_a_bound() -> None:
    async def not_reading(ws: ServerConnection) -> None:
        ws.transport.pause_reading()
        await ws.wait_closed()  # the proxy's abort ends it

    async with serve(not_reading, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        old = await open_upstream(
            f"ws://127.0.0.1:{port}",
            headers={},
            proxy=None,
            max_size=16 << 20,
            logger=logging.getLogger("test"),
        )
        assert isinstance(old, UpstreamLeg)
        bridge = _bridge_between(old)
        outbox = bridge.to_upstream
        for _ in range(2000):  # until the socket buffers are full and frames queue here
            outbox.put(_FRAME, True)
            outbox.flush()
            if outbox.queued_bytes:
                break
            await asyncio.sleep(0)
        assert outbox.queued_bytes, "the peer kept reading"

        bridge._switch_upstream()
        started = time.monotonic()
        while old.protocol.state is not State.CLOSED and time.monotonic() - started < 10:
            await asyncio.sleep(0.05)
        took = time.monotonic() - started
        assert old.protocol.state is State.CLOSED, "the old upstream is still open"
        assert took < CLOSE_GRACE + 1.0
        assert bridge.upstream is not old and [leg for leg, _ in bridge._next._retired] == [old]
        for task in list(bridge._tasks or ()):
            await task
