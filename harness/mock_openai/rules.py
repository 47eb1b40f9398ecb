"""The scripting API of the mock: rules that read like sentences, and what they expect.

A `Rule` is a trigger (`on_user_text("weather")`, `on_client_event("session.update")`,
...) plus the steps to take when it fires (`.reply_with_audio("Sunny")`, `.stall(200)`,
`.close(1011)`, `.respond_with(function)`). Rules live in a `RuleBook`; the first
registered rule that matches and still has budget wins.

Every rule also states how often it must fire, and the `mock_openai` fixture checks it
when the test ends, so a script that never ran cannot pass unnoticed:

=====================  ===========================================
(nothing said)         at least once, no limit
``.once()``            exactly once
``.times(n)``          exactly n times
``.at_most(n)``        0 to n times
``.at_least(n)``       n or more times
``.optional()``        any number of times, none included
=====================  ===========================================

This module holds data only; what a step does on the wire is decided by `service.py`.
"""

from __future__ import annotations

import contextlib
import enum
import re
import threading
import traceback
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeAlias

import orjson

from harness.recognition import phrase_words, require_recognition
from harness.schema import validate_server_event

from .patterns import EventFilter, EventPredicate, as_predicate
from .steps import (
    SERVER_ERROR_MESSAGE,
    CallFunction,
    CloseConnection,
    EndResponse,
    RejectHandshake,
    ReplyAudio,
    ReplyOnlyInResponseDone,
    ReplyText,
    Respond,
    Responder,
    RuleStep,
    Send,
    SendError,
    SendRaw,
    Sleep,
    TranscribeAs,
)

__all__ = ["Expectation", "Match", "Rule", "RuleBook", "TextMatcher", "Trigger"]

TextMatcher: TypeAlias = str | re.Pattern[str] | None

_HARNESS_DIR: Final = Path(__file__).resolve().parent.parent


class Trigger(enum.Enum):
    """What a rule listens for."""

    CONNECT = "on_connect"
    CLIENT_EVENT = "on_client_event"
    USER_TEXT = "on_user_text"
    USER_SPEECH = "on_user_speech"
    FUNCTION_OUTPUT = "on_function_output"


@dataclass(frozen=True, slots=True)
class Expectation:
    """How many times a rule must fire: `minimum` to `maximum` (None: no limit).

    `maximum` is also the rule's budget: once spent, later rules (or the default) answer.
    """

    minimum: int = 1
    maximum: int | None = None

    def describe(self) -> str:
        low, high = self.minimum, self.maximum
        if high is None:
            return "any number of times" if low == 0 else f"at least {_times(low)}"
        if low == high:
            return f"exactly {_times(low)}"
        return f"at most {_times(high)}" if low == 0 else f"{low} to {_times(high)}"

    def met_by(self, hits: int) -> bool:
        return hits >= self.minimum and (self.maximum is None or hits <= self.maximum)


def _times(n: int) -> str:
    return "once" if n == 1 else f"{n} times"


@dataclass(frozen=True, slots=True)
class Match:
    """A rule that fired: its steps (a snapshot) and which firing this is (1-based)."""

    rule: Rule
    steps: tuple[RuleStep, ...]
    number: int


class Rule:
    """A trigger and the steps to run, in order, when it fires.

    Every method returns the rule, so a rule reads as one sentence::

        mock.on_user_text("weather").call_function("get_weather", {"city": "Paris"}).once()
    """

    def __init__(
        self,
        book: RuleBook,
        trigger: Trigger,
        matcher: str,
        *,
        text: TextMatcher = None,
        event_type: str | None = None,
        where: EventFilter | None = None,
        function: str | None = None,
        site: str | None = None,
    ) -> None:
        self._book = book
        self.trigger = trigger
        self._sentence = [f"{trigger.value}({matcher})"]
        self.site = site if site is not None else _caller_site()
        """Where the rule was written (``file:line``), for failure messages."""
        self._steps: list[RuleStep] = []
        self._expectation = Expectation()
        self._hits = 0
        self._text = text
        self._event_type = event_type
        self._where: EventPredicate | None = as_predicate(where)
        self._function = function

    def __repr__(self) -> str:
        return f"<Rule {self.description}: hits={self.hits}>"

    @property
    def description(self) -> str:
        """The rule as it was written, e.g. ``on_user_text('hi').reply_with_text('Hey')``."""
        with self._book.lock:
            return ".".join(self._sentence)

    # -- how often -----------------------------------------------------------------------
    def once(self) -> Rule:
        """Fire exactly once (then let later rules or the default answer)."""
        return self._expect(Expectation(1, 1), "once()")

    def times(self, n: int) -> Rule:
        """Fire exactly `n` times (then let later rules or the default answer)."""
        if n < 1:
            raise self._invalid(
                "times(n) needs n >= 1; use optional() for a rule that may not fire"
            )
        return self._expect(Expectation(n, n), f"times({n})")

    def at_most(self, n: int) -> Rule:
        """Fire up to `n` times; not firing at all is fine."""
        if n < 1:
            raise self._invalid("at_most(n) needs n >= 1")
        return self._expect(Expectation(0, n), f"at_most({n})")

    def at_least(self, n: int) -> Rule:
        """Fire `n` times or more (no limit)."""
        if n < 1:
            raise self._invalid("at_least(n) needs n >= 1; use optional() for zero")
        return self._expect(Expectation(n, None), f"at_least({n})")

    def optional(self) -> Rule:
        """Fire any number of times, none included: the test does not expect it."""
        return self._expect(Expectation(0, None), "optional()")

    any_number = optional

    @property
    def expectation(self) -> Expectation:
        with self._book.lock:
            return self._expectation

    @property
    def hits(self) -> int:
        """How many times this rule has fired."""
        with self._book.lock:
            return self._hits

    def unmet(self) -> str | None:
        """Why this rule's expectation is not met, or None when it is."""
        with self._book.lock:
            hits, expected = self._hits, self._expectation
        if expected.met_by(hits):
            return None
        return (
            f"rule {self.description} (at {self.site}) was expected to fire "
            f"{expected.describe()}, but fired {_times(hits) if hits else 'never'}"
        )

    def withdraw(self) -> None:
        """Remove this rule: it fires no more, and its count is no longer checked."""
        self._book.withdraw(self)

    # -- steps ---------------------------------------------------------------------------
    def reply_with_audio(
        self,
        text: str,
        *,
        chunks: int = 3,
        chunk_ms: int = 100,
        chunk_interval_ms: int = 0,
        stop_after_events: int | None = None,
        delta_bytes: int | None = None,
    ) -> Rule:
        """Answer with an assistant message saying `text`.

        In an audio session: the audio in `chunk_ms` deltas (`chunks` of them with the
        tone voice; with the speech voice, as many as the spoken text needs),
        `chunk_interval_ms` apart, with the transcript as deltas. In a text session the
        same text comes as output_text. `stop_after_events=N` sends only the first N
        events of the response (counting from response.created) and leaves it hanging.
        `delta_bytes=N` cuts the same audio into deltas of N bytes, odd N included (the
        real service sends odd-length deltas).
        """
        self._no_output_on_connect()
        with self._withdrawn_on_error():
            step = ReplyAudio(
                text, chunks, chunk_ms, chunk_interval_ms, stop_after_events, delta_bytes
            )
        return self._add(step, "reply_with_audio", text)

    def reply_with_text(
        self,
        text: str,
        *,
        stop_after_events: int | None = None,
        output_modalities: Sequence[str] | None = None,
    ) -> Rule:
        """Answer with an assistant message saying `text`.

        The session's output modalities decide the form, as on the real service: text
        deltas in a text session, audio + transcript (default pacing) in an audio one.
        `output_modalities=["text"]` answers in text whatever the session says, as a
        response created with that parameter does.
        """
        self._no_output_on_connect()
        modalities = tuple(output_modalities) if output_modalities is not None else None
        with self._withdrawn_on_error():
            step = ReplyText(text, stop_after_events, modalities)
        return self._add(step, "reply_with_text", text)

    def reply_only_in_response_done(self, text: str) -> Rule:
        """Answer with an assistant message saying `text` that only `response.done`'s
        `output` holds: no deltas, no transcript or text `.done`, no item events (as
        the real service was recorded doing after a function output)."""
        self._no_output_on_connect()
        return self._add(ReplyOnlyInResponseDone(text), "reply_only_in_response_done", text)

    def fail_response(
        self,
        status: str = "failed",
        *,
        reason: str | None = None,
        error_type: str = "server_error",
        error_code: str | None = None,
    ) -> Rule:
        """End the response here with a terminal `status` other than completed:
        ``"failed"`` (`status_details.error` {`error_type`, `error_code`}),
        ``"incomplete"`` (`reason` ``max_output_tokens`` or ``content_filter``) or
        ``"cancelled"`` (`reason` ``turn_detected`` or ``client_cancelled``). Steps before
        it (a partial reply) go out first; on its own, the response holds no output."""
        self._no_output_on_connect()
        with self._withdrawn_on_error():
            step = EndResponse(status, reason, error_type, error_code)
        return self._add(step, "fail_response", status)

    def call_function(
        self,
        name: str,
        arguments: Mapping[str, Any] | str | None = None,
        *,
        call_id: str | None = None,
    ) -> Rule:
        """Answer with a function_call item (`arguments` as a dict or a JSON string)."""
        self._no_output_on_connect()
        with self._withdrawn_on_error():
            step = CallFunction(name, arguments_json(arguments), call_id)
        return self._add(step, "call_function", name)

    @property
    def phrase(self) -> str | None:
        """The words an on_user_speech rule waits to hear (None: any speech)."""
        if self.trigger is Trigger.USER_SPEECH and isinstance(self._text, str):
            return self._text
        return None

    def transcribe_as(self, text: str) -> Rule:
        """The transcript of the user's utterance (on_user_speech rules only)."""
        if self.trigger is not Trigger.USER_SPEECH:
            raise self._invalid("transcribe_as() only applies to on_user_speech() rules")
        return self._add(TranscribeAs(text), "transcribe_as", text)

    def send_error(
        self,
        code: str,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        names_client_event: bool = True,
    ) -> Rule:
        """Send an `error` event shaped like the real service's, naming the client
        event that caused it (`error.event_id`), or not with
        ``names_client_event=False``: the service does not always echo it."""
        step = SendError(code, message, type, param, attributed=names_client_event)
        return self._add(step, "send_error", code)

    def server_error(self, message: str = SERVER_ERROR_MESSAGE) -> Rule:
        """Send the real service's own failure: an `error` of type ``server_error``
        with no `code` and no `event_id` (it names no client event), instead of the
        default answer. In answer to a response.create, no response is created."""
        step = SendError(None, message, "server_error", None, attributed=False)
        return self._add(step, "server_error", message)

    def send_event(self, event: Mapping[str, Any]) -> Rule:
        """Send any server event. It is validated now (raising `SchemaError`) and again
        when sent; a missing `event_id` is filled in."""
        with self._withdrawn_on_error():
            step = checked_event(event)
        return self._add(step, "send_event", event.get("type"))

    def send_unvalidated_event(self, event: Mapping[str, Any]) -> Rule:
        """Send a server event as it is, NOT validated: one today's SDK models would
        refuse, as the service may send after it adds, renames or leaves out a field.
        It goes out exactly as given (no `event_id` is filled in)."""
        data = orjson.dumps(dict(event)).decode()
        return self._add(SendRaw(data), "send_unvalidated_event", event.get("type"))

    def send_garbage(self, data: str | bytes = "not json{") -> Rule:
        """Fault: send a frame the real API never would (not validated, on purpose)."""
        return self._add(SendRaw(data), "send_garbage", data)

    def stall(self, ms: float) -> Rule:
        """Wait `ms` milliseconds before the next step or the default handling."""
        if ms < 0:
            raise self._invalid("stall(ms) needs ms >= 0")
        return self._add(Sleep(ms / 1000), "stall", ms)

    def close(self, code: int = 1011, reason: str = "") -> Rule:
        """Close the connection with `code` (after what was queued before it)."""
        return self._add(CloseConnection(code, reason), "close", code)

    def reject_handshake(self, status: int = 401) -> Rule:
        """Refuse the WebSocket upgrade with an HTTP `status` and an OpenAI-style JSON
        error body (on_connect rules only)."""
        if self.trigger is not Trigger.CONNECT:
            raise self._invalid("reject_handshake() only applies to on_connect() rules")
        return self._add(RejectHandshake(status), "reject_handshake", status)

    def respond_with(self, responder: Responder) -> Rule:
        """Compute the answer when the rule fires: ``responder(turn)`` (sync or async)
        gets a `Turn` (the client event, the user's text, the conversation so far) and
        returns a reply built with `harness.mock_openai.reply` (text, audio, a function
        call, an error, raw events, a close), a list of them, or None for the default.
        Everything it returns is validated like any scripted step."""
        if not callable(responder):
            raise self._invalid("respond_with() needs a callable")
        step = Respond(responder)
        return self._add(step, "respond_with", step.name, quote=False)

    # -- internals ---------------------------------------------------------------------
    @contextlib.contextmanager
    def _withdrawn_on_error(self) -> Iterator[None]:
        """A sentence whose argument fails to check is not left half-registered."""
        try:
            yield
        except Exception:
            self._book.withdraw(self)
            raise

    def _add(self, step: RuleStep, verb: str, argument: Any, *, quote: bool = True) -> Rule:
        shown = _shorten(repr(argument) if quote else str(argument))
        with self._book.lock:
            self._steps.append(step)
            self._sentence.append(f"{verb}({shown})")
        return self

    def _expect(self, expectation: Expectation, words: str) -> Rule:
        with self._book.lock:
            self._expectation = expectation
            self._sentence.append(words)
        return self

    def _invalid(self, message: str) -> ValueError:
        """The error for a sentence that cannot be built; it is not left registered."""
        self._book.withdraw(self)
        return ValueError(message)

    def _no_output_on_connect(self) -> None:
        if self.trigger is Trigger.CONNECT:
            raise self._invalid("a new connection has no response to reply in; use on_client_event")

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
        if trigger is Trigger.USER_SPEECH and isinstance(self._text, str):
            heard: str | None = subject  # None: the turn was not recognised
            return heard is not None and phrase_words(heard) == phrase_words(self._text)
        return True  # CONNECT, USER_SPEECH without words: no condition

    def _has_budget(self) -> bool:
        maximum = self._expectation.maximum
        return maximum is None or self._hits < maximum


class RuleBook:
    """The ordered rules of one mock; safe to use from any thread."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._rules: list[Rule] = []
        self._listened: list[str] = []

    def listen_for(self, phrases: Sequence[str]) -> None:
        """Add `phrases` to what spoken turns are recognised against (no rule needed)."""
        for phrase in phrases:
            check_phrase(phrase)
        with self.lock:
            self._listened.extend(p for p in phrases if p not in self._listened)

    def phrases(self) -> tuple[str, ...]:
        """The phrases spoken turns are recognised against: those on_user_speech rules
        wait for and those listened for, in order."""
        with self.lock:
            named = [r.phrase for r in self._rules if r.phrase is not None]
            return tuple(dict.fromkeys([*named, *self._listened]))

    def add(self, rule: Rule) -> Rule:
        with self.lock:
            self._rules.append(rule)
        return rule

    def clear(self) -> None:
        with self.lock:
            self._rules.clear()
            self._listened.clear()

    def withdraw(self, rule: Rule) -> None:
        with self.lock:
            if rule in self._rules:
                self._rules.remove(rule)

    def rules(self) -> list[Rule]:
        with self.lock:
            return list(self._rules)

    def unmet(self) -> list[str]:
        """Why each rule whose expectation is not met fails it, in registration order."""
        return [reason for rule in self.rules() if (reason := rule.unmet()) is not None]

    def match(self, trigger: Trigger, subject: Any = None) -> Match | None:
        """Fire the first rule for `trigger` that matches `subject` and has budget left.

        `subject` is the client event dict, the user text, or the function name. A `where`
        predicate that raises propagates to the caller.
        """
        with self.lock:
            for rule in self._rules:
                if rule.trigger is not trigger or not rule._has_budget():
                    continue
                if rule._matches(subject):
                    rule._hits += 1
                    return Match(rule, tuple(rule._steps), rule._hits)
        return None


def check_phrase(phrase: str) -> None:
    """A phrase to recognise: it needs words, and recognition needs pocketsphinx."""
    if not isinstance(phrase, str) or not phrase_words(phrase):
        raise ValueError(f"a phrase to hear needs words: got {phrase!r}")
    require_recognition()


def arguments_json(arguments: Mapping[str, Any] | str | None) -> str:
    """Function call arguments as the JSON string the API sends."""
    if arguments is None:
        return "{}"
    if isinstance(arguments, str):
        return arguments
    return orjson.dumps(dict(arguments)).decode()


def checked_event(event: Mapping[str, Any]) -> Send:
    """A `Send` of `event`, validated now (raising `SchemaError`), event_id optional."""
    probe = dict(event)
    probe.setdefault("event_id", "event_probe")
    validate_server_event(probe)
    return Send(dict(event))


def _shorten(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def _caller_site() -> str:
    """``file:line`` of the first frame outside the harness: where a test wrote the rule."""
    for frame in reversed(traceback.extract_stack()[:-1]):
        path = Path(frame.filename).resolve()
        if not path.is_relative_to(_HARNESS_DIR):
            return f"{path.name}:{frame.lineno}"
    return "?"
