"""Every setting of the proxy, once: its default, and for an operator option its flag,
environment variable, help text and parser.

Two frozen dataclasses hold them. `ServerSettings` is what a server and its sessions run
with (`ProxyConfig` extends it with the objects made at start, `SessionOptions` takes its
session part); `ProcessSettings` is what only the `python -m proxy` process reads (logs,
workers, TLS files, the test-app). A field made with `option(...)` is an operator option:
the command line (`proxy.cli`) and the README's table are generated from or checked
against these fields. A field with a plain default is a bound no operator sets; its
comment says why it is what it is. Bounds that are not per-server at all (queue caps,
retry counts) are in `proxy.bounds`.

Only pure data here, no I/O: the sans-I/O session imports it.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .function_endpoints import (
    DEFAULT_MAX_ANSWER_BYTES,
    DEFAULT_METHODS,
    forwardable_header,
    http_method,
)

__all__ = [
    "DEFAULT_UPSTREAM_URL",
    "GROUPS",
    "SERVER_DEFAULTS",
    "Option",
    "ProcessSettings",
    "ServerSettings",
    "command_line_for",
    "environment_for",
    "operator_options",
    "option",
]

DEFAULT_UPSTREAM_URL = "wss://api.openai.com/v1/realtime?model=gpt-realtime"
LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")

#: Sections of `--help`, in order: (key, title).
GROUPS = (
    ("serving", "serving"),
    ("logging", "logging"),
    ("access", "who may connect, and how many"),
    ("session", "limits of one session"),
    ("functions", "server-side functions"),
)


@dataclass(frozen=True, slots=True)
class Option:
    """How an operator sets one field: `flag` on the command line, `env` in the
    environment (one-line usage error for a bad value in either)."""

    flag: str
    env: str
    help: str
    group: str
    parse: Callable[[str], Any] = str
    # Repeatable (append on the command line, a comma list in the environment): the
    # values are collected into this type.
    collect: Callable[[list[Any]], Any] | None = None
    switch: bool = False  # a flag without a value (the environment takes 1/0)
    # A tri-state pair of flags (`--x` / `--no-x`): this flag and its help.
    negated: tuple[str, str] | None = None


def option(
    default: Any,
    flag: str,
    env: str,
    help: str,
    *,
    group: str,
    parse: Callable[[str], Any] = str,
    collect: Callable[[list[Any]], Any] | None = None,
    switch: bool = False,
    negated: tuple[str, str] | None = None,
) -> Any:
    """A dataclass field that an operator sets (see `Option`)."""
    spec = Option(flag, env, help, group, parse, collect, switch, negated)
    return field(default=default, metadata={"option": spec})


# ---------------------------------------------------------------- parsers
# Each turns the text of a flag or an environment variable into the value, or raises
# argparse.ArgumentTypeError with the one line the usage error shows.


def _log_level(value: str) -> str:
    level = value.strip().upper()
    if level == "WARN":
        level = "WARNING"
    if level not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(
            f"unknown log level {value!r}; use one of {', '.join(LOG_LEVELS)}"
        )
    return level


def _log_format(value: str) -> str:
    chosen = value.strip().lower()
    if chosen not in ("text", "json"):
        raise argparse.ArgumentTypeError(f"unknown log format {value!r}; use text or json")
    return chosen


def _endpoint_rule(entry: str) -> Any:
    """An allow-list entry checked as the server will use it. Its URL is normalised by
    the HTTP client that sends the calls (`proxy.function_policy`), imported only when
    an entry is parsed: the session core takes its defaults from this module and must
    not import an HTTP client."""
    from .function_policy import parse_rule

    return parse_rule(entry)


def _checked(parse: Callable[[str], Any]) -> Callable[[str], str]:
    """A parser that keeps the text, after `parse` found it valid (its ValueError is the
    usage error's line)."""

    def convert(value: str) -> str:
        try:
            parse(value)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return value.strip()

    return convert


def _number(
    kind: Callable[[str], Any], low: int, high: int | None = None, *, above: bool = False
) -> Callable[[str], Any]:
    """A parser of `kind` (int, float) from `low` (more than `low` when `above`) to
    `high`. NaN and infinity are in no range: a rate or a timeout of `inf` broke every
    connection (0 is how an option says "no limit", where it can)."""
    if high is not None:
        allowed = f"{low} to {high}"
    else:
        allowed = f"more than {low}" if above else f"{low} or more"

    def parse(value: str) -> Any:
        number = kind(value)
        fits = number > low if above else number >= low
        if not fits or (high is not None and not number <= high) or not math.isfinite(number):
            raise argparse.ArgumentTypeError(f"must be {allowed}, not {value}")
        return number

    parse.__name__ = kind.__name__  # argparse names it in "invalid int value: 'x'"
    return parse


_non_negative = _number(float, 0)
_positive_float = _number(float, 0, above=True)
_positive_int = _number(int, 1)
_ipv6_prefix = _number(int, 1, 128)
_port = _number(int, 0, 65535)
_count = _number(int, 0)
#: More processes than this is a typo, not a machine: each forks at start (and, without a
#: key, starts a mock child), so `--workers 100000` took the machine down.
MAX_WORKERS = 256
_workers = _number(int, 1, MAX_WORKERS)


def _on_off(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected 1/0, true/false, not {value!r}")


# ---------------------------------------------------------------- the settings


@dataclass(frozen=True)
class ServerSettings:
    """What a server and each of its sessions run with (docs/security.md, docs/operations.md)."""

    host: str = option(
        "127.0.0.1", "--host", "OPENAI_PROXY_HOST", "address to listen on", group="serving"
    )
    port: int = option(
        8080,
        "--port",
        "OPENAI_PROXY_PORT",
        "port to listen on (0: any free)",
        group="serving",
        parse=_port,
    )
    path: str = option(
        "/openai",
        "--path",
        "OPENAI_PROXY_PATH",
        "WebSocket path (besides /v1/agent/converse)",
        group="serving",
    )
    # `python -m proxy` takes it from --upstream-url (see ProcessSettings), or the mock's.
    upstream_url: str = DEFAULT_UPSTREAM_URL
    log_content: bool = option(
        False,
        "--log-content",
        "OPENAI_PROXY_LOG_CONTENT",
        "log user content (text, transcripts, frames at DEBUG); off by default",
        group="logging",
        parse=_on_off,
        switch=True,
    )

    # Access (section 11).
    allowed_origins: tuple[str, ...] = option(
        (),
        "--allow-origin",
        "OPENAI_PROXY_ALLOW_ORIGINS",
        "browser origin allowed to connect, e.g. https://app.example.com (repeatable; env: "
        "comma-separated; '*' allows any). Default on loopback: localhost and 127.0.0.1 "
        "at any port",
        group="access",
        collect=tuple,
    )
    trusted_proxies: tuple[str, ...] = option(
        (),
        "--trusted-proxy",
        "OPENAI_PROXY_TRUSTED_PROXIES",
        "IP or CIDR of a load balancer whose X-Forwarded-For is believed (repeatable)",
        group="access",
        collect=tuple,
    )
    max_sessions: int = option(
        1000,
        "--max-sessions",
        "OPENAI_PROXY_MAX_SESSIONS",
        "sessions at once (HTTP 503 past it)",
        group="access",
        parse=_count,
    )
    max_sessions_per_ip: int = option(
        20,
        "--max-sessions-per-ip",
        "OPENAI_PROXY_MAX_SESSIONS_PER_IP",
        "sessions at once from one client address (HTTP 429 past it)",
        group="access",
        parse=_count,
    )
    ipv6_prefix: int = option(
        64,
        "--ipv6-prefix",
        "OPENAI_PROXY_IPV6_PREFIX",
        "per-address limits count an IPv6 client by its network of this many bits (one "
        "subscriber has a whole /64); IPv4 by its address",
        group="access",
        parse=_ipv6_prefix,
    )
    connection_rate: float = option(
        1.0,
        "--connection-rate",
        "OPENAI_PROXY_CONNECTION_RATE",
        "sustained new sessions a second from one client address (HTTP 429 with "
        "Retry-After past it; 0: no limit)",
        group="access",
        parse=_non_negative,
    )
    connection_burst: int = option(
        20,
        "--connection-burst",
        "OPENAI_PROXY_CONNECTION_BURST",
        "new sessions from one client address allowed at once",
        group="access",
        parse=_positive_int,
    )
    max_pending_handshakes: int = option(
        128,
        "--max-pending-handshakes",
        "OPENAI_PROXY_MAX_PENDING_HANDSHAKES",
        "connections whose upgrade request has not arrived yet, TLS handshakes included; "
        "past it new connections are dropped",
        group="access",
        parse=_positive_int,
    )
    max_pending_handshakes_per_ip: int = option(
        8,
        "--max-pending-handshakes-per-ip",
        "OPENAI_PROXY_MAX_PENDING_HANDSHAKES_PER_IP",
        "the same from one client address (a --trusted-proxy counts in the total only)",
        group="access",
        parse=_positive_int,
    )

    # Limits of one session.
    turn_rate: float = option(
        5.0,
        "--turn-rate",
        "OPENAI_PROXY_TURN_RATE",
        "sustained user turns a second per session",
        group="session",
        parse=_positive_float,
    )
    turn_burst: int = option(
        20,
        "--turn-burst",
        "OPENAI_PROXY_TURN_BURST",
        "user turns allowed in a burst",
        group="session",
        parse=_positive_int,
    )
    # Each message costs CPU whatever its size, so a flood of tiny frames is bounded too.
    # Audio in 20 ms frames is 50 a second; a browser's AudioWorklet posting 128-sample
    # chunks at 48 kHz is 375.
    message_rate: float = option(
        500.0,
        "--message-rate",
        "OPENAI_PROXY_MESSAGE_RATE",
        "sustained client messages a second per session, audio frames included (twice that "
        "in a burst); past it they are dropped with one Error {rate_limited}",
        group="session",
        parse=_positive_float,
    )
    client_idle_timeout: float = option(
        60.0,
        "--client-idle-timeout",
        "OPENAI_PROXY_CLIENT_IDLE_TIMEOUT",
        "close a client that sends nothing (KeepAlive counts) for this many seconds",
        group="session",
        parse=_positive_float,
    )
    keepalive_only_timeout: float = option(
        600.0,
        "--keepalive-only-timeout",
        "OPENAI_PROXY_KEEPALIVE_ONLY_TIMEOUT",
        "close a client that sends nothing but KeepAlive (no audio, no other message) for "
        "this many seconds",
        group="session",
        parse=_positive_float,
    )
    max_session_seconds: float = option(
        4 * 3600.0,
        "--max-session-seconds",
        "OPENAI_PROXY_MAX_SESSION_SECONDS",
        "close any session after this many seconds (0: no limit)",
        group="session",
        parse=_non_negative,
    )
    flood_close_seconds: float = option(
        5.0,
        "--flood-close-seconds",
        "OPENAI_PROXY_FLOOD_CLOSE_SECONDS",
        "close a client that stays over --message-rate for this many seconds on end "
        "(Error rate_limited, close 1008; 0: never)",
        group="session",
        parse=_non_negative,
    )
    # At most half a session's life is used. Five minutes leaves room for many quiet
    # moments (one between any two turns) and for minutes of clock skew with the service.
    session_renew_margin: float = option(
        300.0,
        "--session-renew-margin",
        "OPENAI_PROXY_SESSION_RENEW_MARGIN",
        "seconds before the OpenAI session's cap (expires_at) from which a new upstream "
        "session takes over at a quiet moment, with the conversation carried over (0: never; "
        "the client then gets Error {upstream_session_expired} at the cap)",
        group="session",
        parse=_non_negative,
    )
    # A faulty or hostile upstream handing out short sessions must not make the proxy open
    # sessions without end for one client: a session shorter than this in all (from its
    # session.created to its expires_at) is not renewed, and one client connection is
    # renewed at most once per interval (the service's sessions last 60 minutes). Either
    # refusal ends the session at its cap, as with renewal off.
    session_renew_min_lifetime: float = option(
        600.0,
        "--session-renew-min-lifetime",
        "OPENAI_PROXY_SESSION_RENEW_MIN_LIFETIME",
        "an upstream session that lasts less than this many seconds in all is not renewed "
        "(it ends at its cap): an upstream handing out short sessions cannot make the proxy "
        "open sessions without end",
        group="session",
        parse=_non_negative,
    )
    session_renew_min_interval: float = option(
        600.0,
        "--session-renew-min-interval",
        "OPENAI_PROXY_SESSION_RENEW_MIN_INTERVAL",
        "at most one upstream session renewal per client connection in this many seconds",
        group="session",
        parse=_non_negative,
    )

    # Server-side functions (proxy.function_policy: endpoints the proxy may call, with
    # which methods and headers, and how large an answer).
    function_hosts: frozenset[str] = option(
        frozenset(),
        "--function-endpoint-allow",
        "OPENAI_PROXY_FUNCTION_ENDPOINT_ALLOW",
        "function endpoints the proxy may call (server-side functions; repeatable): host, "
        "host:port (http or https), or http(s)://host[:port]/path-prefix",
        group="functions",
        parse=_checked(_endpoint_rule),
        collect=frozenset,
    )
    function_methods: frozenset[str] = option(
        DEFAULT_METHODS,
        "--function-endpoint-method",
        "OPENAI_PROXY_FUNCTION_ENDPOINT_METHODS",
        "HTTP method a function endpoint may be called with (repeatable; of GET, POST, PUT, "
        "PATCH, DELETE)",
        group="functions",
        parse=_checked(http_method),
        collect=frozenset,
    )
    function_headers: frozenset[str] = option(
        frozenset(),
        "--function-endpoint-header",
        "OPENAI_PROXY_FUNCTION_ENDPOINT_HEADERS",
        "header a function definition may set on its call (repeatable); others, "
        "Authorization and Cookie included, are not sent. Default: none (the proxy sets "
        "Content-Type: application/json)",
        group="functions",
        parse=_checked(forwardable_header),
        collect=frozenset,
    )
    function_max_answer_bytes: int = option(
        DEFAULT_MAX_ANSWER_BYTES,
        "--function-max-answer-bytes",
        "OPENAI_PROXY_FUNCTION_MAX_ANSWER_BYTES",
        "largest function answer, counted JSON-escaped as it is sent",
        group="functions",
        parse=_positive_int,
    )
    function_timeout: float = 10.0  # one function endpoint's answer, connect included

    # Bounds no operator sets (docs/security.md lists them).
    max_frame_bytes: int = 1 << 20  # larger: Error frame_too_large (a frame is dropped)
    hard_frame_bytes: int = 16 << 20  # larger: close 1009 (client), 1011 (upstream)
    # What waits for a peer (or, before the session is ready, for upstream), per session
    # and direction: bounded so a stalled peer cannot make the proxy hold audio forever.
    max_buffered_bytes: int = 8 << 20
    stall_timeout: float = 10.0  # a peer that reads nothing while frames wait
    upstream_connect_timeout: float = 10.0
    ready_timeout: float = 15.0  # session.created / session.updated
    response_timeout: float = 30.0  # an active response that says nothing
    # A peer that stopped answering (half-open) is failed within interval + timeout.
    ping_interval: float = 10.0
    ping_timeout: float = 10.0
    # Input audio goes upstream in batches: at this many ms buffered, or after
    # `audio_flush_delay` seconds; `audio_pause` seconds without audio flush the filter.
    audio_batch_ms: int = 100
    audio_flush_delay: float = 0.05
    audio_pause: float = 0.3


@dataclass(frozen=True)
class ProcessSettings:
    """What only the `python -m proxy` process reads: where upstream is, logs, the client
    token's source, TLS files, workers, draining, the test-app."""

    upstream_url: str | None = option(
        None,
        "--upstream-url",
        "OPENAI_REALTIME_URL",
        f"OpenAI Realtime WebSocket URL (default {DEFAULT_UPSTREAM_URL}; with no "
        "OPENAI_API_KEY either, the built-in mock)",
        group="serving",
    )
    tls_cert: str | None = option(
        None,
        "--tls-cert",
        "OPENAI_PROXY_TLS_CERT",
        "serve wss:// with this certificate (PEM)",
        group="serving",
    )
    tls_key: str | None = option(
        None,
        "--tls-key",
        "OPENAI_PROXY_TLS_KEY",
        "the certificate's private key (PEM)",
        group="serving",
    )
    workers: int = option(
        1,
        "--workers",
        "OPENAI_PROXY_WORKERS",
        "processes serving the same port (SO_REUSEPORT); metrics are summed over them",
        group="serving",
        parse=_workers,
    )
    drain_seconds: float = option(
        30.0,
        "--drain-seconds",
        "OPENAI_PROXY_DRAIN_SECONDS",
        "on SIGTERM: refuse new sessions, let open ones finish what they are saying for up "
        "to this long, then close them (1001)",
        group="serving",
        parse=_non_negative,
    )
    # None: served with the built-in mock or on loopback (decided at start).
    test_app: bool | None = option(
        None,
        "--test-app",
        "OPENAI_PROXY_TEST_APP",
        "serve the browser test-app at / even on a public address with a real key",
        group="serving",
        parse=_on_off,
        negated=(
            "--no-test-app",
            "never serve the test-app (HTTP 404 instead). Default: served with the "
            "built-in mock or on loopback",
        ),
    )
    log_level: str = option(
        "INFO",
        "--log-level",
        "LOG_LEVEL",
        "DEBUG, INFO, WARNING, ERROR (any case)",
        group="logging",
        parse=_log_level,
    )
    log_format: str = option(
        "text",
        "--log-format",
        "OPENAI_PROXY_LOG_FORMAT",
        "text, or json (one object a line, with the session and upstream session ids)",
        group="logging",
        parse=_log_format,
    )
    client_token: str | None = option(
        None,
        "--client-token",
        "OPENAI_PROXY_CLIENT_TOKEN",
        "clients must present this token (?token=, Authorization: Token|Bearer, or "
        "Sec-WebSocket-Protocol: token, <t>)",
        group="access",
    )
    client_token_file: str | None = option(
        None,
        "--client-token-file",
        "OPENAI_PROXY_CLIENT_TOKEN_FILE",
        "read the client token from this file (first line)",
        group="access",
    )


SERVER_DEFAULTS = ServerSettings()


def operator_options(
    *settings: type[ServerSettings | ProcessSettings],
) -> Iterator[tuple[str, Option, Any]]:
    """(field name, option, default) of every operator option of `settings` (default:
    both), in the order they are declared."""
    for kind in settings or (ServerSettings, ProcessSettings):
        for each in dataclasses.fields(kind):
            spec = each.metadata.get("option")
            if spec is not None:
                yield each.name, spec, each.default


def environment_for(**values: Any) -> dict[str, str]:
    """The environment variables that set these options (by field name) for
    `python -m proxy`: tools and benchmarks name settings, not variables."""
    specs = {name: spec for name, spec, _ in operator_options()}
    return {specs[name].env: _as_text(value) for name, value in values.items()}


def command_line_for(**values: Any) -> list[str]:
    """The flags that set these options (by field name) for `python -m proxy`."""
    specs = {name: spec for name, spec, _ in operator_options()}
    flags: list[str] = []
    for name, value in values.items():
        spec = specs[name]
        if spec.switch or spec.negated:
            flags.append(spec.flag if value else (spec.negated or ("",))[0])
        elif spec.collect is not None:
            for each in value:
                flags += [spec.flag, str(each)]
        else:
            flags += [spec.flag, str(value)]
    return [flag for flag in flags if flag]


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (tuple, list, frozenset, set)):
        return ",".join(str(each) for each in value)
    return str(value)
