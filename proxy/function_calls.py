"""Server-side functions, the network part: send a checked `FunctionRequest` and read
its answer, bounded.

What may be sent is decided before this (`proxy.function_policy`); this module sends
exactly that request. One `httpx.AsyncClient` per server, made at the first call and
closed when the server stops: a client per call loaded the CA bundle each time (about
20 ms of event-loop CPU). The client keeps no cookies (one session's endpoint cannot
set a cookie another session's call would carry), follows no redirects (an allowed host
must not bounce the request inward), reads no proxy settings from the environment, and
asks for an uncompressed answer (a compressed one could expand past any cap in one
chunk). One deadline covers the whole exchange, so a server that drips its answer cannot
hold a connection, and at most `max_answer_bytes` are read.
"""

from __future__ import annotations

import http.cookiejar

import anyio
import httpx

from .bounds import KEEPALIVE_FUNCTION_CONNECTIONS as KEEPALIVE_CONNECTIONS
from .bounds import MAX_FUNCTION_CONNECTIONS as MAX_CONNECTIONS
from .function_policy import FunctionRequest

__all__ = ["KEEPALIVE_CONNECTIONS", "MAX_CONNECTIONS", "FunctionCaller"]


class FunctionCaller:
    """The HTTP client of one server's function calls (see the module docstring)."""

    def __init__(self, *, timeout: float, max_answer_bytes: int) -> None:
        self.timeout = timeout
        self.max_answer_bytes = max_answer_bytes
        self._client: httpx.AsyncClient | None = None

    def _shared(self) -> httpx.AsyncClient:
        if self._client is None:
            no_cookies = http.cookiejar.CookieJar(
                http.cookiejar.DefaultCookiePolicy(allowed_domains=[])
            )
            self._client = httpx.AsyncClient(
                follow_redirects=False,
                trust_env=False,
                cookies=no_cookies,  # kept as is (a Cookies object would be copied)
                headers={"Accept-Encoding": "identity"},
                timeout=self.timeout,
                limits=httpx.Limits(
                    max_connections=MAX_CONNECTIONS,
                    max_keepalive_connections=KEEPALIVE_CONNECTIONS,
                ),
            )
        return self._client

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def call(self, request: FunctionRequest) -> tuple[str | None, str | None]:
        """(answer, None) or (None, why); never raises for a peer's fault."""
        client = self._shared()
        try:
            with anyio.fail_after(self.timeout):
                built = client.build_request(
                    request.method,
                    request.url,
                    headers=list(request.headers),
                    content=request.content,
                )
                response = await client.send(built, stream=True)
                try:
                    if response.status_code >= 300:
                        return None, f"HTTP {response.status_code} from the endpoint"
                    encoding = response.headers.get("Content-Encoding", "identity").lower()
                    if encoding != "identity":
                        return None, "the endpoint sent a compressed answer"
                    body = await self._capped(response)
                finally:
                    await response.aclose()
        except TimeoutError:
            return None, f"no full answer within {self.timeout:g} s"
        except _TooLarge:
            return None, f"answer larger than {self.max_answer_bytes} bytes"
        except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError, OSError, ValueError) as exc:
            return None, f"endpoint unreachable: {type(exc).__name__}"
        return body.decode("utf-8", "replace"), None

    async def _capped(self, response: httpx.Response) -> bytes:
        body = bytearray()
        async for chunk in response.aiter_raw():
            body += chunk
            if len(body) > self.max_answer_bytes:  # escaped, it is only larger
                raise _TooLarge
        return bytes(body)


class _TooLarge(Exception):
    pass
