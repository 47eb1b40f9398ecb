"""Upstream through the HTTP proxy the environment names (`ws_proxy`, `HTTPS_PROXY`, ...):
a CONNECT tunnel, then the WebSocket handshake through it (proxy.upstream)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest
from websockets.exceptions import InvalidProxy

from harness.client import ComponentClient
from harness.mock_openai import MockRealtime
from harness.pytest_plugin import ProxyEndpoint
from proxy.upstream import open_upstream

ProxyFactory = Callable[..., ProxyEndpoint]


@asynccontextmanager
async def connect_proxy(refuse: bool = False) -> AsyncIterator[tuple[str, list[bytes]]]:
    """A CONNECT proxy on loopback: its URL, and the request heads it was sent."""
    heads: list[bytes] = []

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        heads.append(head)
        if refuse:
            writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            writer.close()
            return
        host, _, port = head.split(b" ")[1].decode().rpartition(":")
        target_reader, target_writer = await asyncio.open_connection(host, int(port))
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await asyncio.gather(pipe(reader, target_writer), pipe(target_reader, writer))

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", heads
    finally:
        server.close()


def proxied_endpoint(
    proxy_factory: ProxyFactory, proxy_url: str, monkeypatch: pytest.MonkeyPatch
) -> ProxyEndpoint:
    """A proxy started while the environment names `proxy_url` for ws:// (read once, at
    the first use: the test's own client then connects without it)."""
    with monkeypatch.context() as env:
        env.setenv("ws_proxy", proxy_url)
        env.delenv("no_proxy", raising=False)
        env.delenv("NO_PROXY", raising=False)
        endpoint = proxy_factory()
        assert endpoint.server is not None
        assert endpoint.server.config.upstream_proxy == proxy_url
    return endpoint


async def test_upstream_goes_through_the_proxy_the_environment_names(
    mock_openai: MockRealtime, proxy_factory: ProxyFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with connect_proxy() as (proxy_url, heads):
        endpoint = proxied_endpoint(proxy_factory, proxy_url, monkeypatch)
        async with await ComponentClient.connect(endpoint.url) as client:
            await client.start()
            await client.inject("through the tunnel")
            assert await client.wait_for_reply() == "You said: through the tunnel"
        mock_host_port = mock_openai.url.split("/")[2]
        assert heads and heads[0].startswith(f"CONNECT {mock_host_port} HTTP/1.1\r\n".encode())


async def test_a_proxy_that_refuses_the_tunnel_is_an_unavailable_upstream(
    proxy_factory: ProxyFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with connect_proxy(refuse=True) as (proxy_url, heads):
        endpoint = proxied_endpoint(proxy_factory, proxy_url, monkeypatch)
        async with await ComponentClient.connect(endpoint.url) as client:
            await client.send_settings()
            error = await client.wait_for("Error")
            assert error["code"] == "upstream_unavailable"
            assert "HTTP 403" in error["description"]
        assert len(heads) == 1


async def test_a_socks_proxy_is_refused_with_its_reason() -> None:
    with pytest.raises(InvalidProxy, match=r"only http:// and https:// proxies"):
        await open_upstream(
            "ws://127.0.0.1:9/",
            headers={},
            proxy="socks5h://127.0.0.1:9",
            max_size=1024,
            logger=logging.getLogger("test"),
        )
