"""What a PCM16 signal sounds like, in numbers a test can assert on.

Checks that look for speech rather than any sound use these: speech comes and goes in
syllables (its loudness varies a lot from one 20 ms frame to the next), mixes voiced
sounds with hissing ones (how often the signal crosses zero varies too), and pauses
between words; a tone does none of this. `looks_like_speech` is deliberately coarse:
it tells espeak-ng speech (or a person) from a tone, silence or noise, not words apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np

__all__ = ["AudioProfile", "profile_pcm16"]

_FRAME_S: Final = 0.02
_VOICED_DBFS: Final = -40.0


@dataclass(frozen=True, slots=True)
class AudioProfile:
    """Measures of a mono PCM16 signal, over 20 ms frames."""

    duration_s: float
    voiced_fraction: float
    """Frames louder than -40 dBFS, as a fraction of all frames."""
    loudness_variation: float
    """Coefficient of variation of the voiced frames' RMS (a tone: ~0)."""
    zero_crossing_rate: float
    """Mean zero crossings per sample in voiced frames."""
    zero_crossing_variation: float
    """Coefficient of variation of that rate across voiced frames (a tone: ~0)."""
    sound_ends_s: float
    """When the last voiced frame ends (0 for silence): trailing silence excluded."""

    def looks_like_speech(self) -> bool:
        """Speech-like: long enough, with pauses, syllables and varied sounds."""
        return (
            self.duration_s >= 0.3
            and 0.2 <= self.voiced_fraction <= 0.97
            and self.loudness_variation > 0.25
            and self.zero_crossing_variation > 0.25
        )


def profile_pcm16(pcm: bytes, rate: int) -> AudioProfile:
    """The profile of `pcm` (PCM16 little-endian mono at `rate` Hz)."""
    samples = np.frombuffer(pcm[: len(pcm) - len(pcm) % 2], dtype="<i2").astype(np.float64)
    size = max(1, int(rate * _FRAME_S))
    count = len(samples) // size
    if count == 0:
        return AudioProfile(len(samples) / rate, 0.0, 0.0, 0.0, 0.0, 0.0)
    frames = samples[: count * size].reshape(count, size) / 32768.0
    rms = np.sqrt(np.mean(frames * frames, axis=1))
    voiced = rms > 10 ** (_VOICED_DBFS / 20)
    crossings = np.mean(np.abs(np.diff(np.signbit(frames).astype(np.int8), axis=1)), axis=1)
    if not voiced.any():
        return AudioProfile(len(samples) / rate, 0.0, 0.0, 0.0, 0.0, 0.0)
    loud, zcr = rms[voiced], crossings[voiced]
    return AudioProfile(
        duration_s=len(samples) / rate,
        voiced_fraction=float(voiced.mean()),
        loudness_variation=float(loud.std() / loud.mean()),
        zero_crossing_rate=float(zcr.mean()),
        zero_crossing_variation=float(zcr.std() / zcr.mean()) if zcr.mean() else 0.0,
        sound_ends_s=float((np.flatnonzero(voiced)[-1] + 1) * size / rate),
    )
