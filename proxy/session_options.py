"""How a session is configured, and where it reports what operators measure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from .function_policy import NO_FUNCTIONS, FunctionEndpointPolicy
from .limits import MESSAGE_RATE
from .renewal import DEFAULT_RENEW_MARGIN, DEFAULT_RENEW_MIN_INTERVAL, DEFAULT_RENEW_MIN_LIFETIME

__all__ = ["SessionObserver", "SessionOptions", "Unobserved"]


@dataclass(frozen=True, slots=True)
class SessionOptions:
    api_key: str | None = None  # only to scrub it from texts
    max_frame_bytes: int = 1 << 20
    # What waits before the session is ready, in bytes (PROTOCOL.md section 11).
    max_buffered_bytes: int = 8 << 20
    # Input audio goes upstream in batches: at this many ms buffered, or after
    # `audio_flush_delay` seconds; `audio_pause` seconds without audio flush the filter.
    audio_batch_ms: int = 100
    audio_flush_delay: float = 0.05
    audio_pause: float = 0.3
    ready_timeout: float = 15.0  # session.created / session.updated
    response_timeout: float = 30.0  # an active response that says nothing
    client_idle_timeout: float = 60.0
    keepalive_only_timeout: float = 600.0  # only KeepAlive for this long: closed
    max_session_seconds: float = 4 * 3600.0  # 0: no limit
    flood_close_seconds: float = 5.0  # past the message rate this long: closed (0: never)
    # Seconds before the service's session cap (`expires_at`) from which a new upstream
    # session is prepared and switched to (0: never; the session ends at the cap).
    session_renew_margin: float = DEFAULT_RENEW_MARGIN
    # No renewal of a session that lasts under this in all, nor within this of the last
    # renewal (a short-lived upstream must not make the proxy open sessions without end).
    session_renew_min_lifetime: float = DEFAULT_RENEW_MIN_LIFETIME
    session_renew_min_interval: float = DEFAULT_RENEW_MIN_INTERVAL
    turn_rate: float = 5.0
    turn_burst: int = 20
    message_rate: float = MESSAGE_RATE  # client messages a second, any kind
    log_content: bool = False
    # Which server-side function calls the proxy makes (none by default).
    functions: FunctionEndpointPolicy = NO_FUNCTIONS


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
