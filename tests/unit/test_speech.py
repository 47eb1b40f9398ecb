"""espeak-ng speech and the audio profile that tells it from a tone."""

from __future__ import annotations

import pytest

from harness import speech
from harness.audio_profile import profile_pcm16
from harness.mock_openai import silence_pcm16, tone_pcm16
from harness.mock_openai.audio import SPEECH, TONE, voice_named
from harness.speech import SpeechUnavailable, speech_pcm16


def test_speech_is_synthesized_at_the_rate_asked_for() -> None:
    at_24k = speech_pcm16("It is sunny in Paris today.", rate=24000)
    at_16k = speech_pcm16("It is sunny in Paris today.", rate=16000)
    assert len(at_24k) % 2 == 0 and len(at_16k) % 2 == 0
    assert abs(len(at_24k) / len(at_16k) - 1.5) < 0.01  # the same speech, resampled
    assert 1.0 < len(at_24k) / 48000 < 3.0  # seconds: about how long these words take


def test_speech_looks_like_speech_and_a_tone_or_silence_does_not() -> None:
    spoken = profile_pcm16(speech_pcm16("what time is it", rate=16000), 16000)
    assert spoken.looks_like_speech(), spoken
    tone = profile_pcm16(tone_pcm16(1000), 24000)
    assert not tone.looks_like_speech() and tone.loudness_variation < 0.05
    assert not profile_pcm16(silence_pcm16(1000), 24000).looks_like_speech()


def test_the_mock_voices() -> None:
    assert len(TONE.audio("ignored", 3, 100)) == 3  # a script can count on tone sizes
    chunks = SPEECH.audio("Noon, exactly.", 3, 100)
    assert len(chunks) == -(-len(speech_pcm16("Noon, exactly.")) // 4800)  # as the words need
    with pytest.raises(ValueError, match="no voice 'robot'"):
        voice_named("robot")  # type: ignore[arg-type]


def test_without_espeak_ng_speech_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(speech.shutil, "which", lambda name: None)
    assert not speech.speech_available()
    with pytest.raises(SpeechUnavailable, match="apt-get install espeak-ng"):
        speech_pcm16.__wrapped__("hello")
