"""What a server runs with: the settings of `proxy.settings` (every option and bound,
with its default, once) and the objects made at start (TLS context, the test-app)."""

from __future__ import annotations

import dataclasses
import functools
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response
from websockets.proxy import get_proxy
from websockets.uri import parse_uri

from .function_policy import FunctionEndpointPolicy
from .session_options import SessionOptions
from .settings import DEFAULT_UPSTREAM_URL, ServerSettings
from .worker_board import WorkerBoard

__all__ = ["DEEPGRAM_PATH", "DEFAULT_UPSTREAM_URL", "ProxyConfig"]

DEEPGRAM_PATH = "/v1/agent/converse"  # Deepgram's own endpoint, for its SDKs
#: The fields `ProxyConfig` passes on to each session by name (the session's part).
_SESSION_FIELDS = tuple(f.name for f in dataclasses.fields(SessionOptions) if f.name != "functions")


@dataclass(frozen=True)
class ProxyConfig(ServerSettings):
    """`ServerSettings` (keyword arguments of the same names) plus what is made at start."""

    extra_paths: tuple[str, ...] = (DEEPGRAM_PATH,)
    api_key: str | None = field(default=None, repr=False)
    client_token: str | None = field(default=None, repr=False)
    same_origin_pages: bool = False  # pages this proxy serves may connect back to it

    # Serving: TLS (wss://) without a front proxy; SO_REUSEPORT for --workers.
    ssl: ssl.SSLContext | None = field(default=None, repr=False)
    reuse_port: bool = False
    # With --workers: where each worker publishes whether it has room (shared readiness).
    worker_board: WorkerBoard | None = field(default=None, repr=False, compare=False)

    # Answers plain HTTP requests to other paths (the test-app); None means 404.
    http_handler: Callable[[ServerConnection, Request], Response] | None = None

    def __post_init__(self) -> None:
        self.function_policy  # noqa: B018 -- an entry that does not parse fails here, at start

    @property
    def paths(self) -> tuple[str, ...]:
        return (self.path, *(p for p in self.extra_paths if p != self.path))

    def session_options(self) -> SessionOptions:
        """What each session is configured with (one object, shared by all sessions)."""
        return self._session_options

    @functools.cached_property
    def upstream_proxy(self) -> str | None:
        """The HTTP/SOCKS proxy for upstream from the environment (`HTTPS_PROXY`, ...),
        looked up once: websockets would scan the whole environment at every connect."""
        return get_proxy(parse_uri(self.upstream_url))

    @functools.cached_property
    def function_policy(self) -> FunctionEndpointPolicy:
        """The function-endpoint options, parsed; ValueError for one that does not parse."""
        return FunctionEndpointPolicy.from_options(
            self.function_hosts,
            self.function_methods,
            self.function_headers,
            self.function_max_answer_bytes,
        )

    @functools.cached_property
    def _session_options(self) -> SessionOptions:
        shared = {name: getattr(self, name) for name in _SESSION_FIELDS}
        return SessionOptions(**shared, functions=self.function_policy)
