"""The browser test-app: static files that behave towards a proxy as the component does.

`http_response` serves them from any websockets server's `process_request`: the proxy
uses it for `python -m proxy` at `/`, and the plugin's `voice_app_server` fixture runs a
server that serves nothing else.
"""

from __future__ import annotations

import mimetypes
from http import HTTPStatus
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

__all__ = ["APP_DIR", "http_response"]

APP_DIR = Path(__file__).parent
_SERVED_SUFFIXES = {".html", ".js", ".css"}


def http_response(
    connection: ServerConnection, request: Request, proxy_path: str | None = None
) -> Response:
    """The app file `request` asks for, or 404.

    With `proxy_path`, a bare `/` redirects to `/?proxyEndpoint=ws://<this host><proxy_path>`
    so the page talks to the server that served it.
    """
    url = urlsplit(request.path)
    host = request.headers.get("Host")
    if proxy_path and url.path == "/" and "proxyEndpoint" not in parse_qs(url.query) and host:
        query = urlencode({"proxyEndpoint": f"ws://{host}{proxy_path}"})
        return _response(HTTPStatus.FOUND, b"", "text/plain", Location=f"/?{query}")
    name = url.path.lstrip("/") or "index.html"
    file = APP_DIR / name
    if "/" in name or file.suffix not in _SERVED_SUFFIXES or not file.is_file():
        return connection.respond(HTTPStatus.NOT_FOUND, f"no file at {url.path}\n")
    content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    return _response(HTTPStatus.OK, file.read_bytes(), f"{content_type}; charset=utf-8")


def _response(status: HTTPStatus, body: bytes, content_type: str, **extra: str) -> Response:
    headers = Headers(
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),  # edits to the app show on reload
            *extra.items(),
        ]
    )
    return Response(status.value, status.phrase, headers, body)
