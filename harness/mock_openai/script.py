"""The scripting API of the mock: rules that read like sentences.

A `Rule` is a trigger (`on_user_text("weather")`, `on_client_event("session.update")`,
...) plus the actions to take when it fires (`.reply_with_audio("Sunny")`, `.stall(200)`,
`.close(1011)`). Rules live in a `RuleBook`; the first registered rule that matches
wins, and a rule stays active until its `.once()` / `.times(n)` budget is spent.

This module holds data only. What an action *does* on the wire is decided by
`behaviour.py`; this module never touches a socket.
"""

from __future__ import annotations

import contextlib
import enum
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

import orjson

from harness.schema import validate_server_event

__all__ = [
    "Action",
    "CallFunction",
    "Close",
    "RejectHandshake",
    "ReplyAudio",
    "ReplyText",
    "Rule",
    "RuleBook",
    "SendError",
    "SendEvent",
    "SendGarbage",
    "Stall",
    "TranscribeAs",
    "Trigger",
]


class Trigger(enum.Enum):
    """What a rule listens for."""

    CONNECT = "a new connection"
    CLIENT_EVENT = "a client event"
    USER_TEXT = "a response to user text"
    USER_SPEECH = "a response to user speech"
    FUNCTION_OUTPUT = "a response to a function output"


# --- actions ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReplyAudio:
    """An assistant message; audio + transcript in an audio session, text otherwise."""

    text: str
    chunks: int = 3
    chunk_ms: int = 100
    chunk_interval_ms: int = 0
    stop_after_events: int | None = None


@dataclass(frozen=True, slots=True)
class ReplyText:
    """An assistant message with default audio pacing (the session decides the form)."""

    text: str
    stop_after_events: int | None = None


@dataclass(frozen=True, slots=True)
class CallFunction:
    """A function_call output item."""

    name: str
    arguments: str
    call_id: str | None = None


@dataclass(frozen=True, slots=True)
class TranscribeAs:
    """The transcript the mock "hears" for a spoken user turn."""

    text: str


@dataclass(frozen=True, slots=True)
class SendError:
    """An `error` event."""

    code: str
    message: str
    type: str = "invalid_request_error"
    param: str | None = None


@dataclass(frozen=True, slots=True)
class SendEvent:
    """Any server event (validated before it is sent)."""

    event: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class SendGarbage:
    """A frame the real API would never send (text for str, binary for bytes)."""

    data: str | bytes


@dataclass(frozen=True, slots=True)
class Stall:
    """Wait before the next action (or the default handling)."""

    ms: float


@dataclass(frozen=True, slots=True)
class Close:
    """Close the connection with this code."""

    code: int = 1011
    reason: str = ""


@dataclass(frozen=True, slots=True)
class RejectHandshake:
    """Refuse the WebSocket upgrade with this HTTP status (on_connect rules only)."""

    status: int = 401


Action: TypeAlias = (
    ReplyAudio
    | ReplyText
    | CallFunction
    | TranscribeAs
    | SendError
    | SendEvent
    | SendGarbage
    | Stall
    | Close
    | RejectHandshake
)

#: Actions that produce output items of a response.
OUTPUT_ACTIONS = (ReplyAudio, ReplyText, CallFunction)
#: Actions after which the default handling still runs (they only delay or annotate).
PASSIVE_ACTIONS = (Stall, TranscribeAs)

TextMatcher: TypeAlias = str | re.Pattern[str] | None
EventPredicate: TypeAlias = Callable[[dict[str, Any]], bool]


# --- rules -----------------------------------------------------------------------------


class Rule:
    """A trigger and the actions to run, in order, when it fires.

    Every method returns the rule, so a rule reads as one sentence::

        mock.on_user_text("weather").call_function("get_weather", {"city": "Paris"}).once()
    """

    def __init__(self, book: RuleBook, trigger: Trigger, description: str) -> None:
        self._book = book
        self.trigger = trigger
        self.description = description
        self._actions: list[Action] = []
        self._remaining: int | None = None  # None: unlimited
        self._hits = 0
        self._text: TextMatcher = None
        self._event_type: str | None = None
        self._where: EventPredicate | None = None
        self._function: str | None = None

    def __repr__(self) -> str:
        return f"<Rule {self.description}: {len(self._actions)} action(s), hits={self.hits}>"

    # -- budget ---------------------------------------------------------------------
    def once(self) -> Rule:
        """Fire at most once."""
        return self.times(1)

    def times(self, n: int) -> Rule:
        """Fire at most `n` times, then let later rules (or the default) answer."""
        if n < 1:
            raise self._invalid("times(n) needs n >= 1")
        with self._book.lock:
            self._remaining = n
        return self

    @property
    def hits(self) -> int:
        """How many times this rule has fired."""
        with self._book.lock:
            return self._hits

    # -- actions --------------------------------------------------------------------
    def reply_with_audio(
        self,
        text: str,
        *,
        chunks: int = 3,
        chunk_ms: int = 100,
        chunk_interval_ms: int = 0,
        stop_after_events: int | None = None,
    ) -> Rule:
        """Answer with an assistant message saying `text`.

        In an audio session: `chunks` audio deltas of `chunk_ms` each (a PCM16 tone),
        `chunk_interval_ms` apart, with the transcript as deltas. In a text session the
        same text comes as output_text. `stop_after_events=N` sends only the first N
        events of the response (counting from response.created) and leaves it hanging.
        """
        self._no_output_on_connect()
        if chunks < 1 or chunk_ms < 1 or chunk_interval_ms < 0:
            raise self._invalid("need chunks >= 1, chunk_ms >= 1 and chunk_interval_ms >= 0")
        self._check_stop_after(stop_after_events)
        return self._add(ReplyAudio(text, chunks, chunk_ms, chunk_interval_ms, stop_after_events))

    def reply_with_text(self, text: str, *, stop_after_events: int | None = None) -> Rule:
        """Answer with an assistant message saying `text`.

        The session's output modalities decide the form, as on the real service: text
        deltas in a text session, audio + transcript (default pacing) in an audio one.
        """
        self._no_output_on_connect()
        self._check_stop_after(stop_after_events)
        return self._add(ReplyText(text, stop_after_events))

    def call_function(
        self,
        name: str,
        arguments: Mapping[str, Any] | str | None = None,
        *,
        call_id: str | None = None,
    ) -> Rule:
        """Answer with a function_call item (`arguments` as a dict or a JSON string)."""
        self._no_output_on_connect()
        if arguments is None:
            arguments = {}
        if isinstance(arguments, str):
            args = arguments
        else:
            with self._withdrawn_on_error():
                args = orjson.dumps(dict(arguments)).decode()
        return self._add(CallFunction(name, args, call_id))

    def transcribe_as(self, text: str) -> Rule:
        """The transcript of the user's utterance (on_user_speech rules only)."""
        if self.trigger is not Trigger.USER_SPEECH:
            raise self._invalid("transcribe_as() only applies to on_user_speech() rules")
        return self._add(TranscribeAs(text))

    def send_error(
        self,
        code: str,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
    ) -> Rule:
        """Send an `error` event shaped like the real service's."""
        return self._add(SendError(code, message, type, param))

    def send_event(self, event: Mapping[str, Any]) -> Rule:
        """Send any server event. It is validated now (raising `SchemaError`) and again
        when sent; a missing `event_id` is filled in."""
        probe = dict(event)
        probe.setdefault("event_id", "event_probe")
        with self._withdrawn_on_error():
            validate_server_event(probe)
        return self._add(SendEvent(dict(event)))

    def send_garbage(self, data: str | bytes = "not json{") -> Rule:
        """Fault: send a frame the real API never would (not validated, on purpose)."""
        return self._add(SendGarbage(data))

    def stall(self, ms: float) -> Rule:
        """Wait `ms` milliseconds before the next action or the default handling."""
        if ms < 0:
            raise self._invalid("stall(ms) needs ms >= 0")
        return self._add(Stall(ms))

    def close(self, code: int = 1011, reason: str = "") -> Rule:
        """Close the connection with `code` (after what was queued before it)."""
        return self._add(Close(code, reason))

    def reject_handshake(self, status: int = 401) -> Rule:
        """Refuse the WebSocket upgrade with an HTTP `status` and an OpenAI-style JSON
        error body (on_connect rules only)."""
        if self.trigger is not Trigger.CONNECT:
            raise self._invalid("reject_handshake() only applies to on_connect() rules")
        return self._add(RejectHandshake(status))

    # -- internals --------------------------------------------------------------------
    @contextlib.contextmanager
    def _withdrawn_on_error(self) -> Iterator[None]:
        """A sentence whose argument fails to check is not left half-registered."""
        try:
            yield
        except Exception:
            self._book.withdraw(self)
            raise

    def _add(self, action: Action) -> Rule:
        with self._book.lock:
            self._actions.append(action)
        return self

    def _invalid(self, message: str) -> ValueError:
        """The error for a sentence that cannot be built; it is not left registered."""
        self._book.withdraw(self)
        return ValueError(message)

    def _no_output_on_connect(self) -> None:
        if self.trigger is Trigger.CONNECT:
            raise self._invalid("a new connection has no response to reply in; use on_client_event")

    def _check_stop_after(self, stop_after_events: int | None) -> None:
        if stop_after_events is not None and stop_after_events < 1:
            raise self._invalid("stop_after_events counts from response.created: use N >= 1")

    def _matches(self, subject: Any) -> bool:
        trigger = self.trigger
        if trigger is Trigger.CLIENT_EVENT:
            event: dict[str, Any] = subject
            if event.get("type") != self._event_type:
                return False
            return self._where is None or bool(self._where(event))
        if trigger is Trigger.USER_TEXT:
            text: str = subject
            if self._text is None:
                return True
            if isinstance(self._text, str):
                return self._text in text
            return self._text.search(text) is not None
        if trigger is Trigger.FUNCTION_OUTPUT:
            return self._function is None or subject == self._function
        return True  # CONNECT, USER_SPEECH: no condition


class RuleBook:
    """The ordered rules of one mock; safe to use from any thread."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._rules: list[Rule] = []

    def add(self, rule: Rule) -> Rule:
        with self.lock:
            self._rules.append(rule)
        return rule

    def clear(self) -> None:
        with self.lock:
            self._rules.clear()

    def withdraw(self, rule: Rule) -> None:
        with self.lock:
            if rule in self._rules:
                self._rules.remove(rule)

    def rules(self) -> list[Rule]:
        with self.lock:
            return list(self._rules)

    def new_rule(
        self,
        trigger: Trigger,
        description: str,
        *,
        text: TextMatcher = None,
        event_type: str | None = None,
        where: EventPredicate | None = None,
        function: str | None = None,
    ) -> Rule:
        rule = Rule(self, trigger, description)
        rule._text, rule._event_type, rule._where, rule._function = (
            text,
            event_type,
            where,
            function,
        )
        return self.add(rule)

    def match(self, trigger: Trigger, subject: Any = None) -> tuple[Action, ...] | None:
        """Fire the first live rule for `trigger` that matches `subject`.

        Returns a snapshot of its actions (spending one use), or None when no rule
        matches. `subject` is the client event dict, the user text, or the function name.
        A `where` predicate that raises propagates to the caller.
        """
        with self.lock:
            for rule in self._rules:
                if rule.trigger is not trigger or rule._remaining == 0:
                    continue
                if rule._matches(subject):
                    if rule._remaining is not None:
                        rule._remaining -= 1
                    rule._hits += 1
                    return tuple(rule._actions)
        return None
