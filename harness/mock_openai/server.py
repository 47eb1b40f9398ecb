"""`MockRealtime`: a scriptable OpenAI Realtime (GA) WebSocket server for tests.

This module is the mock's public façade: lifecycle, scripting, the journal, faults and
the verdict (`check()`). The server runs on whatever asyncio loop calls `start()` (a
`BackgroundLoop` thread in the test harness, or the proxy's own loop when there is no
API key); every public method may be called from any thread.

Each accepted connection gets a `ConnectionRuntime` (connection.py) serving a session
model: the service model (service.py) by default, or a cassette being replayed
(replay.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import logging
import os
import re
import threading
import weakref
from collections.abc import Callable, Coroutine, Iterable
from pathlib import Path
from typing import Any, Final, TypeAlias
from urllib.parse import urlsplit

import orjson
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from harness.schema import validate_server_event
from harness.speech import speech_available
from proxy.redaction import redacting_logger

from .audio import VoiceName, voice_named
from .connection import ConnectionRuntime, MockConnection, SessionModel
from .journal import Journal
from .left_out import LeftOutFields
from .patterns import EventFilter
from .replay import Cassette, CassetteReplay
from .responses import FailureKind
from .rules import Match, Rule, RuleBook, TextMatcher, Trigger, check_phrase
from .rules_json import rules_from_json
from .service import DEFAULT_MODEL, SESSION_LIFETIME_S, RealtimeSession
from .steps import RejectHandshake, new_id
from .watch import Watch

__all__ = ["ADMIN_PATH", "REALTIME_PATH", "MockRealtime"]

log = logging.getLogger(__name__)

#: The websockets server's own logger for the mock (handshake lines, connection state).
#: websockets logs every handshake header at DEBUG: the filter keeps the key out.
wire_log = redacting_logger(f"{__name__}.wire", None)

REALTIME_PATH: Final = "/v1/realtime"
ADMIN_PATH: Final = "/__admin"
#: The listen host -> the connection class that serves it (see `add_front_door`).
FrontDoor: TypeAlias = Callable[[str], type[ServerConnection]]

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


class MockRealtime:
    """A scriptable mock of the OpenAI Realtime GA API on a real WebSocket.

    Lifecycle: ``await start()`` on the loop that should serve, ``url`` to connect,
    ``reset()`` between tests, ``check()`` for the verdict, ``await stop()``.
    Scripting (``on_user_text(...).reply_with_audio(...)``) and inspection
    (``received()``, ``wait_for()``) work from any thread or loop.
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        journal: bool = True,
        voice: VoiceName = "tone",
    ) -> None:
        """`api_key`: when set, only ``Authorization: Bearer <api_key>`` is accepted;
        otherwise any Bearer key is. `journal=False` keeps no record of the events either
        way (`received()`, `sent()`, `wait_for()` see nothing), so memory stays flat in
        long-running use. `voice` is how replies sound: ``"tone"`` (default) or
        ``"speech"`` (needs espeak-ng). The HTTP admin API wraps a mock from outside:
        `harness.mock_openai.admin.serve_admin_api(mock)`."""
        self._api_key = api_key
        self._keep_journal = journal
        self._front_door: FrontDoor | None = None
        self._default_voice = voice_named(voice)
        self._voice = self._default_voice
        self._session_lifetime = SESSION_LIFETIME_S
        self._echo_metadata = True
        self._left_out = LeftOutFields()
        self._rules = RuleBook()
        self._journal = Journal()
        self._watch = Watch()  # guards connections, failures, flags
        self._connections: list[MockConnection] = []
        self._runtimes: dict[MockConnection, ConnectionRuntime] = {}  # loop thread only
        self._failures: list[str] = []
        self._unhandled: list[str] = []
        self._allow_invalid = False
        self._strict = False
        self._replay: CassetteReplay | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: Server | None = None
        self._host = "127.0.0.1"
        self._port = 0
        self._closing_tasks: set[asyncio.Task[None]] = set()
        # Handshake -> handler hand-over; weak, so refused or aborted handshakes vanish.
        self._pending: weakref.WeakKeyDictionary[
            ServerConnection, tuple[MockConnection, Match | None]
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
            create_connection=(
                ServerConnection if self._front_door is None else self._front_door(host)
            ),
            compression=None,
            max_size=16 * 2**20,
            ping_interval=None,
            close_timeout=2,
            logger=wire_log,
        )
        self._host = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
        self._port = int(self._server.sockets[0].getsockname()[1])

    def add_front_door(self, front_door: FrontDoor) -> None:
        """Before `start()`: serve each connection with the class `front_door(listen
        host)` returns, a `ServerConnection` that may answer some requests itself (the
        admin API's way in)."""
        if self._server is not None:
            raise RuntimeError("add the front door before start()")
        self._front_door = front_door

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

    @property
    def admin_url(self) -> str:
        """``http://HOST:PORT/__admin`` (answered only with `admin.serve_admin_api`)."""
        return f"http://{self._host}:{self._port}{ADMIN_PATH}"

    def reset(self) -> None:
        """Back to default behaviour: forget rules, journal, failures, connections and any
        cassette, leave strict mode, go back to the default voice, and close open
        connections (1000). Safe from any thread."""
        self._rules.clear()
        self._journal.clear()
        self._left_out.clear()
        with self._watch:
            old, self._connections = self._connections, []
            self._failures.clear()
            self._unhandled.clear()
            self._allow_invalid = False
            self._strict = False
            self._replay = None
            self._voice = self._default_voice
            self._session_lifetime = SESSION_LIFETIME_S
            self._echo_metadata = True
        self._watch.notify()
        open_ones = [c for c in old if not c.closed]
        if open_ones:
            self._run_in_loop(self._close(open_ones, 1000, "reset", wait=False), wait=True)

    # --- the verdict ------------------------------------------------------------------
    def check(self, *, rules: bool = True) -> None:
        """Raise AssertionError listing every `problems()` (the `mock_openai` fixture
        calls it when the test ends)."""
        __tracebackhide__ = True
        verdict = self.verdict(rules=rules)
        if verdict is not None:
            raise AssertionError(verdict)

    def verdict(self, *, rules: bool = True) -> str | None:
        """`problems()` as one numbered message, or None when there are none."""
        problems = self.problems(rules=rules)
        if not problems:
            return None
        lines = "\n".join(f"  {n}. {text}" for n, text in enumerate(problems, 1))
        return f"the mock OpenAI Realtime found {len(problems)} problem(s):\n{lines}"

    def problems(self, *, rules: bool = True) -> list[str]:
        """Everything that makes a test fail, in this order:

        * failures recorded inside the mock since the last reset (invalid client events,
          exceptions in handlers and responders, invalid scripted events);
        * rules whose expected count was not met (unless `rules=False`);
        * a replayed cassette the client left or did not finish;
        * in strict mode, client events no rule handled and the default refused.
        """
        problems = self.failures
        if rules:
            problems.extend(self._rules.unmet())
        replay = self._current_replay()
        if replay is not None:
            problems.extend(replay.unfinished())
        if self.strict:
            problems.extend(self.unhandled_events)
        return problems

    def verify(self) -> None:
        """Raise AssertionError naming every rule whose expected count was not met
        (`once()`: exactly once, `times(n)`: exactly n, unmarked: at least once)."""
        __tracebackhide__ = True
        unmet = self._rules.unmet()
        if unmet:
            raise AssertionError("\n".join(unmet))

    @property
    def rules(self) -> list[Rule]:
        """The rules registered since the last reset, in order."""
        return self._rules.rules()

    @property
    def failures(self) -> list[str]:
        """Failures recorded inside the mock since the last reset."""
        with self._watch:
            return list(self._failures)

    @property
    def unhandled_events(self) -> list[str]:
        """Client events no rule handled and the default behaviour refused with an
        `error` event (each a failure in strict mode)."""
        with self._watch:
            return list(self._unhandled)

    @property
    def strict(self) -> bool:
        """In strict mode `check()` also fails on `unhandled_events`. Reset by `reset()`."""
        with self._watch:
            return self._strict

    @strict.setter
    def strict(self, value: bool) -> None:
        with self._watch:
            self._strict = value

    def allow_invalid_client_events(self, allow: bool = True) -> None:
        """Still answer invalid client events with an error event, but do not record
        them as failures (for tests that send them on purpose). Reset by `reset()`."""
        with self._watch:
            self._allow_invalid = allow

    @property
    def voice(self) -> VoiceName:
        """How replies sound on connections opened from now on: "tone" or "speech"."""
        with self._watch:
            return self._voice.name

    @voice.setter
    def voice(self, name: VoiceName) -> None:
        voice = voice_named(name)
        if name == "speech" and not speech_available():
            raise RuntimeError(
                "the speech voice needs espeak-ng: `apt-get install espeak-ng` "
                "(scripts/test installs it)"
            )
        with self._watch:
            self._voice = voice

    @property
    def session_lifetime(self) -> float:
        """Seconds a session lasts on connections opened from now on (default 3600, the
        real service's cap). `session.created` says when (`expires_at`, whole seconds);
        then the mock sends the service's `error` (`session_expired`, "Your session hit
        the maximum duration of 60 minutes.") and closes (1000). Reset by `reset()`."""
        with self._watch:
            return self._session_lifetime

    @session_lifetime.setter
    def session_lifetime(self, seconds: float) -> None:
        if not seconds > 0:
            raise ValueError(f"session_lifetime must be positive seconds, got {seconds!r}")
        with self._watch:
            self._session_lifetime = float(seconds)

    @property
    def echo_metadata(self) -> bool:
        """Whether responses carry the `metadata` their response.create gave (default
        True, as OpenAI documents). False plays a service that does not echo it: a
        client must then know its out-of-band responses some other way (the order of
        its requests, `conversation_id` null). Applies at once, on every connection;
        reset by `reset()`."""
        with self._watch:
            return self._echo_metadata

    @echo_metadata.setter
    def echo_metadata(self, echo: bool) -> None:
        with self._watch:
            self._echo_metadata = bool(echo)

    def leave_out(self, event_type: str, *fields: str) -> None:
        """From now on, send events of `event_type` without these fields (dotted paths,
        through lists too: ``"item.content.type"``), as the service may after it renames
        or drops one. Events are validated whole first. Reset by `reset()`."""
        self._left_out.add(event_type, fields)

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
        where: EventFilter | None = None,
    ) -> dict[str, Any]:
        """Wait for the `count`-th client event of `type` (matching `where`, a predicate
        or a JSON pattern the event contains) and return it.

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
        where: EventFilter | None = None,
    ) -> dict[str, Any]:
        """Blocking `wait_for` for sync tests (not from the mock's own loop thread)."""
        self._refuse_blocking_in_loop()
        return self._journal.wait_for_sync(type, count=count, timeout=timeout, where=where)

    def assert_received_in_order(self, types: Iterable[str]) -> None:
        """Assert the client events include `types` in this order (others may interleave)."""
        self._journal.assert_received_in_order(types)

    def assert_received(
        self, type: str, *, times: int | None = None, where: EventFilter | None = None
    ) -> list[dict[str, Any]]:
        """Assert clients sent `type` (matching `where`) exactly `times` times, or at
        least once when `times` is None; return those events."""
        found = self._journal.matching(type, where)
        if (len(found) != times) if times is not None else not found:
            expected = f"exactly {times}" if times is not None else "at least one"
            raise AssertionError(
                f"expected {expected} client event(s) {type!r}"
                f"{' matching `where`' if where is not None else ''}, found {len(found)}; "
                f"the mock received: {self._journal.summary()}"
            )
        return found

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

    async def wait_idle(self, timeout: float = 5.0) -> None:
        """Wait, from any event loop, until no open connection has a response in progress
        or a frame still to send: after it, the mock sends nothing unprompted."""
        loop = self._loop
        if loop is None:
            return

        async def idle() -> None:
            runtimes = list(self._runtimes.values())
            await asyncio.wait_for(asyncio.gather(*(r.idle() for r in runtimes)), timeout)

        try:
            if loop is asyncio.get_running_loop():
                await idle()
            else:
                await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(idle(), loop))
        except TimeoutError:
            raise AssertionError(f"the mock was still busy after {timeout:g}s") from None

    # --- scripting ----------------------------------------------------------------------
    def on_user_text(self, text: TextMatcher = None) -> Rule:
        """A response to a user text turn whose text contains `text` (str), matches it
        (re.Pattern), or any text (None)."""
        return self._rules.add(Rule(self._rules, Trigger.USER_TEXT, _describe(text), text=text))

    def on_user_speech(self, phrase: str | None = None) -> Rule:
        """A spoken user turn: any (`phrase` None), or one in which the mock *heard*
        `phrase` (recognised in the audio the client appended, whatever its format;
        needs pocketsphinx, the ``[speech]`` extra). Reply steps set the response;
        `transcribe_as` scripts the transcript instead of recognising it."""
        if phrase is None:
            return self._rules.add(Rule(self._rules, Trigger.USER_SPEECH, ""))
        check_phrase(phrase)
        return self._rules.add(Rule(self._rules, Trigger.USER_SPEECH, repr(phrase), text=phrase))

    def listen_for(self, *phrases: str) -> None:
        """Recognise spoken turns against `phrases` too (no rule needed), e.g. to read
        `heard` afterwards. Needs pocketsphinx (the ``[speech]`` extra)."""
        self._rules.listen_for(phrases)

    @property
    def heard(self) -> list[str]:
        """What was recognised in each spoken user turn since the last reset, in order
        (all connections): the phrase heard as the rule or `listen_for` wrote it, or ""
        when the audio held none of them. Turns are recognised only while some phrase
        is named."""
        with self._watch:
            return self._heard_locked()

    def _heard_locked(self) -> list[str]:
        # Connections share the mock's watch: read them under the one lock, once.
        return [phrase for c in self._connections for phrase in c._heard]

    async def wait_heard(self, n: int = 1, timeout: float = 10.0) -> list[str]:
        """Wait until `n` spoken turns have been recognised; returns `heard`."""
        if await self._watch.wait_async(self._heard_check(n), timeout) is None:
            raise AssertionError(
                f"the mock recognised {len(self.heard)} spoken turn(s) within {timeout:g}s, "
                f"not {n}: heard {self.heard}"
            )
        return self.heard

    def wait_heard_sync(self, n: int = 1, timeout: float = 10.0) -> list[str]:
        """Blocking `wait_heard` for sync tests."""
        self._refuse_blocking_in_loop()
        if self._watch.wait_sync(self._heard_check(n), timeout) is None:
            raise AssertionError(
                f"the mock recognised {len(self.heard)} spoken turn(s) within {timeout:g}s, "
                f"not {n}: heard {self.heard}"
            )
        return self.heard

    def _heard_check(self, n: int) -> Callable[[], list[str] | None]:
        def check() -> list[str] | None:  # runs under the watch's lock
            heard = self._heard_locked()
            return heard if len(heard) >= n else None

        return check

    def on_function_output(self, name: str | None = None) -> Rule:
        """A response after a function_call_output for a call of function `name` (None:
        any)."""
        shown = "" if name is None else repr(name)
        return self._rules.add(Rule(self._rules, Trigger.FUNCTION_OUTPUT, shown, function=name))

    def on_client_event(self, type: str, where: EventFilter | None = None) -> Rule:
        """Any valid client event of `type` (matching `where`: a predicate, or a JSON
        pattern the event contains). Only-stall rules delay the default handling; other
        steps replace it."""
        shown = repr(type) if where is None else f"{type!r}, where=..."
        return self._rules.add(
            Rule(self._rules, Trigger.CLIENT_EVENT, shown, event_type=type, where=where)
        )

    def on_connect(self) -> Rule:
        """A new connection: steps run before `session.created` (only stalls) or
        instead of it; `reject_handshake` refuses the upgrade."""
        return self._rules.add(Rule(self._rules, Trigger.CONNECT, ""))

    def load_rules(self, rules: Any, *, source: str = "JSON") -> list[Rule]:
        """Add rules written as JSON data (the admin API's format: see
        `harness.mock_openai.rules_json`); returns them. Raises ValueError, adding
        nothing, when any of them is invalid."""
        return rules_from_json(self, rules, source=source)

    def replay(self, cassette: Cassette | str | os.PathLike[str], *, speed: float = 1.0) -> None:
        """Serve the recorded cassette (a `Cassette` or a JSON Lines file) instead of the
        default behaviour: connection #k since now replays the cassette's connection #k,
        its server events paced as recorded (`speed` 2.0: twice as fast; 0: no pauses).
        Client events must match the recorded ones by type and content; a divergence,
        or a recording the client did not finish, fails `check()` with a diff. Rules are
        not consulted while replaying. `reset()` ends it."""
        if not isinstance(cassette, Cassette):
            cassette = Cassette.load(Path(cassette))
        replay = CassetteReplay(cassette, speed=speed, first_connection=len(self.connections))
        with self._watch:
            self._replay = replay

    # --- faults -----------------------------------------------------------------------
    def push(self, event: dict[str, Any], connection: int | None = None) -> None:
        """Send a server event now to every open connection (or connection #`connection`).

        The event is validated here: an invalid one raises `SchemaError` and is not sent.
        A missing `event_id` is filled in.
        """
        event = dict(event)
        event.setdefault("event_id", new_id("event"))
        validate_server_event(event)
        for target in self._targets(connection):
            self._call_in_loop(target, lambda runtime: runtime.send_event(dict(event)))

    def push_garbage(self, data: str | bytes = "not json{", connection: int | None = None) -> None:
        """Fault: send a frame the real API never would (text for str, binary for bytes)."""
        for target in self._targets(connection):
            self._call_in_loop(target, lambda runtime: runtime.send_frame(data))

    def stop_reading(self, connection: int | None = None) -> None:
        """Fault: stop reading what the client sends (a deaf upstream that still talks).

        The client's frames pile up in websockets' queue and then in the TCP buffers, so
        its writes eventually block, as with a wedged server."""
        for target in self._targets(connection):
            self._call_in_loop(target, ConnectionRuntime.stop_reading)

    def close_connections(self, code: int = 1011, reason: str = "") -> None:
        """Close every open connection with `code`, after what is already queued."""
        for target in self._targets(None):
            self._call_in_loop(target, lambda runtime: runtime.close_after_queued(code, reason))

    # --- internals: threads -----------------------------------------------------------
    def _in_loop_thread(self) -> bool:
        return self._thread is threading.current_thread()

    def _refuse_blocking_in_loop(self) -> None:
        if self._in_loop_thread():
            raise RuntimeError(
                "a blocking wait on the mock's own loop thread would deadlock; use `await`"
            )

    def _call_in_loop(
        self, connection: MockConnection, action: Callable[[ConnectionRuntime], None]
    ) -> None:
        """Run `action` on the connection's runtime, on the loop thread."""

        def run() -> None:
            runtime = self._runtimes.get(connection)
            if runtime is not None:
                action(runtime)

        loop = self._loop
        if loop is None or loop.is_closed():
            return
        if self._in_loop_thread():
            run()
        else:
            loop.call_soon_threadsafe(run)

    def _run_in_loop(self, coroutine: Coroutine[Any, Any, None], *, wait: bool) -> None:
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

    def _current_replay(self) -> CassetteReplay | None:
        with self._watch:
            return self._replay

    # --- internals: what runtimes report (ConnectionHost) -------------------------------
    @property
    def keeps_journal(self) -> bool:
        return self._keep_journal

    def record_received(self, connection: MockConnection, event: dict[str, Any]) -> None:
        if self._is_current(connection):
            self._journal.record(event)

    def leave_out_fields(self, event: dict[str, Any]) -> dict[str, Any]:
        return self._left_out.apply(event)

    def fail(self, connection: MockConnection, message: str, kind: FailureKind) -> None:
        text = f"connection #{connection.index}: {message}"
        with self._watch:
            if connection not in self._connections:
                return  # from before the last reset
            if kind is FailureKind.UNHANDLED_CLIENT_EVENT:
                self._unhandled.append(text)
            elif kind is not FailureKind.INVALID_CLIENT_EVENT or not self._allow_invalid:
                self._failures.append(text)
        self._watch.notify()
        log.debug("mock failure on connection #%d: %s", connection.index, message)

    def _is_current(self, connection: MockConnection) -> bool:
        with self._watch:
            return connection in self._connections

    # --- internals: handshake -----------------------------------------------------------
    def _register(self, path: str, headers: dict[str, str]) -> MockConnection:
        with self._watch:
            connection = MockConnection(len(self._connections), path, headers, self._watch)
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
            self.fail(
                connection,
                "the client sent 'OpenAI-Beta: realtime=v1': that selects the beta protocol, "
                "but this project speaks the GA API",
                FailureKind.MOCK,
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
        replay = self._current_replay()
        if replay is not None and (status := replay.refusal(connection.index)) is not None:
            return self._refuse(ws, connection, status)
        rule = None if replay is not None else self._rules.match(Trigger.CONNECT)
        for step in rule.steps if rule is not None else ():
            if isinstance(step, RejectHandshake):
                return self._refuse(ws, connection, step.status)
        self._pending[ws] = (connection, rule)
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
        response = ws.respond(status, orjson.dumps({"error": error}).decode())
        del response.headers["Content-Type"]
        response.headers["Content-Type"] = "application/json"
        connection._mark_rejected(status)
        return response

    # --- internals: serving ----------------------------------------------------------------
    async def _serve_connection(self, ws: ServerConnection) -> None:
        connection, rule = self._pending.pop(ws)
        replay = self._current_replay()
        model: SessionModel
        if replay is not None:
            replayed = replay.session_for(connection.index)
            model, opening = replayed, replayed.open()
        else:
            with self._watch:
                voice, lifetime = self._voice, self._session_lifetime
            session = RealtimeSession(
                self._rules,
                model=connection.model,
                voice=voice,
                connection_index=connection.index,
                lifetime_s=lifetime,
                echo_metadata=lambda: self.echo_metadata,
            )
            model, opening = session, session.open(rule)
        runtime = ConnectionRuntime(connection, ws, model, self)
        if isinstance(model, RealtimeSession):
            runtime.at_wall_time(model.expires_at, model.expire)
        self._runtimes[connection] = runtime
        try:
            await runtime.serve(opening)
        finally:
            del self._runtimes[connection]

    async def _close(
        self, connections: list[MockConnection], code: int, reason: str, *, wait: bool
    ) -> None:
        """Close `connections` now. Without `wait`, return once the close frames are sent:
        a client whose loop is blocked (a sync fixture calling reset()) cannot answer."""
        tasks = []
        for connection in connections:
            runtime = self._runtimes.get(connection)
            if runtime is not None:
                task = runtime.close_now(code, reason)
                self._closing_tasks.add(task)
                task.add_done_callback(self._closing_tasks.discard)
                tasks.append(task)
        if wait:
            await asyncio.gather(*tasks, return_exceptions=True)
        else:
            await asyncio.sleep(0)  # let each close() send its frame


def _describe(text: TextMatcher) -> str:
    if text is None:
        return ""
    return repr(text) if isinstance(text, str) else f"re.compile({text.pattern!r})"


def _status_phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"
