"""What the page's speaker played, recorded from its audio output (not from the frames)."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import expect

from harness.browser import VoiceAgentApp
from harness.mock_openai import MockRealtime, tone_pcm16
from harness.speech import speech_pcm16


@pytest.mark.mock_openai(voice="speech")
@pytest.mark.parametrize("output_rate", [24000, 16000])
def test_the_recording_holds_every_sample_the_speaker_played(
    voice_app: VoiceAgentApp, mock_openai: MockRealtime, output_rate: int
) -> None:
    mock_openai.on_user_text("weather").reply_with_audio("It is sunny in Paris.")
    voice_app.open(output_rate=output_rate)
    voice_app.connect()

    voice_app.ask("What is the weather?")
    voice_app.wait_until_quiet()
    played = voice_app.played_audio()

    received = b"".join(
        frame.payload
        for frame in voice_app.frames
        if frame.direction == "received" and isinstance(frame.payload, bytes)
    )
    assert played.rate == output_rate
    assert played.dropped_samples == 0
    assert len(received) > output_rate  # more than half a second of speech
    # A frame that comes after the one before it ended leaves a gap of silence (on a
    # loaded machine it happens): every sound, in order, sample for sample.
    assert _sounding(played.pcm16) == _sounding(received)
    assert _sounding(voice_app.played_audio().pcm16) == b""  # taken: nothing new since


@pytest.mark.mock_openai(voice="speech")
def test_the_recording_keeps_only_the_latest_seconds_it_was_given(
    voice_app: VoiceAgentApp, mock_openai: MockRealtime
) -> None:
    mock_openai.on_user_text("weather").reply_with_audio("It is sunny in Paris.")
    voice_app.open(record_played_s=0.25)
    voice_app.connect()

    voice_app.ask("What is the weather?")
    voice_app.wait_until_quiet()
    played = voice_app.played_audio()

    assert played.seconds == 0.25
    assert played.dropped_samples > 0


def test_a_page_opened_without_recording_says_how_to_turn_it_on(
    voice_app: VoiceAgentApp,
) -> None:
    voice_app.open(record_played_s=0)
    with pytest.raises(AssertionError, match="record_played_s"):
        voice_app.played_audio()


@pytest.mark.parametrize(("input_rate", "output_rate"), [(48000, 8000), (8000, 44100)])
def test_the_page_takes_its_audio_rates_from_its_url(
    voice_app: VoiceAgentApp, mock_openai: MockRealtime, input_rate: int, output_rate: int
) -> None:
    voice_app.open(input_rate=input_rate, output_rate=output_rate)
    voice_app.start_microphone()  # connects and sends the microphone's frames

    settings = json.loads(str(voice_app.wait_for_frames("Settings")[0].payload))
    assert settings["audio"]["input"] == {"encoding": "linear16", "sample_rate": input_rate}
    assert settings["audio"]["output"] == {"encoding": "linear16", "sample_rate": output_rate}
    frames = voice_app.wait_for_frames("binary", 3)
    assert {len(frame.payload) for frame in frames} == {2 * input_rate // 50}  # 20 ms
    voice_app.stop_microphone()


@pytest.mark.mock_openai(voice="speech")
def test_a_barge_in_cut_shows_in_the_recording(
    voice_app: VoiceAgentApp, mock_openai: MockRealtime
) -> None:
    story = "Once upon a time a fox lived in a quiet forest near the river bank."
    mock_openai.on_user_text("story").reply_with_audio(story, chunk_interval_ms=100)
    mock_openai.on_user_speech().transcribe_as("stop").stall(1000).reply_with_text("Stopped.")
    voice_app.connect()
    voice_app.send_text("tell me a story")
    voice_app.wait_for_played_ms(800)

    voice_app.speak(tone_pcm16(600, rate=16000))  # the energy detector hears the user
    expect(voice_app.testid("playback-interrupted")).to_have_text("1")
    played = voice_app.played_audio()

    # Frames that came late leave gaps of silence in what is played: compare sounds only.
    heard, story_audio = _sounding(played.pcm16), _sounding(speech_pcm16(story, rate=24000))
    assert story_audio.startswith(heard)  # the story as played, up to the cut
    assert 0.8 <= len(heard) / 2 / played.rate < len(story_audio) / 2 / played.rate - 1.0
    assert voice_app.wait_for_reply() == "Stopped."
    voice_app.stop_microphone()


def _sounding(pcm16: bytes) -> bytes:
    """The samples that are not zero, in order."""
    samples = memoryview(pcm16).cast("h")
    return b"".join(sample.to_bytes(2, "little", signed=True) for sample in samples if sample)
