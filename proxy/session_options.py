"""How a session is configured, and where it reports what operators measure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from .function_endpoints import NO_ENDPOINTS, EndpointPolicy
from .settings import SERVER_DEFAULTS as _DEFAULTS

__all__ = ["SessionObserver", "SessionOptions", "Unobserved"]


@dataclass(frozen=True, slots=True)
class SessionOptions:
    """The session's part of `proxy.settings.ServerSettings` (defaults, meaning and
    help are there), as one small object all sessions share. `ProxyConfig` fills every
    field of the same name."""

    api_key: str | None = None  # only to scrub it from texts
    max_frame_bytes: int = _DEFAULTS.max_frame_bytes
    max_buffered_bytes: int = _DEFAULTS.max_buffered_bytes
    audio_batch_ms: int = _DEFAULTS.audio_batch_ms
    audio_flush_delay: float = _DEFAULTS.audio_flush_delay
    audio_pause: float = _DEFAULTS.audio_pause
    ready_timeout: float = _DEFAULTS.ready_timeout
    response_timeout: float = _DEFAULTS.response_timeout
    client_idle_timeout: float = _DEFAULTS.client_idle_timeout
    keepalive_only_timeout: float = _DEFAULTS.keepalive_only_timeout
    max_session_seconds: float = _DEFAULTS.max_session_seconds
    flood_close_seconds: float = _DEFAULTS.flood_close_seconds
    session_renew_margin: float = _DEFAULTS.session_renew_margin
    session_renew_min_lifetime: float = _DEFAULTS.session_renew_min_lifetime
    session_renew_min_interval: float = _DEFAULTS.session_renew_min_interval
    turn_rate: float = _DEFAULTS.turn_rate
    turn_burst: int = _DEFAULTS.turn_burst
    message_rate: float = _DEFAULTS.message_rate
    log_content: bool = _DEFAULTS.log_content
    # Which server-side function calls the proxy makes (none by default); the server
    # gives its `proxy.function_policy.FunctionEndpointPolicy`.
    functions: EndpointPolicy = NO_ENDPOINTS


class SessionObserver(Protocol):
    """Where a session reports what operators measure (the server's metrics)."""

    def settings_applied(self, seconds: float) -> None: ...
    def turn_done(self, latency: float | None) -> None: ...
    def upstream_error(self, code: str) -> None: ...
    def renewal(self, outcome: str) -> None:
        """An upstream session was `renewed`, or its renewal `refused` (too short-lived,
        or renewed too recently)."""


class Unobserved:
    """Reports nowhere (unit tests, tools)."""

    def settings_applied(self, seconds: float) -> None:
        pass

    def turn_done(self, latency: float | None) -> None:
        pass

    def upstream_error(self, code: str) -> None:
        pass

    def renewal(self, outcome: str) -> None:
        pass
