"""One proxied conversation as a plain object: no sockets, no event loop.

The server feeds it what happened ("the client sent this text", "upstream sent this
event", "the audio flush timer fired", "upstream closed") and sends the actions it
returns, in order. Every ordering rule of the proxy lives here:

- readiness: nothing goes upstream before `session.created`; after that the first
  `Settings` goes at once and everything else waits, in order, until it is applied
  (then context items, then the greeting);
- one active response: `response.create` is held while a response is requested or
  running and sent once on `response.done`;
- barge-in: user speech while agent audio is still playing truncates the item upstream
  to what the user can have heard.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from . import translate
from .errors import ErrorCode
from .messages import (
    INBOUND_TYPES,
    AgentAudioDone,
    AgentStartedSpeaking,
    AgentThinking,
    ClientMessage,
    ConversationText,
    Error,
    FunctionCallResponse,
    InjectAgentMessage,
    InjectUserMessage,
    InvalidMessage,
    KeepAlive,
    PromptUpdated,
    ServerMessage,
    Settings,
    SettingsApplied,
    SpeakUpdated,
    Transcript,
    UpdatePrompt,
    UpdateSpeak,
    UserStartedSpeaking,
    UserStoppedSpeaking,
    UtteranceEnd,
    Welcome,
    encode,
    parse_client_message,
)
from .resample import PcmResampler

__all__ = [
    "Action",
    "CloseClient",
    "CloseUpstream",
    "FlushAudioAfter",
    "ProxySession",
    "SendToClient",
    "SendUpstream",
    "SessionOptions",
]

log = logging.getLogger("proxy.session")

_BYTES_PER_MS_UPSTREAM = translate.UPSTREAM_SAMPLE_RATE * 2 // 1000
_ACTIVE_RESPONSE = "conversation_already_has_active_response"
_ALLOWED_TYPES = ", ".join(sorted(INBOUND_TYPES))


# ---------------------------------------------------------------- actions


@dataclass(frozen=True, slots=True)
class SendToClient:
    payload: bytes
    text: bool  # text frame (JSON) or binary frame (agent audio)


@dataclass(frozen=True, slots=True)
class SendUpstream:
    payload: bytes  # always a JSON text frame


@dataclass(frozen=True, slots=True)
class CloseClient:
    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class CloseUpstream:
    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class FlushAudioAfter:
    """Call `ProxySession.flush_audio()` after this many seconds."""

    seconds: float


Action = SendToClient | SendUpstream | CloseClient | CloseUpstream | FlushAudioAfter


@dataclass(frozen=True, slots=True)
class SessionOptions:
    api_key: str | None = None  # only to scrub it from texts
    max_frame_bytes: int = 1 << 20
    max_queued_bytes: int = 16 << 20
    # Input audio is sent upstream in batches: at this many ms buffered, or after
    # `audio_flush_delay` seconds, whichever comes first.
    audio_batch_ms: int = 100
    audio_flush_delay: float = 0.05


# ---------------------------------------------------------------- the session


class ProxySession:
    """The translation state machine of one client connection."""

    def __init__(
        self, options: SessionOptions | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.options = options or SessionOptions()
        self._clock = clock
        self._out: list[Action] = []
        self._ids = itertools.count(1)
        self._tag = format(id(self) & 0xFFFFFF, "06x")
        self.closed = False

        # Readiness.
        self.upstream_ready = False
        self.settings: Settings | None = None  # the first Settings, once sent upstream
        self.settings_applied = False
        self._pending: deque[tuple[ClientMessage | bytes, int]] = deque()  # (message, size)
        self._pending_bytes = 0
        self._acks: deque[tuple[str, str]] = deque()  # (session.update event_id, kind)

        # One response at a time.
        self._response_requested = False
        self._response_active = False
        self._response_create_id = ""  # event_id of the response.create awaiting response.created
        self._response_wanted = False

        # Latency of the current turn (clock readings).
        self._turn_ended_at: float | None = None
        self._response_created_at = 0.0
        self._first_audio_sent = False

        # Agent audio being played by the client, for barge-in.
        self._speaking_item: str | None = None
        self._speaking_since = 0.0
        self._speaking_ms_sent = 0.0
        self._truncated_items: set[str] = set()
        self._output_resampler: PcmResampler | None = None

        # Exactly-once reporting of assistant items and function calls.
        self._reported_items: set[str] = set()
        self._reported_calls: set[str] = set()
        self._user_transcripts: dict[str, str] = {}

        # Input audio batching.
        self._input_resampler = PcmResampler(16_000, translate.UPSTREAM_SAMPLE_RATE)
        self._audio_batch: list[bytes] = []
        self._audio_batch_bytes = 0
        self._flush_scheduled = False

    # ------------------------------------------------------------ inputs

    def client_text(self, text: str) -> list[Action]:
        """A text frame from the component."""
        if self.closed:
            return []
        if len(text) > self.options.max_frame_bytes:
            self._error(ErrorCode.FRAME_TOO_LARGE, f"text frame of {len(text)} bytes is too large")
            return self._take()
        try:
            data = orjson.loads(text)
        except orjson.JSONDecodeError:
            self._error(ErrorCode.INVALID_JSON, "message is not valid JSON")
            return self._take()
        kind = data.get("type") if isinstance(data, dict) else None
        if kind not in INBOUND_TYPES:
            self._error(
                ErrorCode.DISALLOWED_CLIENT_MESSAGE_TYPE,
                f"unknown message type {kind!r}; allowed: {_ALLOWED_TYPES}",
            )
            return self._take()
        if kind == "KeepAlive":
            return []
        try:
            message = parse_client_message(data)
        except InvalidMessage as exc:
            self._error(ErrorCode.INVALID_MESSAGE, str(exc))
            return self._take()
        self._admit(message, len(text))
        return self._take()

    def client_binary(self, data: bytes) -> list[Action]:
        """A binary frame from the component: microphone PCM16."""
        if self.closed or not data:
            return []
        if len(data) > self.options.max_frame_bytes:
            self._error(ErrorCode.FRAME_TOO_LARGE, f"audio frame of {len(data)} bytes is too large")
            return self._take()
        self._admit(data, len(data))
        return self._take()

    def upstream_message(self, data: bytes | str) -> list[Action]:
        """A frame from the OpenAI Realtime API."""
        if self.closed:
            return []
        try:
            event = orjson.loads(data)
            kind = event["type"]
        except (orjson.JSONDecodeError, TypeError, KeyError):
            log.warning("[%s] upstream sent a frame that is not a JSON event", self._tag)
            self._error(ErrorCode.UNMAPPED_UPSTREAM_EVENT, "upstream sent a non-event frame")
            return self._take()
        handler = _UPSTREAM_HANDLERS.get(kind)
        if handler is None:
            log.debug("[%s] upstream %s not mapped", self._tag, kind)
        else:
            handler(self, event)
        return self._take()

    def flush_audio(self) -> list[Action]:
        """The batching timer fired."""
        self._flush_scheduled = False
        if not self.closed:
            self._flush_audio()
        return self._take()

    def upstream_failed(self, code: ErrorCode, description: str) -> list[Action]:
        """The upstream connection could not be opened."""
        if not self.closed:
            self._error(code, description)
            self._close(1011, "upstream unavailable")
        return self._take()

    def upstream_closed(self, code: int | None, reason: str) -> list[Action]:
        """Upstream closed its side (or the connection dropped)."""
        if self.closed:
            return []
        if not self.upstream_ready:
            self._error(
                ErrorCode.UPSTREAM_CLOSED_BEFORE_SESSION_READY,
                f"upstream closed before the session was ready (code {code})",
            )
            self._close(1011, "upstream closed")
        elif code == 1000:
            self._close(1000, "upstream closed")
        else:
            detail = f": {reason}" if reason else ""
            self._error(ErrorCode.UPSTREAM_CLOSED, f"upstream closed (code {code}){detail}")
            self._close(1011, "upstream closed")
        return self._take()

    def client_closed(self) -> list[Action]:
        """The component went away: close upstream, forget everything pending."""
        if self.closed:
            return []
        self.closed = True
        self._pending.clear()
        self._audio_batch.clear()
        return [CloseUpstream(1000, "client closed")]

    # ------------------------------------------------------------ client side

    def _admit(self, message: ClientMessage | bytes, size: int) -> None:
        """Handle now, or queue in arrival order until the session is ready."""
        if self._ready_for(message):
            self._handle(message)
            return
        if self._pending_bytes + size > self.options.max_queued_bytes:
            self._error(
                ErrorCode.CLIENT_QUEUE_FULL,
                "too much sent before the session was ready; message refused",
            )
            return
        self._pending.append((message, size))
        self._pending_bytes += size
        self._drain()

    def _ready_for(self, message: ClientMessage | bytes) -> bool:
        if not self.upstream_ready or self._pending:
            return False
        if self.settings_applied:
            return True
        return isinstance(message, Settings) and self.settings is None

    def _drain(self) -> None:
        """Replay queued messages now that the session moved on."""
        if not self.upstream_ready:
            return
        if self.settings is None:
            # The first Settings unblocks everything queued before it.
            first = next((p for p in self._pending if isinstance(p[0], Settings)), None)
            if first is None:
                return
            self._pending.remove(first)
            self._pending_bytes -= first[1]
            self._handle(first[0])
        while self.settings_applied and self._pending:
            message, size = self._pending.popleft()
            self._pending_bytes -= size
            self._handle(message)

    def _handle(self, message: ClientMessage | bytes) -> None:
        if isinstance(message, bytes):
            self._accept_audio(message)
        elif isinstance(message, Settings):
            self._apply_settings(message)
        elif isinstance(message, InjectUserMessage):
            self._to_client(ConversationText(role="user", content=message.content))
            self._upstream(translate.text_item("user", message.content))
            self._turn_ended_at = self._clock()
            self._request_response()
        elif isinstance(message, FunctionCallResponse):
            self._upstream(translate.function_output_item(message.id, message.content))
            self._turn_ended_at = self._clock()
            self._request_response()
        elif isinstance(message, InjectAgentMessage):
            text = message.text or ""
            self._to_client(ConversationText(role="assistant", content=text))
            self._upstream(translate.text_item("assistant", text, item_id=self._own_item_id()))
        elif isinstance(message, UpdatePrompt):
            event_id = self._event_id("prompt")
            self._acks.append((event_id, "prompt"))
            self._upstream(translate.prompt_update(message.prompt, event_id=event_id))
        elif isinstance(message, UpdateSpeak):
            voice = translate.openai_voice(message.speak)
            if voice is None:
                log.info("[%s] UpdateSpeak names no OpenAI voice; voice unchanged", self._tag)
                self._to_client(SpeakUpdated())
            else:
                event_id = self._event_id("speak")
                self._acks.append((event_id, "speak"))
                self._upstream(translate.voice_update(voice, event_id=event_id))
        elif isinstance(message, KeepAlive):
            pass

    def _apply_settings(self, settings: Settings) -> None:
        first = self.settings is None
        if first:
            self.settings = settings
        self._flush_audio()
        if settings.input_sample_rate != self._input_resampler.input_rate:
            self._input_resampler = PcmResampler(
                settings.input_sample_rate, translate.UPSTREAM_SAMPLE_RATE
            )
        self._output_resampler = (
            None
            if settings.output_sample_rate == translate.UPSTREAM_SAMPLE_RATE
            else PcmResampler(translate.UPSTREAM_SAMPLE_RATE, settings.output_sample_rate)
        )
        event_id = self._event_id("settings")
        self._acks.append((event_id, "first-settings" if first else "settings"))
        self._upstream(translate.translate_settings(settings, event_id=event_id))

    def _settings_applied(self) -> None:
        """session.updated for the first Settings: SettingsApplied, context, greeting."""
        assert self.settings is not None
        self._to_client(SettingsApplied())
        context = [m for m in self.settings.context_messages if m.is_text_turn]
        for message in context:
            assert message.role is not None and message.content is not None
            item_id = self._own_item_id() if message.role == "assistant" else None
            self._upstream(translate.text_item(message.role, message.content, item_id=item_id))
        greeting = self.settings.agent.greeting
        if greeting and not context:
            self._to_client(ConversationText(role="assistant", content=greeting))
            self._upstream(translate.text_item("assistant", greeting, item_id=self._own_item_id()))
        self.settings_applied = True
        self._drain()

    def _request_response(self) -> None:
        if self._response_requested or self._response_active:
            self._response_wanted = True
            return
        self._response_requested = True
        self._response_create_id = self._event_id("response")
        self._upstream(translate.response_create(self._response_create_id))

    # ------------------------------------------------------------ input audio

    def _accept_audio(self, pcm: bytes) -> None:
        self._audio_batch.append(pcm)
        self._audio_batch_bytes += len(pcm)
        batch_bytes = self.options.audio_batch_ms * self._input_resampler.input_rate * 2 // 1000
        if self._audio_batch_bytes >= batch_bytes:
            self._flush_audio()
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            self._out.append(FlushAudioAfter(self.options.audio_flush_delay))

    def _flush_audio(self) -> None:
        if not self._audio_batch:
            return
        raw = self._audio_batch[0] if len(self._audio_batch) == 1 else b"".join(self._audio_batch)
        self._audio_batch.clear()
        self._audio_batch_bytes = 0
        pcm = self._input_resampler.process(raw)
        if pcm:
            audio = base64.b64encode(pcm).decode("ascii")
            self._out.append(
                SendUpstream(orjson.dumps({"type": "input_audio_buffer.append", "audio": audio}))
            )

    # ------------------------------------------------------------ upstream events

    def _on_session_created(self, event: dict[str, Any]) -> None:
        session = event.get("session") or {}
        self._to_client(Welcome(request_id=str(session.get("id", ""))))
        self.upstream_ready = True
        self._drain()

    def _on_session_updated(self, event: dict[str, Any]) -> None:
        if not self._acks:
            return  # an update we did not ask for
        _, kind = self._acks.popleft()
        if kind == "first-settings":
            self._settings_applied()
        elif kind == "settings":
            self._to_client(SettingsApplied())
        elif kind == "prompt":
            self._to_client(PromptUpdated())
        else:
            self._to_client(SpeakUpdated())

    def _on_response_created(self, event: dict[str, Any]) -> None:
        self._response_requested = False
        self._response_active = True
        self._response_created_at = self._clock()
        self._first_audio_sent = False
        self._to_client(AgentThinking(content=""))

    def _on_response_done(self, event: dict[str, Any]) -> None:
        self._response_active = False
        self._response_requested = False
        if self._response_wanted:
            self._response_wanted = False
            self._request_response()

    def _on_audio_delta(self, event: dict[str, Any]) -> None:
        item_id = event.get("item_id", "")
        if item_id in self._truncated_items:
            return  # the user barged in: never play the rest
        try:
            pcm = base64.b64decode(event.get("delta", ""), validate=True)
        except (binascii.Error, ValueError, TypeError):
            self._error(ErrorCode.UNMAPPED_UPSTREAM_EVENT, "upstream audio delta is not base64")
            return
        if not pcm:
            return
        now = self._clock()
        if item_id != self._speaking_item:
            self._speaking_item = item_id
            self._speaking_since = now
            self._speaking_ms_sent = 0.0
        if not self._first_audio_sent:
            self._first_audio_sent = True
            turn_end = self._turn_ended_at if self._turn_ended_at is not None else now
            self._turn_ended_at = None
            created = self._response_created_at or now
            self._to_client(
                AgentStartedSpeaking(
                    total_latency=round(max(now - turn_end, 0.0), 4),
                    tts_latency=round(max(now - created, 0.0), 4),
                    ttt_latency=round(max(created - turn_end, 0.0), 4),
                )
            )
        self._speaking_ms_sent += len(pcm) / _BYTES_PER_MS_UPSTREAM
        if self._output_resampler is not None:
            pcm = self._output_resampler.process(pcm)
        self._out.append(SendToClient(pcm, text=False))

    def _on_audio_done(self, event: dict[str, Any]) -> None:
        resampler = self._output_resampler
        if resampler is not None:
            # Drain the filter so the item's last milliseconds are played too.
            tail = resampler.flush()
            self._output_resampler = PcmResampler(resampler.input_rate, resampler.output_rate)
            if tail and event.get("item_id") not in self._truncated_items:
                self._out.append(SendToClient(tail, text=False))
        self._to_client(AgentAudioDone())

    def _on_assistant_text(self, event: dict[str, Any]) -> None:
        text = event.get("transcript") if "transcript" in event else event.get("text")
        self._report_assistant(str(event.get("item_id", "")), text)

    def _on_item_done(self, event: dict[str, Any]) -> None:
        item = event.get("item")
        if isinstance(item, dict):
            self._report_assistant(str(item.get("id", "")), translate.assistant_text_of(item))

    def _report_assistant(self, item_id: str, text: object) -> None:
        if not isinstance(text, str) or not text or item_id in self._reported_items:
            return
        if item_id:
            self._reported_items.add(item_id)
        self._to_client(ConversationText(role="assistant", content=text))

    def _on_function_call(self, event: dict[str, Any]) -> None:
        call_id = str(event.get("call_id", ""))
        if call_id in self._reported_calls:
            return
        self._reported_calls.add(call_id)
        self._to_client(translate.function_call_request(event))

    def _on_speech_started(self, event: dict[str, Any]) -> None:
        self._to_client(UserStartedSpeaking())
        self._barge_in()

    def _barge_in(self) -> None:
        """Truncate the agent's item to what the user heard, if it is still playing."""
        item_id = self._speaking_item
        if not item_id:
            return
        self._speaking_item = None
        played_ms = (self._clock() - self._speaking_since) * 1000
        if played_ms >= self._speaking_ms_sent and not self._response_active:
            return  # it had finished playing: nothing to cut
        self._truncated_items.add(item_id)
        heard_ms = int(min(played_ms, self._speaking_ms_sent))
        self._upstream(translate.truncate_item(item_id, heard_ms))

    def _on_speech_stopped(self, event: dict[str, Any]) -> None:
        self._to_client(UserStoppedSpeaking())
        end_ms = event.get("audio_end_ms", 0)
        self._to_client(UtteranceEnd(last_word_end=round(float(end_ms) / 1000, 3)))
        self._turn_ended_at = self._clock()

    def _on_transcription_delta(self, event: dict[str, Any]) -> None:
        item_id = str(event.get("item_id", ""))
        text = self._user_transcripts.get(item_id, "") + str(event.get("delta", ""))
        self._user_transcripts[item_id] = text
        self._to_client(Transcript(transcript=text, is_final=False, speech_final=False))

    def _on_transcription_completed(self, event: dict[str, Any]) -> None:
        self._user_transcripts.pop(str(event.get("item_id", "")), None)
        text = str(event.get("transcript", ""))
        self._to_client(Transcript(transcript=text, is_final=True, speech_final=True))
        if text.strip():
            self._to_client(ConversationText(role="user", content=text))

    def _on_error(self, event: dict[str, Any]) -> None:
        error = event.get("error") if isinstance(event.get("error"), dict) else {}
        assert isinstance(error, dict)
        if error.get("code") == _ACTIVE_RESPONSE:
            # Server VAD started a response as ours was on its way: send ours after it.
            log.info("[%s] response.create raced an active response; queued", self._tag)
            self._response_requested = False
            self._response_wanted = True
            return
        if self._response_requested and error.get("event_id") == self._response_create_id:
            # Our response.create was refused: no response.done will release the gate.
            self._response_requested = False
            if self._response_wanted:
                self._response_wanted = False
                self._request_response()
        failed = next((ack for ack in self._acks if ack[0] == error.get("event_id")), None)
        if failed is not None:
            # That session.update was refused: no session.updated will answer it.
            self._acks.remove(failed)
            if failed[1] == "first-settings":
                self.settings = None  # the component may send corrected Settings
        self._to_client(translate.component_error(event, secret=self.options.api_key))

    # ------------------------------------------------------------ output helpers

    def _to_client(self, message: ServerMessage) -> None:
        self._out.append(SendToClient(encode(message), text=True))

    def _upstream(self, event: dict[str, Any]) -> None:
        if self._audio_batch:
            self._flush_audio()  # keep audio in order with what follows it
        self._out.append(SendUpstream(orjson.dumps(event)))

    def _error(self, code: ErrorCode, description: str) -> None:
        log.info("[%s] error to client: %s: %s", self._tag, code, description)
        self._to_client(Error(description=description, code=code.value))

    def _close(self, code: int, reason: str) -> None:
        self.closed = True
        self._out.append(CloseClient(code, reason))
        self._out.append(CloseUpstream(1000 if code == 1000 else 1011, reason))

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


_UPSTREAM_HANDLERS: dict[str, Callable[[ProxySession, dict[str, Any]], None]] = {
    "session.created": ProxySession._on_session_created,
    "session.updated": ProxySession._on_session_updated,
    "response.created": ProxySession._on_response_created,
    "response.done": ProxySession._on_response_done,
    "response.output_audio.delta": ProxySession._on_audio_delta,
    "response.output_audio.done": ProxySession._on_audio_done,
    "response.output_audio_transcript.done": ProxySession._on_assistant_text,
    "response.output_text.done": ProxySession._on_assistant_text,
    "conversation.item.done": ProxySession._on_item_done,
    "response.function_call_arguments.done": ProxySession._on_function_call,
    "input_audio_buffer.speech_started": ProxySession._on_speech_started,
    "input_audio_buffer.speech_stopped": ProxySession._on_speech_stopped,
    "conversation.item.input_audio_transcription.delta": ProxySession._on_transcription_delta,
    "conversation.item.input_audio_transcription.completed": (
        ProxySession._on_transcription_completed
    ),
    "error": ProxySession._on_error,
}
