"""Real speech for tests: espeak-ng's voice as PCM16 at any rate.

Tones are enough for an energy detector, not for a check that looks for speech (how
often the signal crosses zero, how its loudness comes and goes in syllables, how long
it lasts for its words). With the Debian package ``espeak-ng`` installed (``scripts/test``
installs it), `speech_pcm16` speaks a text: the mock answers with it and the fake
microphone says it. espeak-ng's 22.05 kHz output is resampled with soxr.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from typing import Final

import numpy as np
import soxr

__all__ = ["ESPEAK_NG", "SpeechUnavailable", "speech_available", "speech_pcm16"]

ESPEAK_NG: Final = "espeak-ng"
_INSTALL_HINT: Final = (
    "speech needs the espeak-ng program: `apt-get install espeak-ng` (scripts/test "
    "installs it), or use the tone voice"
)


class SpeechUnavailable(RuntimeError):
    """espeak-ng is not installed (or failed)."""


def speech_available() -> bool:
    """Is espeak-ng on the PATH?"""
    return shutil.which(ESPEAK_NG) is not None


@functools.lru_cache(maxsize=256)
def speech_pcm16(
    text: str, *, rate: int = 24_000, voice: str = "en-us", words_per_minute: int = 175
) -> bytes:
    """`text` spoken by espeak-ng: PCM16 little-endian mono at `rate` Hz, at
    `words_per_minute` (espeak-ng's default 175; 80-450).

    Raises `SpeechUnavailable` when espeak-ng is missing. Results are cached (replies
    repeat within a suite).
    """
    program = shutil.which(ESPEAK_NG)
    if program is None:
        raise SpeechUnavailable(_INSTALL_HINT)
    try:
        done = subprocess.run(
            [program, "-v", voice, "-s", str(words_per_minute), "--stdout", "--", text],
            capture_output=True,
            check=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise SpeechUnavailable(f"espeak-ng failed: {exc}") from exc
    source_rate, samples = _wav_samples(done.stdout)
    if source_rate != rate:
        resampled = soxr.resample(samples.astype(np.float32) / 32768.0, source_rate, rate)
        samples = np.clip(np.round(resampled * 32768.0), -32768, 32767).astype("<i2")
    return bytes(samples.astype("<i2").tobytes())


def _wav_samples(wav: bytes) -> tuple[int, np.ndarray]:
    """(rate, int16 samples) of espeak-ng's WAV output.

    Written to a pipe, its header cannot say how long the data is (it holds a
    placeholder), so the data chunk is taken to run to the end.
    """
    if wav[:4] != b"RIFF" or wav[8:12] != b"WAVE":
        raise SpeechUnavailable("espeak-ng did not write a WAV file")
    position = 12
    rate = 0
    while position + 8 <= len(wav):
        chunk, size = (
            wav[position : position + 4],
            int.from_bytes(wav[position + 4 : position + 8], "little"),
        )
        body = position + 8
        if chunk == b"fmt ":
            channels = int.from_bytes(wav[body + 2 : body + 4], "little")
            rate = int.from_bytes(wav[body + 4 : body + 8], "little")
            bits = int.from_bytes(wav[body + 14 : body + 16], "little")
            if channels != 1 or bits != 16:
                raise SpeechUnavailable(f"espeak-ng wrote {channels} channel(s) of {bits} bits")
        elif chunk == b"data":
            data = wav[body:]
            data = data[: len(data) - len(data) % 2]
            return rate, np.frombuffer(data, dtype="<i2")
        position = body + size + (size % 2)
    raise SpeechUnavailable("espeak-ng's WAV output has no data")
