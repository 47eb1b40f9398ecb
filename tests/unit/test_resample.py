"""The streaming resampler: a real filter, state across frames, any frame length."""

from __future__ import annotations

import random

import numpy as np
import pytest

from harness.mock_openai import tone_pcm16
from proxy.resample import PcmResampler


def sine(freq: float, seconds: float, rate: int) -> bytes:
    return tone_pcm16(int(seconds * 1000), frequency=freq, rate=rate)


def stream(resampler: PcmResampler, pcm: bytes, sizes: list[int]) -> bytes:
    out, start = [], 0
    for size in sizes:
        out.append(resampler.process(pcm[start : start + size]))
        start += size
    out.append(resampler.process(pcm[start:]))
    out.append(resampler.flush())
    return b"".join(out)


def test_16k_to_24k_keeps_length_and_pitch() -> None:
    out = stream(PcmResampler(16000, 24000), sine(440, 1.0, 16000), [3200] * 4)
    assert len(out) == 48000
    samples = np.frombuffer(out, dtype="<i2").astype(float)
    peak = np.argmax(np.abs(np.fft.rfft(samples))) * 24000 / len(samples)
    assert abs(peak - 440) < 1


def test_any_frame_lengths_give_the_same_audio_as_one_frame() -> None:
    pcm = sine(1000, 0.5, 16000)
    whole = stream(PcmResampler(16000, 24000), pcm, [])
    rng = random.Random(7)
    sizes = [rng.randint(1, 777) for _ in range(30)]
    pieces = stream(PcmResampler(16000, 24000), pcm, sizes)
    assert len(pieces) == len(whole)
    # Odd splits must not shift a byte: the sample stream is the same.
    difference = np.abs(
        np.frombuffer(pieces, dtype="<i2").astype(int) - np.frombuffer(whole, dtype="<i2")
    )
    assert difference.max() <= 2


def test_not_linear_interpolation_aliasing_is_filtered() -> None:
    # 7 kHz at 16 kHz is fine; going down to 8 kHz it must be removed, not folded to 1 kHz.
    out = stream(PcmResampler(16000, 8000), sine(7000, 1.0, 16000), [1600] * 9)
    samples = np.frombuffer(out, dtype="<i2").astype(float)
    assert np.sqrt(np.mean(samples**2)) < 200  # linear interpolation leaves ~8000 rms


def test_same_rate_passes_through_and_carries_odd_bytes() -> None:
    resampler = PcmResampler(24000, 24000)
    assert resampler.process(b"\x01\x02\x03") == b"\x01\x02"
    assert resampler.process(b"\x04") == b"\x03\x04"


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
def test_other_component_rates(rate: int) -> None:
    out = stream(PcmResampler(rate, 24000), sine(500, 1.0, rate), [rate // 10] * 9)
    assert abs(len(out) - 48000) <= 4
