"""Speech through Chromium's fake microphone, agent audio through Web Audio, barge-in."""

from __future__ import annotations

import base64
import re
import wave
from pathlib import Path

import pytest
from playwright.sync_api import expect

from harness.audio_profile import profile_pcm16
from harness.browser import VoiceAgentApp
from harness.mock_openai import MockRealtime, tone_pcm16
from harness.speech import speech_pcm16

MIC_RATE = 16000


def test_spoken_question_is_transcribed_answered_and_played(
    voice_app: VoiceAgentApp, mock_openai: MockRealtime, tmp_path: Path
) -> None:
    mock_openai.on_user_speech().transcribe_as("what time is it").reply_with_audio(
        "It is noon.", chunks=5, chunk_ms=100
    )
    voice_app.connect()

    question = tmp_path / "question.wav"
    with wave.open(str(question), "wb") as wav:  # 800 ms of "speech" for the energy VAD
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(MIC_RATE)
        wav.writeframes(tone_pcm16(800, rate=MIC_RATE))

    voice_app.speak_wav(question)

    clock = re.compile(r"^\d\d:\d\d:\d\d$")
    expect(voice_app.testid("user-started-speaking")).to_have_text(clock, timeout=5000)
    expect(voice_app.testid("user-stopped-speaking")).to_have_text(clock, timeout=5000)
    expect(voice_app.testid("utterance-end")).to_have_text(
        re.compile(r"^Channel: \[0,1\], Last word end: [\d.]+s$")
    )
    expect(voice_app.testid("transcription")).to_have_text("what time is it")
    assert voice_app.wait_for_reply() == "It is noon."
    assert voice_app.history() == [("user", "what time is it"), ("assistant", "It is noon.")]
    # All 500 ms of agent speech arrived and was played out, then the agent went idle.
    expect(voice_app.testid("audio-played-ms")).to_have_text("500", timeout=5000)
    expect(voice_app.testid("agent-state")).to_have_text("idle")
    stats = voice_app.audio_stats()
    assert (stats.chunks, stats.received_ms, stats.playing) == (5, 500, False)
    # The microphone's audio reached upstream: at least the 800 ms that were spoken.
    appended = mock_openai.received("input_audio_buffer.append")
    upstream_ms = sum(len(base64.b64decode(e["audio"])) for e in appended) / 48  # 24 kHz PCM16
    assert upstream_ms >= 800
    voice_app.stop_microphone()


def test_speaking_while_the_agent_talks_stops_playback_and_truncates_upstream(
    voice_app: VoiceAgentApp, mock_openai: MockRealtime
) -> None:
    story = " ".join(f"word{i}" for i in range(60))
    # Four seconds of speech, delivered twice as fast as it plays (as the service sends
    # ahead): delivered exactly in real time, the page's buffer ran dry between chunks
    # now and then, and the barge-in found nothing playing to interrupt (1 run in ~15).
    mock_openai.on_user_text("story").reply_with_audio(
        story, chunks=40, chunk_ms=100, chunk_interval_ms=50
    )
    reply_to_speech = mock_openai.on_user_speech().transcribe_as("stop please")
    reply_to_speech.stall(1000).reply_with_text("Stopped.")  # clear of the barge-in checks
    voice_app.connect()
    voice_app.send_text("tell me a story")
    expect(voice_app.testid("agent-state")).to_have_text("speaking", timeout=5000)
    voice_app.wait_for_played_ms(300)

    voice_app.speak(tone_pcm16(700, rate=MIC_RATE))

    expect(voice_app.testid("playback-interrupted")).to_have_text("1", timeout=5000)
    expect(voice_app.testid("audio-playing-status")).to_have_text("false")
    truncate = mock_openai.wait_for_sync("conversation.item.truncate")
    stopped = voice_app.audio_stats()
    assert 300 <= stopped.played_ms < 4000
    assert 0 < truncate["audio_end_ms"] < 4000
    # Upstream forgets what the user never heard: the cut is near where playback stopped.
    assert truncate["audio_end_ms"] >= stopped.played_ms - 250
    # Not one more frame of the interrupted answer: the next audio is the new reply's.
    assert voice_app.wait_for_reply() == "Stopped."
    received = [f.type for f in voice_app.frames if f.direction == "received"]
    after_barge_in = received[received.index("UserStartedSpeaking") :]
    assert "binary" not in after_barge_in[: after_barge_in.index("AgentThinking")]
    # The cut-off answer never completed, so it has no turn in the history.
    assert voice_app.history() == [
        ("user", "tell me a story"),
        ("user", "stop please"),
        ("assistant", "Stopped."),
    ]
    voice_app.stop_microphone()


@pytest.mark.mock_openai(voice="speech")
def test_a_spoken_question_gets_a_spoken_answer_played_in_full(
    voice_app: VoiceAgentApp, mock_openai: MockRealtime
) -> None:
    answer = "It is noon in Paris."
    mock_openai.on_user_speech().transcribe_as("what time is it").reply_with_audio(answer).once()
    voice_app.connect()

    voice_app.say("what time is it")

    expect(voice_app.testid("transcription")).to_have_text("what time is it")
    assert voice_app.wait_for_reply() == answer
    # The whole spoken answer was played: as long as its words take to say.
    answer_ms = len(speech_pcm16(answer)) / 48  # 24 kHz PCM16
    voice_app.wait_for_played_ms(int(answer_ms))
    assert abs(voice_app.audio_stats().played_ms - answer_ms) <= 1
    # What the microphone sent upstream was speech, not a tone.
    appended = b"".join(
        base64.b64decode(e["audio"]) for e in mock_openai.received("input_audio_buffer.append")
    )
    assert profile_pcm16(appended, 24000).looks_like_speech()
    voice_app.stop_microphone()
