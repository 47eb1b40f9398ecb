"""Everything an operator can set, with the defaults of PROTOCOL.md sections 11 and 12."""

from __future__ import annotations

import functools
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response
from websockets.proxy import get_proxy
from websockets.uri import parse_uri

from .function_policy import DEFAULT_MAX_ANSWER_BYTES, DEFAULT_METHODS, FunctionEndpointPolicy
from .limits import MESSAGE_RATE
from .renewal import DEFAULT_RENEW_MARGIN, DEFAULT_RENEW_MIN_INTERVAL, DEFAULT_RENEW_MIN_LIFETIME
from .session_options import SessionOptions
from .worker_board import WorkerBoard

__all__ = ["DEEPGRAM_PATH", "DEFAULT_UPSTREAM_URL", "ProxyConfig"]

DEFAULT_UPSTREAM_URL = "wss://api.openai.com/v1/realtime?model=gpt-realtime"
DEEPGRAM_PATH = "/v1/agent/converse"  # Deepgram's own endpoint, for its SDKs


@dataclass(frozen=True)
class ProxyConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    path: str = "/openai"
    extra_paths: tuple[str, ...] = (DEEPGRAM_PATH,)
    upstream_url: str = DEFAULT_UPSTREAM_URL
    api_key: str | None = field(default=None, repr=False)

    # Access (section 11).
    client_token: str | None = field(default=None, repr=False)
    allowed_origins: tuple[str, ...] = ()
    same_origin_pages: bool = False  # pages this proxy serves may connect back to it
    max_sessions: int = 1000
    max_sessions_per_ip: int = 20
    trusted_proxies: tuple[str, ...] = ()  # IPs or CIDRs whose X-Forwarded-For is believed
    # Per-address limits count an IPv6 client by its network of this many bits (one
    # subscriber gets a whole /64); IPv4 by its address.
    ipv6_prefix: int = 64
    # New sessions a second per address (token bucket; 0: off), before the upgrade.
    connection_rate: float = 1.0
    connection_burst: int = 20
    # Connections whose upgrade request has not arrived (TLS handshakes included), in
    # all and per client address (trusted proxies count in the total only).
    max_pending_handshakes: int = 128
    max_pending_handshakes_per_ip: int = 8

    # Limits and timeouts.
    turn_rate: float = 5.0
    turn_burst: int = 20
    message_rate: float = MESSAGE_RATE  # client messages a second, any kind
    max_frame_bytes: int = 1 << 20  # larger: Error frame_too_large
    hard_frame_bytes: int = 16 << 20  # larger: close 1009 (client), 1011 (upstream)
    max_buffered_bytes: int = 8 << 20  # per session and direction
    stall_timeout: float = 10.0  # a peer that reads nothing while frames wait
    upstream_connect_timeout: float = 10.0
    ready_timeout: float = 15.0
    response_timeout: float = 30.0
    client_idle_timeout: float = 60.0
    # A client that sends nothing but KeepAlive (no audio, no other message) this long
    # is closed; and no session lasts longer than max_session_seconds (0: no limit).
    keepalive_only_timeout: float = 600.0
    max_session_seconds: float = 4 * 3600.0
    # A client past the message rate for this many seconds on end is closed (0: never).
    flood_close_seconds: float = 5.0
    # A peer that stopped answering (half-open) is failed within interval + timeout.
    ping_interval: float = 10.0
    ping_timeout: float = 10.0
    session_renew_margin: float = DEFAULT_RENEW_MARGIN  # before the service's session cap
    # Sessions shorter than this in all are not renewed; one renewal per interval at most.
    session_renew_min_lifetime: float = DEFAULT_RENEW_MIN_LIFETIME
    session_renew_min_interval: float = DEFAULT_RENEW_MIN_INTERVAL
    audio_batch_ms: int = 100

    # Server-side functions (proxy.function_policy: endpoints the proxy may call, with
    # which methods and headers, and how large an answer) and logging.
    function_hosts: frozenset[str] = frozenset()
    function_methods: frozenset[str] = DEFAULT_METHODS
    function_headers: frozenset[str] = frozenset()
    function_max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES
    function_timeout: float = 10.0
    log_content: bool = False

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
        return SessionOptions(
            api_key=self.api_key,
            max_frame_bytes=self.max_frame_bytes,
            max_buffered_bytes=self.max_buffered_bytes,
            audio_batch_ms=self.audio_batch_ms,
            ready_timeout=self.ready_timeout,
            response_timeout=self.response_timeout,
            client_idle_timeout=self.client_idle_timeout,
            keepalive_only_timeout=self.keepalive_only_timeout,
            max_session_seconds=self.max_session_seconds,
            flood_close_seconds=self.flood_close_seconds,
            session_renew_margin=self.session_renew_margin,
            session_renew_min_lifetime=self.session_renew_min_lifetime,
            session_renew_min_interval=self.session_renew_min_interval,
            turn_rate=self.turn_rate,
            turn_burst=self.turn_burst,
            message_rate=self.message_rate,
            log_content=self.log_content,
            functions=self.function_policy,
        )
