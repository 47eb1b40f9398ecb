"""Real words both ways through Chromium: said into its fake microphone and recognised by
the mock; spoken by the mock and recognised in what the page's speaker played. A
test-only fault in the page's audio (bytes swapped, a wrong rate) makes the check fail.
"""

from __future__ import annotations

import pytest

from harness.browser import VoiceAgentApp
from harness.mock_openai import MockRealtime

QUESTION = "what time is it"
ANSWER = "it is noon in paris"

# Test-only faults, injected into the loaded page: each breaks one direction of its
# audio the way a real bug would, and the check below must notice.
FAULTS = {
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


def check_the_page_played_the_answer(voice_app: VoiceAgentApp, number: int = 1) -> None:
    """The page must be heard playing ANSWER (its `number`-th reply), whole, and nothing
    else."""
    assert voice_app.wait_for_reply(number) == ANSWER
    heard = voice_app.heard()
    assert heard == [ANSWER], f"the page played {heard}, not {[ANSWER]}"


@pytest.mark.mock_openai(voice="speech")
@pytest.mark.parametrize("fault", [f for f in FAULTS if f.startswith("speaker")])
def test_a_broken_speaker_path_fails_the_check(
    voice_app: VoiceAgentApp, mock_openai: MockRealtime, fault: str
) -> None:
    mock_openai.on_user_text("time").reply_with_audio(ANSWER).times(2)
    voice_app.connect()  # 24 kHz out
    voice_app.send_text(QUESTION)  # typed: only the way out is under test
    check_the_page_played_the_answer(voice_app)  # the same page, still sound

    voice_app.page.evaluate(FAULTS[fault])
    voice_app.send_text(QUESTION)
    with pytest.raises(AssertionError, match="the page played"):
        check_the_page_played_the_answer(voice_app, 2)
