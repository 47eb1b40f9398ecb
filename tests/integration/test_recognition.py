"""Spoken words checked both ways: the mock hears what the client said, the client hears
what the mock said, in every client audio format; broken audio is heard as nothing."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from harness import recognition
from harness.client import ComponentClient, default_settings
from harness.mock_openai import MockRealtime
from harness.recognition import Encoding
from harness.speech import speech_pcm16
from proxy import audio_formats

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

QUESTION = "what is the weather in paris"
ANSWER = "it is half past three"
FORMATS: list[tuple[Encoding, int]] = [
    *(("linear16", rate) for rate in (8000, 16000, 24000, 32000, 44100, 48000)),
    ("mulaw", 8000),
    ("alaw", 8000),
]


def spoken(text: str, encoding: Encoding, rate: int) -> bytes:
    """`text` said at the client's input format, then a second of silence (the turn ends)."""
    pcm = speech_pcm16(text, rate=rate) + bytes(rate * 2)
    if encoding == "mulaw":
        return bytes(audioop.lin2ulaw(pcm, 2))
    if encoding == "alaw":
        return bytes(audioop.lin2alaw(pcm, 2))
    return pcm


def settings(encoding: Encoding, rate: int) -> dict[str, Any]:
    message = default_settings()
    fmt = {"encoding": encoding, "sample_rate": rate}
    message["audio"] = {"input": dict(fmt), "output": dict(fmt)}
    return message


async def say(client: ComponentClient, text: str, encoding: Encoding, rate: int) -> None:
    width = 2 if encoding == "linear16" else 1
    await client.send_audio(spoken(text, encoding, rate), frame_bytes=rate * width // 50)


@pytest.mark.mock_openai(voice="speech")
@pytest.mark.parametrize(("encoding", "rate"), FORMATS, ids=[f"{e}-{r}" for e, r in FORMATS])
async def test_words_said_are_heard_by_the_mock_and_its_answer_by_the_client(
    mock_openai: MockRealtime, component_client: ComponentClient, encoding: Encoding, rate: int
) -> None:
    mock_openai.on_user_speech("book a table for two").reply_with_audio("Done.").optional()
    mock_openai.on_user_speech(QUESTION).reply_with_audio(ANSWER).once()
    await component_client.start(settings(encoding, rate))
    await say(component_client, QUESTION, encoding, rate)
    assert await component_client.wait_for_reply() == ANSWER
    await component_client.wait_for("AgentAudioDone")
    assert mock_openai.heard == [QUESTION]  # the user said X ...
    assert await component_client.heard(ANSWER, "done") == [ANSWER]  # ... the agent said Y


async def test_the_transcript_is_what_was_heard_and_empty_when_nothing_was(
    mock_openai: MockRealtime, component_client: ComponentClient
) -> None:
    mock_openai.listen_for(QUESTION)
    await component_client.start(settings("linear16", 16000))
    await say(component_client, "good morning everyone", "linear16", 16000)
    await mock_openai.wait_heard(1)
    await say(component_client, QUESTION, "linear16", 16000)
    assert await mock_openai.wait_heard(2) == ["", QUESTION]
    await mock_openai.wait_idle()
    completed = mock_openai.sent("conversation.item.input_audio_transcription.completed")
    assert [event["transcript"] for event in completed] == ["", QUESTION]  # never scripted
    said = await component_client.wait_for("ConversationText", where=_from_user)
    assert said["content"] == QUESTION


async def test_a_turn_is_heard_with_the_microphone_left_on_between_turns(
    mock_openai: MockRealtime, component_client: ComponentClient
) -> None:
    # A real user's microphone stays on through the agent's answer: the next turn's
    # audio starts with seconds of silence before the words.
    mock_openai.on_user_speech(QUESTION).reply_with_audio(ANSWER).once()
    mock_openai.on_user_speech("tell me a story").reply_with_audio("Once upon a time.").once()
    await component_client.start(settings("linear16", 16000))
    await say(component_client, QUESTION, "linear16", 16000)
    assert await component_client.wait_for_reply() == ANSWER
    await component_client.send_audio(bytes(3 * 32000))  # silence while it answers
    await say(component_client, "tell me a story", "linear16", 16000)
    assert await mock_openai.wait_heard(2) == [QUESTION, "tell me a story"]
    assert await component_client.wait_for_reply(2) == "Once upon a time."


def _from_user(message: dict[str, Any]) -> bool:
    return bool(message.get("role") == "user")


# --- faults: a broken audio path must make these checks fail ------------------------------


def _byte_swapped(pcm: bytes) -> bytes:
    return np.frombuffer(pcm[: len(pcm) - len(pcm) % 2], dtype="<i2").byteswap().tobytes()


def _every_other_dropped() -> Callable[[bytes], bytes]:
    calls = iter(range(1 << 30))
    return lambda pcm: pcm if next(calls) % 2 == 0 else b""


def _one_byte_lost() -> Callable[[bytes], bytes]:
    first = iter([True])
    return lambda pcm: pcm[1:] if next(first, False) else pcm


FAULTS: dict[str, Callable[[], Callable[[bytes], bytes]]] = {
    "byte-swapped": lambda: _byte_swapped,
    "chunks-dropped": _every_other_dropped,
    "one-byte-lost": _one_byte_lost,
}


@pytest.mark.parametrize("fault", FAULTS)
async def test_a_broken_input_path_is_heard_as_nothing(
    mock_openai: MockRealtime,
    component_client: ComponentClient,
    monkeypatch: pytest.MonkeyPatch,
    fault: str,
) -> None:
    breaking = FAULTS[fault]()
    process = audio_formats.InputConverter.process
    monkeypatch.setattr(
        audio_formats.InputConverter, "process", lambda self, data: breaking(process(self, data))
    )
    heard = mock_openai.on_user_speech(QUESTION).reply_with_audio(ANSWER).optional()
    await component_client.start(settings("linear16", 16000))
    await component_client.send_audio(spoken(QUESTION, "linear16", 16000), frame_bytes=3200)
    assert await mock_openai.wait_heard(1) == [""]
    assert heard.hits == 0  # the test scripting this rule would fail: it never fires


async def test_a_wrong_input_rate_is_heard_as_nothing(
    mock_openai: MockRealtime, component_client: ComponentClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    resampler = audio_formats.PcmResampler
    monkeypatch.setattr(  # the converter believes 16 kHz audio is 24 kHz: no resampling
        audio_formats, "PcmResampler", lambda source, target: resampler(target, target)
    )
    mock_openai.listen_for(QUESTION)
    await component_client.start(settings("linear16", 16000))
    await say(component_client, QUESTION, "linear16", 16000)
    assert await mock_openai.wait_heard(1) == [""]


@pytest.mark.mock_openai(voice="speech")
async def test_a_broken_output_path_is_heard_as_nothing(
    mock_openai: MockRealtime, component_client: ComponentClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    process = audio_formats.OutputConverter.process
    monkeypatch.setattr(
        audio_formats.OutputConverter,
        "process",
        lambda self, data: _byte_swapped(process(self, data)),
    )
    mock_openai.on_user_text().reply_with_audio(ANSWER).once()
    await component_client.start(settings("linear16", 16000))
    await component_client.inject("the weather?")
    assert await component_client.wait_for_reply() == ANSWER
    await component_client.wait_for("AgentAudioDone")
    assert await component_client.heard() == [""]


HEARING_PROJECT = """
def test_scripts_a_phrase(mock_openai):
    mock_openai.on_user_speech("what time is it")


async def test_asks_what_the_agent_said(component_client):
    await component_client.heard()
"""


def test_tests_that_need_recognition_fail_in_one_line_without_pocketsphinx(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(recognition, "recognition_available", lambda: False)
    pytester.makeini(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
    )
    pytester.makepyfile(test_hearing_needed=HEARING_PROJECT)
    # (Playwright's plugin cannot nest its soft-assertion scope in an in-process run.)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-p", "no:playwright")
    result.assert_outcomes(failed=2)  # never skipped
    assert result.stdout.lines.count(recognition.INSTALL_HINT) == 2  # the whole report
    assert "exception" not in result.stdout.str()


LONG_TURN_PHRASES = (
    "what time is it",
    "tell me a joke",
    "book a table for two",
    "turn off the lights",
)


@pytest.mark.parametrize(
    "said",
    [
        # Without the word-length bound, heard as "what time is it" (a word lasting 7 s) ...
        "the quick brown fox jumps over the lazy dog while the farmer walks to the market "
        "to sell his apples and pears, and the children play in the garden near the old oak "
        "tree where the birds sing every morning",
        # ... and as "tell me a joke" ("joke" lasting 3.4 s, stretched over the rest).
        "tell me a joke about a cat and a dog who went to the market together",
    ],
)
def test_speech_longer_than_any_phrase_is_not_stretched_to_fit_one(said: str) -> None:
    audio = speech_pcm16(said, rate=16000)
    found = recognition.recognition_of(audio, LONG_TURN_PHRASES, rate=16000)
    assert found.phrase == "", (found.hypothesis, found.longest_word)


def test_phrases_said_alone_are_heard_well_inside_the_word_length_bound() -> None:
    for phrase in LONG_TURN_PHRASES:
        audio = speech_pcm16(phrase, rate=16000)
        alone = recognition.recognition_of(audio, LONG_TURN_PHRASES, rate=16000)
        assert alone.phrase == phrase
        assert alone.longest_word < recognition.MAX_WORD_SECONDS / 1.5


@pytest.mark.parametrize(
    ("phrase", "words_per_minute"),
    [("cancel my appointment", 100), ("cancel my appointment", 80), ("what is on my calendar", 80)],
)
def test_a_slow_speaker_is_still_heard(phrase: str, words_per_minute: int) -> None:
    """A bound of 1.2 s on a word lost slow speakers ("appointment" lasts 1.25 s at 100
    words a minute, 1.44 s at 80; espeak-ng -s 80: 24 of 35 phrases heard, against 30
    without the bound)."""
    phrases = (*LONG_TURN_PHRASES, "cancel my appointment", "what is on my calendar")
    audio = speech_pcm16(phrase, rate=16000, words_per_minute=words_per_minute)
    found = recognition.recognition_of(audio, phrases, rate=16000)
    assert found.phrase == phrase, (found.hypothesis, found.longest_word)
