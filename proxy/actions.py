"""What the session core asks its server to do: the actions `ProxySession` returns.

The server carries them out in order: frames to send (text or binary, to the client or
upstream), closes, and server-side function calls to make.
"""

from __future__ import annotations

from dataclasses import dataclass

from .function_endpoints import EndpointRequest

__all__ = [
    "Action",
    "CallEndpoint",
    "CloseClient",
    "CloseNextUpstream",
    "CloseUpstream",
    "OpenNextUpstream",
    "SendNextUpstream",
    "SendToClient",
    "SendUpstream",
    "SwitchUpstream",
]


@dataclass(frozen=True, slots=True)
class SendToClient:
    payload: bytes
    text: bool  # text frame (JSON) or binary frame (agent audio)


@dataclass(frozen=True, slots=True)
class SendUpstream:
    payload: bytes  # always a JSON text frame


@dataclass(frozen=True, slots=True)
class CloseClient:
    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class CloseUpstream:
    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class CallEndpoint:
    """Send a server-side function's checked request; answer with `function_result`."""

    call_id: str
    name: str
    request: EndpointRequest  # a function_policy.FunctionRequest, opaque to the core


# Renewing the upstream session before the service's cap (docs/protocol-mapping.md,
# "Sessions past the service's 60-minute cap").


@dataclass(frozen=True, slots=True)
class OpenNextUpstream:
    """Open a second upstream connection, the next session (it reports as `next_upstream_*`)."""


@dataclass(frozen=True, slots=True)
class SendNextUpstream:
    payload: bytes  # a JSON text frame for the next session


@dataclass(frozen=True, slots=True)
class SwitchUpstream:
    """The next session becomes the current one: `SendUpstream` goes to the new one from
    here on. The old one is closed (1000) at once, or, when `hear_old_for` is above zero,
    after that many seconds, in which its frames go to `retired_upstream_message` (a
    spoken turn's transcript that came too late for the switch)."""

    hear_old_for: float = 0.0


@dataclass(frozen=True, slots=True)
class CloseNextUpstream:
    """Give up the next session (or stop opening it)."""

    code: int
    reason: str


Action = (
    SendToClient
    | SendUpstream
    | CloseClient
    | CloseUpstream
    | CallEndpoint
    | OpenNextUpstream
    | SendNextUpstream
    | SwitchUpstream
    | CloseNextUpstream
)
