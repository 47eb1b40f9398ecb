"""What an idle session holds, over real sockets: nothing of its opening handshake.

An idle session is mostly its two legs (proxy.legs). Once upgraded, neither keeps the
HTTP request or response of its handshake (their headers are a good part of what an
idle session would otherwise hold), and a message pipelined with the upgrade request
still arrives.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import types
from typing import Any
from urllib.parse import urlsplit

import orjson
import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response

from harness.client import ComponentClient, default_settings
from harness.mock_openai import MockRealtime
from harness.pytest_plugin import ProxyEndpoint
from proxy.upstream import open_upstream
from tests.http_raw import upgrade_request
from tests.integration.test_held_places import port_of

pytestmark = pytest.mark.integration

#: Not followed: what every object of the process can reach.
_SHARED = (type, types.ModuleType, logging.Logger, asyncio.AbstractEventLoop)


def _reachable_of(kinds: tuple[type, ...], start: object, depth: int = 8) -> list[object]:
    """The objects of `kinds` that `start` reaches within `depth` references."""
    seen, found, level = {id(start)}, [], [start]
    for _ in range(depth):
        following = []
        for item in level:
            for referent in gc.get_referents(item):
                if id(referent) in seen or isinstance(referent, _SHARED):
                    continue
                seen.add(id(referent))
                if isinstance(referent, kinds):
                    found.append(referent)
                following.append(referent)
        level = following
    return found


async def _held_by_legs(endpoint: ProxyEndpoint) -> list[object]:
    """What the open session's legs hold of their handshakes, read on the proxy's loop."""
    assert endpoint.server is not None and endpoint.loop is not None

    async def look() -> list[object]:
        (bridge,) = endpoint.server._bridges
        legs: list[Any] = [bridge.client, bridge.upstream]
        held = []
        for leg in legs:
            assert leg is not None
            held += _reachable_of((Request, Response), leg.protocol)
            held += [leg.request] if getattr(leg, "request", None) is not None else []
        return held

    return await asyncio.wrap_future(endpoint.loop.submit(look()))


async def test_an_idle_session_keeps_nothing_of_its_handshakes(
    mock_openai: MockRealtime, proxy: ProxyEndpoint
) -> None:
    async with await ComponentClient.connect(proxy.url) as client:
        await client.start()
        assert await _held_by_legs(proxy) == []


@pytest.mark.parametrize("split", [0, 1, 3], ids=["one write", "cut 1", "cut 3"])
async def test_a_message_pipelined_with_the_upgrade_request_arrives(
    mock_openai: MockRealtime, proxy: ProxyEndpoint, split: int
) -> None:
    """The request and the client's Settings written together: the Settings frame
    follows the HTTP head in the same read, and the leg that takes over after the 101
    gets it; also when the head's closing blank line is cut across two reads."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(proxy))
    settings = Frame(Opcode.TEXT, orjson.dumps(default_settings()))
    data = upgrade_request(path=urlsplit(proxy.url).path) + settings.serialize(mask=True)
    head = data.index(b"\r\n\r\n") + 4
    try:
        if split:
            writer.write(data[: head - split])
            await writer.drain()
            await asyncio.sleep(0.05)  # its own read
            data = data[head - split :]
        writer.write(data)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 101")
        seen = b""
        while b"SettingsApplied" not in seen:
            chunk = await asyncio.wait_for(reader.read(65536), 5)
            assert chunk, f"closed before SettingsApplied, after {seen[-200:]!r}"
            seen += chunk
        assert await _held_by_legs(proxy) == []
    finally:
        writer.close()


async def test_a_cancelled_wait_for_the_close_leaves_the_other_waiters_waiting() -> None:
    """Each `wait_closed()` has its own future: cancelling one (a task that gives up)
    neither cancels the others nor keeps them from hearing of the close."""

    async def until_closed(ws: ServerConnection) -> None:
        await ws.wait_closed()

    async with serve(until_closed, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        leg = await open_upstream(
            f"ws://127.0.0.1:{port}",
            headers={},
            proxy=None,
            max_size=1 << 20,
            logger=logging.getLogger("test"),
        )
        gives_up = asyncio.create_task(leg.wait_closed())
        waits = asyncio.create_task(leg.wait_closed())
        await asyncio.sleep(0)
        gives_up.cancel()
        await asyncio.sleep(0)
        assert not waits.done()
        await asyncio.wait_for(leg.close(), 5)
        await asyncio.wait_for(waits, 5)
        assert gives_up.cancelled()
