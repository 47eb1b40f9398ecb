"""Audio formats on the client leg and the conversions they need (docs/protocol-mapping.md,
"Audio formats").

The Realtime API takes PCM16 at 24 kHz, or G.711 (`audio/pcmu`, `audio/pcma`) at 8 kHz.
The client may use linear16 at the usual rates, or mu-law / A-law at 8 kHz (telephony).
When both legs of the client are the same G.711 the bytes pass straight through, with
no transcoding either way; everything else is converted to and from 24 kHz PCM16.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Final

from .client_messages import AudioFormat, AudioSettings
from .resample import PcmResampler
from .validation import shown

with warnings.catch_warnings():
    # audioop is the standard library's G.711 codec (C); deprecated in 3.11 and
    # provided for 3.13+ by the audioop-lts package.
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

__all__ = [
    "DEFAULT_AUDIO",
    "LINEAR16_RATES",
    "UPSTREAM_PCM_RATE",
    "ClientAudio",
    "InputConverter",
    "OutputConverter",
    "UnsupportedAudioFormat",
    "negotiate",
]

UPSTREAM_PCM_RATE: Final = 24_000
LINEAR16_RATES: Final = (8_000, 16_000, 24_000, 32_000, 44_100, 48_000)
G711_RATE: Final = 8_000
_G711_UPSTREAM: Final = {"mulaw": "audio/pcmu", "alaw": "audio/pcma"}
_SUPPORTED: Final = (
    "linear16 at " + ", ".join(str(rate) for rate in LINEAR16_RATES) + " Hz; "
    "mulaw or alaw at 8000 Hz; output container none"
)


class UnsupportedAudioFormat(ValueError):
    """An audio format the proxy cannot carry; the text names what is supported."""


@dataclass(frozen=True, slots=True)
class ClientAudio:
    """The client leg's formats, once accepted."""

    input_encoding: str = "linear16"
    input_rate: int = 16_000
    output_encoding: str = "linear16"
    output_rate: int = UPSTREAM_PCM_RATE

    @property
    def passthrough(self) -> bool:
        """Both legs the same G.711: the bytes go to and from upstream untouched."""
        return self.input_encoding in _G711_UPSTREAM and self.input_encoding == (
            self.output_encoding
        )

    def upstream_format(self, direction: str) -> dict[str, Any]:
        """The `audio.<direction>.format` object of session.update."""
        if self.passthrough:
            return {"type": _G711_UPSTREAM[self.input_encoding]}
        return {"type": "audio/pcm", "rate": UPSTREAM_PCM_RATE}

    @property
    def upstream_output_bytes_per_ms(self) -> int:
        """Agent audio from upstream: 1 byte a sample at 8 kHz, or 2 at 24 kHz."""
        return G711_RATE // 1000 if self.passthrough else UPSTREAM_PCM_RATE * 2 // 1000

    @property
    def input_bytes_per_ms(self) -> float:
        width = 2 if self.input_encoding == "linear16" else 1
        return self.input_rate * width / 1000


#: The formats before any Settings (immutable, so every session shares it).
DEFAULT_AUDIO: Final = ClientAudio()


def negotiate(audio: AudioSettings | None, current: ClientAudio | None = None) -> ClientAudio:
    """The formats a Settings asks for, or UnsupportedAudioFormat.

    A side the Settings leaves out keeps `current` (the defaults on a first Settings).
    """
    base = current or ClientAudio()
    encoding_in, rate_in = base.input_encoding, base.input_rate
    encoding_out, rate_out = base.output_encoding, base.output_rate
    if audio is not None and audio.input is not None:
        encoding_in, rate_in = _accept("input", audio.input, default_rate=16_000)
    if audio is not None and audio.output is not None:
        encoding_out, rate_out = _accept("output", audio.output, default_rate=UPSTREAM_PCM_RATE)
    return ClientAudio(encoding_in, rate_in, encoding_out, rate_out)


def _accept(side: str, fmt: AudioFormat, *, default_rate: int) -> tuple[str, int]:
    encoding = fmt.encoding or "linear16"
    container = fmt.container or "none"
    if container != "none":
        raise UnsupportedAudioFormat(
            f"audio.{side}.container {shown(container)} is not supported; supported: {_SUPPORTED}"
        )
    if encoding == "linear16":
        rate = default_rate if fmt.sample_rate is None else fmt.sample_rate
        if rate in LINEAR16_RATES:
            return encoding, rate
    elif encoding in _G711_UPSTREAM:
        rate = G711_RATE if fmt.sample_rate is None else fmt.sample_rate
        if rate == G711_RATE:
            return encoding, rate
    else:
        raise UnsupportedAudioFormat(
            f"audio.{side}.encoding {shown(encoding)} is not supported; supported: {_SUPPORTED}"
        )
    raise UnsupportedAudioFormat(
        f"audio.{side} {encoding} at {fmt.sample_rate} Hz is not supported; supported: {_SUPPORTED}"
    )


class InputConverter:
    """Client microphone audio -> what upstream takes. Created when audio first flows."""

    def __init__(self, audio: ClientAudio) -> None:
        self._decode = None if audio.passthrough else _decoder(audio.input_encoding)
        rate = G711_RATE if audio.input_encoding != "linear16" else audio.input_rate
        self._resampler = (
            None
            if audio.passthrough or rate == UPSTREAM_PCM_RATE
            else PcmResampler(rate, UPSTREAM_PCM_RATE)
        )

    def process(self, data: bytes) -> bytes:
        if self._decode is not None:
            data = self._decode(data)
        return self._resampler.process(data) if self._resampler is not None else data

    def flush(self) -> bytes:
        """The filter's held-back tail (when the audio pauses)."""
        return self._resampler.flush() if self._resampler is not None else b""


class OutputConverter:
    """Agent audio from upstream -> the client's output format, in whole samples.

    The service sends deltas of any length, odd ones included; a browser client reads
    each binary frame as `Int16Array`, which refuses an odd length. PCM16 that passes
    at 24 kHz carries an odd byte to the next delta here; the resampler and the G.711
    encoder carry their own; G.711 passthrough bytes are whole samples already. One
    converter serves one item: a new one starts clean (see `AgentAudio`).
    """

    def __init__(self, audio: ClientAudio) -> None:
        self._resampler = (
            None
            if audio.passthrough or audio.output_rate == UPSTREAM_PCM_RATE
            else PcmResampler(UPSTREAM_PCM_RATE, audio.output_rate)
        )
        self._encode = None if audio.passthrough else _encoder(audio.output_encoding)
        # PCM16 passed as it is: an odd byte waits for the next delta.
        self._whole_samples = not audio.passthrough and self._resampler is None
        self._carry = b""

    def process(self, data: bytes) -> bytes:
        if self._resampler is not None:
            data = self._resampler.process(data)
        elif self._whole_samples and (self._carry or len(data) & 1):
            if self._carry:
                data, self._carry = self._carry + data, b""
            if len(data) & 1:
                data, self._carry = data[:-1], data[-1:]
        return self._encode(data) if self._encode is not None else data

    def flush(self) -> bytes:
        """End of the item: drain the filter so its last milliseconds are played too (a
        lone odd byte, half a sample, is dropped). The converter is spent."""
        self._carry = b""
        if self._resampler is None:
            return b""
        tail = self._resampler.flush()
        return self._encode(tail) if self._encode is not None and tail else tail


def _decoder(encoding: str) -> Any:
    if encoding == "mulaw":
        return _g711(audioop.ulaw2lin)
    if encoding == "alaw":
        return _g711(audioop.alaw2lin)
    return None


def _encoder(encoding: str) -> Any:
    if encoding == "mulaw":
        return _pcm_to_g711(audioop.lin2ulaw)
    if encoding == "alaw":
        return _pcm_to_g711(audioop.lin2alaw)
    return None


def _g711(to_linear: Any) -> Any:
    def decode(data: bytes) -> bytes:
        result: bytes = to_linear(data, 2)
        return result

    return decode


def _pcm_to_g711(from_linear: Any) -> Any:
    """PCM16 -> G.711, carrying an odd byte to the next chunk."""
    carry = b""

    def encode(data: bytes) -> bytes:
        nonlocal carry
        if carry:
            data, carry = carry + data, b""
        if len(data) % 2:
            data, carry = data[:-1], data[-1:]
        result: bytes = from_linear(data, 2)
        return result

    return encode
