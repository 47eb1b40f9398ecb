"""After a disconnect the next message reconnects and carries the conversation so far."""

from __future__ import annotations

from playwright.sync_api import expect

from harness.browser import VoiceAgentApp
from harness.mock_openai import MockRealtime


def test_next_message_after_a_disconnect_reconnects_and_is_answered(
    voice_app: VoiceAgentApp, mock_openai: MockRealtime
) -> None:
    voice_app.connect()
    assert voice_app.ask("before the break") == "You said: before the break"

    voice_app.disconnect()
    expect(voice_app.testid("has-sent-settings")).to_have_text("false")
    mock_openai.wait_for_connections_sync(1)[0].wait_closed_sync()

    assert voice_app.ask("after the break") == "You said: after the break"
    expect(voice_app.testid("connection-status")).to_have_text("connected")
    assert len(mock_openai.connections) == 2
    assert voice_app.frame_types("sent").count("Settings") == 2


def test_reconnect_sends_the_history_as_context_and_does_not_greet_again(
    voice_app: VoiceAgentApp, mock_openai: MockRealtime
) -> None:
    greeting = "Welcome back to the test agent."
    voice_app.open(greeting=greeting)
    voice_app.connect()
    voice_app.ask("my name is Ada")
    voice_app.disconnect()

    voice_app.ask("what is my name?")

    second = mock_openai.wait_for_connections_sync(2)[1]
    created = [e["item"] for e in second.received if e["type"] == "conversation.item.create"]
    replayed = [(item["role"], item["content"][0]["text"]) for item in created]
    assert replayed == [
        ("assistant", greeting),
        ("user", "my name is Ada"),
        ("assistant", "You said: my name is Ada"),
        ("user", "what is my name?"),
    ]
    # The page shows the greeting once: the proxy did not greet the reconnect.
    assert [text for _, text in voice_app.history()].count(greeting) == 1
    assert voice_app.history()[-1] == ("assistant", "You said: what is my name?")
