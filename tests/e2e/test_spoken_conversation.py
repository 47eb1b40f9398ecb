"""A spoken conversation through Chromium, end to end, every step checked by recognising
words: what the mock heard from the page's microphone, and what the page's speaker
played (recorded from its audio output). The microphone stays on through each answer,
as a real user's does (`say` reopens it only to play the next words): each turn after
the first starts with the silence heard while the agent answered."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from harness.browser import VoiceAgentApp
from harness.mock_openai import MockRealtime

GREETING = "Hello! How can I help you?"
QUESTION = "what is the weather in paris"
ANSWER = "It is sunny in Paris."
STORY_REQUEST = "tell me a story"
STORY = (
    "Once upon a time a fox lived in a quiet forest.",
    "Every morning the fox walked down to the river.",
    "One day the fox found a golden key.",
    "The key opened a door under an old tree.",
    "Behind the door there was a secret garden.",
)
STOP = "please stop the story"
AFTER_STOP = "Okay, I will stop."
GET_WEATHER = {
    "name": "get_weather",
    "description": "Current weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


@pytest.mark.mock_openai(voice="speech")
def test_a_spoken_conversation_with_a_function_call_and_a_barge_in(
    voice_app: VoiceAgentApp, mock_openai: MockRealtime
) -> None:
    mock_openai.on_user_speech(QUESTION).call_function("get_weather", {"city": "Paris"}).once()
    mock_openai.on_function_output("get_weather").reply_with_audio(ANSWER).once()
    # Sent a little faster than it is played, so it is still arriving when cut.
    mock_openai.on_user_speech(STORY_REQUEST).reply_with_audio(
        " ".join(STORY), chunk_interval_ms=80
    ).once()
    mock_openai.on_user_speech(STOP).reply_with_audio(AFTER_STOP).once()
    calls: list[dict[str, Any]] = []

    def get_weather(arguments: dict[str, Any]) -> dict[str, Any]:
        calls.append(arguments)
        return {"city": arguments["city"], "sky": "sunny"}

    voice_app.open(greeting=GREETING)
    voice_app.register_function(GET_WEATHER, get_weather)
    voice_app.connect()

    # 1. The greeting is heard.
    voice_app.wait_for_reply(1)
    assert voice_app.heard() == [GREETING]

    # 2. The user asks a question aloud, and the mock hears those words.
    voice_app.say(QUESTION)
    assert mock_openai.wait_heard_sync(1) == [QUESTION]
    # 3. It calls the page's function (the page answers it with the arguments asked)...
    # 4. ...and the answer, made from the function's result, is heard.
    assert voice_app.wait_for_reply(2) == ANSWER
    assert voice_app.heard() == [ANSWER]
    assert calls == [{"city": "Paris"}]

    # 5. The user asks for a story, then talks over it: the agent stops.
    played_before = voice_app.audio_stats().played_ms
    voice_app.say(STORY_REQUEST)  # after the silence heard through the answer
    assert mock_openai.wait_heard_sync(2) == [QUESTION, STORY_REQUEST]
    voice_app.wait_for_played_ms(played_before + 3000)  # the first sentence is out
    voice_app.say(STOP)
    expect(voice_app.testid("playback-interrupted")).to_have_text("1")
    # Sentence by sentence (espeak-ng pauses 0.3 s between them): the first ones were
    # heard, in order, and the rest never played.
    story_heard = [phrase for phrase in voice_app.heard(*STORY, pause_s=0.25) if phrase]
    assert story_heard == list(STORY[: len(story_heard)])
    assert 1 <= len(story_heard) < len(STORY) - 1

    # 6. The next answer is heard.
    assert voice_app.wait_for_reply(3) == AFTER_STOP
    assert voice_app.heard() == [AFTER_STOP]
    assert mock_openai.heard == [QUESTION, STORY_REQUEST, STOP]
    voice_app.stop_microphone()
