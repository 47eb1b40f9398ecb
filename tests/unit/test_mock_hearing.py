"""The mock's hearing as data: which rules wait for which words, and the turn's audio
handed to recognition (no sockets, no decoding)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest

from harness.mock_openai import MockRealtime
from harness.mock_openai.audio import TurnAudio, silence_pcm16, tone_pcm16
from harness.mock_openai.responses import Recognise, Step
from harness.mock_openai.rules import Trigger
from harness.mock_openai.service import RealtimeSession
from harness.mock_openai.steps import Send


def test_a_speech_rule_with_words_fires_only_when_they_were_heard() -> None:
    mock = MockRealtime()
    asked = mock.on_user_speech("What time is it?").reply_with_text("Noon").optional()
    book = mock._rules
    for heard in (None, "", "book a table for two"):
        assert book.match(Trigger.USER_SPEECH, heard) is None
    match = book.match(Trigger.USER_SPEECH, "what time is it")
    assert match is not None and match.rule is asked
    anything = mock.on_user_speech().reply_with_text("Hm").optional()
    assert book.match(Trigger.USER_SPEECH, None).rule is anything  # type: ignore[union-attr]
    assert book.match(Trigger.USER_SPEECH, "").rule is anything  # type: ignore[union-attr]


def test_the_phrases_listened_for_are_the_rules_and_listen_for_s() -> None:
    mock = MockRealtime()
    mock.on_user_speech("what time is it").optional()
    mock.on_user_text("what time is it").optional()  # typed text: nothing to hear
    mock.listen_for("good morning everyone", "what time is it")
    assert mock._rules.phrases() == ("what time is it", "good morning everyone")
    mock.reset()
    assert mock._rules.phrases() == ()
    with pytest.raises(ValueError, match="needs words"):
        mock.on_user_speech("42!")
    with pytest.raises(ValueError, match="needs words"):
        mock.listen_for("")


def test_json_rules_can_wait_for_words() -> None:
    mock = MockRealtime()
    (rule,) = mock.load_rules({"on": "user_speech", "phrase": "what time is it", "once": True})
    assert rule.phrase == "what time is it"
    assert rule.description == "on_user_speech('what time is it').once()"
    with pytest.raises(ValueError, match="'phrase' is a string"):
        mock.load_rules({"on": "user_speech", "phrase": 42})


def test_the_turn_audio_is_cut_where_the_turn_ended() -> None:
    turn = TurnAudio()
    turn.add(bytes(range(200)) * 10, "audio/pcm")  # 2000 bytes: 41 ms at 24 kHz
    first = turn.take(20)
    assert (first.rate, first.encoding, len(first.audio)) == (24000, "linear16", 960)
    assert len(turn.take(None).audio) == 1040  # the rest starts the next turn
    turn.add(b"\xff" * 800, "audio/pcmu")  # 100 ms of G.711
    g711 = turn.take(50)
    assert (g711.rate, g711.encoding, len(g711.audio)) == (8000, "mulaw", 400)
    turn.add(bytes(48 * (TurnAudio.MAX_TURN_MS + 1000)), "audio/pcm")
    assert len(turn.take(None).audio) == 48 * TurnAudio.MAX_TURN_MS  # bounded


def test_the_turn_audio_can_start_later_and_stays_aligned_when_bounded() -> None:
    turn = TurnAudio()
    turn.add(bytes(48 * 100) + b"\x01" * 48 * 50, "audio/pcm")
    assert turn.take(150, from_ms=100).audio == b"\x01" * 48 * 50  # the first 100 ms dropped
    turn.add(bytes(48 * (TurnAudio.MAX_TURN_MS + 1000)) + b"\x02" * 48 * 20, "audio/pcm")
    # Times count from the buffer's start, the 1000 ms dropped to bound it included.
    later = turn.take(TurnAudio.MAX_TURN_MS + 1020, from_ms=TurnAudio.MAX_TURN_MS + 1000)
    assert later.audio == b"\x02" * 48 * 20


def test_a_turn_after_the_microphone_was_left_on_starts_at_the_speech() -> None:
    mock = MockRealtime()
    mock.listen_for("what time is it")
    session = RealtimeSession(mock._rules)
    said = silence_pcm16(2000) + tone_pcm16(600) + silence_pcm16(700)
    steps = _run(session.receive(_append(said)), heard="")
    started = next(
        s.event for s in steps if isinstance(s, Send) and s.event["type"].endswith("started")
    )
    assert started["audio_start_ms"] == 1700  # 300 ms of prefix padding
    (recognise,) = [s for s in steps if isinstance(s, Recognise)]
    # From audio_start_ms to where the turn ended (500 ms of silence after the tone).
    assert len(recognise.audio) == 48 * (300 + 600 + 500)


def _append(pcm: bytes) -> dict[str, Any]:
    return {"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm).decode()}


def _run(steps: Iterator[Step], heard: str) -> list[Step]:
    """Carry out the steps as the connection does, answering recognition with `heard`."""
    done: list[Step] = []
    for step in steps:
        done.append(step)
        if isinstance(step, Recognise):
            done += _run(step.then(heard), heard)
    return done


def test_a_spoken_turn_is_recognised_and_transcribed_as_what_was_heard() -> None:
    mock = MockRealtime()
    mock.listen_for("what time is it")
    session = RealtimeSession(mock._rules)
    transcription = {"audio": {"input": {"transcription": {"model": "gpt-4o-transcribe"}}}}
    list(
        session.receive(
            {"type": "session.update", "session": {"type": "realtime", **transcription}}
        )
    )
    said = tone_pcm16(600) + silence_pcm16(700)
    steps = _run(session.receive(_append(said)), heard="")
    (recognise,) = [s for s in steps if isinstance(s, Recognise)]
    assert recognise.phrases == ("what time is it",)
    assert (recognise.rate, recognise.encoding) == (24000, "linear16")
    # The turn ends after the tone and the silence that ended it (server VAD's 500 ms).
    assert len(recognise.audio) == 48 * 1100
    events = [s.event for s in steps if isinstance(s, Send)]
    (completed,) = [
        e for e in events if e["type"] == "conversation.item.input_audio_transcription.completed"
    ]
    assert completed["transcript"] == ""  # nothing heard: an empty transcript, not a script


def test_without_phrases_nothing_is_recognised() -> None:
    session = RealtimeSession(MockRealtime()._rules)
    steps = list(session.receive(_append(tone_pcm16(600) + silence_pcm16(700))))
    assert not [s for s in steps if isinstance(s, Recognise)]
    types = [s.event["type"] for s in steps if isinstance(s, Send)]
    assert "input_audio_buffer.committed" in types  # committed at once, as before


def test_a_committed_turn_is_recognised_whole_and_a_cleared_one_never() -> None:
    mock = MockRealtime()
    mock.listen_for("what time is it")
    session = RealtimeSession(mock._rules)
    manual = {"type": "realtime", "audio": {"input": {"turn_detection": None}}}
    list(session.receive({"type": "session.update", "session": manual}))
    list(session.receive(_append(tone_pcm16(300))))
    list(session.receive({"type": "input_audio_buffer.clear"}))  # this audio is gone
    list(session.receive(_append(tone_pcm16(400))))
    steps = _run(session.receive({"type": "input_audio_buffer.commit"}), heard="what time is it")
    (recognise,) = [s for s in steps if isinstance(s, Recognise)]
    assert len(recognise.audio) == 48 * 400
    assert [s.event["type"] for s in steps if isinstance(s, Send)][:1] == [
        "input_audio_buffer.committed"
    ]
