"""Deepgram's own Python SDK as the client: a real Voice Agent client nobody here wrote.

`sdk_agent(base_url, key)` opens the SDK's agent v1 connection to a proxy (the SDK
builds `<agent url>/v1/agent/converse` and sends `Authorization: Token <key>`), and
reads everything the proxy sends in the background, so tests can wait for it.
Every JSON frame must come out of the SDK as one of its typed models: a frame the SDK
cannot type (a dict) is a protocol fault, except the three messages the dg_react_agent
component needs that v1 lacks.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from deepgram import AsyncDeepgramClient
from deepgram.agent.v1.socket_client import AsyncV1SocketClient
from deepgram.environment import DeepgramClientEnvironment
from pydantic import BaseModel

NOT_IN_V1 = {"UserStoppedSpeaking", "UtteranceEnd", "Transcript"}


class SdkAgent:
    """The SDK's socket client, with what it received so far."""

    def __init__(self, socket: AsyncV1SocketClient) -> None:
        self.socket = socket
        self.messages: list[Any] = []  # SDK models (and dicts for NOT_IN_V1)
        self.audio = bytearray()
        self.untyped: list[dict[str, Any]] = []
        self._changed = asyncio.Condition()
        self._reader = asyncio.create_task(self._read())

    def types(self) -> list[str]:
        return [_type_of(m) for m in self.messages]

    def received(self, kind: str) -> list[Any]:
        return [m for m in self.messages if _type_of(m) == kind]

    async def wait_for(
        self,
        kind: str,
        *,
        count: int = 1,
        timeout: float = 10.0,
        where: Callable[[Any], bool] | None = None,
    ) -> Any:
        def found() -> list[Any]:
            return [m for m in self.received(kind) if where is None or where(m)]

        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout), self._changed:
                await self._changed.wait_for(lambda: len(found()) >= count or self._reader.done())
        matches = found()
        if len(matches) < count:
            errors = [f"{m.code}: {m.description}" for m in self.received("Error")]
            raise AssertionError(
                f"expected {count} x {kind}; received {self.types()}; errors: {errors}"
            )
        return matches[count - 1]

    async def _read(self) -> None:
        async for message in self.socket:
            async with self._changed:
                if isinstance(message, bytes):
                    self.audio += message
                else:
                    if isinstance(message, dict) and message.get("type") not in NOT_IN_V1:
                        self.untyped.append(message)
                    self.messages.append(message)
                self._changed.notify_all()


def _type_of(message: Any) -> str:
    if isinstance(message, BaseModel):
        return str(getattr(message, "type", type(message).__name__))
    return str(message.get("type"))


@contextlib.asynccontextmanager
async def sdk_agent(proxy_url: str, key: str = "sdk-key") -> AsyncIterator[SdkAgent]:
    """The SDK's agent connection to the proxy at `proxy_url` (any of its ws:// URLs)."""
    agent_base = proxy_url.split("/openai")[0]
    environment = DeepgramClientEnvironment(
        base="http://unused.invalid",
        production="ws://unused.invalid",
        agent=agent_base,
        agent_rest="http://unused.invalid",
    )
    client = AsyncDeepgramClient(api_key=key, environment=environment)
    async with client.agent.v1.connect() as socket:
        agent = SdkAgent(socket)
        try:
            yield agent
        finally:
            agent._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await agent._reader
        assert not agent.untyped, f"frames the SDK could not type: {agent.untyped}"
