"""Opening a connection to the upstream service, as the bridge needs it: one attempt at a
time, bounded by `upstream_connect_timeout`, that can be called off (the client left,
the renewal was given up), and whose outcome is a leg or the contract's error code and a
description with the key redacted. The bridge opens the current upstream session and,
for a renewal, the next one with the same dial.
"""

from __future__ import annotations

from http import HTTPStatus

import anyio
from websockets.exceptions import InvalidHandshake, InvalidProxy, InvalidStatus, InvalidURI

from .config import ProxyConfig
from .errors import ErrorCode
from .legs import UpstreamLeg
from .redaction import redact, redacting_logger
from .upstream import open_upstream

__all__ = ["DialFailure", "UpstreamDial"]

#: Why there is no upstream connection: the client's `Error` code and a description.
DialFailure = tuple[ErrorCode, str]


class UpstreamDial:
    """One upstream connection being opened, which can be called off."""

    __slots__ = ("_config", "_scope")

    def __init__(self, config: ProxyConfig) -> None:
        self._config = config
        self._scope: anyio.CancelScope | None = None  # while a connection is being opened

    def call_off(self) -> None:
        """Stop the opening under way, if any: `open` then returns None."""
        if self._scope is not None:
            self._scope.cancel()

    async def open(self) -> UpstreamLeg | DialFailure | None:
        """A connection, why there is none, or None when it was called off."""
        result = None
        try:
            with anyio.CancelScope() as self._scope:
                result = await self._connect()
        finally:
            self._scope = None
        return result

    async def _connect(self) -> UpstreamLeg | DialFailure:
        config = self._config
        headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
        failure: DialFailure
        try:
            with anyio.fail_after(config.upstream_connect_timeout):
                return await open_upstream(
                    config.upstream_url,
                    headers=headers,
                    proxy=config.upstream_proxy,
                    max_size=config.hard_frame_bytes,
                    logger=redacting_logger("proxy.upstream_ws", config.api_key),
                )
        except InvalidStatus as refused:
            status = refused.response.status_code
            code = (
                ErrorCode.UPSTREAM_AUTH_FAILED
                if status in (HTTPStatus.UNAUTHORIZED, HTTPStatus.FORBIDDEN)
                else ErrorCode.UPSTREAM_UNAVAILABLE
            )
            failure = (code, f"upstream refused the connection (HTTP {status})")
        except TimeoutError:
            failure = (
                ErrorCode.UPSTREAM_UNAVAILABLE,
                f"upstream did not answer within {config.upstream_connect_timeout:g} s",
            )
        except (OSError, InvalidHandshake, InvalidURI, InvalidProxy) as exc:
            failure = (ErrorCode.UPSTREAM_UNAVAILABLE, f"cannot reach upstream: {exc}")
        code, description = failure
        return code, redact(description, config.api_key)
