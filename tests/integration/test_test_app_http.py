"""The test-app's files over HTTP from the proxy, beside its WebSocket endpoint."""

from __future__ import annotations

import functools
import urllib.error
import urllib.request
from collections.abc import Callable
from urllib.parse import urlsplit

import pytest

from harness.client import ComponentClient
from harness.pytest_plugin import ProxyEndpoint
from harness.test_app import http_response


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def _get(url: str) -> tuple[int, dict[str, str], bytes]:
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(url, timeout=5) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


@pytest.fixture
def serving_proxy(proxy_factory: Callable[..., ProxyEndpoint]) -> tuple[str, ProxyEndpoint]:
    endpoint = proxy_factory(http_handler=functools.partial(http_response, proxy_path="/openai"))
    return f"http://{urlsplit(endpoint.url).netloc}", endpoint


def test_bare_root_redirects_to_the_app_pointed_at_this_proxy(
    serving_proxy: tuple[str, ProxyEndpoint],
) -> None:
    base, endpoint = serving_proxy
    status, headers, _ = _get(f"{base}/")
    assert status == 302
    port = urlsplit(endpoint.url).port
    assert headers["Location"] == f"/?proxyEndpoint=ws%3A%2F%2F127.0.0.1%3A{port}%2Fopenai"


@pytest.mark.parametrize(
    ("path", "content_type", "marker"),
    [
        ("/?proxyEndpoint=ws://x/openai", "text/html", b'data-testid="voice-agent"'),
        ("/app.js", "javascript", b"import { VoiceAgent }"),
        ("/mic-worklet.js", "javascript", b"registerProcessor"),
        ("/style.css", "text/css", b"body"),
    ],
)
def test_app_files_are_served_with_their_types(
    serving_proxy: tuple[str, ProxyEndpoint], path: str, content_type: str, marker: bytes
) -> None:
    status, headers, body = _get(serving_proxy[0] + path)
    assert status == 200
    assert content_type in headers["Content-Type"]
    assert headers["Cache-Control"] == "no-store"
    assert marker in body


@pytest.mark.parametrize(
    "path",
    ["/__init__.py", "/../pyproject.toml", "/%2e%2e/pyproject.toml", "/nope.js", "/x/app.js"],
)
def test_nothing_but_the_app_files_is_served(
    serving_proxy: tuple[str, ProxyEndpoint], path: str
) -> None:
    status, _, _ = _get(serving_proxy[0] + path)
    assert status == 404


async def test_the_websocket_endpoint_still_works_beside_the_app(
    serving_proxy: tuple[str, ProxyEndpoint],
) -> None:
    async with await ComponentClient.connect(serving_proxy[1].url) as client:
        await client.start()


def test_without_a_handler_other_paths_are_404(proxy: ProxyEndpoint) -> None:
    status, _, _ = _get(f"http://{urlsplit(proxy.url).netloc}/")
    assert status == 404
