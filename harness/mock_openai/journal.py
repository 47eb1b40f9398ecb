"""The journal: what clients sent to the mock, in arrival order, and waiting for it
from any thread or event loop (through a `Watch`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from harness.describe import summarize_types

from .patterns import EventFilter, as_predicate
from .watch import Watch

__all__ = ["Journal"]


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

    def matching(self, type: str | None, where: EventFilter | None = None) -> list[dict[str, Any]]:
        """Events of `type` (any when None) that match `where`."""
        predicate = as_predicate(where)
        return [e for e in self.received(type) if predicate is None or predicate(e)]

    def summary(self) -> str:
        """The types received so far, repeats collapsed (for failure messages)."""
        return summarize_types(self.types())

    def types(self) -> list[str]:
        with self._watch:
            return [str(e.get("type")) for e in self._events]

    def _finder(
        self,
        type: str | None,
        count: int,
        where: EventFilter | None,
    ) -> tuple[Callable[[], dict[str, Any] | None], dict[str, int]]:
        """A `check` for `Watch` that finds the count-th match, and its progress."""
        if count < 1:
            raise ValueError("count must be >= 1")
        predicate = as_predicate(where)
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
                if predicate is not None and not predicate(event):
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
        where: EventFilter | None,
        timeout: float,
        found: int,
    ) -> str:
        what = repr(type) if type is not None else "any event"
        if callable(where):
            what += " matching `where`"
        elif where is not None:
            what += f" containing {dict(where)!r}"
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
        where: EventFilter | None = None,
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
        where: EventFilter | None = None,
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
