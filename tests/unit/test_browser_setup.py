"""Chromium's launch options and the fake microphone's file, without a browser."""

from __future__ import annotations

import json
import wave
from pathlib import Path
from unittest.mock import MagicMock

import pytest

from harness import recognition
from harness.browser import FakeMicrophone, Frame, VoiceAgentApp, chromium_launch_args
from harness.mock_openai import tone_pcm16


@pytest.fixture
def microphone(tmp_path: Path) -> FakeMicrophone:
    return FakeMicrophone(tmp_path / "mic.wav")


def test_launch_args_add_the_fake_microphone_to_the_users_own_args(
    microphone: FakeMicrophone, tmp_path: Path
) -> None:
    launch = chromium_launch_args(
        {"headless": False, "args": ["--lang=fr"]}, microphone, str(tmp_path / "bundled")
    )
    assert launch["headless"] is False
    assert launch["args"][0] == "--lang=fr"
    assert f"--use-file-for-fake-audio-capture={microphone.path}" in launch["args"]
    assert {"--use-fake-device-for-media-stream", "--no-sandbox"} <= set(launch["args"])


def test_playwrights_own_chromium_wins_when_installed(
    microphone: FakeMicrophone, tmp_path: Path
) -> None:
    bundled = tmp_path / "chrome"
    bundled.touch()
    assert "executable_path" not in chromium_launch_args({}, microphone, str(bundled))


def test_a_chosen_channel_or_executable_is_kept(microphone: FakeMicrophone, tmp_path: Path) -> None:
    missing = str(tmp_path / "not-installed")
    chosen = chromium_launch_args({"executable_path": "/opt/chrome"}, microphone, missing)
    assert chosen["executable_path"] == "/opt/chrome"
    assert "executable_path" not in chromium_launch_args({"channel": "chrome"}, microphone, missing)


def test_the_microphone_file_is_the_audio_then_a_long_silence(microphone: FakeMicrophone) -> None:
    speech = tone_pcm16(500, rate=16000)

    seconds = microphone.load(speech)

    assert seconds == 0.5
    with wave.open(str(microphone.path)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 16000)
        frames = wav.readframes(wav.getnframes())
    assert frames[: len(speech)] == speech
    silence = frames[len(speech) :]
    assert len(silence) == 2 * 16000 * FakeMicrophone.TRAILING_SILENCE_S and not any(silence)


def test_odd_length_audio_is_refused(microphone: FakeMicrophone) -> None:
    with pytest.raises(ValueError, match="even number of bytes"):
        microphone.load(b"\x00\x01\x02")


def test_a_wav_file_is_loaded_at_its_own_rate(microphone: FakeMicrophone, tmp_path: Path) -> None:
    source = tmp_path / "hello.wav"
    with wave.open(str(source), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(48000)
        wav.writeframes(tone_pcm16(250, rate=48000))

    assert microphone.load_wav(source) == 0.25
    with wave.open(str(microphone.path)) as wav:
        assert wav.getframerate() == 48000


def test_heard_without_pocketsphinx_says_how_to_install_it_before_touching_the_page(
    microphone: FakeMicrophone, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(recognition.importlib.util, "find_spec", lambda name: None)
    page = MagicMock()
    app = VoiceAgentApp(page, "http://127.0.0.1:1/", "ws://127.0.0.1:2/", microphone)
    with pytest.raises(recognition.RecognitionUnavailable, match=r"^recognition needs"):
        app.heard("what time is it")
    page.evaluate.assert_not_called()


def _received(*messages: dict[str, str]) -> list[Frame]:
    return [Frame("received", json.dumps(message)) for message in messages]


def test_a_greetings_text_before_its_audio_keeps_heard_waiting_until_its_audio_ends(
    microphone: FakeMicrophone,
) -> None:
    app = VoiceAgentApp(MagicMock(), "http://127.0.0.1:1/", "ws://127.0.0.1:2/", microphone)
    greeting = {"type": "ConversationText", "role": "assistant", "content": "Hello!"}
    app.frames = _received({"type": "SettingsApplied"}, greeting)
    assert app._reply_audio_pending()  # the text came first: its audio is still to come
    app.frames += _received({"type": "AgentStartedSpeaking"}, {"type": "AgentAudioDone"})
    assert not app._reply_audio_pending()
    # A reply's text follows its audio: nothing to wait for.
    app.frames += _received({"type": "AgentThinking"}, {"type": "AgentStartedSpeaking"})
    app.frames += [Frame("received", b"\0\0")]
    app.frames += _received({"type": "AgentAudioDone"}, {"type": "LatencyReport"}, greeting)
    assert not app._reply_audio_pending()
    assert app.agent_texts() == ["Hello!"]
