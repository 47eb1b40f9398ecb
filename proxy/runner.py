"""One proxy process from start to a graceful end: build the config from the command
line, serve, and on SIGTERM (or Ctrl-C) drain before exiting.

Without OPENAI_API_KEY and --upstream-url the harness's mock OpenAI Realtime upstream
starts as a child process (`mock_upstream`), so the whole path works without an account.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import logging
import resource
import signal
import ssl
from collections.abc import Callable
from dataclasses import dataclass

import anyio

from .access import is_loopback, url_host
from .cli import server_settings
from .config import DEFAULT_UPSTREAM_URL, ProxyConfig
from .mock_upstream import MOCK_KEY, built_in_mock
from .server import ProxyServer
from .test_app import app_handler
from .worker_board import WorkerBoard

__all__ = ["MOCK_KEY", "Announce", "serve_until_signalled"]

log = logging.getLogger("proxy")


@dataclass(frozen=True)
class Announce:
    """What a process says once it listens (a worker tells its supervisor instead)."""

    print_lines: bool = True
    ready: Callable[[str, str | None], None] | None = None
    # A worker answers only its supervisor's SIGTERM, and drains to the end: the
    # supervisor decides what a second signal means.
    worker: bool = False


async def serve_until_signalled(
    args: argparse.Namespace,
    api_key: str | None,
    token: str | None,
    *,
    reuse_port: bool = False,
    announce: Announce | None = None,
    worker_board: WorkerBoard | None = None,
) -> None:
    announce = announce or Announce()
    if api_key or args.upstream_url:
        if not api_key:
            log.warning(
                "--upstream-url is set but OPENAI_API_KEY is not: upstream will refuse the "
                "connection unless it needs no key"
            )
        await _serve(args, api_key, token, args.upstream_url, reuse_port, announce, worker_board)
        return
    # The mock is a child process (the proxy never imports the harness); one per process,
    # so each worker has its own.
    if announce.print_lines:
        print("No OPENAI_API_KEY set: using the built-in mock OpenAI Realtime upstream", flush=True)
    async with built_in_mock() as mock_url:
        await _serve(args, MOCK_KEY, token, mock_url, reuse_port, announce, worker_board, mock=True)


async def _serve(
    args: argparse.Namespace,
    api_key: str | None,
    token: str | None,
    upstream_url: str | None,
    reuse_port: bool,
    announce: Announce,
    worker_board: WorkerBoard | None,
    *,
    mock: bool = False,
) -> None:
    """Serve until signalled and drained; `mock`: the upstream is the built-in mock."""
    loopback = is_loopback(args.host)
    serve_app = args.test_app if args.test_app is not None else (mock or loopback)
    if not token and not loopback:
        log.warning(
            "listening on %s without a client token: anyone who can reach this port can "
            "spend the API key (set --client-token)",
            args.host,
        )
    config = ProxyConfig(
        **server_settings(args),
        upstream_url=upstream_url or DEFAULT_UPSTREAM_URL,
        api_key=api_key,
        client_token=token,
        same_origin_pages=serve_app,
        ssl=_tls(args.tls_cert, args.tls_key),
        reuse_port=reuse_port,
        worker_board=worker_board,
        http_handler=app_handler(args.path) if serve_app else None,
    )
    _raise_file_limit(config.max_sessions)
    server = ProxyServer(config)
    await server.start()
    # What the imports made lives as long as the process: out of the collector's way, a
    # full collection walks only the sessions' objects (11 ms less each time, measured).
    gc.freeze()
    app_url = None
    if serve_app:
        scheme = "https" if config.ssl else "http"
        app_url = f"{scheme}://{url_host(args.host)}:{server.port}/"
    if announce.print_lines:
        print(f"upstream: {config.upstream_url}")
        print(f"proxy listening on {server.url}", flush=True)
        if app_url:
            print(f"test-app: {app_url}", flush=True)
    if announce.ready is not None:
        announce.ready(server.url, app_url)
    wanted = (signal.SIGTERM,) if announce.worker else (signal.SIGINT, signal.SIGTERM)
    try:
        with anyio.open_signal_receiver(*wanted) as signals:
            async for received in signals:
                name = signal.Signals(received).name
                log.warning("%s: draining sessions (up to %g s)", name, args.drain_seconds)
                if announce.print_lines:
                    print(f"{name}: draining sessions", flush=True)
                if announce.worker:
                    await server.drain(args.drain_seconds)
                else:
                    await _drain(server, args.drain_seconds, signals)
                break
    finally:
        with anyio.CancelScope(shield=True):
            await server.stop()
    if announce.print_lines:
        print("proxy stopped", flush=True)


async def _drain(server: ProxyServer, seconds: float, signals: object) -> None:
    """Drain; a second signal cuts it short."""
    async with anyio.create_task_group() as group:

        async def second_signal() -> None:
            async for _ in signals:  # type: ignore[attr-defined]
                log.warning("second signal: closing every session now")
                group.cancel_scope.cancel()
                return

        group.start_soon(second_signal)
        await server.drain(seconds)
        group.cancel_scope.cancel()


def _raise_file_limit(max_sessions: int) -> None:
    """Each session holds two sockets: take the file-descriptor limit the system allows,
    and say so when even that is too low for --max-sessions."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
    needed = 2 * max_sessions + 64
    if soft < needed:
        log.warning(
            "only %d file descriptors for --max-sessions %d (needs about %d): raise the "
            "limit (ulimit -n) or lower --max-sessions",
            soft,
            max_sessions,
            needed,
        )


def _tls(cert: str | None, key: str | None) -> ssl.SSLContext | None:
    if not cert or not key:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise SystemExit(f"error: cannot load the TLS certificate or key: {exc}") from None
    return context
