"""One proxied conversation as a plain object: no sockets, no event loop.

The server feeds it what happened ("the client sent this text", "upstream sent this
event", "time passed", "upstream closed") and sends the actions it returns, in order.
Every ordering rule of the proxy lives here:

- readiness: nothing goes upstream before the upstream socket is open; then the first
  `Settings` goes at once (not waiting for `session.created`: the API takes events as
  soon as the socket is open, which saves a round trip) and everything else waits, in
  order, until it is applied (then context items, then the greeting). What a Settings
  tells the client (a Warning, an Error) still follows `Welcome`;
- one response at a time (`ResponseGate`): `response.create` is held while a response
  is requested or running;
- barge-in: user speech while agent audio is still playing truncates the item upstream
  to what the user can have heard;
- limits and deadlines: bytes held, turn rate, silent upstream, idle client.

Everything the client sends and everything upstream sends is checked against its
declared shape before use (`client_messages`, `upstream_events`); a wrong shape is
answered with an `Error` and changes nothing else.
"""

from __future__ import annotations

import itertools
import logging
import math
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

import orjson

from . import base64_audio, translate
from .actions import (
    Action,
    CallFunction,
    CloseClient,
    CloseNextUpstream,
    CloseUpstream,
    OpenNextUpstream,
    SendNextUpstream,
    SendToClient,
    SendUpstream,
    SwitchUpstream,
)
from .agent_turn import AgentTurns
from .audio_formats import DEFAULT_AUDIO, UnsupportedAudioFormat, negotiate
from .audio_path import AgentAudio, MicrophoneInput, RecentIds
from .client_messages import (
    CLIENT_MESSAGE_TYPES,
    ClientMessage,
    ForceEndTurn,
    FunctionCallResponse,
    FunctionDefinition,
    InjectAgentMessage,
    InjectUserMessage,
    InvalidMessage,
    KeepAlive,
    Settings,
    UpdateListen,
    UpdatePrompt,
    UpdateSpeak,
    UpdateThink,
    UpdateThinkLive,
    first,
    parse_client_message,
)
from .errors import ErrorCode, WarningCode
from .function_policy import EndpointForbidden, EndpointRefused, FunctionRequest
from .latency import TurnLatency
from .limits import MESSAGE_BURST_SECONDS, Flood, FloodState, TokenBucket
from .logs import SessionLog
from .pending_calls import FULL, PendingCall, PendingCalls
from .redaction import Redactor
from .renewal import POLL_SECONDS, Renewal, RenewalFailed, RenewalState, is_cap_error
from .response_gate import FORCED_TURN, TURN, GateState, Request, ResponseGate, Speech
from .server_messages import (
    PROXY_OWNED,
    AgentAudioDone,
    AgentThinking,
    ConversationText,
    Error,
    FunctionCallCancelled,
    FunctionCallHistory,
    FunctionCallResult,
    FunctionRef,
    History,
    InjectionRefused,
    ListenUpdated,
    PromptUpdated,
    ServerMessage,
    SettingsApplied,
    SpeakUpdated,
    ThinkUpdated,
    Transcript,
    UserStartedSpeaking,
    UserStoppedSpeaking,
    UtteranceEnd,
    Warning,
    Welcome,
    encode,
)
from .server_messages import FunctionCallResponse as FunctionCallResult_ToClient
from .session_options import SessionObserver, SessionOptions, Unobserved
from .upstream_events import (
    IGNORED_PREFIXES,
    UPSTREAM_EVENTS,
    AudioCommitted,
    AudioDelta,
    AudioDone,
    ErrorDetail,
    ErrorEvent,
    FunctionArgumentsDone,
    ItemDone,
    ResponseCreated,
    ResponseDone,
    ResponseInfo,
    SessionCreated,
    SessionUpdated,
    SpeechStarted,
    SpeechStopped,
    TextDone,
    TranscriptDone,
    TranscriptionCompleted,
    TranscriptionDelta,
)
from .validation import MAX_DEPTH, decode, shown, too_deep

__all__ = ["Phase", "ProxySession"]

_ACTIVE_RESPONSE = "conversation_already_has_active_response"
# Only the proxy sends response.cancel and input_audio_buffer.commit, so these codes
# answer ours even when upstream does not echo the event_id.
_CANCEL_NOT_ACTIVE = "response_cancel_not_active"
_COMMIT_EMPTY = "input_audio_buffer_commit_empty"
_ALLOWED_TYPES = ", ".join(sorted(CLIENT_MESSAGE_TYPES))
# Each one asks upstream for a response: they share the turn rate.
_TURN_MESSAGES = (InjectUserMessage, InjectAgentMessage, FunctionCallResponse, ForceEndTurn)
_MAX_TRANSCRIPT_CHARS = 64 * 1024
_MAX_SERVER_CALLS = 4  # server-side function calls in flight per session


class Phase(Enum):
    """Where the session is in its opening."""

    CONNECTING = "waiting for the upstream socket"
    NEEDS_SETTINGS = "waiting for the client's Settings"
    APPLYING = "waiting for session.updated"
    READY = "ready"
    CLOSED = "closed"


# Compared on every frame: module names are cheaper to reach than Enum members.
_CLOSED = Phase.CLOSED
_READY = Phase.READY
_IDLE = GateState.IDLE
_NOT_DUE = RenewalState.IDLE


class UpdateKind(Enum):
    """What a `session.update` we sent was for: decides the reply to the client."""

    FIRST_SETTINGS = "first Settings"
    SETTINGS = "Settings"
    PROMPT = "UpdatePrompt"
    SPEAK = "UpdateSpeak"
    THINK = "UpdateThink"
    LISTEN = "UpdateListen"


_UPDATE_REPLIES: dict[UpdateKind, Callable[[], ServerMessage]] = {
    UpdateKind.SETTINGS: SettingsApplied,
    UpdateKind.PROMPT: PromptUpdated,
    UpdateKind.SPEAK: SpeakUpdated,
    UpdateKind.THINK: ThinkUpdated,
    UpdateKind.LISTEN: ListenUpdated,
}


@dataclass(slots=True)
class _PendingUpdate:
    event_id: str
    kind: UpdateKind
    deadline: float
    settings: Settings | None = None  # a Settings (or its replacement agent) to adopt


# ---------------------------------------------------------------- the session


class ProxySession:
    """The translation state machine of one client connection."""

    __slots__ = (
        "_active_at",
        "_agent_turns",
        "_audio_since_commit",
        "_calls",
        "_cancelled_calls",
        "_clock",
        "_created_deadline",
        "_debug",
        "_draining",
        "_early",
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
        "_reported_calls",
        "_reported_items",
        "_response_deadline",
        "_server_call_ids",
        "_speech_responses",
        "_tag",
        "_turn_bucket",
        "_updates",
        "_user_speaking",
        "_user_transcript",
        "_vad_ended_turn",
        "_welcomed",
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
        self._welcomed = False  # session.created came, Welcome went
        self._early: list[Action] | None = None  # what a Settings said before Welcome
        self.settings: Settings | None = None  # the applied Settings (agent as updated)
        self.audio = DEFAULT_AUDIO
        # (message, size); a deque only once something waits (most sessions never queue).
        self._pending: deque[tuple[ClientMessage | bytes, int]] | None = None
        self.pending_bytes = 0
        self._updates: list[_PendingUpdate] = []  # session.updates asked for, oldest first
        self._created_deadline: float | None = None

        # Responses, turns and what the client has been told.
        self.gate = ResponseGate()
        self._response_deadline: float | None = None
        self._speech_responses: dict[str, Speech] = {}  # response id -> exact text said
        self._agent_turns = AgentTurns()
        self._latency = TurnLatency()
        self._user_speaking = False
        # Server VAD ended the user's turn (speech stopped, buffer committed) and no
        # speech started since: a ForceEndTurn has nothing left to commit or ask for.
        self._vad_ended_turn = False
        self._audio_since_commit = False  # audio went upstream since the last commit
        self._reported_items = RecentIds()
        self._reported_calls = RecentIds()
        self._calls = PendingCalls()
        self._cancelled_calls = RecentIds()
        self._server_call_ids = RecentIds()  # calls the proxy answers, never the client
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

    # ------------------------------------------------------------ inputs

    @property
    def closed(self) -> bool:
        return self.phase is Phase.CLOSED

    def upstream_connected(self) -> list[Action]:
        """The upstream socket is open: the first Settings may go now (OpenAI's own Agents
        SDK sends its session.update as the socket opens, before session.created), and
        session.created must follow in time."""
        if self.closed:
            return []
        self._created_deadline = self._clock() + self.options.ready_timeout
        self._socket_open()
        return self._take()

    def _socket_open(self) -> None:
        if self.phase is Phase.CONNECTING:
            self.phase = Phase.NEEDS_SETTINGS
            self._drain()

    def client_text(self, text: str) -> list[Action]:
        """A text frame from the component."""
        if self.phase is _CLOSED:
            return []
        now = self._clock()
        self._idle_deadline = now + self.options.client_idle_timeout
        if not self._message_bucket.take(now):
            return self._drop_message()
        limit = self.options.max_frame_bytes
        if len(text) > limit or (len(text) * 4 > limit and len(text.encode()) > limit):
            self._error(ErrorCode.FRAME_TOO_LARGE, f"text frame of {len(text)} characters")
            return self._take()
        try:
            data = orjson.loads(text)
        except orjson.JSONDecodeError:
            self._error(ErrorCode.INVALID_JSON, "message is not valid JSON")
            return self._take()
        if too_deep(data, text):
            self._error(ErrorCode.INVALID_MESSAGE, f"message nests deeper than {MAX_DEPTH} levels")
            return self._take()
        kind = data.get("type") if type(data) is dict else None
        if type(kind) is not str or kind not in CLIENT_MESSAGE_TYPES:
            named = shown(kind) if type(kind) is str else "missing or not a string"
            self._error(
                ErrorCode.DISALLOWED_CLIENT_MESSAGE_TYPE,
                f"unknown message type {named}; allowed: {_ALLOWED_TYPES}",
            )
            return self._take()
        if kind == "KeepAlive":
            return []
        try:
            message = parse_client_message(data)
        except InvalidMessage as exc:
            self._error(ErrorCode.INVALID_MESSAGE, str(exc))
            return self._take()
        self._active_at = now  # a valid message, not KeepAlive: the place is in use
        if isinstance(message, _TURN_MESSAGES) and not self._turn_bucket.take(now):
            self._error(
                ErrorCode.RATE_LIMITED,
                f"{kind} dropped: more than {self.options.turn_rate:g} turns a second",
            )
            return self._take()
        self._admit(message, len(text))
        return self._take()

    def client_binary(self, data: bytes) -> list[Action]:
        """A binary frame from the component: microphone audio."""
        phase = self.phase
        if phase is _CLOSED:
            return []
        now = self._clock()
        self._idle_deadline = now + self.options.client_idle_timeout
        if not self._message_bucket.take(now):
            return self._drop_message()
        if not data:
            return []
        self._active_at = now
        if len(data) > self.options.max_frame_bytes:
            self._error(ErrorCode.FRAME_TOO_LARGE, f"audio frame of {len(data)} bytes")
            return self._take()
        if phase is _READY and not self._pending:
            # 50 frames a second per caller: straight to the batch (what _admit and
            # _handle would do for audio once ready, without the detour).
            events = self.microphone.add(data, now)
            if not events:
                return []
            self._upstream_audio(events)
        else:
            self._admit(data, len(data))
        return self._take()

    def client_ping(self) -> list[Action]:
        """A Ping or Pong from the client: the WebSocket layer answers a Ping itself, but
        each costs like a message, so it counts in the message rate (not as activity)."""
        if self.phase is _CLOSED:
            return []
        if not self._message_bucket.take(self._clock()):
            return self._drop_message()
        return []

    def _drop_message(self) -> list[Action]:
        """Over the message rate: say so once a flood, drop silently while it goes on,
        and close a client that stays over the rate (see limits.Flood)."""
        state = self._flood.dropped(self._clock())
        if state is FloodState.STARTED:
            self._error(
                ErrorCode.RATE_LIMITED,
                f"more than {self.options.message_rate:g} messages a second; messages, "
                "audio included (pings too), are dropped until the rate falls",
            )
        elif state is FloodState.TOO_LONG:
            self._error(
                ErrorCode.RATE_LIMITED,
                f"over {self.options.message_rate:g} messages a second for "
                f"{self.options.flood_close_seconds:g} s; closing",
            )
            self._close(1008, "message rate exceeded", reason="message_flood")
        return self._take()

    def upstream_message(self, data: bytes | bytearray | str) -> list[Action]:
        """A frame from the OpenAI Realtime API."""
        if self.phase is _CLOSED:
            return []
        if self.gate.state is not _IDLE:
            self._response_deadline = self._clock() + self.options.response_timeout
        if not isinstance(data, str) and data.startswith(IGNORED_PREFIXES):
            return []  # an event the proxy never acts on (see upstream_events)
        try:
            event = orjson.loads(data)
        except orjson.JSONDecodeError:
            event = None
        if too_deep(event, data):
            self.log.warning("upstream event nested deeper than %d levels; dropped", MAX_DEPTH)
            self._error(ErrorCode.UNMAPPED_UPSTREAM_EVENT, "upstream sent an event nested too deep")
            return self._take()
        kind = event.get("type") if type(event) is dict else None
        if type(kind) is not str:
            self.log.warning("upstream sent a frame that is not a JSON event; dropped")
            self._error(ErrorCode.UNMAPPED_UPSTREAM_EVENT, "upstream sent a non-event frame")
            return self._take()
        model = UPSTREAM_EVENTS.get(kind)
        if model is None:
            if self._debug:  # most events of a turn land here: skip the logging call
                self.log.debug("upstream %s not mapped", kind[:80])
            return self._take()
        try:
            typed = decode(model, event, kind)
        except InvalidMessage as exc:
            self.log.warning("upstream sent a malformed event; dropped: %s", exc)
            self._error(ErrorCode.UNMAPPED_UPSTREAM_EVENT, f"malformed upstream event: {exc}")
            return self._take()
        self._renewal.observe(typed, self._clock())
        _UPSTREAM_HANDLERS[model](self, typed)
        self._renew_step()
        return self._take()

    @property
    def next_deadline(self) -> float | None:
        """When `tick()` should next be called (None: nothing is timed)."""
        if self.phase is _CLOSED:
            return None
        # Asked after every batch of input: no list, no min() over a sequence.
        deadline = self._idle_deadline
        quiet = self._active_at + self.options.keepalive_only_timeout
        if quiet < deadline:
            deadline = quiet
        if self._ends_at < deadline:
            deadline = self._ends_at
        microphone = self.microphone
        for candidate in (
            self._created_deadline,
            self._response_deadline,
            microphone.flush_at,
            microphone.pause_at,
        ):
            if candidate is not None and candidate < deadline:
                deadline = candidate
        if self._updates and self._updates[0].deadline < deadline:
            deadline = self._updates[0].deadline
        renewal = self._renewal.next_deadline
        if renewal is not None and renewal < deadline:
            deadline = renewal
        return deadline

    def tick(self) -> list[Action]:
        """Time passed: act on every deadline that is due."""
        if self.closed:
            return []
        now = self._clock()
        microphone = self.microphone
        if microphone.pause_at is not None and now >= microphone.pause_at:
            self._upstream_audio(microphone.pause())
        elif microphone.flush_at is not None and now >= microphone.flush_at:
            self._upstream_audio(microphone.flush())
        if self._created_deadline is not None and now >= self._created_deadline:
            self._fail_upstream(
                ErrorCode.UPSTREAM_TIMEOUT,
                f"upstream sent no session.created within {self.options.ready_timeout:g} s",
            )
        elif self._updates and now >= self._updates[0].deadline:
            self._fail_upstream(
                ErrorCode.UPSTREAM_TIMEOUT,
                f"upstream did not confirm {self._updates[0].kind.value} within "
                f"{self.options.ready_timeout:g} s",
            )
        elif self._response_deadline is not None and now >= self._response_deadline:
            self._response_silent()
        self._renew_step()
        if not self.closed and now >= self._idle_deadline:
            self._error(
                ErrorCode.CLIENT_IDLE,
                f"nothing received for {self.options.client_idle_timeout:g} s",
            )
            self._close(1000, "client idle", reason="client_idle")
        self._check_held_place(now)
        return self._take()

    def _check_held_place(self, now: float) -> None:
        """A place held by KeepAlive alone, or for longer than a session may last."""
        options = self.options
        if self.closed:
            return
        if now >= self._ends_at:
            self._error(
                ErrorCode.SESSION_TIME_LIMIT,
                f"the session reached its time limit of {options.max_session_seconds:g} s",
            )
            self._close(1000, "session time limit", reason="session_time_limit")
        elif now >= self._active_at + options.keepalive_only_timeout:
            self._error(
                ErrorCode.CLIENT_IDLE,
                f"nothing but KeepAlive for {options.keepalive_only_timeout:g} s",
            )
            self._close(1000, "client idle", reason="keepalive_only")

    def upstream_failed(self, code: ErrorCode, description: str) -> list[Action]:
        """The upstream connection could not be opened."""
        if not self.closed:
            self._fail_upstream(code, description)
        return self._take()

    def upstream_closed(self, code: int | None, reason: str) -> list[Action]:
        """Upstream closed its side (or the connection dropped)."""
        if self.closed:
            return []
        if not self._welcomed:
            self._fail_upstream(
                ErrorCode.UPSTREAM_CLOSED_BEFORE_SESSION_READY,
                f"upstream closed before the session was ready (code {code})",
            )
        elif self._renewal.expired(self._clock()):
            self._session_expired(f"upstream closed at the session's cap (code {code})")
        elif code == 1000:
            self._close(1000, "upstream closed")
        else:
            detail = f": {reason}" if reason else ""
            self._fail_upstream(ErrorCode.UPSTREAM_CLOSED, f"upstream closed (code {code}){detail}")
        return self._take()

    def upstream_protocol_error(self, description: str) -> list[Action]:
        """Upstream broke the WebSocket rules (a frame over the size limit, ...)."""
        if not self.closed:
            self._fail_upstream(ErrorCode.UPSTREAM_PROTOCOL_ERROR, description)
        return self._take()

    def client_stalled(self, seconds: float) -> list[Action]:
        """The client read nothing for `seconds` while frames waited for it."""
        if not self.closed:
            self._error(ErrorCode.CLIENT_TOO_SLOW, f"nothing read for {seconds:g} s")
            self._close(1008, "client too slow", reason="client_too_slow")
        return self._take()

    def upstream_stalled(self, seconds: float) -> list[Action]:
        """Upstream read nothing for `seconds` while frames waited for it."""
        if not self.closed:
            self._fail_upstream(
                ErrorCode.UPSTREAM_STALLED, f"upstream read nothing for {seconds:g} s"
            )
        return self._take()

    def client_closed(self) -> list[Action]:
        """The component went away: close upstream, forget everything pending."""
        if self.closed:
            return []
        self.phase = Phase.CLOSED
        self.close_reason = self.close_reason or "client_closed"
        self._forget()
        closes: list[Action] = [CloseUpstream(1000, "client closed")]
        if self._renewal.preparing:
            closes.append(CloseNextUpstream(1000, "client closed"))
        return closes

    def drain(self) -> list[Action]:
        """The server is going away: end the session (1001) as soon as no response is
        requested or running and the user is not speaking."""
        self._draining = True
        self._leave_if_quiet()
        return self._take()

    def shut_down(self) -> list[Action]:
        """The drain time is over: close now, whatever is in progress."""
        if not self.closed:
            self._close(1001, "server shutting down", reason="drain_timeout")
        return self._take()

    def function_result(
        self, call_id: str, output: str | None, failure: str | None
    ) -> list[Action]:
        """A server-side function endpoint answered (`output`) or failed (`failure`)."""
        if self.closed or call_id in self._cancelled_calls:
            return []
        self._server_call_done(call_id, output, failure)
        return self._take()

    def _server_call_done(self, call_id: str, output: str | None, failure: str | None) -> None:
        call, follow_up = self._calls.answered(call_id)
        name, arguments = (call.name, call.arguments) if call is not None else ("", "")
        if output is not None:  # capped as it is sent: JSON-escaped
            failure = self.options.functions.answer_refused(output)
        if failure is not None:
            self._error(ErrorCode.FUNCTION_ENDPOINT_FAILED, f"function {shown(name)}: {failure}")
            output = orjson.dumps({"error": failure}).decode()
        assert output is not None
        self._to_client(FunctionCallResult_ToClient(id=call_id, name=name, content=output))
        self._function_history(call_id, name, arguments, output, client_side=False)
        self._upstream(translate.function_output_item(call_id, output))
        self._turn_ended()
        if call is None or follow_up:
            # The response a result asks for is a turn: a call that calls again is a loop.
            if self._turn_bucket.take(self._clock()):
                self._ask(TURN)
            else:
                self._error(
                    ErrorCode.RATE_LIMITED,
                    f"function {shown(name)}: its result is in the conversation, but no "
                    f"response was asked for: more than {self.options.turn_rate:g} turns a second",
                )
        self._leave_if_quiet()

    # ------------------------------------------------------------ client side

    def _admit(self, message: ClientMessage | bytes, size: int) -> None:
        """Handle now, or queue in arrival order until the session is ready."""
        if self._ready_for(message):
            self._handle(message)
            return
        if self.pending_bytes + size > self.options.max_buffered_bytes:
            self._error(
                ErrorCode.CLIENT_QUEUE_FULL,
                "too much sent before the session was ready; message refused",
            )
            return
        if self._pending is None:
            self._pending = deque()
        self._pending.append((message, size))
        self.pending_bytes += size
        self._drain()

    def _ready_for(self, message: ClientMessage | bytes) -> bool:
        if self._pending:
            return False
        if self.phase is Phase.READY:
            return True
        return self.phase is Phase.NEEDS_SETTINGS and isinstance(message, Settings)

    def _drain(self) -> None:
        """Replay queued messages now that the session moved on."""
        if self.phase is Phase.NEEDS_SETTINGS:
            # The first Settings unblocks everything queued before it.
            pending = self._pending or ()
            found = next((p for p in pending if isinstance(p[0], Settings)), None)
            if found is None:
                return
            assert self._pending is not None
            self._pending.remove(found)
            self.pending_bytes -= found[1]
            self._handle(found[0])
        while self.phase is Phase.READY and self._pending:
            message, size = self._pending.popleft()
            self.pending_bytes -= size
            self._handle(message)
        if not self._pending:
            self._pending = None  # nothing waits: do not keep the empty deque

    def _handle(self, message: ClientMessage | bytes) -> None:
        if isinstance(message, bytes):
            self._upstream_audio(self.microphone.add(message, self._clock()))
        elif isinstance(message, InjectUserMessage):
            self._conversation_text("user", message.content)
            self._upstream(translate.text_item("user", message.content))
            self._turn_ended()
            self._ask(TURN)
        elif isinstance(message, FunctionCallResponse):
            self._on_function_response(message)
        elif isinstance(message, Settings):
            mark = len(self._out)
            self._apply_settings(message)
            if not self._welcomed:
                self._after_welcome(mark)
        elif isinstance(message, InjectAgentMessage):
            self._inject_agent_message(message)
        elif isinstance(message, UpdatePrompt):
            self._update(UpdateKind.PROMPT, translate.prompt_update, message.prompt)
        elif isinstance(message, UpdateSpeak):
            self._update_speak(message)
        elif isinstance(message, UpdateThink):
            self._update_think(message)
        elif isinstance(message, UpdateListen):
            language = self.settings.agent_config.language if self.settings else None
            event_id = self._track_update(UpdateKind.LISTEN)
            self._upstream(translate.listen_update(message.listen, language, event_id=event_id))
        elif isinstance(message, UpdateThinkLive):
            self._warn(
                WarningCode.UNSUPPORTED_BY_BACKEND,
                "UpdateThink_Live is a Deepgram feature the OpenAI Realtime API has no "
                "equivalent for; nothing was changed",
            )
        elif isinstance(message, ForceEndTurn):
            self._force_end_turn()
        elif isinstance(message, KeepAlive):
            pass

    def _apply_settings(self, settings: Settings) -> None:
        first_settings = self.phase is Phase.NEEDS_SETTINGS
        try:
            audio = negotiate(settings.audio, None if first_settings else self.audio)
        except UnsupportedAudioFormat as exc:
            self._error(ErrorCode.UNSUPPORTED_AUDIO_FORMAT, f"{exc}; Settings not applied")
            return
        ignored = translate.ignored_settings(settings)
        if ignored:
            self._warn(WarningCode.SETTING_IGNORED, "accepted, not applied: " + "; ".join(ignored))
        self._upstream_audio(self.microphone.pause())
        self.audio = audio
        self.microphone.set_format(audio)
        self.agent_audio.set_format(audio)
        kind = UpdateKind.FIRST_SETTINGS if first_settings else UpdateKind.SETTINGS
        event_id = self._track_update(kind, settings)
        if first_settings:
            self.phase = Phase.APPLYING
        self._upstream(translate.settings_update(settings, audio, event_id=event_id))

    def _after_welcome(self, mark: int) -> None:
        """Settings went upstream before session.created: what they told the client (a
        Warning, an Error) waits for Welcome, so the client hears Welcome first, as it
        did when Settings waited for session.created."""
        produced = self._out[mark:]
        del self._out[mark:]
        for action in produced:
            if isinstance(action, SendToClient):
                if self._early is None:
                    self._early = []
                self._early.append(action)
            else:
                self._out.append(action)

    def _settings_applied(self, settings: Settings) -> None:
        """session.updated for the first Settings: SettingsApplied, context, greeting."""
        self.settings = settings
        self.observer.settings_applied(self._clock() - self._opened_at)
        self._to_client(SettingsApplied())
        context = settings.context_messages
        for message in context:
            for event in translate.context_items(message, self._own_item_id()):
                self._upstream(event)
        greeting = settings.agent_config.greeting
        self.phase = Phase.READY
        if greeting and not context:
            self._say(Speech(greeting, greeting=True))
        self._drain()

    def _update(self, kind: UpdateKind, build: Callable[..., dict[str, Any]], value: Any) -> None:
        event_id = self._track_update(kind)
        self._upstream(build(value, event_id=event_id))

    def _update_speak(self, message: UpdateSpeak) -> None:
        speak = first(message.speak)
        voice = translate.openai_voice(speak)
        if voice is None:
            self._warn(
                WarningCode.SETTING_IGNORED,
                "UpdateSpeak names no OpenAI Realtime voice; the voice is unchanged",
            )
            self._to_client(SpeakUpdated())
            return
        self._update(UpdateKind.SPEAK, translate.voice_update, voice)

    def _update_think(self, message: UpdateThink) -> None:
        if self.settings is not None:
            change = translate.think_model_change(message.think, self.settings.agent_config)
            if change:
                self._warn(WarningCode.UNSUPPORTED_BY_BACKEND, f"not applied: {change}")
            self.settings.agent_config.think = message.think
        event_id = self._track_update(UpdateKind.THINK)
        self._upstream(translate.think_update(message.think, event_id=event_id))

    def _track_update(self, kind: UpdateKind, settings: Settings | None = None) -> str:
        event_id = self._event_id(kind.name.lower())
        deadline = self._clock() + self.options.ready_timeout
        self._updates.append(_PendingUpdate(event_id, kind, deadline, settings))
        return event_id

    def _inject_agent_message(self, message: InjectAgentMessage) -> None:
        if message.is_dynamic:
            self._warn(
                WarningCode.UNSUPPORTED_BY_BACKEND,
                "dynamic agent messages are a Deepgram feature; the message was not spoken",
            )
            return
        behavior = message.behavior or "default"
        busy = self.gate.busy or self._user_speaking
        if (behavior == "default" and busy) or self.gate.full:
            self._to_client(InjectionRefused(message=message.text))
            return
        if behavior == "interrupt" and self.gate.busy:
            self._interrupt_agent()
            self._say(Speech(message.text), urgent=True)
            return
        self._say(Speech(message.text))

    def _force_end_turn(self) -> None:
        self._user_speaking = False  # the client ended the turn, whatever VAD said
        self._upstream_audio(self.microphone.pause())
        if self._vad_ended_turn or not self._audio_since_commit:
            # Server VAD already committed this speech and answers it on its own (or no
            # audio came since the last commit): a commit would be refused as empty,
            # and a response would answer the same utterance twice.
            self.log.info("ForceEndTurn: the turn was already committed; nothing asked")
            return
        self._upstream(translate.input_commit(self._event_id("commit")))
        self._audio_since_commit = False
        self._turn_ended()
        # Withdrawn if the commit comes back empty: VAD's commit raced ours.
        self._ask(FORCED_TURN)

    def _on_function_response(self, message: FunctionCallResponse) -> None:
        call_id = message.id
        if call_id is None:  # v1 allows it: the pending call of that name is meant
            call_id = self._calls.named(message.name)
            if call_id is None:
                self._error(
                    ErrorCode.INVALID_MESSAGE,
                    "FunctionCallResponse without id matches no pending call of "
                    + shown(message.name),
                )
                return
        if call_id in self._server_call_ids:  # upstream must get one output per call
            self._error(
                ErrorCode.INVALID_MESSAGE,
                f"FunctionCallResponse for {shown(call_id)} refused: that call is server-side "
                "(client_side false), the proxy answers it",
            )
            return
        call, follow_up = self._calls.answered(call_id)
        name, arguments = (call.name, call.arguments) if call is not None else (message.name, "")
        self._function_history(call_id, name, arguments, message.content, client_side=True)
        self._upstream(translate.function_output_item(call_id, message.content))
        if call_id in self._cancelled_calls:
            return  # kept in the conversation, but the user has moved on: no answer to it
        self._turn_ended()
        if call is None or follow_up:  # the other calls of its response still wait
            self._ask(TURN)

    # ------------------------------------------------------------ responses

    def _ask(self, request: Request, *, urgent: bool = False) -> None:
        self._send_request(self.gate.ask(request, urgent=urgent))

    def _say(self, speech: Speech, *, urgent: bool = False) -> None:
        """Have the agent say exactly `speech.text` (when the gate lets it)."""
        self._ask(speech, urgent=urgent)

    def _send_request(self, request: Request | None) -> None:
        if request is None:
            return
        self._response_deadline = self._clock() + self.options.response_timeout
        if isinstance(request, Speech):
            event_id = self._event_id("speak")
            # The conversation holds the exact words, whatever the voice renders.
            self._upstream(
                translate.text_item("assistant", request.text, item_id=self._own_item_id())
            )
            self._conversation_text("assistant", request.text)
            self._upstream(translate.speak_response(request.text, event_id=event_id))
        else:
            event_id = self._event_id("response")
            self._upstream(translate.response_create(event_id))
        self.gate.sent(event_id)

    def _response_silent(self) -> None:
        self._response_deadline = None
        if not self.gate.busy:
            return  # released meanwhile (refused, raced): nothing is waited for
        response_id = self.gate.response_id
        self._error(
            ErrorCode.UPSTREAM_TIMEOUT,
            f"the response said nothing for {self.options.response_timeout:g} s; abandoned",
        )
        self._upstream(translate.response_cancel(self._event_id("cancel"), response_id))
        if self._agent_turns.ended(response_id):
            self._to_client(AgentAudioDone())
        follow_up = self._calls.response_done(response_id)
        self._send_request(self.gate.abandon())
        if follow_up:
            self._ask(TURN)

    def _interrupt_agent(self) -> None:
        """Stop the agent now: cancel its response and cut its item to what was heard."""
        heard = self.agent_audio.interrupt(self._clock(), still_generating=self.gate.busy)
        response_id = self.gate.response_id
        speech = self._speech_responses.get(response_id or "")
        if self.gate.state is GateState.ACTIVE:
            self._upstream(translate.response_cancel(self._event_id("cancel"), response_id))
        if heard is not None and speech is None:
            self._upstream(translate.truncate_item(*heard))
        self._cancel_pending_calls()

    def _cancel_pending_calls(self) -> None:
        cancelled = self._calls.cancel_all()
        if not cancelled:
            return
        for call in cancelled:
            self._cancelled_calls.add(call.call_id)
        refs = [FunctionRef(id=call.call_id, name=call.name) for call in cancelled]
        self._to_client(FunctionCallCancelled(functions=refs))

    # ------------------------------------------------------------ upstream events

    def _on_session_created(self, event: SessionCreated) -> None:
        session_id = (event.session.id if event.session is not None else None) or ""
        self.log.upstream_session = _loggable(session_id)
        self._created_deadline = None
        if self._welcomed:
            return  # a second session.created is not ours to act on
        self._welcomed = True
        early, self._early = self._early, None
        self._to_client(Welcome(request_id=session_id))
        if early:
            self._out.extend(early)  # what the session said since the socket opened
        self._socket_open()  # (a session not told the socket is open: this says it)

    def _on_session_updated(self, event: SessionUpdated) -> None:
        if not self._updates:
            return  # an update we did not ask for
        update = self._updates.pop(0)
        if update.kind is UpdateKind.FIRST_SETTINGS:
            assert update.settings is not None
            self._settings_applied(update.settings)
            return
        if update.kind is UpdateKind.SETTINGS:
            self.settings = update.settings
        self._to_client(_UPDATE_REPLIES[update.kind]())

    def _on_response_created(self, event: ResponseCreated) -> None:
        response = event.response
        speech = self._speech_answered_by(response)
        if speech is not None:
            self._speech_responses[response.id] = speech
        self.gate.created(response.id)
        self._user_speaking = False  # a response answers a turn that has ended
        self._response_deadline = self._clock() + self.options.response_timeout
        self._latency.response_started(self._clock())
        self._agent_turns.started(response.id, speech=speech is not None)
        self._to_client(AgentThinking(content=""))

    def _speech_answered_by(self, response: ResponseInfo) -> Speech | None:
        """The exact speech this response says, if it is our out-of-band one. Known by
        the gate's order (the response.created that answers our outstanding speak
        request, or the next one when server VAD's answer raced it) unless it names a
        conversation (out-of-band ones have a null `conversation_id`); an echo of our
        `metadata`, when the service sends it, settles it."""
        speech = self.gate.speaking
        if speech is None:
            return None
        if translate.SPEAK_METADATA_KEY in (response.metadata or {}):
            return speech
        if isinstance(response.conversation_id, str):
            return None  # in the conversation: server VAD's answer, not our speech
        if self.gate.state is GateState.REQUESTED:
            return speech
        # A response that raced ours is running: ours is the next out-of-band one.
        return speech if self.gate.response_id not in self._speech_responses else None

    def _on_response_done(self, event: ResponseDone) -> None:
        response = event.response
        response_id = response.id
        speech = self._speech_responses.pop(response_id, None)
        if speech is None and response.status != "cancelled":
            # Assistant text the service put only here (no transcript .done, no item
            # .done). Not of a cancelled response: the user moved on before hearing it.
            for item in response.output or ():
                text = translate.assistant_text_of(item)
                if text is not None and item.id and item.id not in self.agent_audio.truncated:
                    self._report_assistant(response_id, item.id, text, release=False)
                elif item.type == "function_call" and item.call_id and item.name:
                    # A call whose arguments' .done never came (reported once either way).
                    self._on_function_call(
                        FunctionArgumentsDone(
                            item.call_id, item.name, item.arguments or "{}", response_id
                        )
                    )
        outcome = translate.response_outcome(response)
        if outcome is not None and not self._agent_turns.was_error_told(response_id):
            self.log.info("response ended %s: %s", response.status, outcome.description)
            self._to_client(outcome)
        if self._agent_turns.ended(response_id):
            self._to_client(AgentAudioDone())  # the turn ends here, whatever its status
        if self.gate.state is not GateState.IDLE and (self.gate.response_id in (None, response_id)):
            report, total = self._latency.turn_done()
            if report is not None:
                self._to_client(report)
            self.observer.turn_done(total)
            self.turns += 1
        self._response_deadline = None
        # The turn VAD ended has been answered: audio from now on is a new utterance,
        # which a ForceEndTurn commits (a speaker too quiet for VAD, push-to-talk).
        self._vad_ended_turn = False
        follow_up = self._calls.response_done(response_id)
        self._send_request(self.gate.done(response_id))
        if follow_up:
            self._ask(TURN)  # every call of that response has its output
        if self.gate.busy:
            self._response_deadline = self._clock() + self.options.response_timeout
        self._leave_if_quiet()

    def _on_audio_delta(self, event: AudioDelta) -> None:
        try:
            audio = base64_audio.decode(event.delta)
        except ValueError:  # binascii.Error is one
            self._error(ErrorCode.UNMAPPED_UPSTREAM_EVENT, "upstream audio delta is not base64")
            return
        now = self._clock()
        frames = self.agent_audio.deliver(event.item_id, audio, now)
        if not frames:
            return
        started = self._latency.output_started(now)
        if started is not None:
            self._to_client(started)
        for frame in frames:
            self._out.append(SendToClient(frame, text=False))

    def _on_audio_done(self, event: AudioDone) -> None:
        item_id = event.item_id
        for frame in self.agent_audio.item_done(item_id):
            self._out.append(SendToClient(frame, text=False))
        text_out = item_id in self._reported_items
        if self._agent_turns.audio_done(event.response_id, item_id, text_out=text_out):
            self._to_client(AgentAudioDone())
        # else: held until the item's text has gone out, or response.done

    def _on_transcript_done(self, event: TranscriptDone) -> None:
        response_id = event.response_id or self.gate.response_id
        self._report_assistant(response_id, event.item_id, event.transcript)

    def _on_text_done(self, event: TextDone) -> None:
        self._latency.output_started(self._clock())  # text only: no AgentStartedSpeaking
        response_id = event.response_id or self.gate.response_id
        self._report_assistant(response_id, event.item_id, event.text)

    def _on_item_done(self, event: ItemDone) -> None:
        item = event.item
        text = translate.assistant_text_of(item)
        if text is not None and item.id:
            self._report_assistant(None, item.id, text)

    def _report_assistant(
        self, response_id: str | None, item_id: str, text: str, *, release: bool = True
    ) -> None:
        """Assistant text, wherever upstream put it: told once per item. `release`: a
        held AgentAudioDone for the item may follow it (response.done sends its own)."""
        if response_id in self._speech_responses:
            return  # the exact text was reported when the speech started
        if not text or item_id in self._reported_items:
            return
        self._reported_items.add(item_id)
        self._renewal.record.message("assistant", text, key=item_id, now=self._clock())
        self._conversation_text("assistant", text)
        if release and self._agent_turns.text_out(item_id):
            self._to_client(AgentAudioDone())

    def _on_function_call(self, event: FunctionArgumentsDone) -> None:
        call_id = event.call_id
        if call_id in self._reported_calls:
            return
        self._reported_calls.add(call_id)
        response_id = event.response_id or self.gate.response_id or ""
        request = self._endpoint_request(event.name, event.arguments)
        server_side = request is not None
        call = PendingCall(call_id, event.name, event.arguments, response_id, server_side)
        if not self._calls.add(call):
            request = FULL  # answered at once: the model is not left waiting
        if request is None:
            self._to_client(
                translate.function_call_request(
                    call_id, event.name, event.arguments, client_side=True
                )
            )
        else:
            self._server_call(call_id, event.name, event.arguments, request)

    def _endpoint_request(self, name: str, arguments: str) -> FunctionRequest | str | None:
        """How a call is answered: by the proxy with this HTTP request, by the proxy with
        this failure (the model gets it as the output), or by the client (None)."""
        definition = self._function(name)
        endpoint = definition.endpoint if definition else None
        if endpoint is None or not endpoint.url:
            return None
        try:
            return self.options.functions.prepare(
                endpoint.url, endpoint.method, endpoint.headers, arguments
            )
        except EndpointForbidden as exc:
            self._warn(
                WarningCode.FUNCTION_ENDPOINT_FORBIDDEN,
                f"function {shown(name)}: {exc} by the operator; the call goes to the client",
            )
            return None
        except EndpointRefused as exc:
            return str(exc)

    def _server_call(
        self, call_id: str, name: str, arguments: str, request: FunctionRequest | str
    ) -> None:
        """The proxy answers this call: with `request`'s answer, or the failure given."""
        self._server_call_ids.add(call_id)
        self._to_client(
            translate.function_call_request(call_id, name, arguments, client_side=False)
        )
        if isinstance(request, str):
            self._server_call_done(call_id, None, request)
        elif self._calls.server_side() > _MAX_SERVER_CALLS:
            self._server_call_done(call_id, None, "too many calls in flight")
        else:
            if request.dropped_headers:
                self._warn(
                    WarningCode.SETTING_IGNORED,
                    f"function {shown(name)}: headers the operator does not allow were not sent: "
                    + shown(", ".join(request.dropped_headers)),
                )
            self._out.append(CallFunction(call_id, name, request))

    def _on_speech_started(self, event: SpeechStarted) -> None:
        self._user_speaking = True
        self._vad_ended_turn = False  # new speech goes into the buffer
        self._to_client(UserStartedSpeaking())
        heard = self.agent_audio.interrupt(self._clock(), still_generating=self.gate.busy)
        response_id = self.gate.response_id
        if response_id in self._speech_responses:
            # Spoken text runs outside the conversation: stop it, nothing to truncate.
            self._upstream(translate.response_cancel(self._event_id("cancel"), response_id))
        elif heard is not None:
            self._upstream(translate.truncate_item(*heard))
        self._cancel_pending_calls()

    def _leave_if_quiet(self) -> None:
        busy = self.gate.busy or self._user_speaking or self._pending or self._calls
        if self._draining and not self.closed and not busy:
            self._close(1001, "server shutting down", reason="drained")

    def _on_speech_stopped(self, event: SpeechStopped) -> None:
        self._user_speaking = False
        self._vad_ended_turn = True  # server VAD commits the buffer and answers it
        self._to_client(UserStoppedSpeaking())
        self._to_client(UtteranceEnd(last_word_end=round(event.audio_end_ms / 1000, 3)))
        self._turn_ended()

    def _on_audio_committed(self, event: AudioCommitted) -> None:
        # A committed buffer ends the user's turn even when speech_stopped never came
        # (ForceEndTurn, or a lost event): do not stay "speaking" forever.
        self._user_speaking = False
        self._vad_ended_turn = True
        self._audio_since_commit = False
        self._leave_if_quiet()

    def _on_transcription_delta(self, event: TranscriptionDelta) -> None:
        item_id, text = self._user_transcript
        if item_id != event.item_id:
            text = ""
        text = (text + (event.delta or ""))[:_MAX_TRANSCRIPT_CHARS]
        self._user_transcript = (event.item_id, text)
        self._to_client(Transcript(transcript=text, is_final=False, speech_final=False))

    def _on_transcription_completed(self, event: TranscriptionCompleted) -> None:
        self._user_transcript = ("", "")
        text = event.transcript
        # ConversationText first: the dg_react_agent component adds a history entry for
        # a final Transcript unless its text is already the latest entry.
        if text.strip():
            self._conversation_text("user", text)
        self._to_client(Transcript(transcript=text, is_final=True, speech_final=True))

    def _on_error(self, event: ErrorEvent) -> None:
        error = event.error
        code = error.code
        self.observer.upstream_error(code or error.type or "unknown")
        if is_cap_error(error):
            self._session_expired(f"upstream session ended at its cap: {error.message}")
            return
        if code == _ACTIVE_RESPONSE:
            # Server VAD started a response as ours was on its way: send ours after it.
            self.log.info("response.create raced an active response; queued")
            self.gate.raced()
            return
        if code == _CANCEL_NOT_ACTIVE:
            self.log.info("our response.cancel came after the response ended")
            return
        if code == _COMMIT_EMPTY:
            # Our ForceEndTurn commit found the buffer empty: server VAD had committed
            # the same speech, and answers it. Ask for nothing more.
            self.log.info("ForceEndTurn commit raced server VAD's; its turn withdrawn")
            self.gate.withdraw_forced()
            return
        event_id = error.event_id or self._unattributed(error)
        settings_refused = False
        if event_id is not None:
            self._send_request(self.gate.refused(event_id))
            if not self.gate.busy:
                self._response_deadline = None  # nothing is waited for any more
            failed = next((u for u in self._updates if u.event_id == event_id), None)
            if failed is not None:
                # That session.update was refused: no session.updated will answer it.
                self._updates.remove(failed)
                self._renewal.settings.refused(event_id)  # nor will it be carried over
                if failed.kind is UpdateKind.FIRST_SETTINGS:
                    self.phase = Phase.NEEDS_SETTINGS  # the client may send corrected Settings
                    settings_refused = True
        self._to_client(translate.component_error(error))
        if self.gate.state is GateState.ACTIVE:
            self._agent_turns.error_told(self.gate.response_id)  # its failure is told
        if settings_refused:
            self._drain()  # corrected Settings may already wait, with what came after them

    def _unattributed(self, error: ErrorDetail) -> str | None:
        """The request an error without `event_id` most likely answers (the real service
        sends some, e.g. a `server_error` in answer to a response.create): a
        session.update when it names a session field, else our response.create that
        upstream has not yet answered, else a refusal (not a failure) naming no other
        field while a session.update is outstanding: it must be that one, or the session
        would close waiting for its session.updated."""
        param = error.param
        if self._updates and param is not None and param.startswith("session"):
            return self._updates[0].event_id
        if self.gate.state is GateState.REQUESTED:
            return self.gate.request_event_id
        if self._updates and param is None and error.type == "invalid_request_error":
            return self._updates[0].event_id
        return None

    # ------------------------------------------------------------ renewal (section 3b)

    def next_upstream_connected(self) -> list[Action]:
        """The next session's socket is open: the settings and the conversation go to it."""
        if self.closed or not self._renewal.preparing:
            return []
        self._to_next(self._renewal.connected(self._clock()))
        return self._take()

    def next_upstream_message(self, data: bytes | bytearray | str) -> list[Action]:
        """A frame from the next session (nothing reaches the client before the switch)."""
        if self.closed or not self._renewal.preparing:
            return []
        try:
            self._renewal.next_frame(data, self._clock())
        except RenewalFailed as exc:
            self._renewal_failed(str(exc))
        else:
            self._renew_step()
        return self._take()

    def next_upstream_failed(self, code: ErrorCode, description: str) -> list[Action]:
        """The next session's connection could not be opened."""
        if not self.closed and self._renewal.preparing:
            self._renewal_failed(f"{code.value}: {description}")
        return self._take()

    def next_upstream_closed(self, code: int | None, reason: str) -> list[Action]:
        """The next session closed before the switch."""
        if not self.closed and self._renewal.preparing:
            self._renewal_failed(f"the next upstream session closed (code {code}) {reason}")
        return self._take()

    def _renew_step(self) -> None:
        """After each event and tick: end at the cap; open the next session when due and
        quiet; keep it up to date; switch when it holds everything and all is quiet."""
        renewal = self._renewal
        if renewal.expires is None or self.phase is _CLOSED:
            return
        now = self._clock()
        if renewal.state is _NOT_DUE and renewal.due_at is not None and now < renewal.due_at:
            return  # nearly always: one comparison per event
        renewal.poll_at = now + POLL_SECONDS  # (read only while waiting for a quiet moment)
        if now >= renewal.expires:
            self._session_expired("the upstream session reached its time limit unrenewed")
        elif renewal.preparing:
            if renewal.confirm_by is not None and now >= renewal.confirm_by:
                self._renewal_failed(
                    f"the next upstream session did not confirm within "
                    f"{self.options.ready_timeout:g} s"
                )
                return
            self._to_next(renewal.top_up(now))
            if renewal.ready_to_switch(now) and self._quiet(now):
                self._switch(now)
        elif renewal.is_due(now) and not self._draining and self._quiet(now):
            renewal.opening()
            self.log.info("upstream session due for renewal: opening the next one")
            self._out.append(OpenNextUpstream())

    def _quiet(self, now: float) -> bool:
        """No response requested or running, the user not speaking nor just done (an
        answer or a transcript due), no function call or settings change pending, the
        agent's audio played out on the client."""
        return not (
            self.phase is not _READY
            or self.gate.busy
            or self._user_speaking
            or self._pending
            or self._calls
            or self._updates
            or self.agent_audio.playing(now)
            or self._renewal.settling(now)
        )

    def _switch(self, now: float) -> None:
        renewal = self._renewal
        session_id = renewal.next_session_id
        self._out.append(SwitchUpstream())
        for payload in renewal.recent_audio:  # the old session may not have heard it all
            self._out.append(SendUpstream(payload))
        renewal.switched(now)
        self.agent_audio.item_id = None  # the old session's items are not in the new one
        self._user_transcript = ("", "")
        self.log.upstream_session = _loggable(session_id)
        self.log.info("upstream session renewed (renewal %d)", renewal.renewals)
        self._warn(
            WarningCode.SESSION_RENEWED,
            "the upstream session reached its time limit; a new one took over with the "
            "conversation so far",
        )

    def _renewal_failed(self, why: str) -> None:
        """The next session cannot be used: give it up and try again later, while there
        is time; else the current one serves until its cap (then the client gets Error
        upstream_session_expired)."""
        self._out.append(CloseNextUpstream(1000, "renewal abandoned"))
        again = self._renewal.failed(self._clock())
        self.log.warning(
            "upstream session renewal failed: %s; %s", why, "will retry" if again else "giving up"
        )

    def _session_expired(self, why: str) -> None:
        self._fail_upstream(ErrorCode.UPSTREAM_SESSION_EXPIRED, why)

    def _to_next(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            item = event.get("item")
            if item is not None and item.get("role") == "assistant":
                self._reported_items.add(item["id"])  # its late echo is not new text
            self._out.append(SendNextUpstream(orjson.dumps(event)))

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
        self.log.info("error to client: %s: %s", code, description)
        self._to_client(Error(description=description, code=code.value))

    def _warn(self, code: WarningCode, description: str) -> None:
        self.log.info("warning to client: %s: %s", code, description)
        self._to_client(Warning(description=description, code=code.value))

    def _fail_upstream(self, code: ErrorCode, description: str) -> None:
        """Something is wrong with upstream: tell the client, close both sides."""
        if code is not ErrorCode.CLIENT_TOO_SLOW:
            self.observer.upstream_error(code.value)
        self._error(code, description)
        self._close(1011, code.value)

    def _close(self, code: int, text: str, *, reason: str | None = None) -> None:
        """Close both sides; `reason` (default: `text`) labels why in the metrics."""
        if self._early:
            self._out.extend(self._early)  # no Welcome will come: say it all before closing
        self._early = None
        self.phase = Phase.CLOSED
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


def _loggable(upstream_id: str) -> str | None:
    """An upstream id fit for a log line: upstream is untrusted (no control characters)."""
    cleaned = re.sub(r"[^A-Za-z0-9_.:-]", "?", upstream_id[:64])
    return cleaned or None


_UPSTREAM_HANDLERS: dict[type[Any], Callable[[ProxySession, Any], None]] = {
    SessionCreated: ProxySession._on_session_created,
    SessionUpdated: ProxySession._on_session_updated,
    ResponseCreated: ProxySession._on_response_created,
    ResponseDone: ProxySession._on_response_done,
    AudioDelta: ProxySession._on_audio_delta,
    AudioDone: ProxySession._on_audio_done,
    TranscriptDone: ProxySession._on_transcript_done,
    TextDone: ProxySession._on_text_done,
    ItemDone: ProxySession._on_item_done,
    FunctionArgumentsDone: ProxySession._on_function_call,
    SpeechStarted: ProxySession._on_speech_started,
    SpeechStopped: ProxySession._on_speech_stopped,
    AudioCommitted: ProxySession._on_audio_committed,
    TranscriptionDelta: ProxySession._on_transcription_delta,
    TranscriptionCompleted: ProxySession._on_transcription_completed,
    ErrorEvent: ProxySession._on_error,
}
