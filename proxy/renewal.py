"""Sessions past the service's cap (docs/protocol-mapping.md, "Sessions past the
service's 60-minute cap").

The OpenAI Realtime service ends a session at `session.created.session.expires_at`
(epoch seconds, 60 minutes after it opened today) with an `error` whose code is
`session_expired` ("Your session hit the maximum duration of 60 minutes.") and a close.
Sources: OpenAI's `session.created` reference (`expires_at`), the TS reference's
(Signal-Meaning/dg_react_agent) `PROTOCOL-AND-MESSAGE-ORDERING.md` section 3.8 (the
message, "expected" closure), and
public client code that matches the `session_expired` code.

A Deepgram client has no such cap, so before it the proxy opens the next upstream
session, gives it the settings as applied so far and the conversation as items, and
switches to it at a quiet moment. This module keeps what that needs and decides when,
without I/O (the session turns its answers into actions):

- `ConversationRecord`: the conversation as text items, bounded (oldest dropped first);
- `AppliedSettings`: every confirmed `session.update`, merged, as one `session.update`;
- `Renewal`: when the next session is due, what goes to it, and when it is ready.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any, Final

import orjson

from .bounds import (
    CAP_EARLY_SECONDS,
    CARRIED_ENTRY_SHARE,
    MAX_CARRIED_CHARS,
    MAX_CARRIED_ITEMS,
    RECENT_AUDIO_BATCHES,
    TRUNCATED_MARK,
)
from .bounds import RENEWAL_ANSWER_WAIT as ANSWER_WAIT
from .bounds import RENEWAL_MAX_ATTEMPTS as MAX_ATTEMPTS
from .bounds import RENEWAL_POLL_SECONDS as POLL_SECONDS
from .bounds import RENEWAL_RETRY_SECONDS as RETRY_SECONDS
from .bounds import RENEWAL_TRANSCRIPT_WAIT as TRANSCRIPT_WAIT
from .upstream_events import (
    AudioCommitted,
    ErrorDetail,
    ErrorEvent,
    FunctionArgumentsDone,
    ItemDone,
    ResponseCreated,
    SessionCreated,
    SessionUpdated,
    SpeechStopped,
    TranscriptionCompleted,
)
from .validation import InvalidMessage, decode, too_deep

__all__ = [
    "ANSWER_WAIT",
    "MAX_ATTEMPTS",
    "MAX_CARRIED_CHARS",
    "MAX_CARRIED_ITEMS",
    "POLL_SECONDS",
    "RECENT_AUDIO_BATCHES",
    "RETRY_SECONDS",
    "TRANSCRIPT_WAIT",
    "TRUNCATED_MARK",
    "AppliedSettings",
    "ConversationRecord",
    "Renewal",
    "RenewalFailed",
    "RenewalState",
    "is_cap_error",
]


_CAP_ERROR_CODE: Final = "session_expired"
_CAP_ERROR_TEXT: Final = "maximum duration"
_ACK_EVENTS: Final = frozenset(
    {"conversation.item.added", "conversation.item.created", "conversation.item.done"}
)
_MERGED_KEYS: Final = frozenset({"audio", "input", "output"})  # session.update merges these


def is_cap_error(error: ErrorDetail) -> bool:
    """The service's "session hit the maximum duration" error."""
    return error.code == _CAP_ERROR_CODE or _CAP_ERROR_TEXT in (error.message or "").lower()


# ---------------------------------------------------------------- the conversation


@dataclass(slots=True)
class _Entry:
    seq: int
    key: str  # an item or call id: what later events about it are matched by
    item: dict[str, Any] | None  # None: a spoken turn whose transcript is awaited
    chars: int
    since: float


class ConversationRecord:
    """The conversation as the items that rebuild it in another session, in order.

    Text only: typed and spoken user turns (their transcripts), the assistant's text and
    transcripts, function calls and their outputs. Audio is not carried (the service has
    no way to add an assistant's audio item; the transcript stands for it).
    """

    __slots__ = ("_anonymous", "_entries", "_keys", "_seq", "chars", "max_chars", "max_items")

    def __init__(
        self, max_items: int = MAX_CARRIED_ITEMS, max_chars: int = MAX_CARRIED_CHARS
    ) -> None:
        self.max_items = max_items
        self.max_chars = max_chars
        self.chars = 0
        # A deque from the first entry on (an idle session records nothing).
        self._entries: deque[_Entry] | tuple[()] = ()
        self._keys: dict[str, _Entry] = {}
        self._seq = itertools.count(1)
        self._anonymous = itertools.count(1)

    def __len__(self) -> int:
        return len(self._entries)

    def message(self, role: str, text: str, *, key: str | None = None, now: float = 0.0) -> None:
        """A user or assistant text turn (once per `key`)."""
        if not text or (key is not None and key in self._keys):
            return
        self._add(key, _text_item(role, self._cut(text)), now)

    def spoken_turn(self, item_id: str, now: float) -> None:
        """The user's audio became item `item_id`: its transcript comes later."""
        if item_id not in self._keys:
            self._add(item_id, None, now)

    def transcript(self, item_id: str, text: str, now: float) -> None:
        entry = self._keys.get(item_id)
        if entry is None:
            self.message("user", text, key=item_id, now=now)
        elif entry.item is None and text.strip():
            entry.item = _text_item("user", self._cut(text))
            entry.chars = len(entry.item["content"][0]["text"])
            self.chars += entry.chars
            self._trim()

    def function_call(self, call_id: str, name: str, arguments: str, now: float) -> None:
        if call_id not in self._keys:
            item = {"type": "function_call", "call_id": call_id, "name": name}
            item["arguments"] = arguments = self._cut(arguments)
            self._add(call_id, item, now, chars=len(name) + len(arguments))

    def function_output(self, call_id: str, output: str, now: float) -> None:
        key = f"output:{call_id}"
        if key not in self._keys:
            output = self._cut(output)
            item = {"type": "function_call_output", "call_id": call_id, "output": output}
            self._add(key, item, now, chars=len(output))

    def sent_upstream(self, item: dict[str, Any], now: float) -> None:
        """An item the proxy itself created upstream (user text, the agent's spoken text,
        context, function outputs)."""
        kind = item.get("type")
        if kind == "message":
            role = item.get("role")
            text = "".join(str(part.get("text") or "") for part in item.get("content") or ())
            if role in ("user", "assistant"):
                self.message(str(role), text, key=item.get("id"), now=now)
        elif kind == "function_call":
            self.function_call(
                str(item.get("call_id")), str(item.get("name")), str(item.get("arguments")), now
            )
        elif kind == "function_call_output":
            self.function_output(str(item.get("call_id")), str(item.get("output")), now)

    def awaiting(self, now: float) -> bool:
        """A spoken turn's transcript is still expected."""
        return any(e.item is None and now - e.since < TRANSCRIPT_WAIT for e in self._entries)

    def after(self, seq: int, now: float) -> tuple[list[dict[str, Any]], int]:
        """The items recorded after `seq`, up to the first transcript still awaited,
        and the last sequence number they cover."""
        found: list[dict[str, Any]] = []
        last = seq
        newer: list[_Entry] = []
        for entry in reversed(self._entries):  # most calls find nothing new: stop early
            if entry.seq <= seq:
                break
            newer.append(entry)
        for entry in reversed(newer):
            if entry.item is None:
                if now - entry.since < TRANSCRIPT_WAIT:
                    break
            else:
                found.append(entry.item)
            last = entry.seq
        return found, last

    def _add(
        self, key: str | None, item: dict[str, Any] | None, now: float, chars: int | None = None
    ) -> None:
        if chars is None:
            chars = len(item["content"][0]["text"]) if item is not None else 0
        key = key or f"anonymous:{next(self._anonymous)}"
        entry = _Entry(next(self._seq), key, item, chars, now)
        if not isinstance(self._entries, deque):
            self._entries = deque()
        self._entries.append(entry)
        self._keys[entry.key] = entry
        self.chars += chars
        self._trim()

    def _trim(self) -> None:
        entries = self._entries
        assert isinstance(entries, deque)  # _add made it
        while len(entries) > 1 and (len(entries) > self.max_items or self.chars > self.max_chars):
            dropped = entries.popleft()
            self._drop(dropped)
            if dropped.item is not None and dropped.item["type"] == "function_call":
                output = self._keys.get(f"output:{dropped.key}")  # alone it means nothing
                if output is not None:
                    entries.remove(output)
                    self._drop(output)

    def _drop(self, entry: _Entry) -> None:
        self.chars -= entry.chars
        del self._keys[entry.key]

    def _cut(self, text: str) -> str:
        """`text`, cut to an entry's share of the character bound (marked as cut)."""
        limit = self.max_chars // CARRIED_ENTRY_SHARE
        if len(text) <= limit:
            return text
        if limit <= len(TRUNCATED_MARK):
            return text[:limit]
        return text[: limit - len(TRUNCATED_MARK)] + TRUNCATED_MARK


def _text_item(role: str, text: str) -> dict[str, Any]:
    part = "input_text" if role == "user" else "output_text"
    return {"type": "message", "role": role, "content": [{"type": part, "text": text}]}


# ---------------------------------------------------------------- the settings


class AppliedSettings:
    """Every `session.update` the service confirmed, merged as the service merges them
    (`audio`, `input`, `output` merge; other fields replace): the settings of now."""

    __slots__ = ("_pending", "current", "generation")

    def __init__(self) -> None:
        self.current: dict[str, Any] | None = None
        self.generation = 0  # changes with every confirmed update
        self._pending: list[tuple[str | None, dict[str, Any]]] = []

    def sent(self, event_id: str | None, session: dict[str, Any]) -> None:
        self._pending.append((event_id, session))

    def confirmed(self) -> None:
        """session.updated: the oldest update asked for was applied."""
        if not self._pending:
            return
        _, session = self._pending.pop(0)
        if self.current is None:
            self.current = {}
        _merge(self.current, session)
        self.generation += 1

    def refused(self, event_id: str) -> None:
        self._pending = [p for p in self._pending if p[0] != event_id]


def _merge(base: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if key in _MERGED_KEYS and isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = _copy(value)


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


# ---------------------------------------------------------------- the renewal


class RenewalState(Enum):
    IDLE = "no expiry known, or renewal not due yet"
    DUE = "due: the next session opens at the next quiet moment"
    PREPARING = "the next session gets the settings and the conversation"
    FAILED = "renewal failed or is off: the session ends at its cap"


class RenewalFailed(Exception):
    """The next session cannot be used (the message says why)."""


class Renewal:
    """When to open the next upstream session, what it is sent, when it is ready.

    Times are the session's monotonic clock; `expires_at` is converted on arrival with
    the wall clock read then. Every session holds one, and most never renew: slotted,
    and its containers are made when first needed.
    """

    __slots__ = (
        "_carried_calls",
        "_connected",
        "_counted",
        "_created",
        "_event_id",
        "_generation_sent",
        "_recent_audio",
        "_refusal_told",
        "_sent_seq",
        "_switched_at",
        "_turn_ended_at",
        "_unacked",
        "_update_pending",
        "_wall_clock",
        "_warn",
        "attempts",
        "confirm_by",
        "due_at",
        "expires",
        "margin",
        "min_interval",
        "min_lifetime",
        "next_expires",
        "next_lifetime",
        "next_session_id",
        "poll_at",
        "ready_timeout",
        "record",
        "renewals",
        "settings",
        "state",
    )

    def __init__(
        self,
        margin: float,
        ready_timeout: float,
        event_id: Callable[[str], str],
        wall_clock: Callable[[], float],
        *,
        min_lifetime: float = 0.0,
        min_interval: float = 0.0,
        warn: Callable[[str], None] | None = None,
        counted: Callable[[str], None] | None = None,
    ) -> None:
        self.margin = margin
        self.min_lifetime = min_lifetime
        self.min_interval = min_interval
        self._warn = warn  # told once when renewal is refused (too short-lived, too often)
        self._refusal_told = False
        self._counted = counted  # "renewed" or "refused", for the metrics
        self._switched_at: float | None = None
        self._wall_clock = wall_clock  # only to read expires_at (epoch seconds)
        self.ready_timeout = ready_timeout
        self._event_id = event_id
        self.record = ConversationRecord()
        self.settings = AppliedSettings()
        self.state = RenewalState.IDLE
        self.expires: float | None = None  # when the current session ends
        self.due_at: float | None = None
        self.renewals = 0
        self.attempts = 0  # for the current session's renewal
        self.poll_at: float | None = None
        self._turn_ended_at: float | None = None  # the user stopped; the answer is awaited
        self._reset_next()

    def _reset_next(self) -> None:
        self.next_session_id = ""
        self.next_expires: float | None = None
        self.next_lifetime: float | None = None
        self.confirm_by: float | None = None
        self._recent_audio: deque[bytes] | None = None  # see recent_audio
        self._connected = False
        self._created = False
        self._update_pending: str | None = None
        self._generation_sent = -1
        self._unacked: set[str] | None = None  # carried items not yet confirmed
        self._sent_seq = 0
        self._carried_calls: set[str] | None = None

    @property
    def recent_audio(self) -> deque[bytes]:
        """input_audio_buffer.append payloads, the newest sent to the current session
        while the next one is prepared (made then)."""
        if self._recent_audio is None:
            self._recent_audio = deque(maxlen=RECENT_AUDIO_BATCHES)
        return self._recent_audio

    # -- the current session ---------------------------------------------------------
    def session_expires(self, expires_at: float | None, now: float, wall_now: float) -> None:
        """The current session's `expires_at` (epoch seconds) became known."""
        expires = _monotonic(expires_at, now, wall_now)
        if expires is None:
            return
        self.expires = expires
        if self.margin <= 0:
            self.state = RenewalState.FAILED  # renewal is off: the session ends at its cap
            return
        self._plan(expires, expires - now, now)

    def _plan(self, expires: float, lifetime: float, now: float) -> None:
        """When to renew a session that ends at `expires` and lasts `lifetime` in all."""
        self.expires, self.due_at = expires, None
        if lifetime < self.min_lifetime:
            self._refuse(
                f"the upstream session lasts {lifetime:.0f} s, under the "
                f"{self.min_lifetime:g} s a session must last to be renewed"
            )
            return
        margin = min(self.margin, (expires - now) / 2)  # never in a session's first half
        due = expires - margin
        if self._switched_at is not None:
            due = max(due, self._switched_at + self.min_interval)
            if due >= expires - 1.0:
                self._refuse(
                    f"the last renewal was under {self.min_interval:g} s before this "
                    "session's end (at most one renewal in that time)"
                )
                return
        self.due_at = due
        self.state = RenewalState.IDLE

    def _refuse(self, why: str) -> None:
        self.state = RenewalState.FAILED  # the session ends at its cap
        if self._counted is not None:
            self._counted("refused")
        if self._warn is not None and not self._refusal_told:
            self._refusal_told = True
            self._warn(f"upstream session renewal refused: {why}")

    def observe(self, event: object, now: float) -> None:
        """An event of the current session (validated): what the record needs. Most
        events (audio deltas) are none of these: one dict lookup."""
        observer = _OBSERVERS.get(type(event))
        if observer is not None:
            observer(self, event, now)

    def _session_created(self, event: SessionCreated, now: float) -> None:
        if self.expires is None and event.session is not None:
            self.session_expires(event.session.expires_at, now, self._wall_clock())

    def _session_updated(self, event: SessionUpdated, now: float) -> None:
        self.settings.confirmed()

    def _user_stopped(self, event: SpeechStopped, now: float) -> None:
        self._turn_ended_at = now

    def _response_created(self, event: ResponseCreated, now: float) -> None:
        self._turn_ended_at = None

    def _committed(self, event: AudioCommitted, now: float) -> None:
        self._turn_ended_at = now
        if event.item_id:
            self.record.spoken_turn(event.item_id, now)

    def _transcribed(self, event: TranscriptionCompleted, now: float) -> None:
        if event.item_id:
            self.record.transcript(event.item_id, event.transcript, now)

    def _function_called(self, event: FunctionArgumentsDone, now: float) -> None:
        self.record.function_call(event.call_id, event.name, event.arguments, now)

    def sent(self, event: dict[str, Any], now: float) -> None:
        """An event the proxy sent the current session."""
        kind = event.get("type")
        if kind == "conversation.item.create":
            self.record.sent_upstream(event["item"], now)
        elif kind == "session.update":
            self.settings.sent(event.get("event_id"), event["session"])

    def settling(self, now: float) -> bool:
        """The conversation is about to move on: a transcript or an answer is due."""
        ended = self._turn_ended_at
        if ended is not None and now - ended < ANSWER_WAIT:
            return True
        return self.record.awaiting(now)

    @property
    def next_deadline(self) -> float | None:
        candidates = [self.expires, self.confirm_by]
        if self.state is RenewalState.IDLE:
            candidates.append(self.due_at)
        elif self.state is not RenewalState.FAILED:
            candidates.append(self.poll_at)
        return min((c for c in candidates if c is not None), default=None)

    def is_due(self, now: float) -> bool:
        """Time to open the next session (the caller waits for a quiet moment)."""
        if self.state is RenewalState.IDLE and self.due_at is not None and now >= self.due_at:
            self.state = RenewalState.DUE
        return self.state is RenewalState.DUE

    def expired(self, now: float) -> bool:
        """The current session is at its cap (a second early: `expires_at` is whole
        seconds and the service may close on the second)."""
        return self.expires is not None and now >= self.expires - CAP_EARLY_SECONDS

    # -- the next session ------------------------------------------------------------
    def opening(self) -> None:
        self._reset_next()
        self.attempts += 1
        self.state = RenewalState.PREPARING

    @property
    def preparing(self) -> bool:
        return self.state is RenewalState.PREPARING

    def connected(self, now: float) -> list[dict[str, Any]]:
        """The next session's socket is open: its first events."""
        self.confirm_by = now + self.ready_timeout
        self._connected = True
        return self.top_up(now)

    def top_up(self, now: float) -> list[dict[str, Any]]:
        """What the next session lacks: settings confirmed since, items recorded since."""
        events: list[dict[str, Any]] = []
        if not self._connected:
            return events
        settings = self.settings
        if (
            settings.current is not None
            and self._update_pending is None
            and self._generation_sent != settings.generation
        ):
            self._generation_sent = settings.generation
            self._update_pending = self._event_id("renew_update")
            events.append(
                {
                    "type": "session.update",
                    "event_id": self._update_pending,
                    "session": _copy(settings.current),
                }
            )
        items, self._sent_seq = self.record.after(self._sent_seq, now)
        for item in items:
            if item["type"] == "function_call_output" and item["call_id"] not in (
                self._carried_calls or ()
            ):
                continue  # its call was dropped from the record: alone it means nothing
            if item["type"] == "function_call":
                if self._carried_calls is None:
                    self._carried_calls = set()
                self._carried_calls.add(item["call_id"])
            item_id = self._event_id("carried").replace("proxy_", "item_")[:32]
            if self._unacked is None:
                self._unacked = set()
            self._unacked.add(item_id)
            events.append(
                {
                    "type": "conversation.item.create",
                    "event_id": self._event_id("carry"),
                    "item": {**_copy(item), "id": item_id},
                }
            )
        if events and self.confirm_by is None:
            self.confirm_by = now + self.ready_timeout
        return events

    def next_frame(self, data: bytes | bytearray | str, now: float) -> None:
        """A frame of the next session, checked as any upstream event is; only what the
        renewal needs is read. Raises `RenewalFailed`."""
        try:
            event = orjson.loads(data)
        except orjson.JSONDecodeError:
            event = None
        kind = event.get("type") if type(event) is dict else None
        if type(kind) is not str or too_deep(event, data):
            raise RenewalFailed("the next upstream session sent a frame that is not an event")
        model = _NEXT_SESSION_EVENTS.get(kind)
        if model is None:
            return  # nothing the renewal waits for
        try:
            typed = decode(model, event, kind)
        except InvalidMessage as exc:
            raise RenewalFailed(f"the next upstream session sent a bad event: {exc}") from None
        self.next_event(kind, typed, now)

    def next_event(self, kind: str, event: object, now: float) -> None:
        """An event of the next session (validated). Raises `RenewalFailed`."""
        if isinstance(event, ErrorEvent):
            error = event.error
            raise RenewalFailed(
                f"the next upstream session refused {error.event_id or 'an event'}: "
                f"{error.code or error.type}: {error.message}"
            )
        if isinstance(event, SessionCreated):
            self._created = True
            session = event.session
            self.next_session_id = (session.id if session else None) or ""
            expires_at = session.expires_at if session else None
            self.next_expires = _monotonic(expires_at, now, self._wall_clock())
            if self.next_expires is not None:
                self.next_lifetime = self.next_expires - now
        elif isinstance(event, SessionUpdated):
            self._update_pending = None
        elif isinstance(event, ItemDone) and kind in _ACK_EVENTS:
            if self._unacked is not None:
                self._unacked.discard(event.item.id or "")
        else:
            return
        self.confirm_by = None if self._confirmed else now + self.ready_timeout

    @property
    def _confirmed(self) -> bool:
        return self._created and self._update_pending is None and not self._unacked

    def ready_to_switch(self, now: float) -> bool:
        """The next session holds everything recorded so far and confirmed it."""
        if not self.preparing or not self._confirmed:
            return False
        if self._generation_sent != self.settings.generation:
            return False
        items, last = self.record.after(self._sent_seq, now)
        return not items and last == self._sent_seq and not self.record.awaiting(now)

    def switched(self, now: float) -> None:
        """The next session is now the current one."""
        expires, lifetime = self.next_expires, self.next_lifetime
        self.renewals += 1
        if self._counted is not None:
            self._counted("renewed")
        self.attempts = 0
        self._switched_at = now
        self._reset_next()
        self.state = RenewalState.IDLE
        self.expires = self.due_at = None
        if expires is not None and lifetime is not None:
            self._plan(expires, lifetime, now)

    def failed(self, now: float) -> bool:
        """The next session cannot be used: True when another will be tried later."""
        self._reset_next()
        retry_at = now + RETRY_SECONDS
        if self.attempts < MAX_ATTEMPTS and self.expires is not None and retry_at < self.expires:
            self.state, self.due_at = RenewalState.IDLE, retry_at
            return True
        self.state = RenewalState.FAILED
        return False


def _monotonic(expires_at: float | None, now: float, wall_now: float) -> float | None:
    """`expires_at` (epoch seconds) on the monotonic clock; None when absent or past."""
    if expires_at is None or expires_at <= 0:
        return None
    remaining = expires_at - wall_now
    return now + remaining if remaining > 0 else None


_OBSERVERS: dict[type[Any], Callable[[Renewal, Any, float], None]] = {
    SessionCreated: Renewal._session_created,
    SessionUpdated: Renewal._session_updated,
    SpeechStopped: Renewal._user_stopped,
    ResponseCreated: Renewal._response_created,
    AudioCommitted: Renewal._committed,
    TranscriptionCompleted: Renewal._transcribed,
    FunctionArgumentsDone: Renewal._function_called,
}

#: What the renewal reads from the next session before the switch (the rest is ignored).
_NEXT_SESSION_EVENTS: Final[dict[str, type[Any]]] = {
    "session.created": SessionCreated,
    "session.updated": SessionUpdated,
    "conversation.item.added": ItemDone,
    "conversation.item.created": ItemDone,
    "conversation.item.done": ItemDone,
    "error": ErrorEvent,
}
