"""The session core's shape: sans-I/O imports, the opening's transition table."""

from __future__ import annotations

import subprocess
import sys
import typing

import pytest

from harness.mock_openai import tone_pcm16
from proxy.client_messages import ClientMessage
from proxy.phases import OPENING, IllegalStep, Phase, Step, advance
from proxy.session import CLIENT_HANDLERS, UPSTREAM_HANDLERS
from proxy.upstream_events import UPSTREAM_EVENTS
from tests.unit import realtime_events as events
from tests.unit.session_driver import Driver


def test_the_session_core_imports_no_network_library() -> None:
    # The core decides; the shell (bridge, legs, function_http) does the I/O.
    code = (
        "import sys, proxy.session\n"
        "network = {'httpx', 'httpcore', 'anyio', 'websockets', 'harness'}\n"
        "found = sorted(network & set(sys.modules))\n"
        "print(','.join(found))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == ""


def test_the_opening_moves_only_along_its_table() -> None:
    phase = Phase.CONNECTING
    for step in (Step.SOCKET_OPEN, Step.SETTINGS_SENT, Step.SETTINGS_REFUSED):
        phase = advance(phase, step)
    assert phase is Phase.NEEDS_SETTINGS  # refused Settings: corrected ones may come
    assert advance(advance(phase, Step.SETTINGS_SENT), Step.SETTINGS_APPLIED) is Phase.READY
    with pytest.raises(IllegalStep):
        advance(Phase.CONNECTING, Step.SETTINGS_APPLIED)  # no Settings went yet
    with pytest.raises(IllegalStep):
        advance(Phase.READY, Step.SETTINGS_SENT)  # later Settings do not reopen the session
    assert all(advance(p, Step.CLOSE) is Phase.CLOSED for p in Phase)
    assert len(OPENING) == 4 + len(Phase)


# ------------------------------------------------------------------ barge-in: one rule


def test_an_interrupt_cancels_an_in_conversation_response_and_truncates_it() -> None:
    # No server VAD cancels it for us: the proxy cancels, and cuts the item to what the
    # user heard; the interrupting speech waits for the response to end.
    driver = Driver()
    driver.ready()
    driver.client({"type": "InjectUserMessage", "content": "tell me"})
    driver.respond()
    driver.upstream(events.audio_delta("item_a", tone_pcm16(1000, rate=24000)))
    driver.clock.advance(0.4)
    interrupt = {"type": "InjectAgentMessage", "message": "Stop.", "behavior": "interrupt"}
    out = driver.client(interrupt)
    assert out.upstream_types() == ["response.cancel", "conversation.item.truncate"]
    assert out.upstream[1]["audio_end_ms"] == 400
    spoken = driver.finish()
    assert spoken.upstream_types() == ["conversation.item.create", "response.create"]


def test_an_interrupt_cancels_spoken_text_and_truncates_nothing() -> None:
    driver = Driver()
    driver.ready({"type": "Settings", "agent": {"greeting": "Hello there!"}})
    driver.upstream(events.response_created("resp_greet", conversation_id=None))
    driver.upstream(events.audio_delta("item_g", tone_pcm16(1000, rate=24000), "resp_greet"))
    driver.clock.advance(0.4)
    interrupt = {"type": "InjectAgentMessage", "message": "Stop.", "behavior": "interrupt"}
    out = driver.client(interrupt)
    assert out.upstream_types() == ["response.cancel"]


def test_user_speech_leaves_an_in_conversation_response_to_server_vad() -> None:
    # Server VAD's interrupt_response cancels it upstream: only the truncate is ours.
    driver = Driver()
    driver.ready()
    driver.client({"type": "InjectUserMessage", "content": "tell me"})
    driver.respond()
    driver.upstream(events.audio_delta("item_a", tone_pcm16(1000, rate=24000)))
    driver.clock.advance(0.4)
    out = driver.upstream(events.speech_started())
    assert out.upstream_types() == ["conversation.item.truncate"]


# ------------------------------------------------------------------ one dispatch


def test_every_client_message_and_upstream_event_has_its_one_handler() -> None:
    # A type added to the wire modules without a row here would fail at its first frame.
    assert set(CLIENT_HANDLERS) == {bytes, *typing.get_args(ClientMessage)}
    assert set(UPSTREAM_HANDLERS) == set(UPSTREAM_EVENTS.values())
