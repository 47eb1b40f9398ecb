"""Lean clients for the benchmark: the component talking to the proxy, and the same
conversation talking to the mock directly.

The driver shares the machine with what it measures, so it keeps its own cost low: a
`WatchedConnection` stamps the clock when the frame it waits for is parsed (no task
wakes per frame, no message queue) and drops every other frame unread.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
from processes import MOCK_KEY
from websockets.asyncio.client import ClientConnection, connect
from websockets.frames import Frame, Opcode
from websockets.protocol import Event

from harness.client import default_settings

__all__ = [
    "TURN_END",
    "WatchedConnection",
    "close_within",
    "direct_turn",
    "open_direct",
    "open_proxied",
    "proxied_turn",
    "send_frame_now",
]

#: What the component sends first.
SETTINGS = orjson.dumps(default_settings())
#: The session.update the proxy makes of SETTINGS, for the direct sessions.
SESSION_UPDATE = orjson.dumps(
    {
        "type": "session.update",
        "session": {
            "type": "realtime",
            "instructions": "You are a helpful voice assistant. Keep answers short.",
            "tools": [],
            "audio": {
                "input": {
                    "format": {"type": "audio/pcm", "rate": 24000},
                    "turn_detection": {
                        "type": "server_vad",
                        "create_response": True,
                        "interrupt_response": True,
                    },
                    "transcription": {"model": "gpt-4o-mini-transcribe"},
                },
                "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "alloy"},
            },
        },
    }
)
_DATA = (Opcode.TEXT, Opcode.BINARY, Opcode.CONT)


class WatchedConnection(ClientConnection):
    """A client connection that waits for one kind of frame at a time.

    `expect(b"Name")` returns a future that gets `time.perf_counter()` at the moment the
    first text frame whose `type` is Name is parsed. Other data frames are dropped.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._marker = b""
        self._arrived: asyncio.Future[float] | None = None

    def expect(self, kind: bytes) -> asyncio.Future[float]:
        self._marker = b'"type":"' + kind + b'"'
        self._arrived = self.loop.create_future()
        return self._arrived

    def process_event(self, event: Event) -> None:
        if self.response is None or not isinstance(event, Frame) or event.opcode not in _DATA:
            super().process_event(event)  # the handshake, pings, pongs and the close
            return
        arrived = self._arrived
        if (
            arrived is not None
            and event.opcode is Opcode.TEXT
            and self._marker in bytes(event.data[:80])
        ):
            self._arrived = None
            if not arrived.done():
                arrived.set_result(time.perf_counter())


def send_frame_now(ws: ClientConnection, data: bytes, *, text: bool) -> None:
    """Write one frame into the socket without awaiting (the driver's cheap path)."""
    if text:
        ws.protocol.send_text(data)
    else:
        ws.protocol.send_binary(data)
    ws.transport.write(b"".join(ws.protocol.data_to_send()))


async def _connect(url: str, **kwargs: Any) -> WatchedConnection:
    ws = await connect(
        url,
        create_connection=WatchedConnection,
        compression=None,
        max_size=None,
        ping_interval=None,
        proxy=None,  # websockets would scan the whole environment for one at each connect
        open_timeout=30,
        **kwargs,
    )
    assert isinstance(ws, WatchedConnection)
    return ws


async def open_proxied(url: str, *, timeout: float = 30.0) -> tuple[WatchedConnection, float]:
    """A component session through the proxy, up to SettingsApplied; and how long
    that took from the start of the TCP connect."""
    start = time.perf_counter()
    ws = await _connect(url)
    applied = ws.expect(b"SettingsApplied")
    send_frame_now(ws, SETTINGS, text=True)
    return ws, await asyncio.wait_for(applied, timeout) - start


async def open_direct(url: str, *, timeout: float = 30.0) -> tuple[WatchedConnection, float]:
    """The same session straight to the mock: session.update, up to session.updated."""
    start = time.perf_counter()
    ws = await _connect(url, additional_headers={"Authorization": f"Bearer {MOCK_KEY}"})
    updated = ws.expect(b"session.updated")
    send_frame_now(ws, SESSION_UPDATE, text=True)
    return ws, await asyncio.wait_for(updated, timeout) - start


#: The message that ends a proxied turn: the LatencyReport sent at response.done. An older
#: checkout measured with --proxy-tree has none: there, AgentAudioDone.
TURN_END = {"kind": b"LatencyReport"}


async def proxied_turn(ws: WatchedConnection, text: str, *, timeout: float = 30.0) -> float:
    """InjectUserMessage -> the turn's last message (see TURN_END), in seconds."""
    done = ws.expect(TURN_END["kind"])
    start = time.perf_counter()
    send_frame_now(ws, orjson.dumps({"type": "InjectUserMessage", "content": text}), text=True)
    return await asyncio.wait_for(done, timeout) - start


async def direct_turn(ws: WatchedConnection, text: str, *, timeout: float = 30.0) -> float:
    """What the proxy sends for that InjectUserMessage, sent straight to the mock ->
    response.done, in seconds."""
    item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
    done = ws.expect(b"response.done")
    start = time.perf_counter()
    send_frame_now(ws, orjson.dumps({"type": "conversation.item.create", "item": item}), text=True)
    send_frame_now(ws, b'{"type":"response.create"}', text=True)
    return await asyncio.wait_for(done, timeout) - start


async def close_within(connections: list[WatchedConnection], seconds: float) -> None:
    """Close every connection; what has not closed after `seconds` is dropped (a driver
    that hangs in a closing handshake would end the whole benchmark)."""
    closing = asyncio.gather(*(ws.close() for ws in connections), return_exceptions=True)
    try:
        await asyncio.wait_for(closing, seconds)
    except TimeoutError:
        for ws in connections:
            ws.transport.abort()
