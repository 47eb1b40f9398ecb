"""A response in progress, and the GA event sequences it produces.

A `ResponseRun` turns the rule steps that decide a response (reply with audio or text,
call a function, stall, ...) into wire steps, lazily: the server pulls one step at a time,
so the assistant item and the audio it holds only grow when an event is really about to
go out, and a cancelled or cut (`stop_after_events`) response simply stops being pulled.

Audio reply: response.created, response.output_item.added, conversation.item.added,
response.content_part.added, then transcript deltas a little ahead of audio deltas,
response.output_audio.done, response.output_audio_transcript.done,
response.content_part.done, response.output_item.done, conversation.item.done,
response.done. Text replies use response.output_text.delta/.done; function calls
response.function_call_arguments.delta/.done.

Also here, with the runner they drive: the runtime instructions the service model adds
to a script's steps (start or stop a response, call a responder, recognise speech,
record a failure). The steps themselves (`steps.py`) are data and import none of this.
"""

from __future__ import annotations

import base64
import enum
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

from .audio import BYTES_PER_MS, Voice, base64_length, spoken_in
from .conversation import Conversation, ItemRecord
from .steps import (
    CallFunction,
    CloseConnection,
    EndResponse,
    ReplyAudio,
    ReplyOnlyInResponseDone,
    ReplyText,
    Responder,
    RuleStep,
    Send,
    SendError,
    SendRaw,
    Sleep,
    copy_json,
    error_event,
    new_id,
)
from .turn import Turn

if TYPE_CHECKING:
    from harness.recognition import Encoding

__all__ = [
    "Fail",
    "FailureKind",
    "Recognise",
    "Resolve",
    "ResponseRun",
    "StartResponse",
    "Step",
    "StopResponse",
    "inline_steps",
    "words",
]

# --- runtime instructions: what the service model adds to the steps of a script ---------


class FailureKind(enum.Enum):
    """Why the mock records a failure; `MockRealtime` decides which ones count."""

    MOCK = "the mock or a script went wrong"
    INVALID_CLIENT_EVENT = "the client sent an event the real API rejects"
    UNHANDLED_CLIENT_EVENT = "no rule handled a client event and the default refused it"
    REPLAY_DIVERGED = "the client left the recorded cassette"


@dataclass(frozen=True, slots=True)
class Fail:
    """Record a failure in the mock (raised in the test by `MockRealtime.check()`)."""

    message: str
    kind: FailureKind = FailureKind.MOCK


@dataclass(frozen=True, slots=True)
class StartResponse:
    """Pull `run.steps` concurrently with further client events."""

    run: ResponseRun


@dataclass(frozen=True, slots=True)
class StopResponse:
    """Stop pulling `run.steps` (the response was cancelled)."""

    run: ResponseRun


@dataclass(frozen=True, slots=True)
class Resolve:
    """Call a responder (awaiting it when async), then carry out `then(its steps)`.

    The service model stays free of I/O: it hands the call to the connection, which
    awaits it before reading the next client event, as a stall would."""

    responder: Responder
    turn: Turn
    then: Callable[[Sequence[RuleStep]], Iterator[Step]]


@dataclass(frozen=True, slots=True)
class Recognise:
    """Recognise which of `phrases` was said in a user turn's `audio` (as the session's
    input format has it: `encoding` at `rate`), then carry out `then(what was heard)`
    ("" for nothing). Decoding is slow for a loop: the connection runs it in a thread
    and awaits it before reading the next client event, as it awaits a responder."""

    audio: bytes
    rate: int
    encoding: Encoding
    phrases: tuple[str, ...]
    then: Callable[[str], Iterator[Step]]


Step: TypeAlias = RuleStep | Fail | StartResponse | StopResponse | Resolve | Recognise


def inline_steps(steps: Sequence[RuleStep], client_event_id: str | None = None) -> Iterator[Step]:
    """The wire steps of rule steps outside any response: pauses, errors, events, raw
    frames, a close (which ends them).

    Replies, function calls, transcripts and handshake refusals are not inline steps and
    are skipped here.
    """
    for step in steps:
        if isinstance(step, Sleep | SendRaw):
            yield step
        elif isinstance(step, SendError):
            yield Send(
                error_event(
                    step.code,
                    step.message,
                    param=step.param,
                    type=step.type,
                    # as the real service names the culprit (its server errors do not)
                    client_event_id=client_event_id if step.attributed else None,
                )
            )
        elif isinstance(step, Send):
            yield Send(copy_json(step.event))
        elif isinstance(step, CloseConnection):
            yield step
            return


# --- the response runner ----------------------------------------------------------------

#: Audio pacing of `reply_with_text` in an audio session.
DEFAULT_CHUNKS, DEFAULT_CHUNK_MS = 3, 100


def recut(chunks: Sequence[str], size: int) -> tuple[str, ...]:
    """The same audio (base64 `chunks`) as base64 deltas of `size` bytes (the last one
    holds what is left)."""
    audio = b"".join(base64.b64decode(chunk) for chunk in chunks)
    return tuple(
        base64.b64encode(audio[start : start + size]).decode()
        for start in range(0, len(audio), size)
    )


def words(text: str) -> list[str]:
    """`text` as word deltas, each keeping its trailing space."""
    return re.findall(r"\S+\s*", text) or ([text] if text else [])


class ResponseRun:
    """One response: its `response` object, its output items, and its steps."""

    def __init__(
        self,
        conversation: Conversation,
        *,
        in_conversation: bool,
        audio: bool,
        voice: Voice,
        response: dict[str, Any],
        on_end: Callable[[ResponseRun], None],
    ) -> None:
        self.id = new_id("resp")
        self.conversation = conversation
        self.in_conversation = in_conversation
        self.audio = audio  # the form of replies: audio + transcript, or text
        self.voice = voice
        # audio/pcm (24 kHz PCM16), or G.711 (audio/pcmu, audio/pcma) at 8 kHz.
        self.audio_format: str = response["audio"]["output"]["format"]["type"]
        self.response = {**response, "id": self.id, "status": "in_progress", "output": []}
        self.records: list[ItemRecord] = []
        self.cancelled = False
        self.cut = False  # stop_after_events reached: the response hangs, unfinished
        self.steps: Iterator[Step] = iter(())
        self.task: Any = None  # the server's task pulling `steps`
        self._on_end = on_end
        self._count = 0  # response events produced, response.created included
        self._limit: int | None = None

    def start(self, steps: Sequence[RuleStep]) -> Send:
        """Return response.created (sent at once) and prepare `steps` for the rest."""
        self.steps = self._steps(steps)
        self._count = 1
        return Send(
            {"type": "response.created", "event_id": new_id("event"), "response": self._snapshot()}
        )

    def cancel(self, reason: str) -> Iterator[Step]:
        """Stop now: response.done with status cancelled (`reason`: client_cancelled or
        turn_detected); items in progress stay in the conversation as incomplete."""
        self.cancelled = True
        self._on_end(self)
        for record in self.records:
            if record.item.get("status") == "in_progress":
                record.item["status"] = "incomplete"
        self.response["status"] = "cancelled"
        self.response["status_details"] = {"type": "cancelled", "reason": reason}
        self.response["usage"] = self._usage()
        yield StopResponse(self)
        yield Send(
            {"type": "response.done", "event_id": new_id("event"), "response": self._snapshot()}
        )

    # -- the step sequence ---------------------------------------------------------------
    def _steps(self, steps: Sequence[RuleStep]) -> Iterator[Step]:
        for step in steps:
            if self.cancelled:
                return
            if isinstance(step, CallFunction):
                if not self.cut:
                    yield from self._drive(self._function_events(step))
            elif isinstance(step, ReplyAudio | ReplyText):
                if not self.cut:
                    if step.stop_after_events is not None:
                        self._limit = step.stop_after_events
                    yield from self._drive(self._message_events(step))
            elif isinstance(step, ReplyOnlyInResponseDone):
                if not self.cut:
                    self._add_silently(step.text)
            elif isinstance(step, EndResponse):
                if self._room():
                    yield from self._end(step)
                return
            elif isinstance(step, CloseConnection):
                yield step
                return
            else:
                yield from inline_steps([step])
        if self._room():
            self.response["status"] = "completed"
            self.response["usage"] = self._usage()
            self._on_end(self)
            self._count += 1
            yield Send(
                {"type": "response.done", "event_id": new_id("event"), "response": self._snapshot()}
            )

    def _end(self, step: EndResponse) -> Iterator[Step]:
        """response.done with a terminal status other than completed."""
        for record in self.records:
            if record.item.get("status") == "in_progress":
                record.item["status"] = "incomplete"
        self.response["status"] = step.status
        self.response["status_details"] = step.status_details()
        self.response["usage"] = self._usage()
        self._on_end(self)
        self._count += 1
        yield Send(
            {"type": "response.done", "event_id": new_id("event"), "response": self._snapshot()}
        )

    def _add_silently(self, text: str) -> None:
        """An assistant message that only response.done's output will show."""
        spoken = self.audio
        content = (
            {"type": "output_audio", "transcript": text}
            if spoken
            else {"type": "output_text", "text": text}
        )
        record = ItemRecord(
            {
                "id": new_id("item"),
                "type": "message",
                "role": "assistant",
                "status": "completed",
                "object": "realtime.item",
                "content": [content],
            }
        )
        self.records.append(record)
        if self.in_conversation:
            self.conversation.insert(record)

    def _room(self) -> bool:
        """May another response event go out? (Not once cancelled or cut.)"""
        if self._limit is not None and self._count >= self._limit:
            self.cut = True
        return not (self.cut or self.cancelled)

    def _drive(self, events: Iterator[dict[str, Any] | Sleep]) -> Iterator[Step]:
        """Pull the next event only when it may go out, so the state matches the wire."""
        while self._room():
            event = next(events, None)
            if event is None:
                return
            if isinstance(event, Sleep):
                yield event
                continue
            self._count += 1
            yield Send(event)

    def _snapshot(self) -> dict[str, Any]:
        response: dict[str, Any] = copy_json(
            {**self.response, "output": [r.item for r in self.records]}
        )
        return response

    # -- output items ------------------------------------------------------------------------
    def _add_output(self, item: dict[str, Any]) -> Iterator[dict[str, Any]]:
        record = ItemRecord(item)
        output_index = len(self.records)
        self.records.append(record)
        yield {
            "type": "response.output_item.added",
            "event_id": new_id("event"),
            "response_id": self.id,
            "output_index": output_index,
            "item": copy_json(item),
        }
        if self.in_conversation:
            previous_id = self.conversation.insert(record)
            yield {
                "type": "conversation.item.added",
                "event_id": new_id("event"),
                "previous_item_id": previous_id,
                "item": copy_json(item),
            }

    def _finish_output(self, item: dict[str, Any]) -> Iterator[dict[str, Any]]:
        item["status"] = "completed"
        yield {
            "type": "response.output_item.done",
            "event_id": new_id("event"),
            "response_id": self.id,
            "output_index": len(self.records) - 1,
            "item": copy_json(item),
        }
        record = self.records[-1]
        if self.in_conversation and record.id in self.conversation:
            yield {
                "type": "conversation.item.done",
                "event_id": new_id("event"),
                "previous_item_id": self.conversation.previous_id(record),
                "item": copy_json(item),
            }

    def _message_events(self, step: ReplyAudio | ReplyText) -> Iterator[dict[str, Any] | Sleep]:
        item: dict[str, Any] = {
            "id": new_id("item"),
            "type": "message",
            "role": "assistant",
            "status": "in_progress",
            "object": "realtime.item",
            "content": [],
        }
        yield from self._add_output(item)
        record = self.records[-1]
        ids = {
            "response_id": self.id,
            "item_id": item["id"],
            "output_index": len(self.records) - 1,
            "content_index": 0,
        }
        text = step.text
        deltas = words(text)
        part: dict[str, Any]
        spoken = self.audio
        if isinstance(step, ReplyText) and step.output_modalities is not None:
            spoken = step.output_modalities == ("audio",)
        if spoken:
            yield {
                "type": "response.content_part.added",
                "event_id": new_id("event"),
                **ids,
                "part": {"type": "audio", "transcript": ""},
            }
            content: dict[str, Any] = {"type": "output_audio", "transcript": ""}
            item["content"].append(content)
            if isinstance(step, ReplyAudio):
                chunks, chunk_ms, interval_ms = step.chunks, step.chunk_ms, step.chunk_interval_ms
            else:
                chunks, chunk_ms, interval_ms = DEFAULT_CHUNKS, DEFAULT_CHUNK_MS, 0
            audio = spoken_in(self.voice.audio(text, chunks, chunk_ms), self.audio_format)
            if isinstance(step, ReplyAudio) and step.delta_bytes is not None:
                audio = recut(audio, step.delta_bytes)
            chunks = len(audio)  # the speech voice takes as many as the words need
            # The transcript runs a little ahead of the audio, as on the real service:
            # chunk i is preceded by words [ceil(i*n/chunks), ceil((i+1)*n/chunks)).
            n = len(deltas)
            audio_bytes = 0
            for index, chunk in enumerate(audio):
                for word in deltas[-(-index * n // chunks) : -(-(index + 1) * n // chunks)]:
                    content["transcript"] += word
                    yield {
                        "type": "response.output_audio_transcript.delta",
                        "event_id": new_id("event"),
                        **ids,
                        "delta": word,
                    }
                if index and interval_ms:
                    yield Sleep(interval_ms / 1000)
                audio_bytes += base64_length(chunk)
                record.audio_ms = audio_bytes // BYTES_PER_MS
                yield {
                    "type": "response.output_audio.delta",
                    "event_id": new_id("event"),
                    **ids,
                    "delta": chunk,
                }
            content["transcript"] = text
            yield {"type": "response.output_audio.done", "event_id": new_id("event"), **ids}
            yield {
                "type": "response.output_audio_transcript.done",
                "event_id": new_id("event"),
                **ids,
                "transcript": text,
            }
            part = {"type": "audio", "transcript": text}
        else:
            yield {
                "type": "response.content_part.added",
                "event_id": new_id("event"),
                **ids,
                "part": {"type": "text", "text": ""},
            }
            content = {"type": "output_text", "text": ""}
            item["content"].append(content)
            for word in deltas:
                content["text"] += word
                yield {
                    "type": "response.output_text.delta",
                    "event_id": new_id("event"),
                    **ids,
                    "delta": word,
                }
            content["text"] = text
            yield {
                "type": "response.output_text.done",
                "event_id": new_id("event"),
                **ids,
                "text": text,
            }
            part = {"type": "text", "text": text}
        yield {
            "type": "response.content_part.done",
            "event_id": new_id("event"),
            **ids,
            "part": part,
        }
        yield from self._finish_output(item)

    def _function_events(self, step: CallFunction) -> Iterator[dict[str, Any] | Sleep]:
        call_id = step.call_id or new_id("call")
        item: dict[str, Any] = {
            "id": new_id("item"),
            "type": "function_call",
            "status": "in_progress",
            "object": "realtime.item",
            "name": step.name,
            "call_id": call_id,
            "arguments": "",
        }
        yield from self._add_output(item)
        ids = {
            "response_id": self.id,
            "item_id": item["id"],
            "output_index": len(self.records) - 1,
            "call_id": call_id,
        }
        arguments = step.arguments
        size = max(1, -(-len(arguments) // 3))  # up to three deltas
        for start in range(0, len(arguments), size):
            delta = arguments[start : start + size]
            item["arguments"] += delta
            yield {
                "type": "response.function_call_arguments.delta",
                "event_id": new_id("event"),
                **ids,
                "delta": delta,
            }
        yield {
            "type": "response.function_call_arguments.done",
            "event_id": new_id("event"),
            **ids,
            "name": step.name,
            "arguments": arguments,
        }
        yield from self._finish_output(item)

    def _usage(self) -> dict[str, Any]:
        """Deterministic token counts (about 4 characters a token, 20 audio tokens/s)."""
        text_tokens = audio_tokens = 0
        for record in self.records:
            item = record.item
            chars = len(item.get("arguments") or "")
            for part in item.get("content") or ():
                chars += len(part.get("transcript") or part.get("text") or "")
            text_tokens += -(-chars // 4)
            audio_tokens += record.audio_ms // 50
        earlier = [r for r in self.conversation if r not in self.records]
        input_tokens = 8 * len(earlier) + sum(r.audio_ms for r in earlier) // 50
        output_tokens = text_tokens + audio_tokens
        return {
            "total_tokens": input_tokens + output_tokens,
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "input_token_details": {
                "text_tokens": input_tokens,
                "audio_tokens": 0,
                "image_tokens": 0,
                "cached_tokens": 0,
                "cached_tokens_details": {"text_tokens": 0, "audio_tokens": 0, "image_tokens": 0},
            },
            "output_token_details": {"text_tokens": text_tokens, "audio_tokens": audio_tokens},
        }
