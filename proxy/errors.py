"""Codes the proxy puts in `Error {code}` and `Warning {code}` (docs/protocol-mapping.md, "Codes").

Codes shared with the TS peer keep its spelling; upstream codes pass through unchanged.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["ErrorCode", "WarningCode"]


class ErrorCode(StrEnum):
    # Shared with the TS peer.
    DISALLOWED_CLIENT_MESSAGE_TYPE = "disallowed_client_message_type"
    UPSTREAM_CLOSED_BEFORE_SESSION_READY = "upstream_closed_before_session_ready"
    UNMAPPED_UPSTREAM_EVENT = "unmapped_upstream_event"
    # Ours: the client's input.
    INVALID_JSON = "invalid_json"
    INVALID_MESSAGE = "invalid_message"
    FRAME_TOO_LARGE = "frame_too_large"
    CLIENT_QUEUE_FULL = "client_queue_full"
    UNSUPPORTED_AUDIO_FORMAT = "unsupported_audio_format"
    RATE_LIMITED = "rate_limited"
    CLIENT_TOO_SLOW = "client_too_slow"
    CLIENT_IDLE = "client_idle"
    SESSION_TIME_LIMIT = "session_time_limit"
    # Ours: upstream.
    UPSTREAM_UNAVAILABLE = "upstream_unavailable"
    UPSTREAM_AUTH_FAILED = "upstream_auth_failed"
    UPSTREAM_CLOSED = "upstream_closed"
    UPSTREAM_TIMEOUT = "upstream_timeout"
    UPSTREAM_STALLED = "upstream_stalled"
    UPSTREAM_PROTOCOL_ERROR = "upstream_protocol_error"
    FUNCTION_ENDPOINT_FAILED = "function_endpoint_failed"
    RESPONSE_FAILED = "response_failed"  # response.done {status: failed} with no error code
    # The service's session cap came and the session could not be renewed (section 3b).
    UPSTREAM_SESSION_EXPIRED = "upstream_session_expired"
    # A bug of the proxy's ended the session (logged with its traceback).
    INTERNAL_ERROR = "internal_error"


class WarningCode(StrEnum):
    UNSUPPORTED_BY_BACKEND = "unsupported_by_backend"
    SETTING_IGNORED = "setting_ignored"
    FUNCTION_ENDPOINT_FORBIDDEN = "function_endpoint_forbidden"
    RESPONSE_INCOMPLETE = "response_incomplete"  # response.done {status: incomplete}
    SESSION_RENEWED = "session_renewed"  # a new upstream session took over (section 3b)
