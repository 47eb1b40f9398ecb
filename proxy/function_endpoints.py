"""What the session core needs to know about function endpoints, with no HTTP client.

The core decides who answers a call (the client, or the proxy through an endpoint the
operator allows) by asking an `EndpointPolicy`; the policy the server uses
(`proxy.function_policy.FunctionEndpointPolicy`) parses and normalises URLs with the
HTTP client that will send them, so it belongs to the network shell and is handed to the
session in its options. The core sees only these shapes, and `NO_ENDPOINTS`, the policy
of a session given none: every endpoint is refused, so each call goes to the client.
"""

from __future__ import annotations

from typing import Protocol
from urllib.parse import urlsplit

from .validation import shown

__all__ = [
    "NO_ENDPOINTS",
    "EndpointForbidden",
    "EndpointPolicy",
    "EndpointRefused",
    "EndpointRequest",
    "NoEndpoints",
]


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
