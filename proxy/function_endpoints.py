"""What the session core needs to know about function endpoints, with no HTTP client.

The core decides who answers a call (the client, or the proxy through an endpoint the
operator allows) by asking an `EndpointPolicy`; the policy the server uses
(`proxy.function_policy.FunctionEndpointPolicy`) parses and normalises URLs with the
HTTP client that will send them, so it belongs to the network shell and is handed to the
session in its options. The core sees only these shapes, and `NO_ENDPOINTS`, the policy
of a session given none: every endpoint is refused, so each call goes to the client.
The operator's choices that need no URL parsing (methods, headers, the answer cap) are
here too, so the settings can parse them without the HTTP client.
"""

from __future__ import annotations

import re
from typing import Protocol
from urllib.parse import urlsplit

from .validation import shown

__all__ = [
    "DEFAULT_MAX_ANSWER_BYTES",
    "DEFAULT_METHODS",
    "HTTP_METHODS",
    "NO_ENDPOINTS",
    "EndpointForbidden",
    "EndpointPolicy",
    "EndpointRefused",
    "EndpointRequest",
    "NoEndpoints",
    "forwardable_header",
    "http_method",
]

#: What a function definition may name as its method; the operator allows a subset.
HTTP_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
#: POST only by default: the arguments (user content) travel in the body, never in a URL
#: that access logs along the way keep, and no verb that deletes or replaces is allowed.
DEFAULT_METHODS = frozenset({"POST"})
#: The answer as it is sent, JSON-escaped (a control byte becomes six): a model's context
#: (32k tokens for gpt-realtime, says OpenAI's cookbook notebook "Context summarization
#: with the Realtime API") holds about 128 KB of text, so 64 KiB is already a lot.
DEFAULT_MAX_ANSWER_BYTES = 64 * 1024

# Headers that say where a request goes or how it is framed: set by the HTTP client
# only; an operator cannot allow them (request smuggling, misrouting).
_NEVER_FORWARDED = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "proxy-connection",
        "upgrade",
        "te",
        "trailer",
        "expect",
    }
)
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an HTTP header name (RFC 9110)


def http_method(name: str) -> str:
    """An allowed method's name, upper case; ValueError if a definition could not use it."""
    method = name.strip().upper()
    if method not in HTTP_METHODS:
        raise ValueError(f"{name!r} is not one of {', '.join(sorted(HTTP_METHODS))}")
    return method


def forwardable_header(name: str) -> str:
    """An allowed header's name, lower case; ValueError for one the proxy must set."""
    header = name.strip().lower()
    if not _TOKEN.fullmatch(header):
        raise ValueError(f"{name!r} is not a header name")
    if header in _NEVER_FORWARDED:
        raise ValueError(f"{name!r} says where or how a request goes; the proxy sets it")
    return header


class EndpointForbidden(ValueError):
    """The endpoint is a fine URL, but not one the operator allowed."""


class EndpointRefused(ValueError):
    """The endpoint (or the request it makes) is not one the proxy will send at all."""


class EndpointRequest(Protocol):
    """A checked request, opaque to the core (the shell sends it)."""

    @property
    def dropped_headers(self) -> tuple[str, ...]:
        """Headers the definition named that the operator does not allow (not sent)."""
        ...


class EndpointPolicy(Protocol):
    """Turns a function definition's endpoint into a request, or refuses it."""

    def prepare(
        self, url: str, method: str | None, headers: dict[str, str] | None, arguments: str
    ) -> EndpointRequest:
        """The request to send; EndpointForbidden when the URL is not allowed (the call
        may go to the client), EndpointRefused when nothing may be sent."""
        ...

    def answer_refused(self, output: str) -> str | None:
        """Why an endpoint's answer may not be sent (None: it may)."""
        ...


class NoEndpoints:
    """No endpoint is allowed: every function call goes to the client."""

    def prepare(
        self, url: str, method: str | None, headers: dict[str, str] | None, arguments: str
    ) -> EndpointRequest:
        try:
            host = urlsplit(url).hostname or ""
        except ValueError:
            host = ""
        raise EndpointForbidden(f"endpoint {shown(host)} is not allowed")

    def answer_refused(self, output: str) -> str | None:
        return None  # never asked: nothing is sent


NO_ENDPOINTS: EndpointPolicy = NoEndpoints()
