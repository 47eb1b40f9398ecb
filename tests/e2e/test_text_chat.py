"""Text chat: what the user sees in the history and the agent response."""

from __future__ import annotations

from playwright.sync_api import expect

from harness.browser import VoiceAgentApp
from harness.mock_openai import MockRealtime


def test_single_message_gets_the_agents_reply(
    voice_app: VoiceAgentApp, mock_openai: MockRealtime
) -> None:
    mock_openai.on_user_text("weather").reply_with_audio("It is sunny in Paris.")
    voice_app.connect()

    reply = voice_app.ask("What is the weather in Paris?")

    assert reply == "It is sunny in Paris."
    expect(voice_app.testid("agent-response")).to_have_text("It is sunny in Paris.")
    expect(voice_app.testid("text-input")).to_have_value("")
    expect(voice_app.testid("agent-state")).to_have_text("idle", timeout=5000)


def test_user_message_is_echoed_into_the_history_before_the_reply(
    voice_app: VoiceAgentApp, mock_openai: MockRealtime
) -> None:
    mock_openai.on_user_text("hello").stall(500).reply_with_text("Hi!")
    voice_app.connect()

    voice_app.send_text("hello agent")

    # The app draws history only from ConversationText, so this row is the proxy's echo.
    user_turn = voice_app.testid("conversation-history").locator('li[data-role="user"]')
    expect(user_turn).to_have_text("user:hello agent")
    assert voice_app.assistant_messages().count() == 0  # the echo came first
    assert voice_app.wait_for_reply() == "Hi!"
    assert voice_app.history() == [("user", "hello agent"), ("assistant", "Hi!")]


def test_multi_turn_conversation_keeps_every_turn_in_order(
    voice_app: VoiceAgentApp, mock_openai: MockRealtime
) -> None:
    voice_app.connect()
    questions = ["first question", "second question", "third question"]

    replies = [voice_app.ask(question) for question in questions]

    assert replies == [f"You said: {q}" for q in questions]
    assert voice_app.history() == [
        turn for q in questions for turn in (("user", q), ("assistant", f"You said: {q}"))
    ]
    expect(voice_app.testid("agent-response")).to_have_text("You said: third question")
    # Upstream holds the same conversation, in the same order.
    texts = [
        part.get("text") or part.get("transcript")
        for item in mock_openai.connections[-1].conversation()
        for part in item.get("content", [])
    ]
    assert texts == [turn for _, turn in voice_app.history()]
