"""Recognition against scripted phrases: it hears the phrase said, and nothing else."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from harness import recognition
from harness.recognition import (
    INSTALL_HINT,
    RecognitionUnavailable,
    phrase_words,
    recognise,
    recognise_async,
    to_decoder_pcm,
)
from harness.speech import speech_pcm16

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

PHRASES = ("what time is it", "book a table for two", "turn off the lights")


@pytest.mark.parametrize("phrase", PHRASES)
def test_the_phrase_said_is_heard_as_written(phrase: str) -> None:
    written = [p.capitalize() + "?" for p in PHRASES]
    assert recognise(speech_pcm16(phrase, rate=16000), written, rate=16000) == (
        phrase.capitalize() + "?"
    )


def test_g711_and_other_rates_are_decoded() -> None:
    narrow = speech_pcm16("turn off the lights", rate=8000)
    assert recognise(audioop.lin2ulaw(narrow, 2), PHRASES, rate=8000, encoding="mulaw") == (
        "turn off the lights"
    )
    assert recognise(audioop.lin2alaw(narrow, 2), PHRASES, rate=8000, encoding="alaw") == (
        "turn off the lights"
    )
    wide = speech_pcm16("what time is it", rate=48000)
    assert recognise(wide, PHRASES, rate=48000) == "what time is it"


@pytest.mark.parametrize(
    "audio",
    [
        pytest.param(lambda: speech_pcm16("good morning everyone", rate=16000), id="unrelated"),
        pytest.param(lambda: speech_pcm16("i would like some coffee", rate=16000), id="other"),
        pytest.param(
            lambda: (
                np.frombuffer(speech_pcm16("what time is it", rate=16000), "<i2")
                .byteswap()
                .tobytes()
            ),
            id="byte-swapped",
        ),
        pytest.param(lambda: speech_pcm16("what time is it", rate=24000), id="wrong-rate"),
        pytest.param(lambda: speech_pcm16("what time is it", rate=16000)[1:], id="odd-byte"),
        pytest.param(
            lambda: np.random.default_rng(3).normal(0, 3000, 24000).astype("<i2").tobytes(),
            id="noise",
        ),
        pytest.param(lambda: bytes(32000), id="silence"),
        pytest.param(lambda: b"", id="nothing"),
    ],
)
def test_audio_that_is_none_of_the_phrases_matches_nothing(audio: object) -> None:
    assert callable(audio)
    assert recognise(audio(), PHRASES, rate=16000) == ""


@pytest.mark.parametrize("seconds", [0.5, 2.0])
def test_the_words_are_heard_after_silence(seconds: float) -> None:
    # A microphone left on: silence first. The grammar cannot pass over it, so only the
    # speech (found by pocketsphinx's voice activity detector) is decoded.
    silence = bytes(2 * int(16000 * seconds))
    story = speech_pcm16("tell me a story", rate=16000)
    phrases = ("what is the weather in paris", "tell me a story", "stop please")
    assert recognise(silence + story + silence, phrases, rate=16000) == "tell me a story"


def test_faint_noise_before_the_words_is_no_false_match() -> None:
    # Decoded whole, the phrase "stop please" was stretched over the noise (margin 0.27).
    noise = np.random.default_rng(0).normal(0, 30, 32000).astype("<i2").tobytes()
    story = speech_pcm16("tell me a story", rate=16000)
    phrases = ("what is the weather in paris", "tell me a story", "stop please")
    assert recognise(noise + story, phrases, rate=16000) == "tell me a story"


async def test_recognition_runs_off_the_event_loop() -> None:
    heard = await recognise_async(speech_pcm16("what time is it", rate=24000), PHRASES, rate=24000)
    assert heard == "what time is it"


def test_phrases_are_spelled_as_words_and_unknown_words_are_refused() -> None:
    assert phrase_words("What's the time, Bob?") == "what's the time bob"
    with pytest.raises(ValueError, match="'xyzzyq'"):
        recognise(speech_pcm16("hello", rate=16000), ["say xyzzyq"], rate=16000)
    with pytest.raises(ValueError, match="no words"):
        recognise(b"\0\0", ["42!"], rate=16000)
    assert recognise(b"\0\0" * 100, [], rate=16000) == ""


def test_decoder_pcm_is_16_khz_pcm16() -> None:
    one_second = speech_pcm16("hello", rate=48000)
    assert abs(len(to_decoder_pcm(one_second, rate=48000)) * 3 - len(one_second)) < 64
    assert len(to_decoder_pcm(bytes(800), rate=8000, encoding="mulaw")) == 3200
    with pytest.raises(ValueError, match="no encoding"):
        to_decoder_pcm(b"", rate=8000, encoding="flac")  # type: ignore[arg-type]


def test_without_pocketsphinx_recognition_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(recognition.importlib.util, "find_spec", lambda name: None)
    assert not recognition.recognition_available()
    with pytest.raises(RecognitionUnavailable) as raised:
        recognise(b"\0\0", PHRASES, rate=16000)
    assert str(raised.value) == INSTALL_HINT and "\n" not in INSTALL_HINT
    assert "[speech]" in INSTALL_HINT
