"""Cutting recorded speech into utterances: stretches of sound between pauses.

A recogniser that picks one phrase per decode needs one utterance at a time, but a
recording of what a page played holds a whole conversation. espeak-ng pauses about
0.3 s between sentences and after its last word, and the page's recorder shortens any
silence to 0.5 s, so a pause of 0.4 s parts one reply from the next and keeps each
reply's sentences together. Measured on espeak-ng's output at 8 and 24 kHz
(`harness.speech_pcm16`): pauses inside a reply were 0.15 to 0.34 s.
"""

from __future__ import annotations

from typing import Final

import numpy as np

__all__ = ["PAUSE_S", "QUIET_LEVEL", "utterances"]

#: Silence at least this long parts two utterances.
PAUSE_S: Final = 0.4
#: Samples this close to zero count as silence (about -54 dBFS: resampling leaves
#: a little ringing around digital silence).
QUIET_LEVEL: Final = 64


def utterances(pcm16: bytes, rate: int, *, pause_s: float = PAUSE_S) -> list[bytes]:
    """The stretches of sound in `pcm16` (PCM16 LE mono at `rate` Hz), in order, each
    without the silence around it, parted wherever silence lasts `pause_s` or more."""
    if rate <= 0 or pause_s <= 0:
        raise ValueError("rate and pause_s must be positive")
    samples = np.frombuffer(pcm16[: len(pcm16) - len(pcm16) % 2], dtype="<i2")
    sounding = np.flatnonzero(np.abs(samples.astype(np.int32)) > QUIET_LEVEL)
    if not sounding.size:
        return []
    pause = max(1, round(pause_s * rate))
    # Where the gap from one sounding sample to the next is a pause, an utterance ends.
    breaks = np.flatnonzero(np.diff(sounding) > pause)
    starts = [int(sounding[0]), *(int(sounding[i + 1]) for i in breaks)]
    ends = [*(int(sounding[i]) + 1 for i in breaks), int(sounding[-1]) + 1]
    return [samples[start:end].tobytes() for start, end in zip(starts, ends, strict=True)]
