"""One connection to the mock: its public record, and the runtime that serves it.

`MockConnection` is what a test reads (path, headers, events both ways, how it closed)
from any thread. `ConnectionRuntime` lives on the mock's event loop: it reads client
frames, feeds them to a session model (the service model, or a cassette being
replayed), carries out the steps the model returns, and writes frames through one
outbox, so events leave in the order they were produced whichever task (event
handling, a response, a push from a test) produced them.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

import orjson
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from harness.recognition import recognise_async
from harness.schema import SchemaError, decode_event, validate_server_event

from .responders import steps_from
from .responses import (
    Fail,
    FailureKind,
    Recognise,
    Resolve,
    ResponseRun,
    StartResponse,
    Step,
    StopResponse,
)
from .service import DEFAULT_MODEL
from .steps import CloseConnection, Send, SendRaw, Sleep, error_event, new_id
from .watch import Watch

__all__ = ["ConnectionHost", "ConnectionRuntime", "MockConnection", "SessionModel"]


class MockConnection:
    """One WebSocket connection (or refused handshake) the mock has seen.

    Safe to read from any thread; `received` and `sent` are copies taken when read.
    """

    def __init__(
        self, index: int, path: str, request_headers: dict[str, str], watch: Watch
    ) -> None:
        self.index = index
        self.path = path
        """Request path including the query, e.g. ``/v1/realtime?model=gpt-realtime``."""
        self.request_headers = request_headers
        """Handshake headers, names lower-cased. Holds the Authorization header: never log it."""
        self._watch = watch
        self._rejected_status: int | None = None
        self._close_code: int | None = None
        self._close_reason = ""
        self._received: list[dict[str, Any]] = []
        self._sent: list[dict[str, Any]] = []
        self._closed = False
        self._heard: list[str] = []
        self._conversation: Callable[[], list[dict[str, Any]]] = list

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
        with self._watch:
            return list(self._received)

    @property
    def sent(self) -> list[dict[str, Any]]:
        """Events the mock sent to this client, in order."""
        with self._watch:
            return list(self._sent)

    @property
    def closed(self) -> bool:
        with self._watch:
            return self._closed

    @property
    def rejected_status(self) -> int | None:
        """The HTTP status when the mock refused the handshake, else None."""
        with self._watch:
            return self._rejected_status

    @property
    def close_code(self) -> int | None:
        with self._watch:
            return self._close_code

    @property
    def close_reason(self) -> str:
        with self._watch:
            return self._close_reason

    @property
    def heard(self) -> list[str]:
        """What was recognised in each spoken turn ("" for none of the phrases)."""
        with self._watch:
            return list(self._heard)

    def conversation(self) -> list[dict[str, Any]]:
        """The conversation items as the mock holds them now (copies)."""
        return self._conversation()

    async def wait_closed(self, timeout: float = 5.0) -> int | None:
        """Wait until this connection is closed (from any loop); returns the close code."""
        if await self._watch.wait_async(self._closed_check, timeout) is None:
            raise AssertionError(f"{self!r} still open after {timeout:g}s")
        return self.close_code

    def wait_closed_sync(self, timeout: float = 5.0) -> int | None:
        """Blocking `wait_closed` for sync tests (not from the mock's loop thread)."""
        if self._watch.wait_sync(self._closed_check, timeout) is None:
            raise AssertionError(f"{self!r} still open after {timeout:g}s")
        return self.close_code

    def _closed_check(self) -> bool | None:
        return True if self._closed else None

    # -- written by the mock (under the watch) -----------------------------------------
    def _record_received(self, event: dict[str, Any]) -> None:
        with self._watch:
            self._received.append(event)

    def _record_sent(self, event: dict[str, Any]) -> None:
        with self._watch:
            self._sent.append(event)

    def _record_heard(self, phrase: str) -> None:
        with self._watch:
            self._heard.append(phrase)
        self._watch.notify()

    def _mark_rejected(self, status: int) -> None:
        with self._watch:
            self._rejected_status = status
            self._closed = True
        self._watch.notify()

    def _mark_closed(self, code: int | None, reason: str) -> None:
        with self._watch:
            self._closed = True
            self._close_code = code
            self._close_reason = reason
        self._watch.notify()


class SessionModel(Protocol):
    """What serves a connection: the service model, or a cassette being replayed."""

    def receive(self, event: dict[str, Any]) -> Iterator[Step]: ...

    def reject_frame(self, message: str, frame: str | bytes) -> list[Step]: ...

    def conversation_snapshots(self) -> list[dict[str, Any]]: ...


class ConnectionHost(Protocol):
    """What a runtime reports to the mock that owns it."""

    @property
    def keeps_journal(self) -> bool: ...

    def record_received(self, connection: MockConnection, event: dict[str, Any]) -> None: ...

    def fail(self, connection: MockConnection, message: str, kind: FailureKind) -> None: ...

    def leave_out_fields(self, event: dict[str, Any]) -> dict[str, Any]: ...


# The outbox: frames in order, then possibly one close or the end of writing.
@dataclass(frozen=True, slots=True)
class _Frame:
    payload: str | bytes
    text: bool
    event: dict[str, Any] | None  # the server event, for the journal


@dataclass(frozen=True, slots=True)
class _Close:
    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class _EndOfWriting:
    pass


_Outgoing = _Frame | _Close | _EndOfWriting


class ConnectionRuntime:
    """Serves one accepted connection on the mock's loop (loop thread only)."""

    def __init__(
        self,
        record: MockConnection,
        ws: ServerConnection,
        model: SessionModel,
        host: ConnectionHost,
    ) -> None:
        self.record = record
        self.ws = ws
        self.model = model
        self.host = host
        self.closing = asyncio.Event()
        self._deaf = asyncio.Event()  # set: the socket is no longer read
        self._outbox: asyncio.Queue[_Outgoing] = asyncio.Queue()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._timers: set[asyncio.Task[Any]] = set()  # not waited for by idle()
        record._conversation = model.conversation_snapshots

    # -- what the mock (or a test, through it) asks for ----------------------------------
    def send_event(self, event: dict[str, Any]) -> None:
        """Validate and queue a server event (a missing event_id is filled in)."""
        event.setdefault("event_id", new_id("event"))
        try:
            validate_server_event(event)
        except SchemaError as exc:
            self.host.fail(
                self.record,
                f"the mock refused to send an invalid server event:\n{exc}",
                FailureKind.MOCK,
            )
            return
        event = self.host.leave_out_fields(event)
        self._queue(_Frame(orjson.dumps(event), True, event))

    def send_frame(self, data: str | bytes) -> None:
        """Queue a frame as is (text for str, binary for bytes), never validated."""
        self._queue(_Frame(data, isinstance(data, str), None))

    def close_after_queued(self, code: int, reason: str) -> None:
        """Close with `code` once what is already queued has gone out."""
        self._queue(_Close(code, reason))

    def stop_reading(self) -> None:
        """Read nothing more from the client (a deaf upstream that still talks)."""
        self._deaf.set()

    async def idle(self) -> None:
        """Return once no response is in progress and every queued frame went out."""
        while not self.record.closed:
            busy = [task for task in self._tasks if not task.done()]
            if busy:
                await asyncio.gather(*busy, return_exceptions=True)
                continue
            await self._outbox.join()
            if not any(not task.done() for task in self._tasks):
                return

    def at_wall_time(self, when: float, steps: Callable[[], Iterable[Step]]) -> None:
        """Carry out `steps()` at Unix time `when` (the session's end), unless the
        connection ends first."""

        async def later() -> None:
            delay = max(0.0, when - time.time())
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.closing.wait(), delay)
                return  # closing: nothing to do
            await self.execute(steps())

        task = asyncio.create_task(later())
        self._timers.add(task)
        task.add_done_callback(self._timers.discard)

    def close_now(self, code: int, reason: str) -> asyncio.Task[None]:
        """Stop serving and start the closing handshake at once."""
        self.closing.set()
        return asyncio.create_task(self.ws.close(code, reason))

    # -- serving -----------------------------------------------------------------------
    async def serve(self, opening: Iterable[Step]) -> None:
        """Run the connection until it closes: opening steps, then client events."""
        writer = asyncio.create_task(self._write())
        crashed = False
        try:
            await self.execute(opening)
            async for message in self.ws:
                if self.closing.is_set():
                    break
                if self._deaf.is_set():
                    await self._until_closed()
                    break
                await self.execute(self._steps_for(message))
        except ConnectionClosed:
            pass
        except Exception:
            crashed = True
            self._fail(f"the mock's connection handler raised:\n{traceback.format_exc()}")
        finally:
            await self._finish(writer, crashed)

    def _steps_for(self, message: str | bytes) -> Iterable[Step]:
        if isinstance(message, bytes):
            return self.model.reject_frame(
                "Binary frames are not supported: send events as JSON text frames.", message
            )
        try:
            event = decode_event(message)
        except SchemaError as exc:
            return self.model.reject_frame(exc.api_message, message)
        if self.host.keeps_journal:
            self.record._record_received(event)
            self.host.record_received(self.record, event)
        return self.model.receive(event)

    async def execute(self, steps: Iterable[Step]) -> bool:
        """Carry out steps in order; record (never raise) what goes wrong.

        Returns False when the sequence was cut short (a close, or the connection ending).
        """
        iterator = iter(steps)
        while not self.closing.is_set():
            try:
                step = next(iterator, None)
                if step is None:
                    return True
                if not await self._do(step):
                    return False
            except Exception:
                self._fail(f"the mock's behaviour raised:\n{traceback.format_exc()}")
                return False
        return False

    async def _do(self, step: Step) -> bool:
        """Carry out one step; False when the sequence must end (the connection closes)."""
        if isinstance(step, Send):
            self.send_event(dict(step.event))
        elif isinstance(step, Sleep):
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.closing.wait(), step.seconds)
        elif isinstance(step, SendRaw):
            self.send_frame(step.data)
        elif isinstance(step, CloseConnection):
            self.close_after_queued(step.code, step.reason)
            return False
        elif isinstance(step, StartResponse):
            self._start_response(step.run)
        elif isinstance(step, StopResponse):
            task = step.run.task
            if task is not None and task is not asyncio.current_task():
                task.cancel()
        elif isinstance(step, Fail):
            self.host.fail(self.record, step.message, step.kind)
        elif isinstance(step, Resolve):
            return await self._resolve(step)
        elif isinstance(step, Recognise):
            return await self._recognise(step)
        return True

    async def _recognise(self, step: Recognise) -> bool:
        """Recognise a spoken turn (in a thread), then carry on with what was heard."""
        try:
            heard = await recognise_async(
                step.audio, step.phrases, rate=step.rate, encoding=step.encoding
            )
        except Exception:
            self._fail(f"recognising a spoken turn failed:\n{traceback.format_exc()}")
            heard = ""
        self.record._record_heard(heard)
        return await self.execute(step.then(heard))

    async def _resolve(self, step: Resolve) -> bool:
        """Call a responder, then carry out what it answered."""
        name = getattr(step.responder, "__qualname__", repr(step.responder))
        try:
            result = step.responder(step.turn)
            if inspect.isawaitable(result):
                result = await result
            answer = steps_from(result, responder=name, trigger=step.turn.trigger)
        except Exception as exc:
            self._fail(f"responder {name} raised:\n{traceback.format_exc()}")
            self.send_event(
                error_event(
                    "server_error",
                    f"The mock's responder {name} failed: {exc!r}",
                    type="server_error",
                )
            )
            return True
        return await self.execute(step.then(answer))

    def _start_response(self, run: ResponseRun) -> None:
        task = asyncio.create_task(self.execute(run.steps))
        run.task = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _queue(self, item: _Outgoing) -> None:
        if not self.record.closed:
            self._outbox.put_nowait(item)

    async def _write(self) -> None:
        try:
            while True:
                item = await self._outbox.get()
                try:
                    if isinstance(item, _EndOfWriting):
                        return
                    if isinstance(item, _Close):
                        self.closing.set()
                        await self.ws.close(item.code, item.reason)
                        return
                    await self.ws.send(item.payload, text=item.text)
                    if item.event is not None and self.host.keeps_journal:
                        self.record._record_sent(item.event)
                finally:
                    self._outbox.task_done()
        except ConnectionClosed:
            pass
        finally:
            while not self._outbox.empty():  # never sent: nobody waits for them
                self._outbox.get_nowait()
                self._outbox.task_done()

    async def _until_closed(self) -> None:
        """Wait, reading nothing, until the mock closes the connection or it is lost."""
        waits = [
            asyncio.ensure_future(self.closing.wait()),
            asyncio.ensure_future(self.ws.wait_closed()),
        ]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()

    async def _finish(self, writer: asyncio.Task[None], crashed: bool) -> None:
        self.closing.set()
        tasks = [*self._tasks, *self._timers]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if not writer.done():
            # Let queued events (and a queued close) go out before we return.
            self._outbox.put_nowait(_EndOfWriting())
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(writer, timeout=5)
        # A no-op when the connection is already closed or closing.
        await self.ws.close(1011 if crashed else 1000, "mock failure" if crashed else "")
        self.record._mark_closed(self.ws.close_code, self.ws.close_reason or "")

    def _fail(self, message: str) -> None:
        self.host.fail(self.record, message, FailureKind.MOCK)
