"""Server-side functions: the proxy calls a function's `endpoint` and returns its answer.

The client defines the endpoint, so it is an SSRF risk: only endpoints the operator
allowed are called (`endpoint_allowed`), matched on scheme, host and port (and a path
prefix when the entry has one); URLs with user info are refused. The call itself is
bounded: http(s) only, no redirects (an allowed host must not bounce the request inward),
one deadline for the whole exchange (a server that drips its answer cannot hold a
connection open), at most `MAX_RESPONSE_BYTES` of answer, and headers that would change
where or how the request goes (`Host`, framing) dropped. The arguments go as the JSON
body (or the query string for GET/DELETE), as Deepgram's agent does.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

import anyio
import httpx
import orjson

from .actions import CallFunction
from .validation import shown

__all__ = ["MAX_RESPONSE_BYTES", "call_function_endpoint", "endpoint_allowed"]

MAX_RESPONSE_BYTES = 1 << 20
_DEFAULT_PORTS = {"http": 80, "https": 443}
# Headers a function definition may not set: they would change where the request goes
# or how it is framed.
_DROPPED_HEADERS = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "upgrade", "te", "trailer"}
)


def endpoint_allowed(url: str, allowed: Iterable[str]) -> bool:
    """Is `url` one the operator allowed?

    An entry is `host` (http or https on the default port), `host:port`, or a URL
    prefix `scheme://host[:port][/path]`. Host names compare case-insensitively
    without a trailing dot.
    """
    target = _parse(url)
    if target is None:
        return False
    scheme, host, port, path = target
    for entry in allowed:
        rule = _parse(entry if "://" in entry else f"any://{entry}")
        if rule is None:
            continue
        rule_scheme, rule_host, rule_port, rule_path = rule
        if rule_host != host:
            continue
        if rule_scheme == "any":
            port_given = ":" in entry.rsplit("]", 1)[-1]
            if (port_given and rule_port == port) or (
                not port_given and port == _DEFAULT_PORTS[scheme]
            ):
                return True
        elif rule_scheme == scheme and rule_port == port and path.startswith(rule_path):
            return True
    return False


def _parse(url: str) -> tuple[str, str, int, str] | None:
    """(scheme, host, port, path) of an http(s) URL without user info, else None."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https", "any") or "@" in parts.netloc or not parts.hostname:
        return None
    host = parts.hostname.lower().rstrip(".")
    default = _DEFAULT_PORTS.get(scheme, 0)
    return scheme, host, port if port is not None else default, parts.path or "/"


async def call_function_endpoint(
    call: CallFunction, *, timeout: float
) -> tuple[str | None, str | None]:
    """(output, None) on success, (None, why) on failure; never raises for the peer's faults."""
    if _parse(call.url) is None:
        return None, f"endpoint {shown(call.url)} is not an http(s) URL without user info"
    headers = {k: v for k, v in call.headers.items() if k.lower() not in _DROPPED_HEADERS}
    headers.setdefault("Content-Type", "application/json")
    request: dict[str, object] = {"headers": headers}
    if call.method in ("GET", "DELETE"):
        request["params"] = _query(call.arguments)
    else:
        request["content"] = (call.arguments or "{}").encode()
    try:
        with anyio.fail_after(timeout):
            async with (
                httpx.AsyncClient(follow_redirects=False, trust_env=False) as client,
                client.stream(call.method, call.url, **request) as response,  # type: ignore[arg-type]
            ):
                body = await _capped(response)
                if response.status_code >= 300:
                    return None, f"HTTP {response.status_code} from the endpoint"
                return body.decode("utf-8", "replace"), None
    except TimeoutError:
        return None, f"no full answer within {timeout:g} s"
    except ValueError as exc:  # too large, or a URL httpx refuses
        return None, shown(str(exc))
    except httpx.HTTPError as exc:
        return None, f"endpoint unreachable: {type(exc).__name__}"


async def _capped(response: httpx.Response) -> bytes:
    body = bytearray()
    async for chunk in response.aiter_raw():
        body += chunk
        if len(body) > MAX_RESPONSE_BYTES:
            raise ValueError(f"answer larger than {MAX_RESPONSE_BYTES} bytes")
    return bytes(body)


def _query(arguments: str) -> dict[str, str]:
    try:
        values = orjson.loads(arguments or "{}")
    except orjson.JSONDecodeError:
        return {}
    return {str(k): str(v) for k, v in values.items()} if isinstance(values, dict) else {}
