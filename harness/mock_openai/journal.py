"""What clients sent to the mock, and waiting for it from any thread or event loop.

The mock serves on one event loop (often a background thread) while tests read and
wait from another thread, or from a different event loop in the main thread. `Watch`
is the one primitive for that: state changes under its lock, `notify()` wakes blocked
threads (a `threading.Condition`) and coroutines on any loop
(`loop.call_soon_threadsafe`), so a waiting test never blocks its own loop and never
polls.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

__all__ = ["Journal", "Watch", "summarize_types"]

T = TypeVar("T")
EventPredicate = Callable[[dict[str, Any]], bool]


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class Watch:
    """A lock plus change notification for waiters on threads and on event loops."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._futures: set[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = set()

    def __enter__(self) -> Watch:
        self._cond.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self._cond.release()

    def notify(self) -> None:
        """Wake every waiter so it re-checks its condition (call without the lock)."""
        with self._cond:
            self._cond.notify_all()
            futures = list(self._futures)
        for loop, future in futures:
            # A closed loop raises RuntimeError: nobody is waiting there any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_wake, future)

    def wait_sync(self, check: Callable[[], T | None], timeout: float) -> T | None:
        """Block until `check()` (run under the lock) returns non-None, or time out."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                result = check()
                if result is not None:
                    return result
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)

    async def wait_async(self, check: Callable[[], T | None], timeout: float) -> T | None:
        """Await until `check()` (run under the lock) returns non-None, or time out.

        Works on any running loop, including one that is not the mock's.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            future: asyncio.Future[None] = loop.create_future()
            key = (loop, future)
            with self._cond:
                result = check()
                if result is not None:
                    return result
                self._futures.add(key)
            try:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return None
                try:
                    await asyncio.wait_for(future, remaining)
                except TimeoutError:
                    with self._cond:
                        return check()
            finally:
                with self._cond:
                    self._futures.discard(key)


def summarize_types(types: Iterable[str]) -> str:
    """`a, b x3, c`: the sequence of event types with repeats collapsed."""
    parts: list[str] = []
    last: str | None = None
    run = 0
    for kind in types:
        if kind == last:
            run += 1
            continue
        if last is not None:
            parts.append(last if run == 1 else f"{last} x{run}")
        last, run = kind, 1
    if last is not None:
        parts.append(last if run == 1 else f"{last} x{run}")
    return ", ".join(parts) if parts else "(nothing)"


class Journal:
    """Events clients sent, in arrival order across all connections."""

    def __init__(self) -> None:
        self._watch = Watch()
        self._events: list[dict[str, Any]] = []

    def record(self, event: dict[str, Any]) -> None:
        with self._watch:
            self._events.append(event)
        self._watch.notify()

    def clear(self) -> None:
        with self._watch:
            self._events = []
        self._watch.notify()

    def received(self, type: str | None = None) -> list[dict[str, Any]]:
        with self._watch:
            events = list(self._events)
        return events if type is None else [e for e in events if e.get("type") == type]

    def types(self) -> list[str]:
        with self._watch:
            return [str(e.get("type")) for e in self._events]

    def _finder(
        self,
        type: str | None,
        count: int,
        where: EventPredicate | None,
    ) -> tuple[Callable[[], dict[str, Any] | None], dict[str, int]]:
        """A `check` for `Watch` that finds the count-th match, and its progress."""
        if count < 1:
            raise ValueError("count must be >= 1")
        state = {"scanned": 0, "found": 0}
        found_event: list[dict[str, Any]] = []

        # Called under the lock; scans only what arrived since the previous call.
        def check() -> dict[str, Any] | None:
            if found_event:
                return found_event[0]
            events = self._events
            if state["scanned"] > len(events):  # cleared meanwhile
                state["scanned"] = state["found"] = 0
            for event in events[state["scanned"] :]:
                state["scanned"] += 1
                if type is not None and event.get("type") != type:
                    continue
                if where is not None and not where(event):
                    continue
                state["found"] += 1
                if state["found"] >= count:
                    found_event.append(event)
                    return event
            return None

        return check, state

    def _timeout_message(
        self,
        type: str | None,
        count: int,
        where: EventPredicate | None,
        timeout: float,
        found: int,
    ) -> str:
        what = repr(type) if type is not None else "any event"
        if where is not None:
            what += " matching `where`"
        return (
            f"timed out after {timeout:g}s waiting for client event #{count} of {what} "
            f"(found {found}); the mock received: {summarize_types(self.types())}"
        )

    async def wait_for(
        self,
        type: str | None,
        *,
        count: int = 1,
        timeout: float = 5.0,
        where: EventPredicate | None = None,
    ) -> dict[str, Any]:
        check, state = self._finder(type, count, where)
        event = await self._watch.wait_async(check, timeout)
        if event is None:
            raise AssertionError(self._timeout_message(type, count, where, timeout, state["found"]))
        return event

    def wait_for_sync(
        self,
        type: str | None,
        *,
        count: int = 1,
        timeout: float = 5.0,
        where: EventPredicate | None = None,
    ) -> dict[str, Any]:
        check, state = self._finder(type, count, where)
        event = self._watch.wait_sync(check, timeout)
        if event is None:
            raise AssertionError(self._timeout_message(type, count, where, timeout, state["found"]))
        return event

    def assert_received_in_order(self, types: Iterable[str]) -> None:
        """Assert `types` occur in this order (other events may come in between)."""
        expected = list(types)
        actual = self.types()
        position = 0
        for kind in actual:
            if position < len(expected) and kind == expected[position]:
                position += 1
        if position < len(expected):
            raise AssertionError(
                f"client events not received in order: expected {expected} as a subsequence; "
                f"{expected[position]!r} (#{position + 1}) is missing after the earlier ones. "
                f"Actual sequence: {summarize_types(actual)}"
            )
