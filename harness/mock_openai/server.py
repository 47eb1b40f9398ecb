"""`MockRealtime`: a scriptable OpenAI Realtime (GA) WebSocket server for tests.

The server runs on whatever asyncio loop calls `start()` (a `BackgroundLoop` thread in
the test harness, or the proxy's own loop when there is no API key). Every public
method may be called from any thread; scripting and inspection never need the loop.

Each connection has a `RealtimeSession` (behaviour.py) that turns client events into
steps, one outbox queue, and one writer task, so events leave in the order they were
produced whichever task (event handler, response, push from a test) produced them.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import logging
import re
import threading
import traceback
import weakref
from collections.abc import Callable, Iterable
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

import orjson
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from harness.schema import SchemaError, decode_event, validate_server_event
from proxy.redaction import redacting_logger

from .behaviour import DEFAULT_MODEL, RealtimeSession
from .journal import EventPredicate, Journal, Watch
from .responses import ResponseRun
from .script import Action, RejectHandshake, Rule, RuleBook, TextMatcher, Trigger
from .steps import (
    CloseConnection,
    Fail,
    Send,
    SendRaw,
    Sleep,
    StartResponse,
    Step,
    StopResponse,
    new_id,
)

__all__ = ["MockConnection", "MockRealtime"]

log = logging.getLogger(__name__)


#: The websockets server's own logger for the mock (handshake lines, connection state).
#: websockets logs every handshake header at DEBUG: the filter keeps the key out.
wire_log = redacting_logger(f"{__name__}.wire", None)

REALTIME_PATH: Final = "/v1/realtime"
_OUTBOX_CLOSE: Final = object()

_HTTP_ERRORS: Final[dict[int, tuple[str, str | None, str]]] = {
    400: ("invalid_request_error", None, "Bad request."),
    401: (
        "invalid_request_error",
        "invalid_api_key",
        "Incorrect API key provided. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
    ),
    403: ("invalid_request_error", "unsupported_country_region_territory", "Forbidden."),
    404: ("invalid_request_error", None, "Not found."),
    429: (
        "insufficient_quota",
        "insufficient_quota",
        "You exceeded your current quota, please check your plan and billing details.",
    ),
    500: ("server_error", None, "The server had an error while processing your request."),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
}
_MISSING_KEY_MESSAGE: Final = (
    "You didn't provide an API key. You need to provide your API key in an Authorization "
    "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
)


class MockConnection:
    """One WebSocket connection (or refused handshake) the mock has seen.

    Safe to read from any thread. `received` and `sent` are copies taken when read.
    """

    def __init__(self, index: int, path: str, request_headers: dict[str, str]) -> None:
        self.index = index
        self.path = path
        """Request path including the query, e.g. ``/v1/realtime?model=gpt-realtime``."""
        self.request_headers = request_headers
        """Handshake headers, names lower-cased. Holds the Authorization header: never log it."""
        self.rejected_status: int | None = None
        """The HTTP status when the mock refused the handshake, else None."""
        self.close_code: int | None = None
        self.close_reason: str = ""
        self._lock = threading.Lock()
        self._received: list[dict[str, Any]] = []
        self._sent: list[dict[str, Any]] = []
        self._closed = False
        self._detached = False  # after reset(): no longer reported to the mock
        # Owned by the loop thread:
        self._ws: ServerConnection | None = None
        self._session: RealtimeSession | None = None
        self._outbox: asyncio.Queue[Any] | None = None
        self._closing: asyncio.Event | None = None
        self._deaf: asyncio.Event | None = None  # set: the socket is no longer read
        self._tasks: set[asyncio.Task[None]] = set()

    def __repr__(self) -> str:  # no headers: they hold the API key
        state = "closed" if self.closed else "open"
        return f"<MockConnection #{self.index} {self.path} {state} close_code={self.close_code}>"

    @property
    def model(self) -> str:
        """The `model` query parameter (default gpt-realtime)."""
        values = parse_qs(urlsplit(self.path).query).get("model")
        return values[0] if values else DEFAULT_MODEL

    @property
    def received(self) -> list[dict[str, Any]]:
        """Events this client sent (parsed), in order."""
        with self._lock:
            return list(self._received)

    @property
    def sent(self) -> list[dict[str, Any]]:
        """Events the mock sent to this client, in order."""
        with self._lock:
            return list(self._sent)

    @property
    def closed(self) -> bool:
        with self._lock:
            return self._closed

    def conversation(self) -> list[dict[str, Any]]:
        """The conversation items as the mock holds them now (snapshots)."""
        session = self._session
        return session.conversation.snapshots() if session is not None else []


class MockRealtime:
    """A scriptable mock of the OpenAI Realtime GA API on a real WebSocket.

    Lifecycle: ``await start()`` on the loop that should serve, ``url`` to connect,
    ``reset()`` between tests, ``check()`` to surface failures, ``await stop()``.
    Scripting (``on_user_text(...).reply_with_audio(...)``) and inspection
    (``received()``, ``wait_for()``) work from any thread or loop.
    """

    def __init__(self, api_key: str | None = None, *, journal: bool = True) -> None:
        """`api_key`: when set, only ``Authorization: Bearer <api_key>`` is accepted;
        otherwise any Bearer key is. `journal=False` keeps no record of the events either
        way (`received()`, `sent()`, `wait_for()` see nothing), so memory stays flat in
        long-running use: the proxy's no-key mode, the standalone CLI."""
        self._api_key = api_key
        self._keep_journal = journal
        self._rules = RuleBook()
        self._journal = Journal()
        self._watch = Watch()  # guards connections, failures, flags
        self._connections: list[MockConnection] = []
        self._failures: list[str] = []
        self._allow_invalid = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: Server | None = None
        self._host = "127.0.0.1"
        self._port = 0
        self._closing_tasks: set[asyncio.Task[None]] = set()
        # Handshake -> handler hand-over; weak, so refused or aborted handshakes vanish.
        self._pending: weakref.WeakKeyDictionary[
            ServerConnection, tuple[MockConnection, tuple[Action, ...] | None]
        ] = weakref.WeakKeyDictionary()

    # --- lifecycle ----------------------------------------------------------------------
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Listen on `host`:`port` (0: any free port), serving on the running loop."""
        if self._server is not None:
            raise RuntimeError("MockRealtime is already started")
        self._loop = asyncio.get_running_loop()
        self._thread = threading.current_thread()
        self._server = await serve(
            self._serve_connection,
            host,
            port,
            process_request=self._process_request,
            compression=None,
            max_size=16 * 2**20,
            ping_interval=None,
            close_timeout=2,
            logger=wire_log,
        )
        self._host = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
        self._port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Close every connection (1001) and stop listening."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close(close_connections=False)
        await self._close(self.connections, 1001, "server shutting down", wait=True)
        await server.wait_closed()

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        """``ws://HOST:PORT/v1/realtime?model=gpt-realtime``."""
        return f"ws://{self._host}:{self._port}{REALTIME_PATH}?model={DEFAULT_MODEL}"

    def reset(self) -> None:
        """Back to default behaviour: forget rules, journal, failures and connections,
        and close open connections (1000). Safe from any thread."""
        self._rules.clear()
        self._journal.clear()
        with self._watch:
            old, self._connections = self._connections, []
            self._failures.clear()
            self._allow_invalid = False
            for connection in old:
                connection._detached = True
        self._watch.notify()
        open_ones = [c for c in old if not c.closed]
        if open_ones:
            self._run_in_loop(self._close(open_ones, 1000, "reset", wait=False), wait=True)

    def check(self) -> None:
        """Raise AssertionError listing every failure recorded inside the mock since the
        last reset: invalid client events, handler exceptions, invalid scripted events."""
        failures = self.failures
        if failures:
            lines = "\n".join(f"  {n}. {text}" for n, text in enumerate(failures, 1))
            raise AssertionError(
                f"the mock OpenAI Realtime recorded {len(failures)} failure(s):\n{lines}"
            )

    @property
    def failures(self) -> list[str]:
        with self._watch:
            return list(self._failures)

    def allow_invalid_client_events(self, allow: bool = True) -> None:
        """Still answer invalid client events with an error event, but do not record
        them as failures (for tests that send them on purpose). Reset by `reset()`."""
        with self._watch:
            self._allow_invalid = allow

    # --- journal ------------------------------------------------------------------------
    def received(self, type: str | None = None) -> list[dict[str, Any]]:
        """Events clients sent since the last reset (all connections, arrival order)."""
        return self._journal.received(type)

    def sent(self, type: str | None = None) -> list[dict[str, Any]]:
        """Events the mock sent since the last reset (all connections, per connection order)."""
        events = [e for c in self.connections for e in c.sent]
        return events if type is None else [e for e in events if e.get("type") == type]

    async def wait_for(
        self,
        type: str | None,
        *,
        count: int = 1,
        timeout: float = 5.0,
        where: EventPredicate | None = None,
    ) -> dict[str, Any]:
        """Wait for the `count`-th client event of `type` (matching `where`) and return it.

        Works on any event loop, including one that is not the mock's. Raises
        AssertionError naming what was received instead on timeout.
        """
        return await self._journal.wait_for(type, count=count, timeout=timeout, where=where)

    def wait_for_sync(
        self,
        type: str | None,
        *,
        count: int = 1,
        timeout: float = 5.0,
        where: EventPredicate | None = None,
    ) -> dict[str, Any]:
        """Blocking `wait_for` for sync tests (not from the mock's own loop thread)."""
        self._refuse_blocking_in_loop()
        return self._journal.wait_for_sync(type, count=count, timeout=timeout, where=where)

    def assert_received_in_order(self, types: Iterable[str]) -> None:
        """Assert the client events include `types` in this order (others may interleave)."""
        self._journal.assert_received_in_order(types)

    @property
    def connections(self) -> list[MockConnection]:
        """Every handshake since the last reset, refused ones included, in order."""
        with self._watch:
            return list(self._connections)

    async def wait_for_connections(self, n: int, timeout: float = 5.0) -> list[MockConnection]:
        """Wait until `n` handshakes arrived since the last reset; return the connections."""
        result = await self._watch.wait_async(self._connections_check(n), timeout)
        if result is None:
            raise AssertionError(self._connections_timeout(n, timeout))
        return result

    def wait_for_connections_sync(self, n: int, timeout: float = 5.0) -> list[MockConnection]:
        """Blocking `wait_for_connections` for sync tests."""
        self._refuse_blocking_in_loop()
        result = self._watch.wait_sync(self._connections_check(n), timeout)
        if result is None:
            raise AssertionError(self._connections_timeout(n, timeout))
        return result

    def _connections_check(self, n: int) -> Callable[[], list[MockConnection] | None]:
        def check() -> list[MockConnection] | None:
            return list(self._connections) if len(self._connections) >= n else None

        return check

    def _connections_timeout(self, n: int, timeout: float) -> str:
        return (
            f"timed out after {timeout:g}s waiting for {n} connection(s) to the mock; "
            f"got {len(self.connections)}"
        )

    # --- scripting ----------------------------------------------------------------------
    def on_user_text(self, text: TextMatcher = None) -> Rule:
        """A response to a user text turn whose text contains `text` (str), matches it
        (re.Pattern), or any text (None)."""
        what = "any user text" if text is None else f"user text {_describe(text)}"
        return self._rules.new_rule(Trigger.USER_TEXT, what, text=text)

    def on_user_speech(self) -> Rule:
        """A spoken user turn: `transcribe_as` sets what the mock hears; reply actions
        set the response to it."""
        return self._rules.new_rule(Trigger.USER_SPEECH, "user speech")

    def on_function_output(self, name: str | None = None) -> Rule:
        """A response after a function_call_output for a call of function `name` (None:
        any)."""
        what = "any function output" if name is None else f"output of function {name!r}"
        return self._rules.new_rule(Trigger.FUNCTION_OUTPUT, what, function=name)

    def on_client_event(self, type: str, where: EventPredicate | None = None) -> Rule:
        """Any valid client event of `type` (optionally matching `where`). Only-stall
        rules delay the default handling; other actions replace it."""
        return self._rules.new_rule(
            Trigger.CLIENT_EVENT, f"client event {type!r}", event_type=type, where=where
        )

    def on_connect(self) -> Rule:
        """A new connection: actions run before `session.created` (only stalls) or
        instead of it; `reject_handshake` refuses the upgrade."""
        return self._rules.new_rule(Trigger.CONNECT, "new connection")

    def push(self, event: dict[str, Any], connection: int | None = None) -> None:
        """Send a server event now to every open connection (or connection #`connection`).

        The event is validated here: an invalid one raises `SchemaError` and is not sent.
        A missing `event_id` is filled in.
        """
        event = dict(event)
        event.setdefault("event_id", new_id("event"))
        validate_server_event(event)
        payload = orjson.dumps(event)
        for target in self._targets(connection):
            self._call_in_loop(self._enqueue, target, payload, True, event)

    def push_garbage(self, data: str | bytes = "not json{", connection: int | None = None) -> None:
        """Fault: send a frame the real API never would (text for str, binary for bytes)."""
        for target in self._targets(connection):
            self._call_in_loop(self._enqueue, target, data, isinstance(data, str), None)

    def stop_reading(self, connection: int | None = None) -> None:
        """Fault: stop reading what the client sends (a deaf upstream that still talks).

        The client's frames pile up in websockets' queue and then in the TCP buffers, so
        its writes eventually block, as with a wedged server."""
        for target in self._targets(connection):
            self._call_in_loop(_set_deaf, target)

    def close_connections(self, code: int = 1011, reason: str = "") -> None:
        """Close every open connection with `code`, after what is already queued."""
        for target in self._targets(None):
            self._call_in_loop(self._enqueue_close, target, code, reason)

    # --- internals: threads -----------------------------------------------------------
    def _in_loop_thread(self) -> bool:
        return self._thread is threading.current_thread()

    def _refuse_blocking_in_loop(self) -> None:
        if self._in_loop_thread():
            raise RuntimeError(
                "a blocking wait on the mock's own loop thread would deadlock; use `await`"
            )

    def _call_in_loop(self, function: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        if self._in_loop_thread():
            function(*args)
        else:
            loop.call_soon_threadsafe(function, *args)

    def _run_in_loop(self, coroutine: Any, *, wait: bool) -> None:
        loop = self._loop
        if loop is None or loop.is_closed() or not loop.is_running():
            coroutine.close()
            return
        if self._in_loop_thread():
            loop.create_task(coroutine)
            return
        future = asyncio.run_coroutine_threadsafe(coroutine, loop)
        if wait:
            with contextlib.suppress(Exception):
                future.result(timeout=5)

    def _targets(self, connection: int | None) -> list[MockConnection]:
        connections = self.connections
        if connection is None:
            return [c for c in connections if not c.closed and c.rejected_status is None]
        if not 0 <= connection < len(connections):
            raise IndexError(
                f"no connection #{connection}: the mock has {len(connections)} since the last reset"
            )
        return [connections[connection]]

    def _fail(
        self, connection: MockConnection, message: str, *, invalid_client: bool = False
    ) -> None:
        with self._watch:
            if connection._detached or (invalid_client and self._allow_invalid):
                return
            self._failures.append(f"connection #{connection.index}: {message}")
        self._watch.notify()
        log.debug("mock failure on connection #%d: %s", connection.index, message)

    # --- internals: handshake -----------------------------------------------------------
    def _register(self, path: str, headers: dict[str, str]) -> MockConnection:
        with self._watch:
            connection = MockConnection(len(self._connections), path, headers)
            self._connections.append(connection)
        self._watch.notify()
        return connection

    def _process_request(self, ws: ServerConnection, request: Request) -> Response | None:
        headers: dict[str, str] = {}
        for name, value in request.headers.raw_items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        connection = self._register(request.path, headers)
        if urlsplit(request.path).path.rstrip("/") != REALTIME_PATH:
            error = {
                "message": f"Invalid URL (GET {urlsplit(request.path).path})",
                "type": "invalid_request_error",
                "param": None,
                "code": None,
            }
            return self._refuse(ws, connection, 404, error)
        if "openai-beta" in headers and "realtime" in headers["openai-beta"]:
            self._fail(
                connection,
                "the client sent 'OpenAI-Beta: realtime=v1': that selects the beta protocol, "
                "but this project speaks the GA API",
            )
        match = re.fullmatch(r"Bearer\s+(\S+)\s*", headers.get("authorization", ""))
        if match is None:
            error = {
                "message": _MISSING_KEY_MESSAGE,
                "type": "invalid_request_error",
                "param": None,
                "code": None,
            }
            return self._refuse(ws, connection, 401, error)
        if self._api_key is not None and match.group(1) != self._api_key:
            return self._refuse(ws, connection, 401)
        actions = self._rules.match(Trigger.CONNECT)
        for action in actions or ():
            if isinstance(action, RejectHandshake):
                return self._refuse(ws, connection, action.status)
        self._pending[ws] = (connection, actions)
        return None

    def _refuse(
        self,
        ws: ServerConnection,
        connection: MockConnection,
        status: int,
        error: dict[str, Any] | None = None,
    ) -> Response:
        """Refuse the upgrade with an OpenAI-style JSON error body."""
        if error is None:
            kind, code, message = _HTTP_ERRORS.get(
                status, ("server_error", None, _status_phrase(status))
            )
            error = {"message": message, "type": kind, "param": None, "code": code}
        body = {"error": error}
        response = ws.respond(status, orjson.dumps(body).decode())
        del response.headers["Content-Type"]
        response.headers["Content-Type"] = "application/json"
        with connection._lock:
            connection.rejected_status = status
            connection._closed = True
        self._watch.notify()
        return response

    # --- internals: serving ----------------------------------------------------------------
    async def _serve_connection(self, ws: ServerConnection) -> None:
        connection, actions = self._pending.pop(ws)
        session = RealtimeSession(self._rules, model=connection.model)
        connection._ws = ws
        connection._session = session
        connection._outbox = asyncio.Queue()
        connection._closing = asyncio.Event()
        connection._deaf = asyncio.Event()
        writer = asyncio.create_task(self._write(connection, ws))
        crashed = False
        try:
            await self._execute(connection, session.open(actions))
            async for message in ws:
                if connection._closing.is_set():
                    break
                if connection._deaf.is_set():
                    await _until_closed(connection._closing, ws)
                    break
                if isinstance(message, bytes):
                    steps: Iterable[Step] = session.reject_frame(
                        "Binary frames are not supported: send events as JSON text frames.",
                        message,
                    )
                else:
                    try:
                        event = decode_event(message)
                    except SchemaError as exc:
                        steps = session.reject_frame(exc.api_message, message)
                    else:
                        self._record(connection, event)
                        steps = session.receive(event)
                await self._execute(connection, steps)
        except ConnectionClosed:
            pass
        except Exception:
            crashed = True
            self._fail(
                connection, f"the mock's connection handler raised:\n{traceback.format_exc()}"
            )
        finally:
            connection._closing.set()
            tasks = list(connection._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if not writer.done():
                # Let queued events (and a queued close) go out before we return.
                connection._outbox.put_nowait(_OUTBOX_CLOSE)
                with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                    await asyncio.wait_for(writer, timeout=5)
            # A no-op when the connection is already closed or closing.
            await ws.close(1011 if crashed else 1000, "mock failure" if crashed else "")
            with connection._lock:
                connection._closed = True
                connection.close_code = ws.close_code
                connection.close_reason = ws.close_reason or ""
            self._watch.notify()

    def _record(self, connection: MockConnection, event: dict[str, Any]) -> None:
        if not self._keep_journal:
            return
        with connection._lock:
            connection._received.append(event)
            detached = connection._detached
        if not detached:
            self._journal.record(event)

    async def _execute(self, connection: MockConnection, steps: Iterable[Step]) -> None:
        """Carry out steps in order; record (never raise) what goes wrong."""
        closing = connection._closing
        assert closing is not None
        iterator = iter(steps)
        while not closing.is_set():
            try:
                step = next(iterator, None)
                if step is None or not await self._do(connection, step, closing):
                    return
            except Exception:
                self._fail(connection, f"the mock's behaviour raised:\n{traceback.format_exc()}")
                return

    async def _do(self, connection: MockConnection, step: Step, closing: asyncio.Event) -> bool:
        """Carry out one step; False when the sequence must end (the connection closes)."""
        if isinstance(step, Send):
            self._send(connection, step.event)
        elif isinstance(step, Sleep):
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(closing.wait(), step.seconds)
        elif isinstance(step, SendRaw):
            self._enqueue(connection, step.data, isinstance(step.data, str), None)
        elif isinstance(step, CloseConnection):
            self._enqueue_close(connection, step.code, step.reason)
            return False
        elif isinstance(step, StartResponse):
            self._start_response(connection, step.run)
        elif isinstance(step, StopResponse):
            task = step.run.task
            if task is not None and task is not asyncio.current_task():
                task.cancel()
        elif isinstance(step, Fail):
            self._fail(connection, step.message, invalid_client=step.invalid_client_event)
        return True

    def _start_response(self, connection: MockConnection, run: ResponseRun) -> None:
        task = asyncio.create_task(self._execute(connection, run.steps))
        run.task = task
        connection._tasks.add(task)
        task.add_done_callback(connection._tasks.discard)

    def _send(self, connection: MockConnection, event: dict[str, Any]) -> None:
        if "event_id" not in event:
            event["event_id"] = new_id("event")
        try:
            validate_server_event(event)
        except SchemaError as exc:
            self._fail(connection, f"the mock refused to send an invalid server event:\n{exc}")
            return
        self._enqueue(connection, orjson.dumps(event), True, event)

    def _enqueue(
        self,
        connection: MockConnection,
        payload: str | bytes,
        text: bool,
        event: dict[str, Any] | None,
    ) -> None:
        outbox = connection._outbox
        if outbox is not None and not connection.closed:
            outbox.put_nowait((payload, text, event))

    def _enqueue_close(self, connection: MockConnection, code: int, reason: str) -> None:
        outbox = connection._outbox
        if outbox is not None and not connection.closed:
            outbox.put_nowait((_OUTBOX_CLOSE, code, reason))

    async def _write(self, connection: MockConnection, ws: ServerConnection) -> None:
        outbox = connection._outbox
        assert outbox is not None
        try:
            while True:
                item = await outbox.get()
                if item is _OUTBOX_CLOSE:
                    return
                payload, second, third = item
                if payload is _OUTBOX_CLOSE:  # (marker, code, reason): a scripted close
                    assert connection._closing is not None
                    connection._closing.set()
                    await ws.close(second, third)
                    return
                await ws.send(payload, text=second)
                if third is not None and self._keep_journal:
                    with connection._lock:
                        connection._sent.append(third)
        except ConnectionClosed:
            pass

    async def _close(
        self, connections: list[MockConnection], code: int, reason: str, *, wait: bool
    ) -> None:
        """Close `connections` now. Without `wait`, return once the close frames are sent:
        a client whose loop is blocked (a sync fixture calling reset()) cannot answer."""
        tasks = []
        for connection in connections:
            if connection._closing is not None:
                connection._closing.set()
            if connection._ws is not None:
                task = asyncio.create_task(connection._ws.close(code, reason))
                self._closing_tasks.add(task)
                task.add_done_callback(self._closing_tasks.discard)
                tasks.append(task)
        if wait:
            await asyncio.gather(*tasks, return_exceptions=True)
        else:
            await asyncio.sleep(0)  # let each close() send its frame


def _set_deaf(connection: MockConnection) -> None:
    if connection._deaf is not None:
        connection._deaf.set()


async def _until_closed(closing: asyncio.Event, ws: ServerConnection) -> None:
    """Wait, reading nothing, until the mock closes the connection or it is lost."""
    waits = [asyncio.ensure_future(closing.wait()), asyncio.ensure_future(ws.wait_closed())]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()


def _describe(text: str | re.Pattern[str]) -> str:
    return f"containing {text!r}" if isinstance(text, str) else f"matching /{text.pattern}/"


def _status_phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"
