"""The agent speaks the greeting and injected messages (docs/protocol-mapping.md, "Making
the agent say an exact text"): heard in the browser, shown with the exact text, and held in
the conversation upstream."""

from __future__ import annotations

from playwright.sync_api import expect

from harness.browser import VoiceAgentApp
from harness.mock_openai import MockRealtime


def test_the_greeting_is_heard_before_the_first_user_turn(
    voice_app: VoiceAgentApp, mock_openai: MockRealtime
) -> None:
    greeting = "Hello! I am the test agent."
    voice_app.open(greeting=greeting)
    voice_app.connect()

    expect(voice_app.testid("greeting-sent")).to_have_text("true")
    voice_app.wait_for_played_ms(300)  # the mock says it in 300 ms of audio
    assert voice_app.history() == [("assistant", greeting)]
    assert voice_app.audio_stats().received_ms == 300
    assert not [f for f in voice_app.frame_types("sent") if f == "InjectUserMessage"]
    held = mock_openai.wait_for_sync("conversation.item.create")
    assert held["item"]["content"] == [{"type": "output_text", "text": greeting}]


def test_an_injected_agent_message_is_spoken(
    voice_app: VoiceAgentApp, mock_openai: MockRealtime
) -> None:
    voice_app.connect()
    voice_app.inject_agent_message("Your table is ready.")

    assert voice_app.wait_for_reply() == "Your table is ready."
    voice_app.wait_for_played_ms(300)
    expect(voice_app.testid("agent-state")).to_have_text("idle")
    assert voice_app.history() == [("assistant", "Your table is ready.")]
    speak = mock_openai.wait_for_sync("response.create")
    assert speak["response"]["conversation"] == "none"
