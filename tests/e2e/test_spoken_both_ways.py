"""Real words both ways through Chromium: said into its fake microphone and recognised by
the mock; spoken by the mock and recognised in what the page's speaker played. A
test-only fault in the page's audio (bytes swapped, a wrong rate) makes the check fail.
"""

from __future__ import annotations

import pytest

from harness.browser import VoiceAgentApp
from harness.mock_openai import MockRealtime

QUESTION = "what is the weather in paris"  # six words: heard at every rate
ANSWER = "it is noon in paris"

# Test-only faults, injected into the loaded page: each breaks one direction of its
# audio the way a real bug would, and the check below must notice.
FAULTS = {
    "microphone bytes swapped": """() => {
        const agent = window.voiceAgentApp.agent;
        const send = agent.sendAudio.bind(agent);
        agent.sendAudio = (frame) => {
          const bytes = new Uint8Array(frame.slice(0));
          for (let i = 0; i + 1 < bytes.length; i += 2) {
            [bytes[i], bytes[i + 1]] = [bytes[i + 1], bytes[i]];
          }
          send(bytes.buffer);
        };
      }""",
    # Settings said the input rate; the microphone opens at half of it.
    "microphone at a wrong rate": """() => {
        const options = window.voiceAgentApp.options;
        options.inputRate = options.inputRate / 2;
      }""",
    "speaker bytes swapped": """() => {
        const speaker = window.voiceAgentApp.speaker;
        const play = speaker.play.bind(speaker);
        speaker.play = (frame) => {
          const bytes = new Uint8Array(frame.slice(0));
          for (let i = 0; i + 1 < bytes.length; i += 2) {
            [bytes[i], bytes[i + 1]] = [bytes[i + 1], bytes[i]];
          }
          play(bytes.buffer);
        };
      }""",
    # A common slip: buffers made at the usual hardware rate (48 kHz), not the stream's
    # (24 kHz), so the answer plays twice as fast. (Within about 1.5 times, a short
    # phrase can still be made out: words are what this checks, not pitch.)
    "speaker at a wrong rate": """() => {
        const speaker = window.voiceAgentApp.speaker;
        speaker.rate = 48000;
      }""",
}


def check_the_mock_heard_the_question(
    voice_app: VoiceAgentApp, mock_openai: MockRealtime, turn: int = 1
) -> None:
    """The user asks QUESTION aloud (their `turn`-th spoken turn); the mock must
    recognise it. The microphone stays on afterwards, as a real user's does."""
    voice_app.say(QUESTION)
    try:
        heard = mock_openai.wait_heard_sync(turn)[turn - 1 :]
    except AssertionError:  # not even a turn
        heard = mock_openai.heard[turn - 1 :]
    assert heard == [QUESTION], f"the mock heard {heard}, not {[QUESTION]}"


def check_the_page_played_the_answer(voice_app: VoiceAgentApp, number: int = 1) -> None:
    """The page must be heard playing ANSWER (its `number`-th reply), whole, and nothing
    else."""
    assert voice_app.wait_for_reply(number) == ANSWER
    heard = voice_app.heard()
    assert heard == [ANSWER], f"the page played {heard}, not {[ANSWER]}"


@pytest.mark.mock_openai(voice="speech")
@pytest.mark.parametrize(("input_rate", "output_rate"), [(16000, 24000), (48000, 8000)])
def test_spoken_words_are_heard_both_ways(
    voice_app: VoiceAgentApp, mock_openai: MockRealtime, input_rate: int, output_rate: int
) -> None:
    mock_openai.on_user_speech(QUESTION).reply_with_audio(ANSWER).once()
    voice_app.open(input_rate=input_rate, output_rate=output_rate)
    voice_app.connect()

    check_the_mock_heard_the_question(voice_app, mock_openai)
    check_the_page_played_the_answer(voice_app)


@pytest.mark.mock_openai(voice="speech")
@pytest.mark.parametrize("fault", [f for f in FAULTS if f.startswith("microphone")])
def test_a_broken_microphone_path_fails_the_check(
    voice_app: VoiceAgentApp, mock_openai: MockRealtime, fault: str
) -> None:
    mock_openai.on_user_speech(QUESTION).reply_with_text(ANSWER).once()
    voice_app.connect()
    check_the_mock_heard_the_question(voice_app, mock_openai)  # the same page, still sound
    voice_app.wait_for_reply()

    voice_app.page.evaluate(FAULTS[fault])
    with pytest.raises(AssertionError, match="the mock heard"):
        check_the_mock_heard_the_question(voice_app, mock_openai, 2)


@pytest.mark.mock_openai(voice="speech")
@pytest.mark.parametrize("fault", [f for f in FAULTS if f.startswith("speaker")])
def test_a_broken_speaker_path_fails_the_check(
    voice_app: VoiceAgentApp, mock_openai: MockRealtime, fault: str
) -> None:
    mock_openai.on_user_text("weather").reply_with_audio(ANSWER).times(2)
    voice_app.connect()  # 24 kHz out
    voice_app.send_text(QUESTION)  # typed: only the way out is under test
    check_the_page_played_the_answer(voice_app)  # the same page, still sound

    voice_app.page.evaluate(FAULTS[fault])
    voice_app.send_text(QUESTION)
    with pytest.raises(AssertionError, match="the page played"):
        check_the_page_played_the_answer(voice_app, 2)
