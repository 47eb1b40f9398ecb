"""One proxied conversation as a plain object: no sockets, no event loop.

The server feeds it what happened ("the client sent this text", "upstream sent this
event", "time passed", "upstream closed") and sends the actions it returns, in order.
Each rule lives in the module of its concern (see `proxy.session_state`): the opening
(`opening`, `phases`), responses (`responses`, `response_gate`), barge-in (`barge_in`),
function calls (`function_calls`), timers (`deadlines`), renewal (`renewing`). This
module holds the inputs, and one dispatch table per side: `CLIENT_HANDLERS` maps each
client message type to its handler, `UPSTREAM_HANDLERS` each upstream event type to
its handler (adding an upstream event: its model in `upstream_events`, a handler, a
row here).

Each side's frame is parsed in its wire module (`client_messages.parse_client_frame`,
`upstream_events.parse_upstream_frame`), which checks it against its declared shape and
returns the typed message or a `Rejection`; a rejection is answered with an `Error` and
changes nothing else. What is session state stays here: the rates, the frame size
limit, the activity stamps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import translate
from .actions import Action, CloseNextUpstream, CloseUpstream
from .barge_in import BargeIn
from .bounds import MAX_TRANSCRIPT_CHARS as _MAX_TRANSCRIPT_CHARS
from .client_messages import (
    KEEP_ALIVE,
    ClientMessage,
    ForceEndTurn,
    FunctionCallResponse,
    InjectAgentMessage,
    InjectUserMessage,
    KeepAlive,
    Settings,
    UpdateListen,
    UpdatePrompt,
    UpdateSpeak,
    UpdateThink,
    UpdateThinkLive,
    parse_client_frame,
)
from .deadlines import Deadlines
from .errors import ErrorCode, WarningCode
from .function_calls import FunctionCalls
from .limits import FloodState
from .opening import Opening
from .phases import Phase, Step, UserSpeech, advance
from .renewal import is_cap_error
from .renewing import Renewing
from .response_gate import GateState
from .responses import Responses
from .server_messages import Transcript, UserStoppedSpeaking, UtteranceEnd
from .upstream_events import (
    IGNORED_PREFIXES,
    AudioCommitted,
    AudioDelta,
    AudioDone,
    ErrorEvent,
    FunctionArgumentsDone,
    Ignored,
    ItemDone,
    ResponseCreated,
    ResponseDone,
    SessionCreated,
    SessionUpdated,
    SpeechStarted,
    SpeechStopped,
    TextDone,
    TranscriptDone,
    TranscriptionCompleted,
    TranscriptionDelta,
    parse_upstream_frame,
)
from .wire import Rejection

__all__ = ["CLIENT_HANDLERS", "UPSTREAM_HANDLERS", "Phase", "ProxySession"]

_ACTIVE_RESPONSE = "conversation_already_has_active_response"
# Only the proxy sends response.cancel and input_audio_buffer.commit, so these codes
# answer ours even when upstream does not echo the event_id.
_CANCEL_NOT_ACTIVE = "response_cancel_not_active"
_COMMIT_EMPTY = "input_audio_buffer_commit_empty"
# Each one asks upstream for a response: they share the turn rate.
_TURN_MESSAGES = (InjectUserMessage, InjectAgentMessage, FunctionCallResponse, ForceEndTurn)

# Compared on every frame: module names are cheaper to reach than Enum members.
_CLOSED = Phase.CLOSED
_READY = Phase.READY
_IDLE = GateState.IDLE


class ProxySession(Opening, Responses, BargeIn, FunctionCalls, Deadlines, Renewing):
    """The translation state machine of one client connection."""

    __slots__ = ()

    # ------------------------------------------------------------ inputs

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
        message = parse_client_frame(text)
        if isinstance(message, Rejection):
            self._error(message.code, message.description)
            return self._take()
        if message is KEEP_ALIVE:
            return []
        self._active_at = now  # a valid message, not KeepAlive: the place is in use
        if isinstance(message, _TURN_MESSAGES) and not self._turn_bucket.take(now):
            self._error(
                ErrorCode.RATE_LIMITED,
                f"{message.type} dropped: more than {self.options.turn_rate:g} turns a second",
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
            self._response_timer()  # any frame is a sign of life
        if not isinstance(data, str) and data.startswith(IGNORED_PREFIXES):
            return []  # an event the proxy never acts on (see upstream_events)
        typed = parse_upstream_frame(data)
        if isinstance(typed, Rejection):
            self.log.warning("%s", typed.log)
            self._error(typed.code, typed.description)
            return self._take()
        if isinstance(typed, Ignored):
            if self._debug:  # most events of a turn land here: skip the logging call
                self.log.debug("upstream %s not mapped", typed.type[:80])
            return self._take()
        self._renewal.observe(typed, self._clock())
        UPSTREAM_HANDLERS[type(typed)](self, typed)
        self._renew_step()
        return self._take()

    def upstream_failed(self, code: ErrorCode, description: str) -> list[Action]:
        """The upstream connection could not be opened."""
        if not self.closed:
            self._fail_upstream(code, description)
        return self._take()

    def upstream_closed(self, code: int | None, reason: str) -> list[Action]:
        """Upstream closed its side (or the connection dropped)."""
        if self.closed:
            return []
        if self._until_welcome is not None:  # no Welcome yet
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
        self.phase = advance(self.phase, Step.CLOSE)
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

    def internal_failure(self, description: str) -> list[Action]:
        """The proxy failed (a bug, logged by the shell): tell the client, close both
        sides."""
        if not self.closed:
            self._error(ErrorCode.INTERNAL_ERROR, description)
            self._close(1011, "internal error", reason="internal_error")
        return self._take()

    def _handle(self, message: ClientMessage | bytes) -> None:
        CLIENT_HANDLERS[type(message)](self, message)

    def _on_audio(self, data: bytes) -> None:
        self._upstream_audio(self.microphone.add(data, self._clock()))

    def _on_update_think_live(self, message: UpdateThinkLive) -> None:
        self._warn(
            WarningCode.UNSUPPORTED_BY_BACKEND,
            "UpdateThink_Live is a Deepgram feature the OpenAI Realtime API has no "
            "equivalent for; nothing was changed",
        )

    def _on_keep_alive(self, message: KeepAlive) -> None:
        pass

    def _leave_if_quiet(self) -> None:
        speaking = self._user_speech is UserSpeech.SPEAKING
        busy = self.gate.busy or speaking or self._pending or self._calls
        if self._draining and not self.closed and not busy:
            self._close(1001, "server shutting down", reason="drained")

    def _on_speech_stopped(self, event: SpeechStopped) -> None:
        self._user_speech = UserSpeech.COMMITTED  # server VAD commits the buffer, answers it
        self._to_client(UserStoppedSpeaking())
        self._to_client(UtteranceEnd(last_word_end=round(event.audio_end_ms / 1000, 3)))
        self._turn_ended()

    def _on_audio_committed(self, event: AudioCommitted) -> None:
        # A committed buffer ends the user's turn even when speech_stopped never came
        # (ForceEndTurn, or a lost event): do not stay "speaking" forever.
        self._user_speech = UserSpeech.COMMITTED
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
            self._response_timer()
            settings_refused = self._update_refused(event_id)
        self._to_client(translate.component_error(error))
        if self.gate.state is GateState.ACTIVE:
            self._agent_turns.error_told(self.gate.response_id)  # its failure is told
        if settings_refused:
            self._drain()  # corrected Settings may already wait, with what came after them


CLIENT_HANDLERS: dict[type[Any], Callable[[ProxySession, Any], None]] = {
    bytes: ProxySession._on_audio,
    Settings: ProxySession._on_settings,
    InjectUserMessage: ProxySession._on_inject_user_message,
    InjectAgentMessage: ProxySession._on_inject_agent_message,
    FunctionCallResponse: ProxySession._on_function_response,
    UpdatePrompt: ProxySession._on_update_prompt,
    UpdateSpeak: ProxySession._on_update_speak,
    UpdateThink: ProxySession._on_update_think,
    UpdateListen: ProxySession._on_update_listen,
    UpdateThinkLive: ProxySession._on_update_think_live,
    ForceEndTurn: ProxySession._on_force_end_turn,
    KeepAlive: ProxySession._on_keep_alive,
}

UPSTREAM_HANDLERS: dict[type[Any], Callable[[ProxySession, Any], None]] = {
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
