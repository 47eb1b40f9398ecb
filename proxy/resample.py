"""Streaming PCM16 resampling (soxr, a real band-limited resampler, in C).

State is kept across frames so chunk boundaries leave no clicks, and any frame
length is accepted: an odd trailing byte is carried into the next frame.
"""

from __future__ import annotations

import numpy as np
import soxr

__all__ = ["PcmResampler"]


class PcmResampler:
    """Convert a stream of PCM16 little-endian mono audio from one rate to another."""

    def __init__(self, input_rate: int, output_rate: int) -> None:
        self.input_rate = input_rate
        self.output_rate = output_rate
        self._carry = b""
        self._stream = (
            None
            if input_rate == output_rate
            else soxr.ResampleStream(input_rate, output_rate, 1, dtype="int16", quality="HQ")
        )

    def process(self, pcm: bytes) -> bytes:
        """Resample one chunk; returns what the filter can emit so far."""
        if self._carry:
            pcm = self._carry + pcm
            self._carry = b""
        if len(pcm) % 2:
            pcm, self._carry = pcm[:-1], pcm[-1:]
        if self._stream is None or not pcm:
            return pcm
        samples = np.frombuffer(pcm, dtype="<i2")
        return bytes(self._stream.resample_chunk(samples).astype("<i2", copy=False).data)

    def flush(self) -> bytes:
        """Drain the filter at the end of the stream (a lone odd byte is dropped)."""
        self._carry = b""
        if self._stream is None:
            return b""
        tail = self._stream.resample_chunk(np.zeros(0, dtype="<i2"), last=True)
        return bytes(tail.astype("<i2", copy=False).data)
