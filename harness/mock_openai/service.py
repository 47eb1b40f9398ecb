"""The service model: what the mock does by default, as a sans-I/O model of one
Realtime GA session.

`RealtimeSession` holds the state of one connection (session configuration,
conversation, input audio buffer and its voice activity detector, responses) and turns
what the client sent into `Step`s (steps.py) that the connection (connection.py)
carries out. It never touches a socket or a clock.

Rules (rules.py) decide the *content* of answers and inject faults; the session's
configuration decides their *form* (audio + transcript, or text), as on the real service.
When no rule handled a client event and the default refuses it with an `error` event,
the session also says so (`FailureKind.UNHANDLED_CLIENT_EVENT`): strict mode fails the
test on it.
"""

from __future__ import annotations

import base64
import binascii
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final

from harness.schema import SchemaError, validate_client_event

from .audio import (
    BYTES_PER_MS,
    SAMPLE_RATE,
    TONE,
    SpeechStarted,
    TurnAudio,
    Voice,
    VoiceActivityDetector,
    base64_length,
    heard_pcm16,
)
from .conversation import Conversation, ItemRecord
from .responders import Turn
from .responses import (
    Fail,
    FailureKind,
    Recognise,
    Resolve,
    ResponseRun,
    StartResponse,
    Step,
    inline_steps,
    words,
)
from .rules import Match, RuleBook, Trigger
from .steps import (
    OUTPUT_STEPS,
    PASSIVE_STEPS,
    CloseConnection,
    ReplyAudio,
    ReplyText,
    Respond,
    RuleStep,
    Send,
    TranscribeAs,
    copy_json,
    error_event,
    new_id,
)

__all__ = ["DEFAULT_MODEL", "SESSION_LIFETIME_S", "RealtimeSession", "default_session"]

DEFAULT_MODEL: Final = "gpt-realtime"
# The service's cap on a session, and what it sends when a session reaches it (OpenAI's
# developer notes: "Realtime sessions can now last up to 60 minutes"; the message and its
# code as clients recorded them from the live API).
SESSION_LIFETIME_S: Final = 3600.0
SESSION_EXPIRED_CODE: Final = "session_expired"
SESSION_EXPIRED_MESSAGE: Final = "Your session hit the maximum duration of 60 minutes."
MIN_COMMIT_MS: Final = 100
DEFAULT_INSTRUCTIONS: Final = (
    "You are a helpful, witty, and friendly AI. Act like a human, but remember that you "
    "aren't a human. Keep your answers short."
)
SERVER_VAD_DEFAULTS: Final[dict[str, Any]] = {
    "type": "server_vad",
    "threshold": 0.5,
    "prefix_padding_ms": 300,
    "silence_duration_ms": 500,
    "idle_timeout_ms": None,
    "create_response": True,
    "interrupt_response": True,
}
SEMANTIC_VAD_DEFAULTS: Final[dict[str, Any]] = {
    "type": "semantic_vad",
    "eagerness": "auto",
    "create_response": True,
    "interrupt_response": True,
}
_EAGERNESS_SILENCE_MS: Final = {"low": 800, "medium": 500, "auto": 500, "high": 250}
# A frame is voiced when its RMS (fraction of full scale) exceeds threshold x this:
# 0.02 at the default threshold 0.5.
_LEVEL_PER_THRESHOLD: Final = 0.04
_MERGED_KEYS: Final = frozenset({"audio", "input", "output"})  # other objects are replaced


def default_session(model: str, lifetime_s: float = SESSION_LIFETIME_S) -> dict[str, Any]:
    """The session a new connection gets, as the real service reports it. `expires_at`
    is in whole seconds, so a short `lifetime_s` is rounded up."""
    pcm = {"type": "audio/pcm", "rate": SAMPLE_RATE}
    return {
        "type": "realtime",
        "object": "realtime.session",
        "id": new_id("sess"),
        "model": model,
        "output_modalities": ["audio"],
        "instructions": DEFAULT_INSTRUCTIONS,
        "tools": [],
        "tool_choice": "auto",
        "max_output_tokens": "inf",
        "tracing": None,
        "truncation": "auto",
        "prompt": None,
        "include": None,
        "expires_at": math.ceil(time.time() + lifetime_s),
        "audio": {
            "input": {
                "format": dict(pcm),
                "transcription": None,
                "noise_reduction": None,
                "turn_detection": dict(SERVER_VAD_DEFAULTS),
            },
            "output": {"format": dict(pcm), "voice": "alloy", "speed": 1.0},
        },
    }


def _merge(base: dict[str, Any], patch: dict[str, Any]) -> None:
    """session.update semantics: containers merge, other values (nulls too) replace."""
    for key, value in patch.items():
        if key in _MERGED_KEYS and isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = copy_json(value)


@dataclass(slots=True)
class LatestInput:
    """What a response answers: the latest typed text, speech or function output (the
    responder's view of it is `turn.Turn`, built from this and the rule that fires)."""

    kind: Trigger | None  # USER_TEXT, USER_SPEECH, FUNCTION_OUTPUT, or None (no turn yet)
    text: str = ""  # the typed text, what was heard, or the function's output
    function: str | None = None
    record: ItemRecord | None = None


class RealtimeSession:
    """One connection's worth of Realtime API behaviour (no I/O)."""

    def __init__(
        self,
        rules: RuleBook,
        *,
        model: str = DEFAULT_MODEL,
        voice: Voice = TONE,
        connection_index: int = 0,
        lifetime_s: float = SESSION_LIFETIME_S,
        echo_metadata: Callable[[], bool] = lambda: True,
    ) -> None:
        self.rules = rules
        self.echo_metadata = echo_metadata  # asked per response: a test may change it
        self.voice = voice
        self.connection_index = connection_index
        self._rules_fired = 0  # rules that fired on this connection
        self.session = default_session(model, lifetime_s)
        self.conversation = Conversation()
        self.active: ResponseRun | None = None  # the in-conversation response, if any
        self.running: dict[str, ResponseRun] = {}
        self._vad = VoiceActivityDetector()
        self._buffer_start_ms = 0  # audio time of the last commit / clear
        self._speech_item_id = ""
        self._speech_start_ms = 0
        self._turn_audio = TurnAudio()  # the buffer's bytes as appended, for recognition
        self._handlers: dict[str, Callable[[dict[str, Any]], Iterator[Step]]] = {
            "session.update": self._session_update,
            "conversation.item.create": self._item_create,
            "conversation.item.truncate": self._item_truncate,
            "conversation.item.delete": self._item_delete,
            "conversation.item.retrieve": self._item_retrieve,
            "response.create": self._response_create,
            "response.cancel": self._response_cancel,
            "input_audio_buffer.append": self._buffer_append,
            "input_audio_buffer.commit": self._buffer_commit,
            "input_audio_buffer.clear": self._buffer_clear,
            "output_audio_buffer.clear": self._output_buffer_clear,
        }

    # -- entry points ----------------------------------------------------------------------
    def open(self, match: Match | None) -> Iterator[Step]:
        """A client connected: `session.created`, unless an on_connect rule replaces it."""
        if match is None:
            yield from self._opened(())
            return
        turn = self._turn_for(match, event=None, text="")
        yield from self._resolved(match.steps, turn, self._opened)

    def _opened(self, steps: Sequence[RuleStep]) -> Iterator[Step]:
        yield from inline_steps(steps)
        if all(isinstance(s, PASSIVE_STEPS) for s in steps):
            yield Send(
                {"type": "session.created", "event_id": new_id("event"), "session": self._session()}
            )

    @property
    def expires_at(self) -> int:
        """When the service ends this session (Unix seconds, as in `session.created`)."""
        return int(self.session["expires_at"])

    def expire(self) -> Iterator[Step]:
        """The session reached `expires_at`: the service's own error, then the close."""
        yield Send(error_event(SESSION_EXPIRED_CODE, SESSION_EXPIRED_MESSAGE))
        yield CloseConnection(1000, "")

    def receive(self, event: dict[str, Any]) -> Iterator[Step]:
        """A client event arrived (parsed, not yet validated)."""
        client_event_id = event.get("event_id")
        client_event_id = client_event_id if isinstance(client_event_id, str) else None
        try:
            validate_client_event(event)
        except SchemaError as exc:
            yield Send(
                error_event(
                    exc.code, exc.api_message, param=exc.param, client_event_id=client_event_id
                )
            )
            yield Fail(str(exc), FailureKind.INVALID_CLIENT_EVENT)
            return
        match = self._match(Trigger.CLIENT_EVENT, event)
        if match is None:
            yield from self._default(event)
            return
        turn = self._turn_for(match, event=event, text="")
        yield from self._resolved(
            match.steps, turn, lambda steps: self._scripted(event, steps, client_event_id)
        )

    def _scripted(
        self, event: dict[str, Any], steps: Sequence[RuleStep], client_event_id: str | None
    ) -> Iterator[Step]:
        """An on_client_event rule's steps: a response, inline steps, or a delay."""
        if any(isinstance(s, OUTPUT_STEPS) for s in steps):
            yield from self._start_response(steps, None, client_event_id)
            return
        yield from inline_steps(steps, client_event_id)
        if all(isinstance(s, PASSIVE_STEPS) for s in steps):  # a stall only delays
            yield from self._default(event)

    def _match(self, trigger: Trigger, subject: Any = None) -> Match | None:
        match = self.rules.match(trigger, subject)
        if match is not None:
            self._rules_fired += 1
        return match

    def _default(self, event: dict[str, Any]) -> Iterator[Step]:
        """The real service's handling; a refusal is reported for strict mode (unless a
        rule fired meanwhile: a scripted error is what the test asked for)."""
        fired = self._rules_fired
        for step in self._handlers[event["type"]](event):
            yield step
            if (
                isinstance(step, Send)
                and step.event.get("type") == "error"
                and self._rules_fired == fired
            ):
                error = step.event["error"]
                yield Fail(
                    f"no rule handled client event {event['type']!r} and the default "
                    f"refused it: [{error.get('code')}] {error.get('message')}",
                    FailureKind.UNHANDLED_CLIENT_EVENT,
                )

    def reject_frame(self, message: str, frame: str | bytes) -> list[Step]:
        """A frame that is not a JSON event object (binary, or text that is not JSON)."""
        shown = frame[:60] if isinstance(frame, str) else f"<{len(frame)} binary bytes>"
        return [
            Send(error_event("invalid_json", message)),
            Fail(
                f"the client sent a frame that is not a JSON event ({message}): {shown!r}",
                FailureKind.INVALID_CLIENT_EVENT,
            ),
        ]

    def conversation_snapshots(self) -> list[dict[str, Any]]:
        """The conversation items as the mock holds them now (copies)."""
        return self.conversation.snapshots()

    # -- responders --------------------------------------------------------------------
    def _turn_for(
        self,
        match: Match,
        *,
        event: dict[str, Any] | None,
        text: str,
        function: str | None = None,
    ) -> Turn:
        return Turn(
            trigger=match.rule.trigger.value,
            event=copy_json(event) if event is not None else None,
            text=text,
            function=function,
            conversation=self.conversation.snapshots(),
            session=self._session(),
            connection=self.connection_index,
            number=match.number,
        )

    def _resolved(
        self,
        steps: Sequence[RuleStep],
        turn: Turn,
        then: Callable[[Sequence[RuleStep]], Iterator[Step]],
    ) -> Iterator[Step]:
        """`then(steps)`, once each responder among `steps` has been replaced by what it
        returned (the connection calls it: it may be async)."""
        index = next((i for i, s in enumerate(steps) if isinstance(s, Respond)), None)
        if index is None:
            yield from then(steps)
            return
        respond = steps[index]
        assert isinstance(respond, Respond)

        def carry_on(answer: Sequence[RuleStep]) -> Iterator[Step]:
            rest = [*steps[:index], *answer, *steps[index + 1 :]]
            return self._resolved(rest, turn, then)

        yield Resolve(respond.responder, turn, carry_on)

    # -- helpers ---------------------------------------------------------------------------
    def _session(self) -> dict[str, Any]:
        session: dict[str, Any] = copy_json(self.session)
        return session

    @staticmethod
    def _error(event: dict[str, Any], code: str, message: str, param: str | None = None) -> Send:
        client_event_id = event.get("event_id")
        return Send(error_event(code, message, param=param, client_event_id=client_event_id))

    def _item_events(self, item: dict[str, Any], previous_id: str | None) -> Iterator[Step]:
        for kind in ("conversation.item.added", "conversation.item.done"):
            yield Send(
                {
                    "type": kind,
                    "event_id": new_id("event"),
                    "previous_item_id": previous_id,
                    "item": copy_json(item),
                }
            )

    # -- session.update --------------------------------------------------------------------
    def _session_update(self, event: dict[str, Any]) -> Iterator[Step]:
        patch: dict[str, Any] = event["session"]
        if patch.get("type") != "realtime":
            yield self._error(
                event,
                "invalid_value",
                f"Invalid value: {patch.get('type')!r}. Supported values are: 'realtime'.",
                "session.type",
            )
            return
        modalities = patch.get("output_modalities")
        if modalities is not None and len(set(modalities)) != 1:
            yield self._error(
                event,
                "invalid_value",
                f"Invalid modalities: {modalities}. Supported combinations are: "
                "['text'] and ['audio'].",
                "session.output_modalities",
            )
            return
        voice = ((patch.get("audio") or {}).get("output") or {}).get("voice")
        current_voice = self.session["audio"]["output"].get("voice")
        if voice is not None and voice != current_voice and self.conversation.has_assistant_audio():
            yield self._error(
                event,
                "cannot_update_voice",
                "Cannot update a conversation's voice if assistant audio is present.",
                "session.audio.output.voice",
            )
            return
        _merge(self.session, patch)
        audio_input = self.session["audio"]["input"]
        detection = audio_input.get("turn_detection")
        if isinstance(detection, dict):
            is_server = detection["type"] == "server_vad"
            defaults = SERVER_VAD_DEFAULTS if is_server else SEMANTIC_VAD_DEFAULTS
            audio_input["turn_detection"] = {**defaults, **detection}
        yield Send(
            {"type": "session.updated", "event_id": new_id("event"), "session": self._session()}
        )

    # -- conversation items ----------------------------------------------------------------
    def _item_create(self, event: dict[str, Any]) -> Iterator[Step]:
        item: dict[str, Any] = copy_json(event["item"])
        item_id = item.get("id") or new_id("item")
        if item_id in self.conversation:
            yield self._error(
                event, "invalid_value", f"Item with id '{item_id}' already exists.", "item.id"
            )
            return
        previous = event.get("previous_item_id")
        if previous not in (None, "root") and previous not in self.conversation:
            yield self._error(
                event,
                "invalid_value",
                f"Previous item with item_id '{previous}' not found.",
                "previous_item_id",
            )
            return
        item["id"] = item_id
        item["object"] = "realtime.item"
        if item["type"] in ("message", "function_call", "function_call_output"):
            item["status"] = "completed"
        record = ItemRecord(item)
        for part in item.get("content") or ():
            if part.get("type") == "input_audio":  # the audio is not echoed back
                record.audio_ms += base64_length(part.pop("audio", None) or "") // BYTES_PER_MS
                part.setdefault("transcript", None)
        if previous == "root":
            previous_id = self.conversation.insert(record, first=True)
        else:
            previous_id = self.conversation.insert(record, after=previous)
        yield from self._item_events(item, previous_id)

    def _find_item(self, event: dict[str, Any]) -> ItemRecord | Send:
        item_id = event["item_id"]
        record = self.conversation.get(item_id)
        if record is None:
            return self._error(
                event, "invalid_value", f"Item with item_id '{item_id}' not found.", "item_id"
            )
        return record

    def _item_truncate(self, event: dict[str, Any]) -> Iterator[Step]:
        record = self._find_item(event)
        if isinstance(record, Send):
            yield record
            return
        content = record.item.get("content") or []
        index = event["content_index"]
        is_audio = (
            record.item.get("role") == "assistant"
            and 0 <= index < len(content)
            and content[index].get("type") == "output_audio"
        )
        if not is_audio or record.audio_ms == 0:
            yield self._error(
                event,
                "unsupported_content_type",
                "Only model output audio messages can be truncated",
                "item_id",
            )
            return
        end_ms = event["audio_end_ms"]
        if end_ms > record.audio_ms:
            yield self._error(
                event,
                "invalid_value",
                f"Audio content of {record.audio_ms}ms is already shorter than {end_ms}ms",
                "audio_end_ms",
            )
            return
        record.audio_ms = end_ms  # what the model now believes it said
        yield Send(
            {
                "type": "conversation.item.truncated",
                "event_id": new_id("event"),
                "item_id": record.id,
                "content_index": index,
                "audio_end_ms": end_ms,
            }
        )

    def _item_delete(self, event: dict[str, Any]) -> Iterator[Step]:
        record = self._find_item(event)
        if isinstance(record, Send):
            yield record
            return
        self.conversation.remove(record)
        yield Send(
            {"type": "conversation.item.deleted", "event_id": new_id("event"), "item_id": record.id}
        )

    def _item_retrieve(self, event: dict[str, Any]) -> Iterator[Step]:
        record = self._find_item(event)
        if isinstance(record, Send):
            yield record
            return
        yield Send(
            {
                "type": "conversation.item.retrieved",
                "event_id": new_id("event"),
                "item": copy_json(record.item),
            }
        )

    # -- input audio -------------------------------------------------------------------------
    def _buffer_append(self, event: dict[str, Any]) -> Iterator[Step]:
        try:
            audio = base64.b64decode(event["audio"], validate=True)
        except (binascii.Error, ValueError):
            yield self._error(
                event, "invalid_value", "Invalid 'audio'. Expected base64-encoded audio.", "audio"
            )
            return
        format_type = self.session["audio"]["input"]["format"]["type"]
        self._turn_audio.add(audio, format_type)
        pcm = heard_pcm16(audio, format_type)
        detection: dict[str, Any] | None = self.session["audio"]["input"].get("turn_detection")
        if detection is None:
            self._vad.feed(pcm, level=None, silence_ms=0)
            return
        level = float(detection.get("threshold") or 0.5) * _LEVEL_PER_THRESHOLD
        silence_ms = int(
            detection.get("silence_duration_ms")
            or _EAGERNESS_SILENCE_MS.get(str(detection.get("eagerness")), 500)
        )
        padding_ms = int(detection.get("prefix_padding_ms") or 300)
        for change in self._vad.feed(pcm, level=level, silence_ms=silence_ms):
            if isinstance(change, SpeechStarted):
                self._speech_item_id = new_id("item")
                self._speech_start_ms = max(self._buffer_start_ms, change.at_ms - padding_ms)
                yield Send(
                    {
                        "type": "input_audio_buffer.speech_started",
                        "event_id": new_id("event"),
                        "audio_start_ms": self._speech_start_ms,
                        "item_id": self._speech_item_id,
                    }
                )
                if self.active is not None and detection.get("interrupt_response", True):
                    yield from self.active.cancel("turn_detected")  # barge-in
                continue
            yield Send(
                {
                    "type": "input_audio_buffer.speech_stopped",
                    "event_id": new_id("event"),
                    "audio_end_ms": change.end_ms,
                    "item_id": self._speech_item_id,
                }
            )
            yield from self._commit(
                self._speech_item_id,
                audio_ms=change.at_ms - self._speech_start_ms,
                heard_ms=change.end_ms - self._speech_start_ms,
                now_ms=change.at_ms,
                speech_start_ms=self._speech_start_ms,
            )
            if detection.get("create_response", True) and self.active is None:
                yield from self._start_response(None, None, None)

    def _commit(
        self,
        item_id: str,
        *,
        audio_ms: int,
        heard_ms: int,
        now_ms: int,
        speech_start_ms: int | None = None,
    ) -> Iterator[Step]:
        """The buffer becomes a user audio item (+ transcription when configured); when
        a test names phrases, the turn's audio is recognised against them first. A turn
        server VAD ended starts where it said the speech started: `audio_start_ms`
        "corresponds to the beginning of audio sent to the model", prefix padding
        included (the openai SDK's `InputAudioBufferSpeechStartedEvent`), so the silence
        of a microphone left on before the words is not part of the turn."""
        start_ms = self._buffer_start_ms if speech_start_ms is None else speech_start_ms
        turn = self._turn_audio.take(
            now_ms - self._buffer_start_ms, from_ms=start_ms - self._buffer_start_ms
        )
        self._buffer_start_ms = now_ms
        phrases = self.rules.phrases()

        def committed(recognised: str | None) -> Iterator[Step]:
            return self._committed(item_id, audio_ms, heard_ms, recognised)

        if phrases and turn.audio:
            yield Recognise(turn.audio, turn.rate, turn.encoding, phrases, committed)
        else:
            yield from committed(None)

    def _committed(
        self, item_id: str, audio_ms: int, heard_ms: int, recognised: str | None
    ) -> Iterator[Step]:
        """`recognised`: the phrase heard ("" for none), or None when not recognised."""
        match = self._match(Trigger.USER_SPEECH, recognised)
        steps = match.steps if match is not None else ()
        heard = next((s.text for s in steps if isinstance(s, TranscribeAs)), recognised)
        item: dict[str, Any] = {
            "id": item_id,
            "type": "message",
            "role": "user",
            "status": "completed",
            "object": "realtime.item",
            "content": [{"type": "input_audio", "transcript": None}],
        }
        record = ItemRecord(
            item,
            audio_ms=audio_ms,
            speech_rule=match,
            speech_asked=True,
            heard=heard if heard is not None else f"[speech {heard_ms} ms]",
        )
        previous_id = self.conversation.insert(record)
        yield Send(
            {
                "type": "input_audio_buffer.committed",
                "event_id": new_id("event"),
                "item_id": item_id,
                "previous_item_id": previous_id,
            }
        )
        yield from self._item_events(item, previous_id)
        if self.session["audio"]["input"].get("transcription") is not None:
            yield from self._transcribe(record)

    def _transcribe(self, record: ItemRecord) -> Iterator[Step]:
        transcript = record.heard or ""
        deltas = words(transcript)
        for delta in deltas:
            yield Send(
                {
                    "type": "conversation.item.input_audio_transcription.delta",
                    "event_id": new_id("event"),
                    "item_id": record.id,
                    "content_index": 0,
                    "delta": delta,
                }
            )
        record.item["content"][0]["transcript"] = transcript
        tokens = max(1, record.audio_ms // 100)
        yield Send(
            {
                "type": "conversation.item.input_audio_transcription.completed",
                "event_id": new_id("event"),
                "item_id": record.id,
                "content_index": 0,
                "transcript": transcript,
                "usage": {
                    "type": "tokens",
                    "input_tokens": tokens,
                    "output_tokens": len(deltas),
                    "total_tokens": tokens + len(deltas),
                },
            }
        )

    def _buffer_commit(self, event: dict[str, Any]) -> Iterator[Step]:
        buffered_ms = self._vad.position_ms - self._buffer_start_ms
        if buffered_ms < MIN_COMMIT_MS:
            yield self._error(
                event,
                "input_audio_buffer_commit_empty",
                "Error committing input audio buffer: buffer too small. Expected at least "
                f"{MIN_COMMIT_MS}ms of audio, but buffer only has {buffered_ms:.2f}ms of audio.",
            )
            return
        item_id = self._speech_item_id if self._vad.in_speech else new_id("item")
        self._vad.flush()
        self._vad.end_speech()
        now_ms = self._vad.clock_ms
        yield from self._commit(item_id, audio_ms=buffered_ms, heard_ms=buffered_ms, now_ms=now_ms)

    def _buffer_clear(self, event: dict[str, Any]) -> Iterator[Step]:
        self._vad.flush()
        self._vad.end_speech()
        self._turn_audio.take(None)
        self._buffer_start_ms = self._vad.clock_ms
        yield Send({"type": "input_audio_buffer.cleared", "event_id": new_id("event")})

    def _output_buffer_clear(self, event: dict[str, Any]) -> Iterator[Step]:
        yield self._error(
            event,
            "unsupported_event_type",
            "output_audio_buffer.clear is only supported for WebRTC and SIP connections.",
            "type",
        )

    # -- responses ----------------------------------------------------------------------------
    def _response_create(self, event: dict[str, Any]) -> Iterator[Step]:
        yield from self._start_response(None, event.get("response"), event.get("event_id"), event)

    def _response_cancel(self, event: dict[str, Any]) -> Iterator[Step]:
        response_id = event.get("response_id")
        run = self.running.get(response_id) if response_id else self.active
        if run is None:
            yield self._error(
                event, "response_cancel_not_active", "Cancellation failed: no active response found"
            )
            return
        yield from run.cancel("client_cancelled")

    def _latest_input(self, records: Sequence[ItemRecord]) -> LatestInput:
        """The latest user turn: typed text, speech, or a function's output."""
        for record in reversed(records):
            item = record.item
            if item.get("type") == "function_call_output":
                call = next(
                    (
                        r.item
                        for r in self.conversation
                        if r.item.get("type") == "function_call"
                        and r.item.get("call_id") == item.get("call_id")
                    ),
                    None,
                )
                name = call.get("name") if call is not None else None
                return LatestInput(
                    Trigger.FUNCTION_OUTPUT, str(item.get("output", "")), name, record
                )
            if item.get("type") == "message" and item.get("role") == "user":
                content = item.get("content") or []
                texts = [c.get("text") or "" for c in content if c.get("type") == "input_text"]
                if texts:
                    return LatestInput(Trigger.USER_TEXT, " ".join(texts), None, record)
                if any(c.get("type") == "input_audio" for c in content):
                    heard = record.heard or content[0].get("transcript")
                    return LatestInput(
                        Trigger.USER_SPEECH, heard or f"[speech {record.audio_ms} ms]", None, record
                    )
        return LatestInput(None)

    def _rule_for(self, latest: LatestInput) -> tuple[Match | None, str]:
        """The rule that answers `latest` (if any) and the default reply's text."""
        if latest.kind is Trigger.USER_TEXT:
            return self._match(Trigger.USER_TEXT, latest.text), f"You said: {latest.text}"
        if latest.kind is Trigger.FUNCTION_OUTPUT:
            match = self._match(Trigger.FUNCTION_OUTPUT, latest.function)
            return match, f"The function returned: {latest.text}"
        if latest.kind is Trigger.USER_SPEECH and latest.record is not None:
            record = latest.record
            if not record.speech_asked:  # an audio item the client created
                record.speech_rule = self._match(Trigger.USER_SPEECH)
                record.speech_asked = True
            return record.speech_rule, f"I heard: {latest.text}"
        return None, "Hello! How can I help you today?"

    def _start_response(
        self,
        steps: Sequence[RuleStep] | None,
        params: dict[str, Any] | None,
        client_event_id: str | None,
        event: dict[str, Any] | None = None,
    ) -> Iterator[Step]:
        """Start a response: `steps` from an on_client_event rule, else the rule (or the
        default) that answers the latest user turn."""
        params = params or {}
        in_conversation = params.get("conversation", "auto") != "none"
        if in_conversation and self.active is not None:
            yield Send(
                error_event(
                    "conversation_already_has_active_response",
                    "Conversation already has an active response in progress: "
                    f"{self.active.id}. Wait until the response is finished before creating "
                    "a new one.",
                    client_event_id=client_event_id,
                )
            )
            return
        if steps is not None:
            yield from self._respond(steps, params, client_event_id, in_conversation)
            return
        given = params.get("input")
        if not in_conversation and isinstance(given, list):
            # Out of band with its own input (how a client makes the model say a text):
            # the model does as asked, so the mock says the input's text. User-text rules
            # are for conversation turns; script these with on_client_event.
            said = self._latest_input([ItemRecord(i) for i in given]).text
            yield from self._respond((ReplyAudio(said),), params, client_event_id, False)
            return
        records = list(self.conversation)
        latest = self._latest_input(records)
        match, default = self._rule_for(latest)

        def answer(chosen: Sequence[RuleStep]) -> Iterator[Step]:
            if all(isinstance(s, PASSIVE_STEPS) for s in chosen):
                chosen = (*chosen, ReplyAudio(default))
            return self._respond(chosen, params, client_event_id, in_conversation)

        if match is None:
            yield from answer(())
            return
        responder_turn = self._turn_for(
            match, event=event, text=latest.text, function=latest.function
        )
        yield from self._resolved(match.steps, responder_turn, answer)

    def _respond(
        self,
        steps: Sequence[RuleStep],
        params: dict[str, Any],
        client_event_id: str | None,
        in_conversation: bool,
    ) -> Iterator[Step]:
        if not any(isinstance(s, OUTPUT_STEPS) for s in steps):
            yield from inline_steps(steps, client_event_id)  # only an error or a close
            return
        output = self.session["audio"]["output"]
        asked = next(
            (
                s.output_modalities
                for s in steps
                if isinstance(s, ReplyText) and s.output_modalities
            ),
            None,
        )
        modalities = list(
            asked or params.get("output_modalities") or self.session["output_modalities"]
        )
        voice = ((params.get("audio") or {}).get("output") or {}).get("voice") or output["voice"]
        if isinstance(voice, dict):  # a custom voice {id}: responses name it by id
            voice = voice.get("id", "alloy")
        run = ResponseRun(
            self.conversation,
            in_conversation=in_conversation,
            audio="audio" in modalities,
            voice=self.voice,
            response={
                "object": "realtime.response",
                "status_details": None,
                "conversation_id": self.conversation.id if in_conversation else None,
                "output_modalities": modalities,
                "max_output_tokens": params.get(
                    "max_output_tokens", self.session.get("max_output_tokens", "inf")
                ),
                "audio": {"output": {"format": copy_json(output["format"]), "voice": voice}},
                "usage": None,
                "metadata": params.get("metadata") if self.echo_metadata() else None,
            },
            on_end=self._response_ended,
        )
        self.running[run.id] = run
        if in_conversation:
            self.active = run
        yield run.start(steps)
        yield StartResponse(run)

    def _response_ended(self, run: ResponseRun) -> None:
        self.running.pop(run.id, None)
        if self.active is run:
            self.active = None
