"""HTTP requests and WebSocket upgrades below the WebSocket client, for the tests.

Health checks, metrics, the static test-app and the mock's admin API are plain HTTP;
access and limit tests need an upgrade's status, or an upgrade written by hand (a Host a
browser sends after DNS rebinding, a duplicate header, a client that then never reads).
Every such request in the suite goes through here.
"""

from __future__ import annotations

import asyncio
import ssl
import urllib.error
import urllib.request
from email.message import Message
from typing import NamedTuple

from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

__all__ = [
    "UPGRADE_KEY",
    "HttpAnswer",
    "http_get",
    "open_upgrade",
    "raw_upgrade_status",
    "upgrade_request",
    "upgrade_status",
]

#: The sample `Sec-WebSocket-Key` of RFC 6455: any 16 bytes in base64 will do.
UPGRADE_KEY = "dGhlIHNhbXBsZSBub25jZQ=="


class HttpAnswer(NamedTuple):
    """Status, headers (looked up in any case) and body of one HTTP answer."""

    status: int
    headers: Message
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None  # a redirect is an answer to look at, not to follow


def http_get(
    url: str,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    data: bytes | None = None,
    context: ssl.SSLContext | None = None,
) -> HttpAnswer:
    """One request (GET unless told), redirects not followed; an error status is an
    answer like any other. Blocking: from async code, call it in a thread."""
    handlers: list[urllib.request.BaseHandler] = [_NoRedirect()]
    if context is not None:
        handlers.append(urllib.request.HTTPSHandler(context=context))
    opener = urllib.request.build_opener(*handlers)
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with opener.open(request, timeout=5) as response:
            return HttpAnswer(response.status, response.headers, response.read())
    except urllib.error.HTTPError as error:
        return HttpAnswer(error.code, error.headers, error.read())


def upgrade_request(host: str = "127.0.0.1", *headers: str, path: str = "/openai") -> bytes:
    """A WebSocket upgrade request as bytes: `Host`, then `headers` ("Name: value") as
    given, then the upgrade's own headers."""
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}", *headers]
    lines += ["Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Version: 13"]
    lines += [f"Sec-WebSocket-Key: {UPGRADE_KEY}", "", ""]
    return "\r\n".join(lines).encode()


async def open_upgrade(
    port: int, *headers: str, host: str = "127.0.0.1"
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection to 127.0.0.1:`port` that has sent `upgrade_request(host, *headers)`;
    nothing is read yet."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(upgrade_request(host, *headers))
    return reader, writer


async def raw_upgrade_status(port: int, *headers: str, host: str = "127.0.0.1") -> int:
    """The status of a hand-written upgrade on a fresh connection (closed after)."""
    reader, writer = await open_upgrade(port, *headers, host=host)
    try:
        return int((await reader.readline()).split()[1])
    finally:
        writer.close()


async def upgrade_status(url: str, *, first_message: bool = False, **kwargs: object) -> int:
    """101 for an accepted upgrade (closed at once, or after its first message with
    `first_message`), else the refusal's HTTP status. `kwargs` go to websockets' connect."""
    try:
        async with connect(url, open_timeout=5, **kwargs) as ws:  # type: ignore[arg-type]
            if first_message:
                await ws.recv()
            return 101
    except InvalidStatus as refused:
        return refused.response.status_code
