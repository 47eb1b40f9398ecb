"""Where the speech is in a stretch of audio, so recognition decodes only that.

The grammar decoder (`harness.recognition`) has no filler words, so it cannot pass over
what comes before the words: 0.1 s of digital silence or 0.5 s of faint noise before
a phrase and it hears nothing, or stretches a wrong phrase over the noise (measured by
``benchmarks/recognition.py``). A turn often starts that way: the microphone stays on
while the agent answers. pocketsphinx 5's own endpointer finds the speech (`Endpointer`:
"simple voice activity detection based endpointing" over 30 ms frames, deciding over a
0.3 s window; pocketsphinx 5.0.0's reference and ``help(pocketsphinx.Endpointer)``);
`speech_only` keeps those segments, each with a little of the audio around it, and
drops the rest.

The padding is uneven on purpose: the endpointer marks the start within a frame or
two of the first syllable, but ends a segment before the last one has faded (it decides
over a 0.3 s window), and the decoder tolerates trailing silence well and leading
silence badly (35 phrases after 2 s of silence: all heard with 50 ms kept before the
start, 27 with 100 ms, 11 with 200 ms). Even 50 ms of digital silence first let one
unrelated sentence of 10 match a phrase; 30 ms (one frame) let none, and heard as many
phrases through the 8 kHz formats as 0 or 50 ms did.
"""

from __future__ import annotations

from typing import Final

__all__ = ["PAD_AFTER_S", "PAD_BEFORE_S", "speech_only", "speech_segments"]

#: The audio kept before each segment's start and after its end.
PAD_BEFORE_S: Final = 0.03
PAD_AFTER_S: Final = 0.3
_RATE: Final = 16_000
_BYTES_PER_SECOND: Final = _RATE * 2


def speech_segments(pcm: bytes) -> list[tuple[float, float]]:
    """The speech in `pcm` (PCM16 LE mono, 16 kHz): (start, end) in seconds, in order."""
    from pocketsphinx import Endpointer

    endpointer = Endpointer(sample_rate=_RATE)
    size = endpointer.frame_bytes
    segments: list[tuple[float, float]] = []
    start: float | None = None
    for offset in range(0, len(pcm) - len(pcm) % 2, size):
        frame = pcm[offset : offset + size]
        was_in_speech = endpointer.in_speech
        if len(frame) == size:
            speech = endpointer.process(frame)
        elif was_in_speech:  # a short last frame only counts inside speech
            speech = endpointer.end_stream(frame)
        else:
            break
        if speech is None:
            continue
        if not was_in_speech:
            start = endpointer.speech_start
        if not endpointer.in_speech and start is not None:
            segments.append((start, endpointer.speech_end))
            start = None
    if start is not None:  # the audio ended mid-speech
        segments.append((start, len(pcm) / _BYTES_PER_SECOND))
    return segments


def speech_only(pcm: bytes) -> bytes:
    """The speech segments of `pcm` (PCM16 LE mono, 16 kHz), padded and joined; b""
    when there is none. Segments whose padding overlaps are kept as one."""
    spans: list[tuple[int, int]] = []
    for start, end in speech_segments(pcm):
        first = max(0, int((start - PAD_BEFORE_S) * _RATE)) * 2
        last = min(len(pcm) // 2, int((end + PAD_AFTER_S) * _RATE)) * 2
        if spans and first <= spans[-1][1]:
            spans[-1] = (spans[-1][0], max(spans[-1][1], last))
        else:
            spans.append((first, last))
    return b"".join(pcm[first:last] for first, last in spans)
