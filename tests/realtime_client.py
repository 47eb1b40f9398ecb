"""A plain Realtime client for tests of the mock: JSON in and out, every server event
checked against the schema, and a session that has received `session.created`."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect

from harness.mock_openai import MockRealtime
from harness.mock_openai.admin import serve_admin_api
from harness.schema import validate_server_event

API_KEY = "sk-test-mock-key"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
AUDIO_REPLY = [
    "response.created",
    "response.output_item.added",
    "conversation.item.added",
    "response.content_part.added",
]
AUDIO_REPLY_END = [
    "response.output_audio.done",
    "response.output_audio_transcript.done",
    "response.content_part.done",
    "response.output_item.done",
    "conversation.item.done",
    "response.done",
]


class Client:
    """A test client: JSON in and out, every server event checked against the schema."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    async def send(self, event: dict[str, Any]) -> None:
        await self.ws.send(orjson.dumps(event).decode())

    async def recv(self, timeout: float = 3.0) -> dict[str, Any]:
        message = await asyncio.wait_for(self.ws.recv(), timeout)
        event: dict[str, Any] = orjson.loads(message)
        validate_server_event(event)
        return event

    async def recv_until(self, last: str, timeout: float = 3.0) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        while not events or events[-1]["type"] != last:
            events.append(await self.recv(timeout))
        return events

    async def say_text(self, text: str) -> None:
        await self.send(
            {
                "type": "conversation.item.create",
                "item": {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": text}],
                },
            }
        )
        added = await self.recv_until("conversation.item.done")
        assert [e["type"] for e in added] == ["conversation.item.added", "conversation.item.done"]
        await self.send({"type": "response.create"})

    async def answer_function(self, call_id: str, output: str) -> list[dict[str, Any]]:
        """Send a function's output, ask for a response; the events up to response.done."""
        await self.send(
            {
                "type": "conversation.item.create",
                "item": {"type": "function_call_output", "call_id": call_id, "output": output},
            }
        )
        await self.recv_until("conversation.item.done")
        await self.send({"type": "response.create"})
        return await self.recv_until("response.done")

    async def append_audio(self, pcm: bytes, chunk_ms: int = 100) -> None:
        size = chunk_ms * 48
        for start in range(0, len(pcm), size):
            audio = base64.b64encode(pcm[start : start + size]).decode()
            await self.send({"type": "input_audio_buffer.append", "audio": audio})


def types(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


@asynccontextmanager
async def session(mock: MockRealtime, url: str | None = None) -> AsyncIterator[Client]:
    """A connected client that has received session.created."""
    async with connect(url or mock.url, additional_headers=AUTH) as ws:
        client = Client(ws)
        created = await client.recv()
        assert created["type"] == "session.created"
        yield client


@asynccontextmanager
async def running_mock(*, admin: bool = False, **options: Any) -> AsyncIterator[MockRealtime]:
    """A `MockRealtime` started on this loop (key `API_KEY`), stopped after; with `admin`,
    answering the admin API."""
    mock = MockRealtime(api_key=API_KEY, **options)
    if admin:
        serve_admin_api(mock)
    await mock.start()
    try:
        yield mock
    finally:
        await mock.stop()
