"""Finding the speech in a turn: pocketsphinx's voice activity detector, padded."""

from __future__ import annotations

import numpy as np
import pytest

from harness.speech import speech_pcm16
from harness.speech_segments import PAD_AFTER_S, PAD_BEFORE_S, speech_only, speech_segments

SECOND = 32000  # bytes of PCM16 at 16 kHz


def test_the_speech_is_found_between_silences() -> None:
    words = speech_pcm16("what is the weather in paris", rate=16000)
    ((start, end),) = speech_segments(bytes(2 * SECOND) + words + bytes(SECOND))
    said = len(words) / SECOND
    assert 1.9 <= start <= 2.1  # espeak-ng starts speaking within 50 ms
    assert 2 + said - 0.5 <= end <= 2 + said + 0.1


def test_speech_only_keeps_the_words_and_a_little_around_them() -> None:
    words = speech_pcm16("tell me a story", rate=16000)
    kept = speech_only(bytes(2 * SECOND) + words + bytes(SECOND))
    padding = (PAD_BEFORE_S + PAD_AFTER_S) * SECOND
    assert len(words) - SECOND // 2 <= len(kept) <= len(words) + padding
    assert bytes(kept[-len(words) // 2 :]) != bytes(len(words) // 2)  # not the silence


def test_silence_and_faint_noise_hold_no_speech() -> None:
    faint = np.random.default_rng(1).normal(0, 30, 2 * 16000).astype("<i2").tobytes()
    assert speech_segments(bytes(2 * SECOND)) == []
    assert speech_only(faint) == b""
    assert speech_only(b"") == b"" and speech_only(b"\0") == b""


def test_speech_to_the_very_end_is_one_segment() -> None:
    words = speech_pcm16("tell me a story", rate=16000)
    cut = words[: len(words) // 2 + 7]  # mid-word, an odd byte, a short last frame
    ((start, end),) = speech_segments(bytes(SECOND) + cut)
    assert 0.9 <= start <= 1.1
    assert end == pytest.approx((SECOND + len(cut)) / SECOND, abs=0.001)  # to the end
