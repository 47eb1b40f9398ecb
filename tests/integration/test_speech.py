"""Speech, not beeps: the mock speaks its replies, and the microphone can say words."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from harness.audio_profile import profile_pcm16
from harness.client import ComponentClient
from harness.mock_openai import MockRealtime
from harness.speech import speech_pcm16

Speech = Callable[..., bytes]


@pytest.mark.mock_openai(voice="speech")
async def test_the_mock_speaks_its_replies_through_the_proxy(
    mock_openai: MockRealtime, component_client: ComponentClient
) -> None:
    mock_openai.on_user_text("weather").reply_with_audio("It is sunny in Paris today.").once()
    await component_client.start()
    await component_client.inject("weather?")
    assert await component_client.wait_for_reply() == "It is sunny in Paris today."
    await component_client.wait_for("AgentAudioDone")
    heard = profile_pcm16(bytes(component_client.audio), 24000)
    assert heard.looks_like_speech(), heard
    # As long as the words take to say (24 kHz in and out: nothing resampled).
    assert len(component_client.audio) == len(speech_pcm16("It is sunny in Paris today."))


async def test_the_default_voice_is_a_tone_of_the_scripted_length(
    mock_openai: MockRealtime, component_client: ComponentClient
) -> None:
    mock_openai.on_user_text().reply_with_audio("It is sunny.", chunks=4).once()
    await component_client.start()
    await component_client.inject("weather?")
    await component_client.wait_for("AgentAudioDone")
    assert len(component_client.audio) == 4 * 4800
    assert not profile_pcm16(bytes(component_client.audio), 24000).looks_like_speech()


async def test_a_spoken_question_is_heard_as_one_utterance(
    mock_openai: MockRealtime, component_client: ComponentClient, speech: Speech
) -> None:
    mock_openai.on_user_speech().transcribe_as("what time is it").reply_with_audio("Noon.").once()
    question = speech("what time is it", rate=16000)
    await component_client.start()
    await component_client.send_audio(question + bytes(32000))  # then a second of silence
    assert await component_client.wait_for_reply() == "Noon."
    assert len(component_client.received("UserStartedSpeaking")) == 1  # pauses between words
    (end,) = component_client.received("UtteranceEnd")
    spoken_until = profile_pcm16(question, 16000).sound_ends_s
    assert abs(end["last_word_end"] - spoken_until) < 0.1  # where the words ended


SPEECH_PROJECT = """
import pytest


@pytest.mark.mock_openai(voice="speech")
def test_needs_the_speech_voice(mock_openai):
    pass


def test_needs_a_spoken_utterance(speech):
    speech("hello")
"""


def test_speech_tests_fail_rather_than_skip_without_espeak_ng(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(pytester.path))  # a machine without espeak-ng
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(test_speech_needed=SPEECH_PROJECT)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(["*needs espeak-ng: `apt-get install espeak-ng`*"])
