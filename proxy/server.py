"""The proxy's sockets: a websockets server whose every connection is bridged upstream.

Each connection runs in one anyio task group: a pump per socket feeds the
`ProxySession`, and a writer per socket sends what the session decided. The writers
read bounded memory streams, so frames leave in exactly the order the session chose
them (two pumps never race on one socket), and a slow peer makes the pump feeding it
wait instead of growing a buffer.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI
from websockets.http11 import Request, Response

from .errors import ErrorCode
from .redaction import redact, redacting_logger
from .session import (
    Action,
    CloseClient,
    CloseUpstream,
    FlushAudioAfter,
    ProxySession,
    SendToClient,
    SendUpstream,
    SessionOptions,
)

__all__ = ["DEFAULT_UPSTREAM_URL", "ProxyConfig", "ProxyServer"]

log = logging.getLogger("proxy.server")

DEFAULT_UPSTREAM_URL = "wss://api.openai.com/v1/realtime?model=gpt-realtime"
_OUTBOX_SIZE = 256  # frames per direction before the producing pump waits
_CLOSE_GRACE = 2.0  # seconds a closing handshake may take before we drop the socket


@dataclass(frozen=True)
class ProxyConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    path: str = "/openai"
    upstream_url: str = DEFAULT_UPSTREAM_URL
    api_key: str | None = field(default=None, repr=False)
    client_token: str | None = field(default=None, repr=False)  # require ?token= when set
    upstream_connect_timeout: float = 10.0
    max_frame_bytes: int = 1 << 20
    audio_batch_ms: int = 100
    # Answers plain HTTP requests to other paths (the test-app); None means 404.
    http_handler: Callable[[ServerConnection, Request], Response] | None = None

    def session_options(self) -> SessionOptions:
        return SessionOptions(
            api_key=self.api_key,
            max_frame_bytes=self.max_frame_bytes,
            audio_batch_ms=self.audio_batch_ms,
        )


class ProxyServer:
    """The listening proxy. `await start()`, read `url`, `await stop()`."""

    def __init__(self, config: ProxyConfig) -> None:
        self.config = config
        self.active_sessions = 0
        self._server: Server | None = None
        self._idle: anyio.Event | None = None  # created on the serving loop

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the proxy is not started")
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        return f"ws://{self.config.host}:{self.port}{self.config.path}"

    async def start(self) -> None:
        self._idle = anyio.Event()
        self._idle.set()
        self._server = await serve(
            self._handle,
            self.config.host,
            self.config.port,
            process_request=self._check_request,
            # Larger than our own limit so an oversized frame gets an Error, not a close.
            max_size=max(16 << 20, 4 * self.config.max_frame_bytes),
            compression=None,  # audio does not compress; deflate would cost CPU per frame
            close_timeout=_CLOSE_GRACE,
            logger=redacting_logger("proxy.client_ws", self.config.api_key),
        )

    async def stop(self) -> None:
        """Close every session (1001 going away) and stop listening."""
        if self._server is not None:
            self._server.close(close_connections=True)
            await self._server.wait_closed()
            self._server = None

    async def wait_idle(self, timeout: float = 5.0) -> None:
        """Wait until no session is open (on the serving loop); TimeoutError after `timeout`."""
        assert self._idle is not None, "the proxy is not started"
        with anyio.fail_after(timeout):
            await self._idle.wait()

    def _check_request(self, connection: ServerConnection, request: Request) -> Response | None:
        url = urlsplit(request.path)
        if url.path != self.config.path:
            if self.config.http_handler is not None:
                return self.config.http_handler(connection, request)
            return connection.respond(HTTPStatus.NOT_FOUND, f"no endpoint at {url.path}\n")
        if self.config.client_token is not None:
            token = parse_qs(url.query).get("token", [""])[0]
            if token != self.config.client_token:
                return connection.respond(HTTPStatus.UNAUTHORIZED, "missing or wrong ?token=\n")
        return None

    async def _handle(self, client: ServerConnection) -> None:
        self.active_sessions += 1
        if self._idle is None or self._idle.is_set():
            self._idle = anyio.Event()
        log.info("client connected from %s", _peer(client))
        try:
            await _Bridge(client, self.config).run()
        finally:
            self.active_sessions -= 1
            if not self.active_sessions and self._idle is not None:
                self._idle.set()
            log.info("client %s gone", _peer(client))


class _Bridge:
    """One client connection and its upstream connection, joined by a ProxySession."""

    def __init__(self, client: ServerConnection, config: ProxyConfig) -> None:
        self.client = client
        self.config = config
        self.session = ProxySession(config.session_options())
        self.upstream: ClientConnection | None = None
        self._to_client: tuple[MemoryObjectSendStream[Action], MemoryObjectReceiveStream[Action]]
        self._to_client = anyio.create_memory_object_stream[Action](_OUTBOX_SIZE)
        self._to_upstream: tuple[MemoryObjectSendStream[Action], MemoryObjectReceiveStream[Action]]
        self._to_upstream = anyio.create_memory_object_stream[Action](_OUTBOX_SIZE)
        self._upstream_connected = anyio.Event()
        self._tg: TaskGroup | None = None

    async def run(self) -> None:
        async with anyio.create_task_group() as tg:
            self._tg = tg
            client_writer_done, upstream_writer_done = anyio.Event(), anyio.Event()
            tg.start_soon(self._client_writer, client_writer_done)
            tg.start_soon(self._upstream_writer, upstream_writer_done)
            tg.start_soon(self._upstream_pump)
            await self._client_pump()
            # The client is gone: close upstream, let the writers drain, then stop.
            await self._dispatch(self.session.client_closed())
            self._to_client[0].close()
            self._to_upstream[0].close()
            with anyio.move_on_after(_CLOSE_GRACE):
                await client_writer_done.wait()
                await upstream_writer_done.wait()
            tg.cancel_scope.cancel()

    # ------------------------------------------------------------ pumps

    async def _client_pump(self) -> None:
        session = self.session
        try:
            async for message in self.client:
                if isinstance(message, str):
                    await self._dispatch(session.client_text(message))
                else:
                    await self._dispatch(session.client_binary(message))
        except ConnectionClosed:
            pass

    async def _upstream_pump(self) -> None:
        upstream = await self._connect_upstream()
        if upstream is None:
            return
        session = self.session
        try:
            while True:
                message = await upstream.recv(decode=False)
                await self._dispatch(session.upstream_message(message))
        except ConnectionClosed as closed:
            code = closed.rcvd.code if closed.rcvd else None
            reason = closed.rcvd.reason if closed.rcvd else ""
            log.info("upstream closed (code %s)", code)
            await self._dispatch(session.upstream_closed(code, redact(reason, self.config.api_key)))
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(_CLOSE_GRACE):
                await upstream.close()

    async def _connect_upstream(self) -> ClientConnection | None:
        headers = {"Authorization": f"Bearer {self.config.api_key}"} if self.config.api_key else {}
        failure: tuple[ErrorCode, str]
        try:
            with anyio.fail_after(self.config.upstream_connect_timeout):
                self.upstream = await connect(
                    self.config.upstream_url,
                    additional_headers=headers,
                    max_size=None,
                    compression=None,
                    open_timeout=None,
                    close_timeout=_CLOSE_GRACE,
                    logger=redacting_logger("proxy.upstream_ws", self.config.api_key),
                )
            self._upstream_connected.set()
            return self.upstream
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
                f"upstream did not answer within {self.config.upstream_connect_timeout:g} s",
            )
        except (OSError, InvalidHandshake, InvalidURI) as exc:
            failure = (ErrorCode.UPSTREAM_UNAVAILABLE, f"cannot reach upstream: {exc}")
        code, description = failure
        description = redact(description, self.config.api_key)
        log.warning("upstream connection failed: %s", description)
        self._upstream_connected.set()
        await self._dispatch(self.session.upstream_failed(code, description))
        return None

    # ------------------------------------------------------------ routing and writers

    async def _dispatch(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, FlushAudioAfter):
                assert self._tg is not None
                self._tg.start_soon(self._flush_audio_after, action.seconds)
                continue
            outbox = (
                self._to_client[0]
                if isinstance(action, SendToClient | CloseClient)
                else self._to_upstream[0]
            )
            try:
                outbox.send_nowait(action)
            except anyio.WouldBlock:
                await outbox.send(action)  # backpressure: the peer is slower than its feed
            except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                return  # shutting down

    async def _flush_audio_after(self, seconds: float) -> None:
        await anyio.sleep(seconds)
        await self._dispatch(self.session.flush_audio())

    async def _client_writer(self, done: anyio.Event) -> None:
        try:
            async for action in _drain(self._to_client[1]):
                try:
                    if isinstance(action, SendToClient):
                        await self.client.send(action.payload, text=action.text)
                    elif isinstance(action, CloseClient):
                        await self.client.close(action.code, action.reason)
                except ConnectionClosed:
                    pass  # the client pump sees the close and ends the bridge
        finally:
            done.set()

    async def _upstream_writer(self, done: anyio.Event) -> None:
        try:
            async for action in _drain(self._to_upstream[1]):
                if not self._upstream_connected.is_set():
                    await self._upstream_connected.wait()
                upstream = self.upstream
                if upstream is None:
                    continue  # never connected: nothing to send or close
                try:
                    if isinstance(action, SendUpstream):
                        await upstream.send(action.payload, text=True)
                    elif isinstance(action, CloseUpstream):
                        await upstream.close(action.code, action.reason)
                except ConnectionClosed:
                    pass  # the upstream pump reports it
        finally:
            done.set()


async def _drain(stream: MemoryObjectReceiveStream[Action]) -> AsyncIterator[Action]:
    """Yield queued actions without a scheduler round trip while some are waiting."""
    async with stream:
        while True:
            try:
                yield stream.receive_nowait()
            except anyio.WouldBlock:
                try:
                    yield await stream.receive()
                except anyio.EndOfStream:
                    return
            except anyio.EndOfStream:
                return


def _peer(connection: ServerConnection) -> str:
    address = connection.remote_address
    return f"{address[0]}:{address[1]}" if address else "?"
