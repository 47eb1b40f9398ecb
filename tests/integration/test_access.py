"""Who may open a session (docs/security.md): the client token and the browser origin.

Refusals happen before the upgrade, as HTTP statuses, so a refused client costs the
operator nothing upstream.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from websockets.asyncio.client import connect

from harness.client import ComponentClient
from harness.mock_openai import MockRealtime
from harness.pytest_plugin import ProxyEndpoint
from tests.http_raw import raw_upgrade_status, upgrade_status

ProxyFactory = Callable[..., ProxyEndpoint]
TOKEN = "client-token-7f3a9c"


async def accepted(url: str, **kwargs: object) -> str | None:
    """Open a session and see Welcome; returns the negotiated subprotocol."""
    async with connect(url, open_timeout=5, **kwargs) as ws:  # type: ignore[arg-type]
        welcome = await ws.recv()
        assert '"Welcome"' in str(welcome)
        return ws.subprotocol


# ------------------------------------------------------------------ client token


@pytest.mark.parametrize(
    "how",
    [
        "query",
        "authorization-token",
        "authorization-bearer",
        "subprotocol-token",
        "subprotocol-bearer",
    ],
)
async def test_the_token_is_accepted_in_every_form(
    mock_openai: MockRealtime, proxy_factory: ProxyFactory, how: str
) -> None:
    url = proxy_factory(client_token=TOKEN).url
    forms: dict[str, dict[str, object]] = {
        "query": {},
        "authorization-token": {"additional_headers": {"Authorization": f"Token {TOKEN}"}},
        "authorization-bearer": {"additional_headers": {"Authorization": f"Bearer {TOKEN}"}},
        "subprotocol-token": {"subprotocols": ["token", TOKEN]},
        "subprotocol-bearer": {"subprotocols": ["bearer", TOKEN]},
    }
    target = f"{url}?token={TOKEN}" if how == "query" else url
    subprotocol = await accepted(target, **forms[how])
    if how.startswith("subprotocol"):
        assert subprotocol == how.split("-")[1]  # Deepgram's convention: the server echoes it


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"additional_headers": {"Authorization": "Token wrong"}},
        {"additional_headers": {"Authorization": f"Basic {TOKEN}"}},
        {"subprotocols": ["token", "wrong"]},
        {"subprotocols": [TOKEN]},  # the token alone is not the convention
    ],
)
async def test_a_wrong_or_missing_token_is_refused_with_401_before_upstream(
    mock_openai: MockRealtime, proxy_factory: ProxyFactory, kwargs: dict[str, object]
) -> None:
    url = proxy_factory(client_token=TOKEN).url
    assert await upgrade_status(url, **kwargs) == 401
    assert await upgrade_status(f"{url}?token={TOKEN[:-1]}") == 401
    assert not mock_openai.connections  # nothing was spent upstream


async def test_the_deepgram_path_is_served_with_the_token_as_its_sdk_sends_it(
    mock_openai: MockRealtime, proxy_factory: ProxyFactory
) -> None:
    url = proxy_factory(client_token=TOKEN).url.replace("/openai", "/v1/agent/converse")
    await accepted(url, additional_headers={"Authorization": f"Token {TOKEN}"})
    assert await upgrade_status(url) == 401


# ------------------------------------------------------------------ origin


@pytest.mark.parametrize(
    "origin",
    ["http://localhost:3000", "https://localhost", "http://127.0.0.1:5173", "http://[::1]:8080"],
)
async def test_loopback_proxy_accepts_local_pages_by_default(
    mock_openai: MockRealtime, proxy: ProxyEndpoint, origin: str
) -> None:
    await accepted(proxy.url, origin=origin)


@pytest.mark.parametrize(
    "origin", ["https://evil.example", "http://localhost.evil.example", "null", "file://"]
)
async def test_other_origins_are_refused_with_403(
    mock_openai: MockRealtime, proxy: ProxyEndpoint, origin: str
) -> None:
    assert await upgrade_status(proxy.url, origin=origin) == 403
    assert not mock_openai.connections


async def test_clients_without_an_origin_are_not_browsers_and_not_checked(
    mock_openai: MockRealtime, proxy_factory: ProxyFactory
) -> None:
    public = proxy_factory(host="0.0.0.0")
    await accepted(public.url)


async def test_a_public_proxy_allows_only_the_configured_origins(
    mock_openai: MockRealtime, proxy_factory: ProxyFactory
) -> None:
    public = proxy_factory(host="0.0.0.0", allowed_origins=("https://app.example.com",))
    await accepted(public.url, origin="https://app.example.com")
    assert await upgrade_status(public.url, origin="http://localhost:3000") == 403
    assert await upgrade_status(public.url, origin="https://app.example.com.evil") == 403
    nothing_configured = proxy_factory(host="0.0.0.0")
    assert await upgrade_status(nothing_configured.url, origin="http://localhost:3000") == 403


async def test_pages_the_proxy_serves_may_connect_back_to_it(
    mock_openai: MockRealtime, proxy_factory: ProxyFactory
) -> None:
    public = proxy_factory(host="0.0.0.0", same_origin_pages=True)
    netloc = public.url.split("/")[2]
    await accepted(public.url, origin=f"http://{netloc}")
    assert await upgrade_status(public.url, origin="https://evil.example") == 403


async def test_a_rebound_dns_name_does_not_make_a_foreign_page_same_origin(
    mock_openai: MockRealtime, proxy_factory: ProxyFactory
) -> None:
    # DNS rebinding: evil.example now resolves to 127.0.0.1, so the browser sends the
    # page's own origin and Host: evil.example. Same host and port, but not this proxy.
    served = proxy_factory(same_origin_pages=True)
    port = int(served.url.split(":")[2].split("/")[0])
    # Sent by hand, as the browser would: its own Host and Origin, to 127.0.0.1 (a
    # websockets client always sends the real Host).
    rebound = f"Origin: http://evil.example:{port}"
    assert await raw_upgrade_status(port, rebound, host=f"evil.example:{port}") == 403
    assert not mock_openai.connections
    # The page this proxy really served, under its real name, still connects back.
    await accepted(served.url, origin=f"http://127.0.0.1:{port}")


async def test_a_refused_client_does_not_hold_a_place(
    mock_openai: MockRealtime, proxy_factory: ProxyFactory
) -> None:
    endpoint = proxy_factory(client_token=TOKEN, max_sessions=1)
    for _ in range(5):
        assert await upgrade_status(endpoint.url, origin="https://evil.example") == 401
    async with await ComponentClient.connect(endpoint.url, token=TOKEN) as client:
        await client.start()
