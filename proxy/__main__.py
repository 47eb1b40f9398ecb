"""`python -m proxy`: run the proxy from the command line.

With no OPENAI_API_KEY and no --upstream-url it starts the harness's mock OpenAI
Realtime upstream in the same process, so the whole path works without an account.
Every option also reads an environment variable (named in `--help`).
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from .access import is_loopback
from .config import DEFAULT_UPSTREAM_URL, ProxyConfig
from .redaction import KeyRedactingFilter
from .server import ProxyServer

MOCK_KEY = "mock-key-not-secret"  # what the built-in mock expects; not an OpenAI key
_LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = _parser()
    try:
        _add_options(parser)
    except _BadEnvironment as exc:
        parser.error(str(exc))
    return parser.parse_args(argv)


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
        "--turn-rate",
        "OPENAI_PROXY_TURN_RATE",
        float,
        5.0,
        "sustained user turns a second per session",
    )
    option("--turn-burst", "OPENAI_PROXY_TURN_BURST", int, 20, "user turns allowed in a burst")
    option(
        "--client-idle-timeout",
        "OPENAI_PROXY_CLIENT_IDLE_TIMEOUT",
        float,
        60.0,
        "close a client that sends nothing (KeepAlive counts) for this many seconds",
    )
    option(
        "--function-endpoint-allow",
        "OPENAI_PROXY_FUNCTION_ENDPOINT_ALLOW",
        str,
        [],
        "host whose function endpoints the proxy may call (server-side functions; repeatable)",
        repeat=True,
    )
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


def _repeated(args: argparse.Namespace, name: str) -> list[str]:
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


async def run(args: argparse.Namespace, api_key: str | None, token: str | None) -> None:
    mock = None
    upstream_url = args.upstream_url
    if not api_key and not upstream_url:
        from harness.mock_openai import MockRealtime

        print("No OPENAI_API_KEY set: using the built-in mock OpenAI Realtime upstream", flush=True)
        mock = MockRealtime(api_key=MOCK_KEY, journal=False)  # runs for as long as wanted
        await mock.start(host="127.0.0.1", port=0)
        api_key, upstream_url = MOCK_KEY, mock.url
    elif upstream_url and not api_key:
        logging.getLogger("proxy").warning(
            "--upstream-url is set but OPENAI_API_KEY is not: upstream will refuse the "
            "connection unless it needs no key"
        )
    loopback = is_loopback(args.host)
    serve_app = args.test_app if args.test_app is not None else (mock is not None or loopback)
    if not token and not loopback:
        logging.getLogger("proxy").warning(
            "listening on %s without a client token: anyone who can reach this port can "
            "spend the API key (set --client-token)",
            args.host,
        )
    config = ProxyConfig(
        host=args.host,
        port=args.port,
        path=args.path,
        upstream_url=upstream_url or DEFAULT_UPSTREAM_URL,
        api_key=api_key,
        client_token=token,
        allowed_origins=tuple(_repeated(args, "allow_origin")),
        same_origin_pages=serve_app,
        trusted_proxies=tuple(_repeated(args, "trusted_proxy")),
        max_sessions=args.max_sessions,
        max_sessions_per_ip=args.max_sessions_per_ip,
        turn_rate=args.turn_rate,
        turn_burst=args.turn_burst,
        client_idle_timeout=args.client_idle_timeout,
        function_hosts=frozenset(_repeated(args, "function_endpoint_allow")),
        log_content=args.log_content,
        http_handler=_test_app_handler(args.path) if serve_app else None,
    )
    server = ProxyServer(config)
    await server.start()
    print(f"upstream: {config.upstream_url}")
    print(f"proxy listening on {server.url}", flush=True)
    if serve_app:
        print(f"test-app: http://{_browser_host(args.host)}:{server.port}/", flush=True)
    try:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for received in signals:
                print(f"{signal.Signals(received).name}: closing sessions", flush=True)
                break
    finally:
        with anyio.CancelScope(shield=True):
            await server.stop()
            if mock is not None:
                await mock.stop()
    print("proxy stopped", flush=True)


def _test_app_handler(proxy_path: str) -> Callable[[ServerConnection, Request], Response]:
    from harness.test_app import http_response

    return functools.partial(http_response, proxy_path=proxy_path)


def _browser_host(host: str) -> str:
    """A host a browser on this machine can open (not the 0.0.0.0 wildcard)."""
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


def _missing_mock_dependency() -> str | None:
    """What the built-in mock lacks on a runtime-only install (it is the [mock] extra)."""
    try:
        import harness.mock_openai  # noqa: F401
    except ModuleNotFoundError as exc:
        return exc.name or str(exc)
    return None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    api_key = os.environ.get("OPENAI_API_KEY") or None
    token = client_token(args)
    if not api_key and not args.upstream_url and (missing := _missing_mock_dependency()):
        print(
            f"error: no OPENAI_API_KEY, and the built-in mock upstream needs {missing}: set "
            "OPENAI_API_KEY, or pip install 'voice-agent-realtime-proxy[mock]'",
            file=sys.stderr,
        )
        return 2
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(KeyRedactingFilter(api_key, token, log_content=args.log_content))
    logging.basicConfig(
        level=args.log_level,
        handlers=[handler],
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        anyio.run(run, args, api_key, token)
    except OSError as exc:  # e.g. the port is taken
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
