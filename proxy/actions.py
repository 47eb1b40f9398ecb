"""What the session core asks its server to do: the actions `ProxySession` returns.

The server carries them out in order: frames to send (text or binary, to the client or
upstream), closes, and server-side function calls to make.
"""

from __future__ import annotations

from dataclasses import dataclass

from .function_policy import FunctionRequest

__all__ = ["Action", "CallFunction", "CloseClient", "CloseUpstream", "SendToClient", "SendUpstream"]


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
class CallFunction:
    """Send a server-side function's checked request; answer with `function_result`."""

    call_id: str
    name: str
    request: FunctionRequest


Action = SendToClient | SendUpstream | CloseClient | CloseUpstream | CallFunction
