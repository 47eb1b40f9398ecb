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

- `ConversationRecord` (`proxy.conversation_record`): the conversation as text items;
- `AppliedSettings`: every confirmed `session.update`, merged, as one `session.update`;
- `Renewal`: when the next session is due, what goes to it, and when it is ready.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from enum import Enum
from typing import Any, Final

from .bounds import CAP_EARLY_SECONDS, RECENT_AUDIO_BATCHES
from .bounds import RENEWAL_ANSWER_WAIT as ANSWER_WAIT
from .bounds import RENEWAL_FORCE_SECONDS as FORCE_SECONDS
from .bounds import RENEWAL_LATE_TRANSCRIPT_SECONDS as LATE_TRANSCRIPT_SECONDS
from .bounds import RENEWAL_MAX_ATTEMPTS as MAX_ATTEMPTS
from .bounds import RENEWAL_POLL_SECONDS as POLL_SECONDS
from .bounds import RENEWAL_RETRY_SECONDS as RETRY_SECONDS
from .conversation_record import ConversationRecord
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
    parse_upstream_frame,
)
from .validation import InvalidMessage, decode
from .wire import Unreadable, typed_object

__all__ = [
    "ANSWER_WAIT",
    "FORCE_SECONDS",
    "LATE_TRANSCRIPT_SECONDS",
    "MAX_ATTEMPTS",
    "POLL_SECONDS",
    "RECENT_AUDIO_BATCHES",
    "RETRY_SECONDS",
    "AppliedSettings",
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
    """The service's "session hit the maximum duration" error: known by its code
    (`session_expired`); its message text only when the error has no code (another
    error may well mention a maximum duration, an audio file's for one)."""
    if error.code:
        return error.code == _CAP_ERROR_CODE
    return _CAP_ERROR_TEXT in (error.message or "").lower()


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
    the wall clock read then. Every session holds one and few ever renew: slotted, and
    its containers are made when first needed.
    """

    __slots__ = (
        "_carried_calls",
        "_connected",
        "_counted",
        "_created",
        "_event_id",
        "_generation_sent",
        "_late_items",
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
        "force_at",
        "late_until",
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
        # From then on, a pending call or the user's speech no longer holds the renewal.
        self.force_at: float | None = None
        self.renewals = 0
        self.attempts = 0  # for the current session's renewal
        self.poll_at: float | None = None
        self._turn_ended_at: float | None = None  # the user stopped; the answer is awaited
        # Spoken turns of the last replaced session whose transcript may still come from
        # it, until `late_until` (None, not an empty set, in the many sessions never renewed).
        self._late_items: set[str] | None = None
        self.late_until: float | None = None
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
        self._unacked: set[str] | None = None  # carried items not yet echoed
        self._sent_seq = 0
        self._carried_calls: set[str] | None = None

    @property
    def recent_audio(self) -> deque[bytes]:
        """input_audio_buffer.append payloads, the newest sent to the current session
        (made at the first: an idle session holds none)."""
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
        self.expires, self.due_at, self.force_at = expires, None, None
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
        self.force_at = expires - min(FORCE_SECONDS, (expires - due) / 2)
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

    def forced(self, now: float) -> bool:
        """In the last stretch before the cap (`FORCE_SECONDS`): a client-side call or
        the user's speech no longer holds the renewal."""
        return self.force_at is not None and now >= self.force_at

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
        event = typed_object(data)
        if isinstance(event, Unreadable):
            raise RenewalFailed("the next upstream session sent a frame that is not an event")
        kind: str = event["type"]
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

    def switched(self, now: float) -> float:
        """The next session is now the current one. Returns how long the old one is still
        heard for transcripts it owes (0: not at all)."""
        expires, lifetime = self.next_expires, self.next_lifetime
        # Only the replaced session's own turns: the sessions before it are closed.
        began = self._switched_at if self._switched_at is not None else -math.inf
        self._late_items = set(self.record.untranscribed(began)) or None
        self.late_until = now + LATE_TRANSCRIPT_SECONDS if self._late_items else None
        self.renewals += 1
        if self._counted is not None:
            self._counted("renewed")
        self.attempts = 0
        self._switched_at = now
        self._reset_next()
        self.state = RenewalState.IDLE
        self.expires = self.due_at = self.force_at = None
        if expires is not None and lifetime is not None:
            self._plan(expires, lifetime, now)
        return LATE_TRANSCRIPT_SECONDS if self._late_items else 0.0

    def late_transcript(self, data: bytes | bytearray | str, now: float) -> tuple[str, str] | None:
        """A frame of the replaced session: (item id, transcript) when it is a transcript
        that session owed, in time; else None (anything else it says is not heard)."""
        late = self._late_items
        if late is None or self.late_until is None or now >= self.late_until:
            self._late_items = None
            return None
        found = _TRANSCRIPT in data if isinstance(data, str) else _TRANSCRIPT_BYTES in data
        if not found:
            return None  # the old session's other events: one scan, no parse
        typed = parse_upstream_frame(data)
        if not isinstance(typed, TranscriptionCompleted):
            return None
        if typed.item_id is None or typed.item_id not in late:
            return None
        late.discard(typed.item_id)
        self.record.transcript(typed.item_id, typed.transcript, now)
        return typed.item_id, typed.transcript

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
    """`expires_at` (epoch seconds) on the monotonic clock; None when absent or past.

    Read once, when the event arrives: from then on only the monotonic clock counts, so
    a later step of the host's clock (NTP, an operator) neither brings the renewal
    forward nor delays it. What remains is the skew between the service's clock and the
    host's at that moment (plus the event's transit): `expires_at` is the service's
    time, read against ours. NTP keeps that to well under a second, and the margin
    (minutes) absorbs it; a host clock that is off by minutes moves the renewal by as
    much, and one ahead by the whole session's life sees it as past (not renewed)."""
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

_TRANSCRIPT: Final = "conversation.item.input_audio_transcription.completed"
_TRANSCRIPT_BYTES: Final = _TRANSCRIPT.encode()

#: What the renewal reads from the next session before the switch (the rest is ignored).
_NEXT_SESSION_EVENTS: Final[dict[str, type[Any]]] = {
    "session.created": SessionCreated,
    "session.updated": SessionUpdated,
    "conversation.item.added": ItemDone,
    "conversation.item.created": ItemDone,
    "conversation.item.done": ItemDone,
    "error": ErrorEvent,
}
