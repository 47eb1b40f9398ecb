"""The browser test-app: static files that behave towards a proxy as the component does.

`http_response` serves them from any websockets server's `process_request`: the proxy
serves them at `/` (`app_handler`), so they live with the proxy; the harness's
`voice_app_server` fixture runs a server that serves nothing else. It serves only the
app's own regular files (GET and HEAD), with headers that keep other sites from framing
or sniffing them, and never echoes the request's Host into a response.
"""

from __future__ import annotations

import functools
import mimetypes
from collections.abc import Callable
from http import HTTPStatus
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

__all__ = ["APP_DIR", "SECURITY_HEADERS", "app_handler", "http_response"]

APP_DIR = Path(__file__).parent.resolve()
_SERVED_SUFFIXES = {".html", ".js", ".css"}
SECURITY_HEADERS = (
    (
        "Content-Security-Policy",
        "default-src 'self'; connect-src 'self' ws: wss:; media-src 'self' blob:; "
        "img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-store"),  # edits to the app show on reload
)


def http_response(
    connection: ServerConnection, request: Request, proxy_path: str | None = None
) -> Response:
    """The app file `request` asks for, or 404 (405 for methods other than GET/HEAD).

    With `proxy_path`, a bare `/` redirects to `/?proxyEndpoint=<proxy_path>` (a path:
    the page resolves it against its own address), keeping the request's other query
    parameters, so the page talks to the server that served it.
    """
    if request.method not in ("GET", "HEAD"):
        return _response(
            request,
            HTTPStatus.METHOD_NOT_ALLOWED,
            b"GET or HEAD only\n",
            "text/plain",
            Allow="GET, HEAD",
        )
    url = urlsplit(request.path)
    query = parse_qsl(url.query, keep_blank_values=True)
    if proxy_path and url.path == "/" and not any(key == "proxyEndpoint" for key, _ in query):
        location = "/?" + urlencode([*query, ("proxyEndpoint", proxy_path)])
        return _response(request, HTTPStatus.FOUND, b"", "text/plain", Location=location)
    file = _app_file(url.path)
    if file is None:
        return _response(request, HTTPStatus.NOT_FOUND, b"not found\n", "text/plain")
    content_type = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
    return _response(request, HTTPStatus.OK, file.read_bytes(), content_type)


def app_handler(proxy_path: str) -> Callable[[ServerConnection, Request], Response]:
    """`http_response` for a proxy listening on `proxy_path`."""
    return functools.partial(http_response, proxy_path=proxy_path)


def _app_file(path: str) -> Path | None:
    """A regular file of the app itself: no subfolders, no symlinks, no other suffixes."""
    name = path.lstrip("/") or "index.html"
    if (
        len(name) > 64
        or "/" in name
        or "\\" in name
        or name.startswith(".")
        or Path(name).suffix not in _SERVED_SUFFIXES
    ):
        return None
    file = APP_DIR / name
    try:
        if file.is_symlink() or not file.is_file() or file.resolve().parent != APP_DIR:
            return None
    except (OSError, ValueError):  # a name the file system refuses is not an app file
        return None
    return file


def _response(
    request: Request, status: HTTPStatus, body: bytes, content_type: str, **extra: str
) -> Response:
    headers = Headers(
        [
            ("Content-Type", f"{content_type}; charset=utf-8"),
            ("Content-Length", str(len(body))),
            *SECURITY_HEADERS,
            *extra.items(),
        ]
    )
    # HEAD: the same headers, no body.
    return Response(status.value, status.phrase, headers, b"" if request.method == "HEAD" else body)
