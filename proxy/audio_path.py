"""The two audio streams of a session, with no I/O: microphone in, agent speech out.

`MicrophoneInput` batches client audio into `input_audio_buffer.append` events (a batch
goes when it holds `batch_ms`, or `flush_delay` after its first frame) and, when the
audio pauses, flushes the resampler's held-back tail so the end of an utterance is
heard. `AgentAudio` turns upstream audio into client frames of at most 64 KiB and keeps
the account barge-in needs: which item is playing and how much of it was sent.
Converters are created when audio first flows, so an idle session holds none.
"""

from __future__ import annotations

from collections.abc import Iterable

from . import translate
from .audio_formats import ClientAudio, InputConverter, OutputConverter
from .bounds import MAX_CLIENT_AUDIO_FRAME, RECENT_IDS

__all__ = ["MAX_CLIENT_AUDIO_FRAME", "AgentAudio", "MicrophoneInput", "RecentIds"]


class RecentIds:
    """A set that remembers only the last `size` ids, so long sessions stay small.

    A dict keeps the ids in the order they came (the oldest goes first); an idle session
    holds five of these, most never used, so the dict is made at the first id.
    """

    __slots__ = ("_ids", "_size")

    def __init__(self, size: int = RECENT_IDS) -> None:
        self._size = size
        self._ids: dict[str, None] | None = None

    def add(self, item: str) -> None:
        ids = self._ids
        if ids is None:
            self._ids = {item: None}
            return
        if item in ids:
            return
        if len(ids) >= self._size:
            del ids[next(iter(ids))]
        ids[item] = None

    def __contains__(self, item: object) -> bool:
        return self._ids is not None and item in self._ids

    def __len__(self) -> int:
        return 0 if self._ids is None else len(self._ids)


class MicrophoneInput:
    """Client microphone audio -> `input_audio_buffer.append` event payloads."""

    __slots__ = (
        "_batch",
        "_batch_bytes",
        "_batch_ms",
        "_bytes_per_second",
        "_converter",
        "_flush_delay",
        "_limit",
        "_pause_delay",
        "audio",
        "flush_at",
        "pause_at",
        "seconds_in",
    )

    def __init__(
        self, audio: ClientAudio, *, batch_ms: int, flush_delay: float, pause_delay: float
    ) -> None:
        self._batch_ms = batch_ms
        self._flush_delay = flush_delay
        self._pause_delay = pause_delay
        self._batch: list[bytes] = []
        self._batch_bytes = 0
        self._converter: InputConverter | None = None
        self.flush_at: float | None = None  # when the partial batch must go
        self.pause_at: float | None = None  # when silence on the wire counts as a pause
        self.seconds_in = 0.0  # audio received, for the metrics
        self.set_format(audio)

    def set_format(self, audio: ClientAudio) -> None:
        """New Settings: later audio is read in these formats (flush what is held first)."""
        self.audio = audio
        self._converter = None
        self._limit = int(self._batch_ms * audio.input_bytes_per_ms)
        self._bytes_per_second = audio.input_bytes_per_ms * 1000

    @property
    def holding(self) -> bool:
        return bool(self._batch)

    def add(self, data: bytes, now: float) -> list[bytes]:
        self.seconds_in += len(data) / self._bytes_per_second
        self._batch.append(data)
        self._batch_bytes += len(data)
        self.pause_at = now + self._pause_delay
        if self._batch_bytes >= self._limit:
            return self.flush()
        if self.flush_at is None:
            self.flush_at = now + self._flush_delay
        return []

    def flush(self) -> list[bytes]:
        """Convert and send what is batched."""
        self.flush_at = None
        if not self._batch:
            return []
        raw = self._batch[0] if len(self._batch) == 1 else b"".join(self._batch)
        self._batch.clear()
        self._batch_bytes = 0
        if self._converter is None:
            self._converter = InputConverter(self.audio)
        return _appends(self._converter.process(raw))

    def pause(self) -> list[bytes]:
        """The audio stopped: send the batch and the filter's tail; start afresh later."""
        events = self.flush()
        self.pause_at = None
        if self._converter is not None:
            events += _appends(self._converter.flush())
            self._converter = None
        return events

    def clear(self) -> None:
        self._batch.clear()
        self._batch_bytes = 0
        self.flush_at = self.pause_at = None


def _appends(pcm: bytes) -> list[bytes]:
    return [translate.audio_append(pcm)] if pcm else []


class AgentAudio:
    """Upstream agent audio -> client frames, with what barge-in needs to know."""

    __slots__ = (
        "_audio",
        "_bytes_per_ms",
        "_converter",
        "_started",
        "item_id",
        "ms_sent",
        "seconds_out",
        "truncated",
    )

    def __init__(self, audio: ClientAudio) -> None:
        self.set_format(audio)
        self.item_id: str | None = None  # the item whose audio the client is playing
        self._started = 0.0
        self.ms_sent = 0.0
        self.truncated = RecentIds()
        self.seconds_out = 0.0  # agent audio delivered, for the metrics

    def set_format(self, audio: ClientAudio) -> None:
        self._bytes_per_ms = audio.upstream_output_bytes_per_ms
        self._audio = audio
        self._converter: OutputConverter | None = None

    def deliver(self, item_id: str, data: bytes, now: float) -> list[bytes]:
        """Frames for one upstream delta (none once the item was cut by barge-in)."""
        if item_id in self.truncated or not data:
            return []
        if item_id != self.item_id:
            # A new item starts clean: nothing of the last one (an odd byte, the
            # filter's state, when its .done never came) carries over.
            self._converter = None
            self.item_id = item_id
            self._started = now
            self.ms_sent = 0.0
        self.ms_sent += len(data) / self._bytes_per_ms
        self.seconds_out += len(data) / self._bytes_per_ms / 1000
        if self._converter is None:
            self._converter = OutputConverter(self._audio)
        return self._frames(self._converter.process(data))

    def item_done(self, item_id: str) -> list[bytes]:
        """The item's audio is complete: the converter's tail, unless it was cut."""
        if self._converter is None:
            return []
        tail = self._converter.flush()
        self._converter = None  # spent: later audio (a new item) starts a new one
        return [] if item_id in self.truncated else self._frames(tail)

    def playing(self, now: float) -> bool:
        """The client may still be playing agent audio (as far as the time tells)."""
        return self.item_id is not None and (now - self._started) * 1000 < self.ms_sent

    def interrupt(self, now: float, still_generating: bool) -> tuple[str, int] | None:
        """The user started speaking: (item, ms heard) when agent audio was still
        playing or coming, else None. The item's remaining audio is dropped."""
        item_id = self.item_id
        if item_id is None:
            return None
        self.item_id = None
        played_ms = (now - self._started) * 1000
        if played_ms >= self.ms_sent and not still_generating:
            return None  # it had finished playing: nothing to cut
        self.truncated.add(item_id)
        return item_id, int(min(played_ms, self.ms_sent))

    def _frames(self, data: bytes) -> list[bytes]:
        if len(data) <= MAX_CLIENT_AUDIO_FRAME:
            return [data] if data else []
        return list(_split(data, MAX_CLIENT_AUDIO_FRAME))


def _split(data: bytes, size: int) -> Iterable[bytes]:
    # Even sizes keep PCM16 samples whole within a frame.
    view = memoryview(data)
    for start in range(0, len(data), size):
        yield bytes(view[start : start + size])
