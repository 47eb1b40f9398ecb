"""The command line: every option, its environment variable, its default.

Each option can also be set with the environment variable named in `--help`; a bad
value in either place is a one-line usage error.
"""

from __future__ import annotations

import argparse
import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .config import DEFAULT_UPSTREAM_URL
from .function_policy import (
    DEFAULT_MAX_ANSWER_BYTES,
    forwardable_header,
    http_method,
    parse_rule,
)
from .limits import MESSAGE_RATE
from .renewal import (
    DEFAULT_RENEW_MARGIN,
    DEFAULT_RENEW_MIN_INTERVAL,
    DEFAULT_RENEW_MIN_LIFETIME,
)

__all__ = ["client_token", "parse_args", "repeated"]

_LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = _parser()
    try:
        _add_options(parser)
    except _BadEnvironment as exc:
        parser.error(str(exc))
    args = parser.parse_args(argv)
    if bool(args.tls_cert) != bool(args.tls_key):
        parser.error("--tls-cert and --tls-key go together")
    return args


def _parser() -> argparse.ArgumentParser:
    return argparse.ArgumentParser(
        prog="python -m proxy",
        description="Deepgram Voice Agent protocol proxy for the OpenAI Realtime API. "
        "Each option can also be set with the environment variable named in brackets.",
    )


def _add_options(parser: argparse.ArgumentParser) -> None:
    option = functools.partial(_option, parser)
    option("--host", "OPENAI_PROXY_HOST", str, "127.0.0.1", "address to listen on")
    option("--port", "OPENAI_PROXY_PORT", int, 8080, "port to listen on (0: any free)")
    option(
        "--path", "OPENAI_PROXY_PATH", str, "/openai", "WebSocket path (besides /v1/agent/converse)"
    )
    option(
        "--upstream-url",
        "OPENAI_REALTIME_URL",
        str,
        None,
        f"OpenAI Realtime WebSocket URL (default {DEFAULT_UPSTREAM_URL})",
    )
    option("--log-level", "LOG_LEVEL", _log_level, "INFO", "DEBUG, INFO, WARNING, ERROR (any case)")
    option(
        "--log-format",
        "OPENAI_PROXY_LOG_FORMAT",
        _log_format,
        "text",
        "text, or json (one object a line, with the session and upstream session ids)",
    )
    option(
        "--log-content",
        "OPENAI_PROXY_LOG_CONTENT",
        _flag,
        False,
        "log user content (text, transcripts, frames at DEBUG); off by default",
        switch=True,
    )
    option(
        "--client-token",
        "OPENAI_PROXY_CLIENT_TOKEN",
        str,
        None,
        "clients must present this token (?token=, Authorization: Token|Bearer, or "
        "Sec-WebSocket-Protocol: token, <t>)",
    )
    option(
        "--client-token-file",
        "OPENAI_PROXY_CLIENT_TOKEN_FILE",
        str,
        None,
        "read the client token from this file (first line)",
    )
    option(
        "--allow-origin",
        "OPENAI_PROXY_ALLOW_ORIGINS",
        str,
        [],
        "browser origin allowed to connect, e.g. https://app.example.com (repeatable; env: "
        "comma-separated; '*' allows any). Default on loopback: localhost and 127.0.0.1 "
        "at any port",
        repeat=True,
    )
    option(
        "--trusted-proxy",
        "OPENAI_PROXY_TRUSTED_PROXIES",
        str,
        [],
        "IP or CIDR of a load balancer whose X-Forwarded-For is believed (repeatable)",
        repeat=True,
    )
    option(
        "--max-sessions",
        "OPENAI_PROXY_MAX_SESSIONS",
        int,
        1000,
        "sessions at once (HTTP 503 past it)",
    )
    option(
        "--max-sessions-per-ip",
        "OPENAI_PROXY_MAX_SESSIONS_PER_IP",
        int,
        20,
        "sessions at once from one client address (HTTP 429 past it)",
    )
    option(
        "--ipv6-prefix",
        "OPENAI_PROXY_IPV6_PREFIX",
        _ipv6_prefix,
        64,
        "per-address limits count an IPv6 client by its network of this many bits (one "
        "subscriber has a whole /64); IPv4 by its address",
    )
    option(
        "--connection-rate",
        "OPENAI_PROXY_CONNECTION_RATE",
        _non_negative,
        1.0,
        "sustained new sessions a second from one client address (HTTP 429 with "
        "Retry-After past it; 0: no limit)",
    )
    option(
        "--connection-burst",
        "OPENAI_PROXY_CONNECTION_BURST",
        _positive_int,
        20,
        "new sessions from one client address allowed at once",
    )
    option(
        "--max-pending-handshakes",
        "OPENAI_PROXY_MAX_PENDING_HANDSHAKES",
        _positive_int,
        128,
        "connections whose upgrade request has not arrived yet, TLS handshakes included; "
        "past it new connections are dropped",
    )
    option(
        "--max-pending-handshakes-per-ip",
        "OPENAI_PROXY_MAX_PENDING_HANDSHAKES_PER_IP",
        _positive_int,
        8,
        "the same from one client address (a --trusted-proxy counts in the total only)",
    )
    option(
        "--turn-rate",
        "OPENAI_PROXY_TURN_RATE",
        float,
        5.0,
        "sustained user turns a second per session",
    )
    option("--turn-burst", "OPENAI_PROXY_TURN_BURST", int, 20, "user turns allowed in a burst")
    option(
        "--message-rate",
        "OPENAI_PROXY_MESSAGE_RATE",
        float,
        MESSAGE_RATE,
        "sustained client messages a second per session, audio frames included (twice that "
        "in a burst); past it they are dropped with one Error {rate_limited}",
    )
    option(
        "--client-idle-timeout",
        "OPENAI_PROXY_CLIENT_IDLE_TIMEOUT",
        float,
        60.0,
        "close a client that sends nothing (KeepAlive counts) for this many seconds",
    )
    option(
        "--keepalive-only-timeout",
        "OPENAI_PROXY_KEEPALIVE_ONLY_TIMEOUT",
        _positive_float,
        600.0,
        "close a client that sends nothing but KeepAlive (no audio, no other message) for "
        "this many seconds",
    )
    option(
        "--max-session-seconds",
        "OPENAI_PROXY_MAX_SESSION_SECONDS",
        _non_negative,
        14400.0,
        "close any session after this many seconds (0: no limit)",
    )
    option(
        "--flood-close-seconds",
        "OPENAI_PROXY_FLOOD_CLOSE_SECONDS",
        _non_negative,
        5.0,
        "close a client that stays over --message-rate for this many seconds on end "
        "(Error rate_limited, close 1008; 0: never)",
    )
    option(
        "--session-renew-margin",
        "OPENAI_PROXY_SESSION_RENEW_MARGIN",
        _non_negative,
        DEFAULT_RENEW_MARGIN,
        "seconds before the OpenAI session's cap (expires_at) from which a new upstream "
        "session takes over at a quiet moment, with the conversation carried over (0: never; "
        "the client then gets Error {upstream_session_expired} at the cap)",
    )
    option(
        "--session-renew-min-lifetime",
        "OPENAI_PROXY_SESSION_RENEW_MIN_LIFETIME",
        _non_negative,
        DEFAULT_RENEW_MIN_LIFETIME,
        "an upstream session that lasts less than this many seconds in all is not renewed "
        "(it ends at its cap): an upstream handing out short sessions cannot make the proxy "
        "open sessions without end",
    )
    option(
        "--session-renew-min-interval",
        "OPENAI_PROXY_SESSION_RENEW_MIN_INTERVAL",
        _non_negative,
        DEFAULT_RENEW_MIN_INTERVAL,
        "at most one upstream session renewal per client connection in this many seconds",
    )
    option(
        "--function-endpoint-allow",
        "OPENAI_PROXY_FUNCTION_ENDPOINT_ALLOW",
        _checked(parse_rule),
        [],
        "function endpoints the proxy may call (server-side functions; repeatable): host, "
        "host:port (http or https), or http(s)://host[:port]/path-prefix",
        repeat=True,
    )
    option(
        "--function-endpoint-method",
        "OPENAI_PROXY_FUNCTION_ENDPOINT_METHODS",
        _checked(http_method),
        ["POST"],
        "HTTP method a function endpoint may be called with (repeatable; of GET, POST, PUT, "
        "PATCH, DELETE)",
        repeat=True,
    )
    option(
        "--function-endpoint-header",
        "OPENAI_PROXY_FUNCTION_ENDPOINT_HEADERS",
        _checked(forwardable_header),
        [],
        "header a function definition may set on its call (repeatable); others, "
        "Authorization and Cookie included, are not sent. Default: none (the proxy sets "
        "Content-Type: application/json)",
        repeat=True,
    )
    option(
        "--function-max-answer-bytes",
        "OPENAI_PROXY_FUNCTION_MAX_ANSWER_BYTES",
        _positive_int,
        DEFAULT_MAX_ANSWER_BYTES,
        "largest function answer, counted JSON-escaped as it is sent",
    )
    option(
        "--drain-seconds",
        "OPENAI_PROXY_DRAIN_SECONDS",
        _non_negative,
        30.0,
        "on SIGTERM: refuse new sessions, let open ones finish what they are saying for up "
        "to this long, then close them (1001)",
    )
    option(
        "--workers",
        "OPENAI_PROXY_WORKERS",
        _positive_int,
        1,
        "processes serving the same port (SO_REUSEPORT); metrics are summed over them",
    )
    option(
        "--tls-cert", "OPENAI_PROXY_TLS_CERT", str, None, "serve wss:// with this certificate (PEM)"
    )
    option("--tls-key", "OPENAI_PROXY_TLS_KEY", str, None, "the certificate's private key (PEM)")
    app = parser.add_mutually_exclusive_group()
    app.add_argument(
        "--test-app",
        dest="test_app",
        action="store_const",
        const=True,
        default=_env_choice("OPENAI_PROXY_TEST_APP"),
        help="serve the browser test-app at / even on a public address with a real key "
        "[OPENAI_PROXY_TEST_APP=1|0]",
    )
    app.add_argument(
        "--no-test-app",
        dest="test_app",
        action="store_const",
        const=False,
        help="never serve the test-app (HTTP 404 instead). Default: served with the built-in "
        "mock or on loopback",
    )


class _BadEnvironment(ValueError):
    pass


def _option(
    parser: argparse.ArgumentParser,
    flag: str,
    env: str,
    convert: Callable[[str], Any],
    default: Any,
    help: str,
    *,
    repeat: bool = False,
    switch: bool = False,
) -> None:
    raw = os.environ.get(env)
    if raw not in (None, ""):
        try:
            if repeat:
                default = [convert(part.strip()) for part in raw.split(",") if part.strip()]
            else:
                default = convert(raw)
        except (ValueError, argparse.ArgumentTypeError) as exc:
            raise _BadEnvironment(f"{env}={raw!r}: {exc}") from None
    shown = "" if default in (None, [], False) else f" (default {default})"
    text = f"{help}{shown} [{env}]"
    if switch:
        parser.add_argument(flag, action="store_true", default=default, help=text)
    elif repeat:
        parser.add_argument(flag, action="append", type=convert, default=None, help=text)
        parser.set_defaults(**{_dest(flag) + "_env": default})
    else:
        parser.add_argument(flag, type=convert, default=default, help=text)


def _dest(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


def _log_level(value: str) -> str:
    level = value.strip().upper()
    if level == "WARN":
        level = "WARNING"
    if level not in _LOG_LEVELS:
        raise argparse.ArgumentTypeError(
            f"unknown log level {value!r}; use one of {', '.join(_LOG_LEVELS)}"
        )
    return level


def _log_format(value: str) -> str:
    chosen = value.strip().lower()
    if chosen not in ("text", "json"):
        raise argparse.ArgumentTypeError(f"unknown log format {value!r}; use text or json")
    return chosen


def _checked(parse: Callable[[str], Any]) -> Callable[[str], str]:
    """A converter that keeps the text, after `parse` found it valid (ValueError: usage
    error, one line)."""

    def convert(value: str) -> str:
        try:
            parse(value)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return value.strip()

    return convert


def _non_negative(value: str) -> float:
    number = float(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return number


def _positive_float(value: str) -> float:
    number = float(value)
    if not number > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, not {value}")
    return number


def _ipv6_prefix(value: str) -> int:
    number = int(value)
    if not 1 <= number <= 128:
        raise argparse.ArgumentTypeError(f"must be 1 to 128, not {value}")
    return number


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return number


def _flag(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected 1/0, true/false, not {value!r}")


def _env_choice(env: str) -> bool | None:
    raw = os.environ.get(env)
    if raw in (None, ""):
        return None
    try:
        return _flag(raw)
    except argparse.ArgumentTypeError as exc:
        raise _BadEnvironment(f"{env}={raw!r}: {exc}") from None


def repeated(args: argparse.Namespace, name: str) -> list[str]:
    """A repeatable option: the command line's values, else the environment's."""
    given = getattr(args, name)
    return list(given) if given is not None else list(getattr(args, name + "_env"))


def client_token(args: argparse.Namespace) -> str | None:
    if args.client_token_file:
        try:
            lines = Path(args.client_token_file).read_text().splitlines()
        except OSError as exc:
            raise SystemExit(f"error: cannot read the client token file: {exc}") from None
        token = lines[0].strip() if lines else ""
        if not token:
            raise SystemExit(f"error: {args.client_token_file} holds no token")
        return token
    return str(args.client_token) if args.client_token else None
