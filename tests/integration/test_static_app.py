"""The test-app's files over HTTP from the proxy, beside its WebSocket endpoint.

Only the app's own regular files, GET and HEAD only, with security headers, no version
banner and no Host header reflected anywhere (PROTOCOL.md §11, static test-app).
"""

from __future__ import annotations

import functools
import http.client
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from harness.client import ComponentClient
from harness.pytest_plugin import ProxyEndpoint
from proxy.test_app import APP_DIR, http_response


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def _get(
    url: str, method: str = "GET", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    opener = urllib.request.build_opener(_NoRedirect)
    request = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with opener.open(request, timeout=5) as response:
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
    base, _ = serving_proxy
    status, headers, _ = _get(f"{base}/")
    assert status == 302
    assert headers["Location"] == "/?proxyEndpoint=%2Fopenai"  # a path: no Host in it
    status, headers, _ = _get(f"{base}/?token=abc", headers={"Host": "evil.example"})
    assert headers["Location"] == "/?token=abc&proxyEndpoint=%2Fopenai"
    assert "evil" not in str(headers)


def test_app_responses_carry_security_headers_and_no_version(
    serving_proxy: tuple[str, ProxyEndpoint],
) -> None:
    for path in ("/?proxyEndpoint=%2Fopenai", "/app.js", "/nope.js", "/"):
        _, headers, _ = _get(serving_proxy[0] + path)
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
        assert "default-src 'self'" in headers["Content-Security-Policy"]
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert "Server" not in headers, headers.get("Server")


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS", "PATCH"])
def test_only_get_and_head_are_answered(
    serving_proxy: tuple[str, ProxyEndpoint], method: str
) -> None:
    status, headers, _ = _get(serving_proxy[0] + "/app.js", method=method)
    assert status == 405 and headers["Allow"] == "GET, HEAD"


def test_head_has_the_headers_without_a_body(serving_proxy: tuple[str, ProxyEndpoint]) -> None:
    connection = http.client.HTTPConnection(urlsplit(serving_proxy[0]).netloc, timeout=5)
    connection.request("HEAD", "/app.js")
    response = connection.getresponse()
    assert response.status == 200 and int(response.headers["Content-Length"]) > 100
    assert response.read() == b""
    connection.close()


def test_a_symlink_out_of_the_app_folder_is_not_followed(
    serving_proxy: tuple[str, ProxyEndpoint], tmp_path: Path
) -> None:
    secret = tmp_path / "secret.js"
    secret.write_text("the operator's secret")
    link = APP_DIR / "leak.js"
    link.symlink_to(secret)
    try:
        status, _, body = _get(serving_proxy[0] + "/leak.js")
    finally:
        link.unlink()
    assert status == 404 and b"secret" not in body


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
    [
        "/__init__.py",
        "/../pyproject.toml",
        "/%2e%2e/pyproject.toml",
        "/nope.js",
        "/x/app.js",
        "/" + "a" * 300 + ".js",  # longer than a file name may be: 404, not a traceback
        "/app.js%00.html",
    ],
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
