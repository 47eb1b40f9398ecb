"""`Watch`: a lock plus change notification, for waiters on threads and on event loops.

The mock serves on one event loop (often a background thread) while tests read and
wait from another thread, or from a different event loop in the main thread. State
changes under the watch's lock; `notify()` wakes blocked threads (a
`threading.Condition`) and coroutines on any loop (`loop.call_soon_threadsafe`), so a
waiting test never blocks its own loop and never polls.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from typing import TypeVar

__all__ = ["Watch"]

T = TypeVar("T")


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
