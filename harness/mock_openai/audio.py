"""Audio for the mock: its voices (a PCM16 tone, or espeak-ng speech), and a voice
activity detector.

Everything is PCM16 little-endian mono at 24 kHz, the only PCM format of the GA API.
The detector works in *audio time* (it counts samples, never reads a clock), so tests
may send audio much faster than real time and still get exact, repeatable timestamps.
"""

from __future__ import annotations

import base64
import warnings
from dataclasses import dataclass
from functools import lru_cache
from typing import Final, Literal, Protocol

import numpy as np
import soxr

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # G.711 (audioop-lts from 3.13)
    import audioop

from harness.recognition import Encoding
from harness.speech import speech_pcm16

__all__ = [
    "BYTES_PER_MS",
    "SAMPLE_RATE",
    "SPEECH",
    "TONE",
    "SpeechStarted",
    "SpeechStopped",
    "SpeechVoice",
    "ToneVoice",
    "TurnAudio",
    "Voice",
    "VoiceActivityDetector",
    "VoiceName",
    "audio_chunks",
    "base64_length",
    "silence_pcm16",
    "tone_pcm16",
    "voice_named",
]

SAMPLE_RATE: Final = 24_000
BYTES_PER_MS: Final = SAMPLE_RATE * 2 // 1000
FRAME_MS: Final = 10
FRAME_BYTES: Final = FRAME_MS * BYTES_PER_MS


def tone_pcm16(
    ms: int, *, frequency: float = 440.0, amplitude: float = 0.3, rate: int = SAMPLE_RATE
) -> bytes:
    """`ms` of a sine tone, PCM16 LE mono (24 kHz unless `rate`): loud enough for speech."""
    return _tone(ms * rate // 1000, frequency, amplitude, rate)


def silence_pcm16(ms: int, *, rate: int = SAMPLE_RATE) -> bytes:
    """`ms` of digital silence, PCM16 LE mono (24 kHz unless `rate`)."""
    return bytes(ms * rate // 1000 * 2)


@lru_cache(maxsize=64)
def _tone(samples: int, frequency: float, amplitude: float, rate: int) -> bytes:
    t = np.arange(samples, dtype=np.float64) / rate
    wave = amplitude * 32767.0 * np.sin(2.0 * np.pi * frequency * t)
    return wave.astype("<i2").tobytes()


@lru_cache(maxsize=64)
def audio_chunks(chunks: int, chunk_ms: int) -> tuple[str, ...]:
    """Base64 chunks of one continuous tone (cached: responses repeat their shapes)."""
    pcm = tone_pcm16(chunks * chunk_ms)
    size = chunk_ms * BYTES_PER_MS
    return tuple(base64.b64encode(pcm[i * size : (i + 1) * size]).decode() for i in range(chunks))


VoiceName = Literal["tone", "speech"]


class Voice(Protocol):
    """How the mock sounds: the base64 PCM16 (24 kHz) deltas of a spoken reply."""

    @property
    def name(self) -> VoiceName: ...

    def audio(self, text: str, chunks: int, chunk_ms: int) -> tuple[str, ...]:
        """The deltas for saying `text`; `chunks` x `chunk_ms` is what a script asked for."""
        ...


@dataclass(frozen=True, slots=True)
class ToneVoice:
    """A continuous tone of exactly `chunks` x `chunk_ms`: sizes a test can count on."""

    name: VoiceName = "tone"

    def audio(self, text: str, chunks: int, chunk_ms: int) -> tuple[str, ...]:
        return audio_chunks(chunks, chunk_ms)


@dataclass(frozen=True, slots=True)
class SpeechVoice:
    """The text spoken by espeak-ng, in `chunk_ms` deltas (as many as it takes)."""

    name: VoiceName = "speech"

    def audio(self, text: str, chunks: int, chunk_ms: int) -> tuple[str, ...]:
        return _speech_chunks(text, chunk_ms)


TONE: Final = ToneVoice()
SPEECH: Final = SpeechVoice()


def voice_named(name: VoiceName) -> Voice:
    """The voice called `name` ("tone" or "speech")."""
    if name == "tone":
        return TONE
    if name == "speech":
        return SPEECH
    raise ValueError(f"no voice {name!r}: the mock speaks with 'tone' or 'speech'")


@lru_cache(maxsize=128)
def _speech_chunks(text: str, chunk_ms: int) -> tuple[str, ...]:
    pcm = speech_pcm16(text or "mm", rate=SAMPLE_RATE)
    size = chunk_ms * BYTES_PER_MS
    return tuple(
        base64.b64encode(pcm[start : start + size]).decode() for start in range(0, len(pcm), size)
    )


#: The G.711 formats of the GA API: 8 kHz, one byte a sample.
G711_FORMATS: Final = {"audio/pcmu": "ulaw", "audio/pcma": "alaw"}


def heard_pcm16(audio: bytes, format_type: str) -> bytes:
    """Input audio as the detector listens to it: PCM16 at 24 kHz. G.711 is decoded and
    each sample repeated three times (energy and timing are what matter here)."""
    law = G711_FORMATS.get(format_type)
    if law is None:
        return audio
    linear = audioop.ulaw2lin(audio, 2) if law == "ulaw" else audioop.alaw2lin(audio, 2)
    return np.repeat(np.frombuffer(linear, dtype="<i2"), 3).tobytes()


def spoken_in(chunks: tuple[str, ...], format_type: str) -> tuple[str, ...]:
    """Base64 PCM16 24 kHz deltas in the session's output format (G.711 at 8 kHz)."""
    law = G711_FORMATS.get(format_type)
    return chunks if law is None else _g711_chunks(chunks, law)


@lru_cache(maxsize=64)
def _g711_chunks(chunks: tuple[str, ...], law: str) -> tuple[str, ...]:
    converted = []
    for chunk in chunks:
        samples = np.frombuffer(base64.b64decode(chunk), dtype="<i2")
        narrow = soxr.resample(samples, SAMPLE_RATE, 8000).astype("<i2").tobytes()
        encoded = audioop.lin2ulaw(narrow, 2) if law == "ulaw" else audioop.lin2alaw(narrow, 2)
        converted.append(base64.b64encode(encoded).decode())
    return tuple(converted)


@dataclass(frozen=True, slots=True)
class UserTurn:
    """A user turn's audio as the client appended it (for recognition)."""

    audio: bytes
    rate: int
    encoding: Encoding


class TurnAudio:
    """The input buffer's bytes since the last commit or clear, in the session's input
    format, at most `MAX_TURN_MS` of them (the latest): what a turn is recognised from.
    Times given to `take` count from the start of the buffer, bytes dropped to keep it
    bounded included."""

    MAX_TURN_MS: Final = 30_000

    def __init__(self) -> None:
        self._data = bytearray()
        self._dropped = 0  # bytes dropped from the front since the last take
        self._format_type = "audio/pcm"

    def add(self, audio: bytes, format_type: str) -> None:
        if format_type != self._format_type:  # a new format starts a new buffer
            self._data.clear()
            self._dropped = 0
            self._format_type = format_type
        self._data += audio
        limit = self.MAX_TURN_MS * self._bytes_per_ms
        if len(self._data) > limit:
            self._dropped += len(self._data) - limit
            del self._data[: len(self._data) - limit]

    def take(self, ms: int | None, *, from_ms: int = 0) -> UserTurn:
        """The buffer up to `ms` (None: all of it), from `from_ms` on; what was before
        `from_ms` is dropped, the rest starts the next turn."""
        per_ms = self._bytes_per_ms
        cut = len(self._data) if ms is None else max(0, ms * per_ms - self._dropped)
        start = min(max(0, from_ms * per_ms - self._dropped), cut)
        audio = bytes(self._data[start:cut])
        del self._data[:cut]
        self._dropped = 0
        law = G711_FORMATS.get(self._format_type)
        if law is None:
            return UserTurn(audio, SAMPLE_RATE, "linear16")
        return UserTurn(audio, 8000, "mulaw" if law == "ulaw" else "alaw")

    @property
    def _bytes_per_ms(self) -> int:
        return 8 if self._format_type in G711_FORMATS else BYTES_PER_MS


def base64_length(data: str) -> int:
    """Decoded size of base64 `data` without decoding it (0 when malformed)."""
    return len(data.rstrip("=")) * 3 // 4 if len(data) % 4 == 0 else 0


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """The first voiced frame starts at `at_ms` (audio time since the session began)."""

    at_ms: int


@dataclass(frozen=True, slots=True)
class SpeechStopped:
    """Speech ended at `end_ms`; enough silence to say so was heard by `at_ms`."""

    end_ms: int
    at_ms: int


class VoiceActivityDetector:
    """An energy detector over 10 ms frames: voiced when the frame's RMS exceeds a level.

    `feed()` takes any number of bytes (partial frames and odd bytes are carried over)
    and returns the speech starts and stops found, in order, with their audio times.
    """

    def __init__(self) -> None:
        self.clock_ms = 0  # audio analysed since the session started
        self._carry = b""
        self.in_speech = False
        self._last_voiced_end_ms = 0
        self._silence_ms = 0

    @property
    def position_ms(self) -> int:
        """Audio received so far, the carried partial frame included."""
        return self.clock_ms + len(self._carry) // BYTES_PER_MS

    def feed(
        self, pcm: bytes, *, level: float | None, silence_ms: int
    ) -> list[SpeechStarted | SpeechStopped]:
        """Analyse `pcm`. `level`: RMS (fraction of full scale) above which a frame is
        voiced, or None to only count time. `silence_ms`: unvoiced time that ends speech."""
        data = self._carry + pcm
        usable = len(data) - len(data) % FRAME_BYTES
        self._carry = data[usable:]
        if level is None or not usable:
            self.clock_ms += usable // BYTES_PER_MS
            return []
        frames = np.frombuffer(data[:usable], dtype="<i2").reshape(-1, FRAME_BYTES // 2)
        floats = frames.astype(np.float32)
        rms = np.sqrt(np.mean(floats * floats, axis=1)) / 32768.0
        found: list[SpeechStarted | SpeechStopped] = []
        for voiced in (rms > level).tolist():
            start_ms = self.clock_ms
            self.clock_ms += FRAME_MS
            if voiced:
                if not self.in_speech:
                    self.in_speech = True
                    found.append(SpeechStarted(start_ms))
                self._silence_ms = 0
                self._last_voiced_end_ms = self.clock_ms
            elif self.in_speech:
                self._silence_ms += FRAME_MS
                if self._silence_ms >= silence_ms:
                    self.end_speech()
                    found.append(SpeechStopped(self._last_voiced_end_ms, self.clock_ms))
        return found

    def flush(self) -> None:
        """Count the carried partial frame as heard (on commit / clear)."""
        self.clock_ms = self.position_ms
        self._carry = b""

    def end_speech(self) -> None:
        self.in_speech = False
        self._silence_ms = 0
