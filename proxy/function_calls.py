"""Server-side functions: the proxy calls a function's `endpoint` and returns its answer.

Only hosts the operator allowed reach this module (the session checks); here the call
itself is bounded: http(s) only, no redirects (an allowed host must not bounce the
request inward), a timeout, and at most `MAX_RESPONSE_BYTES` of answer. The arguments
go as the JSON body (or the query string for GET), as Deepgram's agent does.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from urllib.parse import urlencode, urlsplit

import anyio
import orjson

from .actions import CallFunction

__all__ = ["MAX_RESPONSE_BYTES", "call_function_endpoint"]

MAX_RESPONSE_BYTES = 1 << 20


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None  # a 3xx is returned as an error, never followed


_OPENER = urllib.request.build_opener(_NoRedirects)


async def call_function_endpoint(
    call: CallFunction, *, timeout: float
) -> tuple[str | None, str | None]:
    """(output, None) on success, (None, why) on failure; never raises for the peer's faults."""
    if urlsplit(call.url).scheme not in ("http", "https"):
        return None, f"endpoint scheme of {call.url!r} is not http or https"
    try:
        with anyio.fail_after(timeout):
            return await anyio.to_thread.run_sync(
                _request, call, timeout, abandon_on_cancel=True
            ), None
    except TimeoutError:
        return None, f"no answer within {timeout:g} s"
    except urllib.error.HTTPError as exc:
        return None, f"HTTP {exc.code} from the endpoint"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return None, f"endpoint unreachable: {getattr(exc, 'reason', exc)}"


def _request(call: CallFunction, timeout: float) -> str:
    url, body = call.url, None
    headers = {"Content-Type": "application/json", **call.headers}
    if call.method in ("GET", "DELETE"):
        try:
            arguments = orjson.loads(call.arguments or "{}")
        except orjson.JSONDecodeError:
            arguments = {}
        if isinstance(arguments, dict) and arguments:
            separator = "&" if urlsplit(url).query else "?"
            url = url + separator + urlencode({k: str(v) for k, v in arguments.items()})
    else:
        body = (call.arguments or "{}").encode()
    request = urllib.request.Request(url, data=body, headers=headers, method=call.method)
    with _OPENER.open(request, timeout=timeout) as response:
        data: bytes = response.read(MAX_RESPONSE_BYTES + 1)
    if len(data) > MAX_RESPONSE_BYTES:
        raise ValueError(f"answer larger than {MAX_RESPONSE_BYTES} bytes")
    return data.decode("utf-8", "replace")
