"""What one session holds, and the few ways it speaks: the base of `ProxySession`.

The session is one object (its fields are `__slots__`, read on every frame), written in
one module per concern: `opening` (readiness, held messages, settings updates),
`responses` (the response gate, its deadline, the spoken-text map, what the agent says),
`barge_in` (user speech over the agent), `function_calls` (the call ledger and the
endpoint decision), `deadlines` (every timer), `renewing` (the next upstream session),
and `session` (the inputs, and one dispatch table per side). Each concern is a mixin of
this base: here are the fields, how a frame goes to the client or upstream, errors,
closing, and the ids the session makes. No I/O.
"""

from __future__ import annotations

import itertools
import logging
import math
import re
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import orjson

from .actions import (
    Action,
    CloseClient,
    CloseNextUpstream,
    CloseUpstream,
    SendToClient,
    SendUpstream,
)
from .agent_turn import AgentTurns
from .audio_formats import DEFAULT_AUDIO
from .audio_path import AgentAudio, MicrophoneInput, RecentIds
from .client_messages import ClientMessage, FunctionDefinition, Settings
from .errors import ErrorCode, WarningCode
from .latency import TurnLatency
from .limits import MESSAGE_BURST_SECONDS, Flood, TokenBucket
from .logs import SessionLog
from .pending_calls import PendingCalls
from .phases import Phase, Step, UserSpeech, advance
from .redaction import Redactor
from .renewal import Renewal, RenewalState
from .response_gate import Request, ResponseGate, Speech
from .server_messages import (
    PROXY_OWNED,
    ConversationText,
    Error,
    FunctionCallHistory,
    FunctionCallResult,
    History,
    ServerMessage,
    Warning,
    encode,
)
from .session_options import SessionObserver, SessionOptions, Unobserved
from .updates import PendingUpdate
from .upstream_events import FunctionArgumentsDone

__all__ = ["SessionState", "loggable"]


class SessionState:
    """The fields of one session and how it speaks (see the module docstring)."""

    __slots__ = (
        "_active_at",
        "_agent_turns",
        "_audio_since_commit",
        "_calls",
        "_clock",
        "_created_deadline",
        "_debug",
        "_draining",
        "_ends_at",
        "_flood",
        "_idle_deadline",
        "_ids",
        "_latency",
        "_message_bucket",
        "_opened_at",
        "_out",
        "_pending",
        "_redactor",
        "_renewal",
        "_reported_items",
        "_response_deadline",
        "_speech_responses",
        "_tag",
        "_turn_bucket",
        "_until_welcome",
        "_updates",
        "_user_speech",
        "_user_transcript",
        "agent_audio",
        "audio",
        "close_reason",
        "gate",
        "log",
        "microphone",
        "observer",
        "options",
        "pending_bytes",
        "phase",
        "settings",
        "turns",
    )

    def __init__(
        self,
        options: SessionOptions | None = None,
        clock: Callable[[], float] = time.monotonic,
        log: SessionLog | None = None,
        observer: SessionObserver | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.options = options or SessionOptions()
        self._clock = clock
        self.observer: SessionObserver = observer or Unobserved()
        self.close_reason = ""  # why the session ended (a metrics label)
        self._draining = False
        self._out: list[Action] = []
        self._ids = itertools.count(1)
        self._tag = format(id(self) & 0xFFFFFF, "06x")
        self.log = log or SessionLog(logging.getLogger("proxy.session"), self._tag)
        self._debug = self.log.isEnabledFor(logging.DEBUG)  # levels are set before sessions
        self._redactor = Redactor.for_key(self.options.api_key)
        now = clock()

        # Readiness.
        self.phase = Phase.CONNECTING
        # What a Settings told the client before Welcome, held until Welcome goes; None
        # once it went (so "welcomed" needs no flag of its own).
        self._until_welcome: list[ServerMessage] | None = []
        self.settings: Settings | None = None  # the applied Settings (agent as updated)
        self.audio = DEFAULT_AUDIO
        # (message, size); a deque only once something waits (most sessions never queue).
        self._pending: deque[tuple[ClientMessage | bytes, int]] | None = None
        self.pending_bytes = 0
        self._updates: list[PendingUpdate] = []  # session.updates asked for, oldest first
        self._created_deadline: float | None = None

        # Responses, turns and what the client has been told.
        self.gate = ResponseGate()
        self._response_deadline: float | None = None
        self._speech_responses: dict[str, Speech] = {}  # response id -> exact text said
        self._agent_turns = AgentTurns()
        self._latency = TurnLatency()
        self._user_speech = UserSpeech.QUIET
        self._audio_since_commit = False  # audio went upstream since the last commit
        self._reported_items = RecentIds()
        self._calls = PendingCalls()  # the function-call ledger
        self._user_transcript: tuple[str, str] = ("", "")  # (item id, text so far)
        self.turns = 0

        # Audio both ways.
        options = self.options
        self.microphone = MicrophoneInput(
            self.audio,
            batch_ms=options.audio_batch_ms,
            flush_delay=options.audio_flush_delay,
            pause_delay=options.audio_pause,
        )
        self.agent_audio = AgentAudio(self.audio)

        # Limits.
        self._opened_at = now
        self._turn_bucket = TokenBucket(options.turn_rate, options.turn_burst, now)
        burst = max(1, int(options.message_rate * MESSAGE_BURST_SECONDS))
        self._message_bucket = TokenBucket(options.message_rate, burst, now)
        self._flood = Flood(options.flood_close_seconds)
        self._idle_deadline = now + options.client_idle_timeout
        # Held places: the last audio or message other than KeepAlive, and the end of
        # the session's time (see proxy/limits.py).
        self._active_at = now
        lifetime = options.max_session_seconds
        self._ends_at = now + lifetime if lifetime > 0 else math.inf
        self._renewal = Renewal(
            options.session_renew_margin,
            options.ready_timeout,
            self._event_id,
            wall_clock,
            min_lifetime=options.session_renew_min_lifetime,
            min_interval=options.session_renew_min_interval,
            warn=self.log.warning,
            counted=self.observer.renewal,
        )

    @property
    def closed(self) -> bool:
        return self.phase is Phase.CLOSED

    # ------------------------------------------------------------ reporting

    def _conversation_text(self, role: str, text: str) -> None:
        self._to_client(ConversationText(role=role, content=text))
        if self.settings is not None and self.settings.history_enabled:
            self._to_client(History(role=role, content=text))
        if self.options.log_content:
            self.log.info("%s: %s", role, text)

    def _function_history(
        self, call_id: str, name: str, arguments: str, output: str, *, client_side: bool
    ) -> None:
        if self.settings is None or not self.settings.history_enabled:
            return
        result = FunctionCallResult(
            id=call_id, name=name, client_side=client_side, arguments=arguments, response=output
        )
        self._to_client(FunctionCallHistory(function_calls=[result]))

    def _turn_ended(self) -> None:
        self._latency.user_turn_ended(self._clock())

    # ------------------------------------------------------------ output helpers

    def _to_client(self, message: ServerMessage) -> None:
        """The one way a JSON frame goes to the client: scrubbed of secrets, unless every
        field of its type is the proxy's own (nothing a peer wrote can be in it)."""
        payload = encode(message)
        if type(message) not in PROXY_OWNED:
            payload = self._redactor.scrub(payload)
        self._out.append(SendToClient(payload, text=True))

    def _upstream(self, event: dict[str, Any]) -> None:
        if self.microphone.holding:
            self._upstream_audio(self.microphone.flush())  # keep audio in order
        try:
            payload = orjson.dumps(event)
        except orjson.JSONEncodeError as exc:  # nested too deep (the edge refuses that first)
            self.log.warning("%s not sent upstream: %s", event.get("type"), exc)
            self._error(ErrorCode.INVALID_MESSAGE, f"{event.get('type')} could not be encoded")
            return
        self._out.append(SendUpstream(payload))
        self._renewal.sent(event, self._clock())

    def _upstream_audio(self, events: list[bytes]) -> None:
        if events:
            self._audio_since_commit = True
            if self._renewal.preparing:
                self._renewal.recent_audio.extend(events)  # for the next session too
        for payload in events:
            self._out.append(SendUpstream(payload))

    def _error(self, code: ErrorCode, description: str) -> None:
        self._to_client(self._error_message(code, description))

    def _warn(self, code: WarningCode, description: str) -> None:
        self._to_client(self._warning_message(code, description))

    def _error_message(self, code: ErrorCode, description: str) -> Error:
        self.log.info("error to client: %s: %s", code, description)
        return Error(description=description, code=code.value)

    def _warning_message(self, code: WarningCode, description: str) -> Warning:
        self.log.info("warning to client: %s: %s", code, description)
        return Warning(description=description, code=code.value)

    def _fail_upstream(self, code: ErrorCode, description: str) -> None:
        """Something is wrong with upstream: tell the client, close both sides."""
        if code is not ErrorCode.CLIENT_TOO_SLOW:
            self.observer.upstream_error(code.value)
        self._error(code, description)
        self._close(1011, code.value)

    def _close(self, code: int, text: str, *, reason: str | None = None) -> None:
        """Close both sides; `reason` (default: `text`) labels why in the metrics."""
        held, self._until_welcome = self._until_welcome, None
        for message in held or ():  # no Welcome will come: say it all before closing
            self._to_client(message)
        self.phase = advance(self.phase, Step.CLOSE)
        self.close_reason = reason or text.replace(" ", "_")
        self._forget()
        self._out.append(CloseClient(code, text))
        self._out.append(CloseUpstream(1000 if code in (1000, 1001) else 1011, text))
        if self._renewal.preparing:
            self._out.append(CloseNextUpstream(1000, text))
        self._renewal.state = RenewalState.FAILED  # nothing more to renew

    def _forget(self) -> None:
        """Release what the session holds; nothing will be sent any more."""
        self._pending = None
        self.pending_bytes = 0
        self.microphone.clear()
        self._updates.clear()
        self._calls.cancel_all()

    def _take(self) -> list[Action]:
        out, self._out = self._out, []
        return out

    def _event_id(self, purpose: str) -> str:
        return f"proxy_{self._tag}_{purpose}_{next(self._ids)}"

    def _own_item_id(self) -> str:
        """An id for an assistant item we create, so its echo is not reported again."""
        item_id = f"item_proxy{self._tag}{next(self._ids)}"
        self._reported_items.add(item_id)
        return item_id

    def _function(self, name: str) -> FunctionDefinition | None:
        think = self.settings.think if self.settings else None
        return next((f for f in (think.functions or []) if f.name == name), None) if think else None

    # ------------------------------------------------------------ provided by the concerns
    # Each concern calls a few of another's; these say what they are (and keep mypy
    # honest). ProxySession inherits every concern, so none of these runs.

    def _handle(self, message: ClientMessage | bytes) -> None:  # session
        raise NotImplementedError

    def _leave_if_quiet(self) -> None:  # session
        raise NotImplementedError

    def _ask(self, request: Request, *, urgent: bool = False) -> None:  # responses
        raise NotImplementedError

    def _say(self, speech: Speech, *, urgent: bool = False) -> None:  # responses
        raise NotImplementedError

    def _response_silent(self) -> None:  # responses
        raise NotImplementedError

    def _barge_in(self, *, upstream_cancels: bool) -> None:  # barge_in
        raise NotImplementedError

    def _on_function_call(self, event: FunctionArgumentsDone) -> None:  # function_calls
        raise NotImplementedError

    def _cancel_pending_calls(self) -> None:  # function_calls
        raise NotImplementedError

    def _renew_step(self) -> None:  # renewing
        raise NotImplementedError


def loggable(upstream_id: str) -> str | None:
    """An upstream id fit for a log line: upstream is untrusted (no control characters)."""
    cleaned = re.sub(r"[^A-Za-z0-9_.:-]", "?", upstream_id[:64])
    return cleaned or None
