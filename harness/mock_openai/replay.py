"""Replaying a cassette: the mock plays back a recorded upstream, checking the client.

`CassetteReplay` hands each new connection a `ReplayedConnection`, a session model (the
same shape as the service model) that walks the recording: server entries go out as
recorded, paced by their recorded gaps, up to the next thing the client sent; then it
waits for the client to send the same.

Matching a client event: same type and same content, except what differs between runs
by nature (`event_id`, ids the client makes up, the audio itself). Audio appends are
matched by amount, not one by one (the proxy batches audio by time): the recorded server
events that the audio caused (speech started or stopped, a commit) go out once the
client has sent as much audio as had been recorded before them. A barge-in's
`conversation.item.truncate` depends on timing too: recorded ones are left out, and one
the client sends is answered as the real API would.

A client event that differs fails the test with a unified diff, answers the client with
an `error` (code ``replay_diverged``) and closes the connection; a recording the client
did not get to the end of fails `check()` too.
"""

from __future__ import annotations

import base64
import difflib
from collections.abc import Iterator
from typing import Any, Final

import orjson

from harness.cassette import Cassette, Entry, audio_field_of

from .audio import BYTES_PER_MS
from .responses import Fail, FailureKind, Step
from .steps import CloseConnection, Send, SendRaw, Sleep, error_event

__all__ = ["Cassette", "CassetteReplay", "ReplayedConnection"]

#: Server events caused by the audio the client sent: they wait for as much audio.
_AUDIO_CAUSED: Final = frozenset(
    {
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
    }
)
#: A barge-in's truncate depends on timing, and so does the server's answer to it: they
#: are left out of the replay, and a truncate is answered as the real API would.
_TIMED: Final = frozenset({"conversation.item.truncate", "conversation.item.truncated"})
#: Audio may differ by this much between runs (resampler delay, batching).
_AUDIO_SLACK_BYTES: Final = 60 * BYTES_PER_MS
_APPEND: Final = "input_audio_buffer.append"
#: Paths compared by nobody: they differ from run to run by nature.
_VOLATILE: Final = (("event_id",), ("item", "id"), ("audio",))


class CassetteReplay:
    """A cassette being served: connection #k since it started replays recording #k."""

    def __init__(
        self, cassette: Cassette, *, speed: float = 1.0, first_connection: int = 0
    ) -> None:
        if speed < 0:
            raise ValueError("speed is >= 0 (0: no pauses)")
        self.cassette = cassette
        self.speed = speed
        self._first = first_connection
        self._recorded = cassette.connections()
        self._served: dict[int, ReplayedConnection] = {}

    def session_for(self, connection_index: int) -> ReplayedConnection:
        """The session model for the mock's connection #`connection_index`."""
        slot = connection_index - self._first
        recorded = self._recorded[slot] if 0 <= slot < len(self._recorded) else None
        entries = self.cassette.of_connection(recorded) if recorded is not None else None
        served = ReplayedConnection(self.cassette.name, slot, entries, self.speed)
        self._served[slot] = served
        return served

    def refusal(self, connection_index: int) -> int | None:
        """The HTTP status the recording's upstream refused connection #k with, if any
        (that connection then counts as replayed)."""
        slot = connection_index - self._first
        if not 0 <= slot < len(self._recorded):
            return None
        entries = self.cassette.of_connection(self._recorded[slot])
        status = entries[0].refused_status if entries and entries[0].kind == "open" else None
        if status is not None:
            self._served[slot] = ReplayedConnection(self.cassette.name, slot, [], self.speed)
        return status

    def unfinished(self) -> list[str]:
        """Why the replay is not complete: recorded connections never opened, or left
        before the client sent all it had sent in the recording."""
        problems = []
        for slot, _ in enumerate(self._recorded):
            served = self._served.get(slot)
            if served is None:
                problems.append(
                    f"{self.cassette.name}: the client never opened recorded connection #{slot}"
                )
            elif (missing := served.missing()) is not None:
                problems.append(missing)
        return problems


class ReplayedConnection:
    """One recorded connection played back (sans I/O, like the service model)."""

    def __init__(self, name: str, slot: int, entries: list[Entry] | None, speed: float) -> None:
        self.name = name
        self.slot = slot
        self.speed = speed
        self._entries = [e for e in entries or () if e.type not in _TIMED]
        self._unrecorded = entries is None
        self._cursor = 0
        self._clock = 0.0  # recorded time of the last entry consumed
        self._audio_recorded: list[int] = []  # client audio recorded before each entry
        total = 0
        for entry in self._entries:
            self._audio_recorded.append(total)
            if entry.origin == "client" and entry.type == _APPEND:
                total += entry.audio_bytes
        self._audio_live = 0
        self._client_events = 0
        self._stopped = False
        self._items: list[dict[str, Any]] = []

    # -- the session model interface ---------------------------------------------------------
    def open(self) -> Iterator[Step]:
        if self._unrecorded:
            self._stopped = True
            yield Fail(
                f"{self.name}: the client opened connection #{self.slot}, but the cassette "
                "holds no such connection",
                FailureKind.REPLAY_DIVERGED,
            )
            yield CloseConnection(1011, "no such connection in the cassette")
            return
        if self._entries and self._entries[0].kind == "open":
            self._cursor = 1
        yield from self._play()

    def receive(self, event: dict[str, Any]) -> Iterator[Step]:
        if self._stopped:
            return
        self._client_events += 1
        if event.get("type") == "conversation.item.truncate":
            yield Send(
                {
                    "type": "conversation.item.truncated",
                    "item_id": event.get("item_id"),
                    "content_index": event.get("content_index"),
                    "audio_end_ms": event.get("audio_end_ms"),
                }
            )
            return
        if event.get("type") == _APPEND:
            self._audio_live += len(base64.b64decode(str(event.get("audio", ""))))
            yield from self._play()
            return
        yield from self._play(force=True)  # the client moved on: audio-caused events go out
        self._skip_appends()
        expected = self._next_entry()
        if expected is None or expected.kind != "frame" or expected.origin != "client":
            yield from self._diverge(expected, event)
            return
        if expected.event is None or _comparable(expected.event) != _comparable(event):
            yield from self._diverge(expected, event)
            return
        self._consume(expected)
        yield from self._play()

    def reject_frame(self, message: str, frame: str | bytes) -> list[Step]:
        shown = frame[:60] if isinstance(frame, str) else f"<{len(frame)} binary bytes>"
        if self._stopped:
            return []
        return list(self._diverge(self._next_entry(), {"type": f"<not an event: {shown!r}>"}))

    def conversation_snapshots(self) -> list[dict[str, Any]]:
        return [dict(item) for item in self._items]

    def missing(self) -> str | None:
        """What the client did not send of this recording, or None."""
        if self._stopped:
            return None
        for entry in self._entries[self._cursor :]:
            if entry.origin == "client" and entry.kind == "frame" and entry.type != _APPEND:
                return (
                    f"{self.name}:{entry.line} (recorded connection #{self.slot}): the "
                    f"connection ended before the client sent {entry.type!r} (the recording "
                    f"goes on; {self._client_events} client event(s) matched)"
                )
        return None

    # -- playing -------------------------------------------------------------------------------
    def _next_entry(self) -> Entry | None:
        return self._entries[self._cursor] if self._cursor < len(self._entries) else None

    def _consume(self, entry: Entry) -> None:
        self._cursor += 1
        self._clock = max(self._clock, entry.t)

    def _skip_appends(self) -> None:
        while (entry := self._next_entry()) is not None and entry.type == _APPEND:
            self._consume(entry)

    def _play(self, *, force: bool = False) -> Iterator[Step]:
        """Server entries up to the next client event the recording waits for."""
        while (entry := self._next_entry()) is not None:
            if entry.kind == "frame" and entry.origin == "client":
                if entry.type != _APPEND:
                    return
                self._consume(entry)  # audio is matched by amount, below
                continue
            waits_for_audio = entry.type in _AUDIO_CAUSED
            needed = self._audio_recorded[self._cursor] - _AUDIO_SLACK_BYTES
            if waits_for_audio and not force and self._audio_live < needed:
                return
            if self.speed and entry.t > self._clock:
                yield Sleep((entry.t - self._clock) / self.speed)
            self._consume(entry)
            yield from self._emit(entry)
            if self._stopped:
                return

    def _emit(self, entry: Entry) -> Iterator[Step]:
        if entry.kind == "close":
            if entry.origin == "server":
                self._stopped = True
                yield CloseConnection(entry.close_code or 1000, entry.close_reason)
            return
        if entry.kind != "frame":
            return
        if entry.raw is not None:
            yield SendRaw(entry.raw)
            return
        assert entry.event is not None
        event = dict(entry.event)
        field = audio_field_of(event)
        if field is not None and not event[field] and entry.audio_bytes:
            event[field] = base64.b64encode(bytes(entry.audio_bytes)).decode()  # trimmed
        if event.get("type") == "conversation.item.done" and isinstance(event.get("item"), dict):
            self._items.append(event["item"])
        yield Send(event)

    def _diverge(self, expected: Entry | None, actual: dict[str, Any]) -> Iterator[Step]:
        self._stopped = True
        got = actual.get("type")
        if expected is None:
            where = f"{self.name} (recorded connection #{self.slot})"
            summary = f"the client sent {got!r} after the recording ended"
            diff = ""
        else:
            where = f"{self.name}:{expected.line} (recorded connection #{self.slot})"
            if expected.origin == "client" and expected.type == got:
                summary = (
                    f"client event #{self._client_events} ({got!r}) differs from the recording"
                )
            else:
                wanted = repr(expected.type) if expected.origin == "client" else "nothing yet"
                summary = (
                    f"client event #{self._client_events} diverged: the recording has {wanted}, "
                    f"the client sent {got!r}"
                )
            diff = _diff(expected.event if expected.origin == "client" else None, actual)
        yield Fail(f"{where}: {summary}{diff}", FailureKind.REPLAY_DIVERGED)
        yield Send(
            error_event(
                "replay_diverged",
                f"The replayed session diverged from the cassette: {summary}.",
                client_event_id=actual.get("event_id")
                if isinstance(actual.get("event_id"), str)
                else None,
            )
        )
        yield CloseConnection(1011, "replay diverged")


def _comparable(event: dict[str, Any]) -> dict[str, Any]:
    """`event` without what differs between runs by nature."""
    copy: dict[str, Any] = orjson.loads(orjson.dumps(event))
    for path in _VOLATILE:
        container: Any = copy
        for key in path[:-1]:
            container = container.get(key) if isinstance(container, dict) else None
        if isinstance(container, dict):
            container.pop(path[-1], None)
    return copy


def _diff(expected: dict[str, Any] | None, actual: dict[str, Any]) -> str:
    def lines(value: Any) -> list[str]:
        if value is None:
            return []
        text = orjson.dumps(_comparable(value), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
        return text.decode().splitlines()

    body = difflib.unified_diff(
        lines(expected), lines(actual), "recorded", "sent now", lineterm="", n=2
    )
    return "\n" + "\n".join(f"    {line}" for line in body)
