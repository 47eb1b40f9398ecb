"""Connecting: Settings first, SettingsApplied shown, greeting, KeepAlive, queued text."""

from __future__ import annotations

import functools
from collections.abc import Callable
from urllib.parse import urlsplit

from playwright.sync_api import expect

from harness.browser import VoiceAgentApp
from harness.mock_openai import MockRealtime
from harness.pytest_plugin import ProxyEndpoint
from proxy.test_app import http_response


def test_connect_sends_settings_first_and_shows_settings_applied(
    voice_app: VoiceAgentApp, mock_openai: MockRealtime
) -> None:
    expect(voice_app.testid("connection-status")).to_have_text("closed")
    expect(voice_app.testid("has-sent-settings")).to_have_text("false")

    voice_app.connect()

    assert voice_app.frame_types("sent")[0] == "Settings"
    # The app's own Settings name what the Realtime backend uses: nothing to warn about.
    assert voice_app.frame_types("received")[:2] == ["Welcome", "SettingsApplied"]
    assert "Warning" not in voice_app.frame_types("received")
    session = mock_openai.sent("session.created")[0]["session"]
    expect(voice_app.testid("session-id")).to_have_text(session["id"])
    update = mock_openai.wait_for_sync("session.update")["session"]
    assert update["model"] == "gpt-realtime"
    assert update["instructions"] == "You are a helpful voice assistant. Keep answers short."
    expect(voice_app.testid("agent-error-count")).to_have_text("0")


def test_greeting_is_marked_shown_only_once_its_text_arrived(
    voice_app: VoiceAgentApp, mock_openai: MockRealtime
) -> None:
    greeting = "Hello! I am the test agent. How can I help?"
    voice_app.open(greeting=greeting)
    expect(voice_app.testid("greeting-sent")).to_have_text("false")

    voice_app.connect()

    expect(voice_app.testid("greeting-sent")).to_have_text("true")
    assert voice_app.history() == [("assistant", greeting)]
    expect(voice_app.testid("agent-response")).to_have_text(greeting)
    # The model was told it said the greeting.
    item = mock_openai.wait_for_sync("conversation.item.create")["item"]
    assert (item["role"], item["content"][0]["text"]) == ("assistant", greeting)


def test_greeting_is_not_marked_when_the_upstream_rejects_the_settings(
    voice_app: VoiceAgentApp, mock_openai: MockRealtime
) -> None:
    mock_openai.on_client_event("session.update").send_error(
        "invalid_value", "Invalid value for voice", param="session.audio.output.voice"
    )
    voice_app.open(greeting="Hello there")
    voice_app.testid("connect-button").click()

    expect(voice_app.testid("agent-error-count")).to_have_text("1")
    expect(voice_app.testid("greeting-sent")).to_have_text("false")
    expect(voice_app.testid("has-sent-settings")).to_have_text("false")
    assert any("Invalid value for voice" in line for line in voice_app.event_log())


def test_keepalive_is_sent_periodically_after_settings_and_never_errors(
    voice_app: VoiceAgentApp, mock_openai: MockRealtime
) -> None:
    voice_app.open(keep_alive_ms=200)
    voice_app.connect()
    voice_app.wait_for_frames("KeepAlive", 3)

    sent = voice_app.frame_types("sent")
    assert sent[0] == "Settings"
    expect(voice_app.testid("agent-error-count")).to_have_text("0")
    expect(voice_app.testid("connection-status")).to_have_text("connected")
    assert mock_openai.received("input_audio_buffer.append") == []  # KeepAlive goes nowhere


def test_text_typed_before_settings_applied_is_queued_then_answered(
    voice_app: VoiceAgentApp, mock_openai: MockRealtime
) -> None:
    mock_openai.on_client_event("session.update").stall(800).once()  # a slow upstream

    voice_app.send_text("Are you there?")  # before the connection is even open

    assert voice_app.wait_for_reply() == "You said: Are you there?"
    sent = voice_app.frame_types("sent")
    received = voice_app.frame_types("received")
    assert sent.index("InjectUserMessage") > sent.index("Settings")
    # The app waited: its InjectUserMessage left only after SettingsApplied arrived.
    order = [(f.direction, f.type) for f in voice_app.frames]
    assert order.index(("sent", "InjectUserMessage")) > order.index(("received", "SettingsApplied"))
    assert "SettingsApplied" in received


def test_proxy_auth_token_from_the_page_query_is_required_and_accepted(
    voice_app: VoiceAgentApp,
    mock_openai: MockRealtime,
    proxy_factory: Callable[..., ProxyEndpoint],
) -> None:
    guarded = proxy_factory(client_token="page-token-123")
    voice_app.open(proxy_url=guarded.url)
    voice_app.testid("connect-button").click()
    expect(voice_app.testid("connection-status")).to_have_text("error", timeout=3000)

    voice_app.open(proxy_url=guarded.url, token="page-token-123")
    voice_app.connect()

    assert voice_app.ask("let me in") == "You said: let me in"


def test_text_sent_while_the_proxy_refuses_stays_in_the_box_after_one_attempt(
    voice_app: VoiceAgentApp, proxy_factory: Callable[..., ProxyEndpoint]
) -> None:
    guarded = proxy_factory(client_token="the-right-token")
    voice_app.open(proxy_url=guarded.url, token="a-wrong-token")

    voice_app.send_text("keep this for later")  # focus, type, Send: one action

    expect(voice_app.testid("connection-status")).to_have_text("error")
    expect(voice_app.testid("text-input")).to_have_value("keep this for later")
    assert len(voice_app.sockets) == 1  # one connection attempt for one action


def test_a_path_only_endpoint_and_the_token_given_to_the_page_reach_the_proxy(
    voice_app: VoiceAgentApp,
    mock_openai: MockRealtime,
    proxy_factory: Callable[..., ProxyEndpoint],
) -> None:
    # The proxy serves the app itself; the page's endpoint is a path on the same server.
    serving = proxy_factory(
        client_token="abc",
        http_handler=functools.partial(http_response, proxy_path="/openai"),
    )
    host = urlsplit(serving.url).netloc
    voice_app.page.goto(f"http://{host}/?token=abc&proxyEndpoint=%2Fopenai")

    voice_app.connect()

    assert voice_app.ask("hi") == "You said: hi"
    assert [socket.url for socket in voice_app.sockets] == [f"ws://{host}/openai?token=abc"]


def test_every_button_has_a_name_of_its_own(voice_app: VoiceAgentApp) -> None:
    voice_app.connect()
    voice_app.start_microphone()  # the microphone button now offers to stop it

    names = [button.inner_text() for button in voice_app.page.get_by_role("button").all()]

    assert len(set(names)) == len(names)
    assert not [(a, b) for a in names for b in names if a != b and a in b], names
    voice_app.stop_microphone()
