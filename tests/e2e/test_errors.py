"""What the user sees when things go wrong, and that they can carry on afterwards."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from harness.browser import VoiceAgentApp
from harness.mock_openai import MockRealtime
from harness.pytest_plugin import ProxyEndpoint
from tests.processes import free_port


def test_wrong_proxy_url_fails_within_seconds(voice_app: VoiceAgentApp) -> None:
    voice_app.open(proxy_url=f"ws://127.0.0.1:{free_port()}/openai")

    voice_app.testid("connect-button").click()

    expect(voice_app.testid("connection-status")).to_have_text("error", timeout=3000)
    expect(voice_app.testid("has-sent-settings")).to_have_text("false")
    assert any("Connection error (code 1006)" in line for line in voice_app.event_log())


def test_wrong_path_on_the_proxy_fails_within_seconds(
    voice_app: VoiceAgentApp, proxy: ProxyEndpoint
) -> None:
    voice_app.open(proxy_url=proxy.url.replace("/openai", "/no-such-endpoint"))

    voice_app.testid("connect-button").click()

    expect(voice_app.testid("connection-status")).to_have_text("error", timeout=3000)


def test_unreachable_upstream_shows_an_error_then_closes(
    voice_app: VoiceAgentApp, proxy_factory: object
) -> None:
    dead_upstream = f"ws://127.0.0.1:{free_port()}/v1/realtime"
    broken = proxy_factory(upstream_url=dead_upstream, upstream_connect_timeout=2.0)  # type: ignore[operator]
    voice_app.open(proxy_url=broken.url)

    voice_app.testid("connect-button").click()

    expect(voice_app.testid("agent-error-count")).to_have_text("1", timeout=5000)
    expect(voice_app.testid("connection-status")).to_have_text("closed", timeout=5000)
    assert any("[upstream_unavailable]" in line for line in voice_app.event_log())
    code, description = voice_app.error_banner() or ("", "")
    assert code == "upstream_unavailable" and description


def test_upstream_error_is_counted_logged_and_shown_and_the_chat_goes_on(
    voice_app: VoiceAgentApp, mock_openai: MockRealtime
) -> None:
    mock_openai.on_user_text("boom").send_error(
        "server_error", "The server had an error processing your request.", type="server_error"
    )
    mock_openai.on_user_text("slow").send_error(
        "rate_limit_exceeded", "Slow down.", type="invalid_request_error"
    )
    expect(voice_app.testid("error-banner")).to_be_hidden()
    voice_app.connect()

    voice_app.send_text("boom")

    expect(voice_app.testid("agent-error-count")).to_have_text("1")
    expect(voice_app.testid("error-banner")).to_be_visible()
    assert voice_app.error_banner() == (
        "server_error",
        "The server had an error processing your request.",
    )
    voice_app.send_text("slow down")
    expect(voice_app.testid("agent-error-count")).to_have_text("2")
    assert voice_app.error_banner() == ("rate_limit_exceeded", "Slow down.")  # the last one
    assert any(
        re.search(r"Error \(agent\): The server had an error.*\[server_error\]", line)
        for line in voice_app.event_log()
    )
    expect(voice_app.testid("connection-status")).to_have_text("connected")
    assert voice_app.ask("still there?") == "You said: still there?"


def test_upstream_close_shows_closed_and_the_next_message_reconnects(
    voice_app: VoiceAgentApp, mock_openai: MockRealtime
) -> None:
    mock_openai.on_user_text("goodbye").close(1011, "overloaded").once()
    voice_app.connect()

    voice_app.send_text("goodbye")

    expect(voice_app.testid("connection-status")).to_have_text("closed", timeout=5000)
    expect(voice_app.testid("has-sent-settings")).to_have_text("false")
    assert any("Connection closed (code 1011" in line for line in voice_app.event_log())

    assert voice_app.ask("hello again") == "You said: hello again"
    expect(voice_app.testid("connection-status")).to_have_text("connected")
    assert len(mock_openai.connections) == 2
