"""A misbehaving upstream on real sockets: mistyped events are dropped, the session lives.

(An upstream that is silent after accept, deaf after ready, sends huge frames or never
answers pings is in test_limits.py, with the limit each one runs into.)
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
import pytest

from harness.client import ComponentClient
from harness.mock_openai import MockRealtime

MISTYPED: list[dict[str, Any]] = [
    {"type": ["response.done"], "event_id": "e1"},
    {"type": "input_audio_buffer.speech_stopped", "event_id": "e2", "audio_end_ms": "soon",
     "item_id": "item_1"},
    {"type": "response.output_audio.delta", "event_id": "e3", "response_id": "r", "item_id": ["x"],
     "output_index": 0, "content_index": 0, "delta": "AAAA"},
    {"type": "response.created", "event_id": "e4", "response": None},
    {"type": "conversation.item.input_audio_transcription.completed", "event_id": "e5",
     "item_id": "i", "content_index": 0, "transcript": {"text": "hi"}},
    {"type": "error", "event_id": "e6", "error": ["boom"]},
]  # fmt: skip


@pytest.mark.parametrize("event", MISTYPED, ids=lambda e: str(e["type"]))
async def test_a_mistyped_upstream_event_is_reported_dropped_and_survived(
    mock_openai: MockRealtime,
    component_client: ComponentClient,
    event: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    await component_client.start()
    mock_openai.push_garbage(orjson.dumps(event).decode())
    error = await component_client.wait_for("Error")
    assert error["code"] == "unmapped_upstream_event"
    await component_client.inject("still there?")
    assert await component_client.wait_for_reply() == "You said: still there?"
    dropped = [
        r for r in caplog.records if "malformed" in r.getMessage() or "not a JSON" in r.getMessage()
    ]
    assert dropped and all(r.levelno == logging.WARNING and not r.exc_info for r in dropped)


async def test_an_upstream_error_that_echoes_the_key_reaches_the_client_scrubbed(
    mock_openai: MockRealtime, component_client: ComponentClient
) -> None:
    from harness.pytest_plugin import MOCK_API_KEY

    masked = f"{MOCK_API_KEY[:6]}***{MOCK_API_KEY[-4:]}"
    mock_openai.on_user_text("leak").send_error(MOCK_API_KEY, f"Incorrect API key: {masked}")
    await component_client.start()
    await component_client.inject("leak it")
    error = await component_client.wait_for("Error")
    frames = orjson.dumps(component_client.messages).decode()
    assert MOCK_API_KEY not in frames and masked not in frames and "***" not in frames
    assert error["code"] == "[redacted]"
