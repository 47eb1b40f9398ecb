"""Opening the upstream leg: TCP (through an HTTP proxy when the environment names one),
TLS for wss://, then the WebSocket handshake by websockets' Sans-I/O `ClientProtocol`
(its documented way of bringing one's own I/O: `parse_uri`, `connect`, `send_request`,
`data_to_send`, `events_received`, `handshake_exc`).

Errors are websockets' own exception types, as its asyncio `connect` raises them:
`InvalidStatus` for a refused upgrade (its response says the status), another
`InvalidHandshake` for a broken one or a proxy that refuses the tunnel,
`InvalidURI`/`InvalidProxy` for a bad address, OSError for the network. The caller
bounds the whole opening in time.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import importlib.metadata
import logging
import ssl
import sys
import urllib.request
from urllib.parse import unquote, urlsplit

from websockets.client import ClientProtocol
from websockets.exceptions import InvalidHandshake, InvalidProxy
from websockets.protocol import Protocol, Side, State
from websockets.uri import WebSocketURI, parse_uri

from .legs import UpstreamLeg

__all__ = ["open_upstream", "proxy_from_environment"]

#: The User-Agent websockets' own client sends (its default, without the override).
_USER_AGENT = "Python/{}.{} websockets/{}".format(
    *sys.version_info[:2], importlib.metadata.version("websockets")
)
_MAX_PROXY_ANSWER = 16 * 1024  # bytes of a CONNECT answer's head, at most

_TLS: ssl.SSLContext | None = None  # one default context for all upstream legs


def _tls() -> ssl.SSLContext:
    global _TLS
    if _TLS is None:
        _TLS = ssl.create_default_context()
    return _TLS


@functools.lru_cache(maxsize=8)
def _target(url: str) -> WebSocketURI:
    """`url` parsed, once per process: every session opens the same URL (the parsed
    form is only read)."""
    return parse_uri(url)


def proxy_from_environment(url: str) -> str | None:
    """The proxy the environment names for `url` (`HTTPS_PROXY`, `NO_PROXY`, ...), the
    way websockets' own client picks it: `wss_proxy`/`ws_proxy` first, then SOCKS, then
    the HTTPS proxy (and for ws:// the HTTP one)."""
    target = parse_uri(url)
    if urllib.request.proxy_bypass(f"{target.host}:{target.port}"):
        return None
    proxies = urllib.request.getproxies()
    schemes = ["wss", "socks", "https"] if target.secure else ["ws", "socks", "https", "http"]
    for scheme in schemes:
        found = proxies.get(scheme)
        if found is not None:
            if scheme == "socks" and found.startswith("http://"):
                found = "socks5h://" + found[7:]
            return found
    return None


async def open_upstream(
    url: str,
    *,
    headers: dict[str, str],
    proxy: str | None,
    max_size: int,
    logger: logging.Logger,
) -> UpstreamLeg:
    """An open WebSocket connection to `url`, sending `headers` with the upgrade."""
    target = _target(url)
    loop = asyncio.get_running_loop()
    protocol = ClientProtocol(target, max_size=max_size, logger=logger)
    leg = UpstreamLeg(protocol, loop)
    tls = _tls() if target.secure else None
    try:
        if proxy is None:
            await loop.create_connection(
                lambda: leg,
                target.host,
                target.port,
                ssl=tls,
                server_hostname=target.host if tls is not None else None,
            )
        else:
            await _through_proxy(leg, target, proxy, tls)
        request = protocol.connect()
        request.headers["User-Agent"] = _USER_AGENT
        for name, value in headers.items():
            request.headers[name] = value
        opened = Protocol(Side.CLIENT, state=State.OPEN, max_size=max_size, logger=logger)
        await leg.handshake(request, opened)
    except BaseException:
        if getattr(leg, "transport", None) is not None:
            leg.transport.abort()
        raise
    return leg


async def _through_proxy(
    leg: UpstreamLeg, target: WebSocketURI, proxy_url: str, tls: ssl.SSLContext | None
) -> None:
    """A tunnel through an HTTP(S) proxy (CONNECT), then TLS to the target over it."""
    parts = urlsplit(proxy_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidProxy(proxy_url, "only http:// and https:// proxies are supported")
    secure_proxy = parts.scheme == "https"
    loop = asyncio.get_running_loop()
    tunnel = _Tunnel(loop)
    transport, _ = await loop.create_connection(
        lambda: tunnel,
        parts.hostname,
        parts.port or (443 if secure_proxy else 80),
        ssl=_tls() if secure_proxy else None,
        server_hostname=parts.hostname if secure_proxy else None,
    )
    try:
        host = f"[{target.host}]" if ":" in target.host else target.host
        lines = [f"CONNECT {host}:{target.port} HTTP/1.1", f"Host: {host}:{target.port}"]
        if parts.username is not None:
            credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            lines.append(
                f"Proxy-Authorization: Basic {base64.b64encode(credentials.encode()).decode()}"
            )
        transport.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        status = await tunnel.status
        if not 200 <= status < 300:
            raise InvalidHandshake(f"the proxy refused the tunnel (HTTP {status})")
        if tls is not None:
            tls_transport = await loop.start_tls(transport, leg, tls, server_hostname=target.host)
            assert tls_transport is not None
            leg.connection_made(tls_transport)
        else:
            transport.set_protocol(leg)
            leg.connection_made(transport)
    except BaseException:
        transport.abort()
        raise


class _Tunnel(asyncio.Protocol):
    """Reads the status of the proxy's answer to CONNECT (nothing follows it until the
    tunnel carries the TLS handshake that we start)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.status: asyncio.Future[int] = loop.create_future()
        self._head = bytearray()

    def data_received(self, data: bytes) -> None:
        if self.status.done():
            return
        self._head += data
        end = self._head.find(b"\r\n\r\n")
        if end < 0:
            if len(self._head) > _MAX_PROXY_ANSWER:
                self.status.set_exception(InvalidHandshake("the proxy's answer is too long"))
            return
        status_line = bytes(self._head[: self._head.find(b"\r\n")])
        version, _, rest = status_line.partition(b" ")
        code = rest[:3]
        if not version.startswith(b"HTTP/1.") or not code.isdigit():
            self.status.set_exception(InvalidHandshake("the proxy's answer is not HTTP"))
            return
        self.status.set_result(int(code))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.status.done():
            self.status.set_exception(exc or EOFError("the proxy closed the connection"))
