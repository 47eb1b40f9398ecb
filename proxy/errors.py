"""Error codes the proxy puts in `Error {code}` messages (PROTOCOL.md section 8).

Codes shared with the TS peer keep its spelling; upstream codes pass through unchanged.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["ErrorCode"]


class ErrorCode(StrEnum):
    # Shared with the TS peer.
    DISALLOWED_CLIENT_MESSAGE_TYPE = "disallowed_client_message_type"
    UPSTREAM_CLOSED_BEFORE_SESSION_READY = "upstream_closed_before_session_ready"
    UNMAPPED_UPSTREAM_EVENT = "unmapped_upstream_event"
    # Ours.
    INVALID_JSON = "invalid_json"
    INVALID_MESSAGE = "invalid_message"
    FRAME_TOO_LARGE = "frame_too_large"
    CLIENT_QUEUE_FULL = "client_queue_full"
    UPSTREAM_UNAVAILABLE = "upstream_unavailable"
    UPSTREAM_AUTH_FAILED = "upstream_auth_failed"
    UPSTREAM_CLOSED = "upstream_closed"
