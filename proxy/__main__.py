"""`python -m proxy`: run the proxy from the command line.

With no OPENAI_API_KEY and no --upstream-url it starts the harness's mock OpenAI
Realtime upstream in the same process, so the whole path works without an account.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import signal
import sys
from collections.abc import Callable

import anyio
from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from .redaction import KeyRedactingFilter
from .server import DEFAULT_UPSTREAM_URL, ProxyConfig, ProxyServer

MOCK_KEY = "mock-key-not-secret"  # what the built-in mock expects; not an OpenAI key


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    env = os.environ
    parser = argparse.ArgumentParser(
        prog="python -m proxy",
        description="Deepgram Voice Agent protocol proxy for the OpenAI Realtime API.",
    )
    parser.add_argument("--host", default=env.get("OPENAI_PROXY_HOST", "127.0.0.1"))
    parser.add_argument(
        "--port", type=int, default=int(env.get("OPENAI_PROXY_PORT", "8080")), help="0: any free"
    )
    parser.add_argument("--path", default=env.get("OPENAI_PROXY_PATH", "/openai"))
    parser.add_argument(
        "--upstream-url",
        default=env.get("OPENAI_REALTIME_URL"),
        help=f"OpenAI Realtime WebSocket URL (default {DEFAULT_UPSTREAM_URL})",
    )
    parser.add_argument("--log-level", default=env.get("LOG_LEVEL", "INFO").upper())
    parser.add_argument(
        "--client-token",
        default=env.get("OPENAI_PROXY_CLIENT_TOKEN"),
        help="when set, clients must connect with ?token=THIS",
    )
    parser.add_argument(
        "--no-test-app",
        action="store_true",
        help="do not serve the browser test-app at / (HTTP 404 instead)",
    )
    return parser.parse_args(argv)


async def run(args: argparse.Namespace, api_key: str | None) -> None:
    mock = None
    upstream_url = args.upstream_url
    if not api_key and not upstream_url:
        from harness.mock_openai import MockRealtime

        print("No OPENAI_API_KEY set: using the built-in mock OpenAI Realtime upstream", flush=True)
        mock = MockRealtime(api_key=MOCK_KEY, journal=False)  # runs for as long as wanted
        await mock.start(host="127.0.0.1", port=0)
        api_key, upstream_url = MOCK_KEY, mock.url
    config = ProxyConfig(
        host=args.host,
        port=args.port,
        path=args.path,
        upstream_url=upstream_url or DEFAULT_UPSTREAM_URL,
        api_key=api_key,
        client_token=args.client_token,
        http_handler=None if args.no_test_app else _test_app_handler(args.path),
    )
    server = ProxyServer(config)
    await server.start()
    print(f"upstream: {config.upstream_url}")
    print(f"proxy listening on {server.url}", flush=True)
    if not args.no_test_app:
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
    if not api_key and not args.upstream_url and (missing := _missing_mock_dependency()):
        print(
            f"error: no OPENAI_API_KEY, and the built-in mock upstream needs {missing}: set "
            "OPENAI_API_KEY, or pip install 'voice-agent-realtime-proxy[mock]'",
            file=sys.stderr,
        )
        return 2
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(KeyRedactingFilter(api_key))
    logging.basicConfig(
        level=args.log_level,
        handlers=[handler],
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        anyio.run(run, args, api_key)
    except OSError as exc:  # e.g. the port is taken
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
