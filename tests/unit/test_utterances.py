"""Cutting a recording into utterances at pauses."""

from __future__ import annotations

import pytest

from harness.mock_openai import silence_pcm16
from harness.speech import speech_pcm16
from harness.utterances import utterances


@pytest.mark.parametrize("rate", [8000, 24000])
def test_replies_apart_are_two_utterances_and_a_reply_of_sentences_is_one(rate: int) -> None:
    first = speech_pcm16("Hello! I am the test agent. How can I help?", rate=rate)
    second = speech_pcm16("It is noon in Paris.", rate=rate)
    recording = silence_pcm16(500, rate=rate) + first + silence_pcm16(500, rate=rate) + second

    found = utterances(recording, rate)

    assert len(found) == 2
    assert found[0] in first and found[1] in second  # each reply whole, without the silence
    assert len(found[0]) > 0.7 * len(first) and len(found[1]) > 0.7 * len(second)


def test_a_shorter_pause_parts_sentences() -> None:
    reply = speech_pcm16("Once upon a time a fox lived in a forest. The fox found a key.")
    assert len(utterances(reply, 24000)) == 1
    assert len(utterances(reply, 24000, pause_s=0.25)) == 2


def test_silence_has_no_utterance() -> None:
    assert utterances(silence_pcm16(1000, rate=16000), 16000) == []
    assert utterances(b"", 16000) == []
    with pytest.raises(ValueError):
        utterances(b"", 0)
