"""The test-app through our proxy to the real OpenAI Realtime API (skips without a key)."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from playwright.sync_api import expect

from harness.browser import VoiceAgentApp
from harness.pytest_plugin import OPENAI_REALTIME_URL, ProxyEndpoint

pytestmark = pytest.mark.skipif(
    not os.environ.get("OPENAI_API_KEY"), reason="needs a real OPENAI_API_KEY"
)


def test_real_text_turn_is_shown_and_played(
    voice_app: VoiceAgentApp, proxy_factory: Callable[..., ProxyEndpoint]
) -> None:
    real = proxy_factory(
        upstream_url=os.environ.get("OPENAI_REALTIME_URL", OPENAI_REALTIME_URL),
        api_key=os.environ["OPENAI_API_KEY"],
    )
    voice_app.open(proxy_url=real.url, greeting="Hello!")
    voice_app.connect(timeout=20)
    expect(voice_app.testid("greeting-sent")).to_have_text("true")

    reply = voice_app.ask("Reply with the single word: ready", timeout=30)

    assert "ready" in reply.lower()
    expect(voice_app.testid("agent-state")).to_have_text("idle", timeout=30_000)
    stats = voice_app.audio_stats()
    assert stats.received_ms > 0 and stats.played_ms == stats.received_ms
    assert voice_app.error_count() == 0
