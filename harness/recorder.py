"""The recording relay: tap a live Realtime session into a cassette.

It sits between a Realtime client (our proxy, or yours) and an upstream (the real
OpenAI API, or the mock): point the client's upstream URL at the relay, and every frame
both ways is passed on untouched and written to a cassette (`harness.cassette`) with its
time. The client's own ``Authorization`` header is passed upstream; the relay never
writes it (no header is recorded, and the key is scrubbed from every line).

    python -m harness.recorder --cassette weather.jsonl \\
        --upstream "wss://api.openai.com/v1/realtime?model=gpt-realtime"
    # prints: recording relay on ws://127.0.0.1:9100/v1/realtime?model=gpt-realtime
    OPENAI_API_KEY=sk-... OPENAI_REALTIME_URL=ws://127.0.0.1:9100/v1/realtime?model=gpt-realtime \\
        python -m proxy

Then ``mock_openai.replay("weather.jsonl")`` serves it back in tests, with no key.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import weakref
from pathlib import Path
from typing import IO, Final
from urllib.parse import urlsplit, urlunsplit

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.http11 import Request, Response

from proxy.redaction import redacting_logger

from .background import BackgroundLoop
from .cassette import CassetteWriter, Origin
from .cli import run_until_stopped, until_stopped
from .endpoint import ProxyEndpoint

__all__ = ["Recording", "RecordingRelay", "main"]

#: Request headers passed upstream besides Authorization (none of them is recorded).
_FORWARDED: Final = ("openai-organization", "openai-project", "openai-beta", "user-agent")
_log = redacting_logger("harness.recorder.wire", None)


class RecordingRelay:
    """A WebSocket relay to `upstream_url` that writes what passes into a cassette.

    ``await start()`` on any loop, point the client at `url`, ``await stop()`` to close
    the cassette. Each connection through it is recorded as the next connection number.
    """

    def __init__(
        self,
        upstream_url: str,
        cassette: Path | IO[str],
        *,
        trim_audio: bool = False,
        upstream_timeout: float = 10.0,
    ) -> None:
        self.upstream_url = upstream_url
        self._writer = CassetteWriter(cassette, upstream=upstream_url, trim_audio=trim_audio)
        self._timeout = upstream_timeout
        self._server: Server | None = None
        self._connections = 0
        self._path = urlsplit(upstream_url).path or "/"
        # Handshake -> handler hand-over, as in the mock.
        self._pending: weakref.WeakKeyDictionary[
            ServerConnection, tuple[int, ClientConnection, float]
        ] = weakref.WeakKeyDictionary()

    @property
    def url(self) -> str:
        """Where clients connect: the relay's address with the upstream's path and query."""
        if self._server is None:
            raise RuntimeError("the relay is not started")
        host, port = self._server.sockets[0].getsockname()[:2]
        query = urlsplit(self.upstream_url).query
        return urlunsplit(("ws", f"{host}:{port}", self._path, query, ""))

    @property
    def connections(self) -> int:
        """How many connections went through so far."""
        return self._connections

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._server = await serve(
            self._relay,
            host,
            port,
            process_request=self._open_upstream,
            compression=None,
            max_size=None,
            ping_interval=None,
            logger=_log,
        )

    async def stop(self) -> None:
        """Close every relayed connection (1001) and the cassette."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        self._writer.close()

    def _upstream_target(self, request_path: str) -> str:
        """The upstream URL for a request: the client's query (the model) wins."""
        upstream = urlsplit(self.upstream_url)
        query = urlsplit(request_path).query or upstream.query
        return urlunsplit((upstream.scheme, upstream.netloc, upstream.path, query, ""))

    async def _open_upstream(self, ws: ServerConnection, request: Request) -> Response | None:
        headers: dict[str, str] = {}
        authorization = request.headers.get("Authorization")
        if authorization is not None:
            headers["Authorization"] = authorization
            self._writer.add_secret(authorization.split(" ", 1)[-1].strip())
        for name in _FORWARDED:
            if name in request.headers:
                headers[name] = request.headers[name]
        index = self._connections
        self._connections += 1
        try:
            upstream = await connect(
                self._upstream_target(request.path),
                additional_headers=headers,
                open_timeout=self._timeout,
                max_size=None,
                compression=None,
                ping_interval=None,
                logger=_log,
            )
        except InvalidStatus as refused:
            self._writer.refused(index, request.path, refused.response.status_code)
            response = ws.respond(refused.response.status_code, refused.response.body.decode())
            del response.headers["Content-Type"]
            response.headers["Content-Type"] = "application/json"
            return response
        except (OSError, TimeoutError, InvalidHandshake) as exc:
            message = {"error": {"message": f"the relay cannot reach the upstream: {exc}"}}
            return ws.respond(502, orjson.dumps(message).decode())
        self._writer.opened(index, request.path)
        self._pending[ws] = (index, upstream, asyncio.get_running_loop().time())
        return None

    async def _relay(self, ws: ServerConnection) -> None:
        index, upstream, opened = self._pending.pop(ws)
        loop = asyncio.get_running_loop()

        async def pump(
            source: ServerConnection | ClientConnection,
            target: ServerConnection | ClientConnection,
            origin: Origin,
        ) -> None:
            with contextlib.suppress(ConnectionClosed):
                async for frame in source:
                    self._writer.frame(index, loop.time() - opened, origin, frame)
                    await target.send(frame)

        to_upstream = asyncio.create_task(pump(ws, upstream, "client"))
        to_client = asyncio.create_task(pump(upstream, ws, "server"))
        done, _ = await asyncio.wait({to_upstream, to_client}, return_when=asyncio.FIRST_COMPLETED)
        upstream_closed = to_client in done
        closer, other = (upstream, ws) if upstream_closed else (ws, upstream)
        received = closer.protocol.close_rcvd
        code = received.code if received is not None else 1006
        reason = received.reason if received is not None else ""
        self._writer.closed(
            index, loop.time() - opened, "server" if upstream_closed else "client", code, reason
        )
        # Pass the close on; 1005/1006 cannot be sent in a close frame.
        await other.close(code if code not in (1005, 1006) else 1011, reason)
        for task in (to_upstream, to_client):
            task.cancel()
        await asyncio.gather(to_upstream, to_client, return_exceptions=True)


class Recording:
    """A proxy whose upstream goes through a recording relay (the `cassette_recorder`
    fixture's answer): talk to `url`, then `finish()` to get the cassette written."""

    def __init__(
        self, proxy: ProxyEndpoint, relay: RecordingRelay, loop: BackgroundLoop, path: Path
    ) -> None:
        self.proxy = proxy
        self.relay = relay
        self.path = path
        self._loop = loop
        self._finished = False

    @property
    def url(self) -> str:
        """The proxy's URL, for the component client or the browser app."""
        return self.proxy.url

    async def finish(self, timeout: float = 5.0) -> Path:
        """Wait until the proxy's sessions are over, then close the cassette."""
        await self.proxy.wait_idle(timeout)
        await asyncio.wrap_future(self._loop.submit(self._stop()))
        return self.path

    def finish_sync(self, timeout: float = 5.0) -> Path:
        """Blocking `finish`, for sync tests."""
        self.proxy.wait_idle_sync(timeout)
        self._loop.run(self._stop())
        return self.path

    async def _stop(self) -> None:
        if not self._finished:
            self._finished = True
            await self.relay.stop()


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m harness.recorder",
        description="Relay Realtime connections to an upstream and record them in a cassette.",
    )
    parser.add_argument("--cassette", required=True, type=Path, help="the .jsonl file to write")
    parser.add_argument(
        "--upstream",
        default="wss://api.openai.com/v1/realtime?model=gpt-realtime",
        help="the upstream Realtime URL (default: the real OpenAI API)",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100, help="default 9100; 0: any free port")
    parser.add_argument(
        "--trim-audio", action="store_true", help="record audio sizes only (smaller cassettes)"
    )
    return parser.parse_args(argv)


async def _serve(args: argparse.Namespace) -> None:
    relay = RecordingRelay(args.upstream, args.cassette, trim_audio=args.trim_audio)
    await relay.start(args.host, args.port)
    print(f"recording relay on {relay.url} -> {args.upstream}", flush=True)
    print(f"writing {args.cassette}", flush=True)
    try:
        await until_stopped()
    finally:
        await relay.stop()
        print(f"recorded {relay.connections} connection(s)", flush=True)


def main(argv: list[str] | None = None) -> int:
    return run_until_stopped(_serve(_parse(argv)))


if __name__ == "__main__":
    sys.exit(main())
