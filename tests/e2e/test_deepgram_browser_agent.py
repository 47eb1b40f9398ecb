"""Deepgram's own browser component, `<deepgram-agent>` (npm `@deepgram/browser-agent`
0.2.1), in Chromium through the proxy against the mock: a client nobody here wrote.

What its code does (dist/index.mjs), and so what these tests lean on: it opens
`new WebSocket(url, [auth-scheme, token])` (default scheme `bearer`), sends the `config`
attribute as its first message, streams its microphone as linear16 at its AudioContext's
own rate (ScriptProcessor, 4096 samples a buffer), plays binary frames as Int16 at
`output-sample-rate`, stops every scheduled buffer on `UserStartedSpeaking`, and runs an
idle timer (`idle-timeout-ms`) that starts when the socket opens and again once the agent
has finished: after `AgentAudioDone` clears the agent as speaker and playback has ended.
`ConversationText {assistant}` makes the agent the speaker, so the timer starts only if
`AgentAudioDone` comes after it. When the timer fires it closes with 1000 "idle timeout".
"""

from __future__ import annotations

import time
from collections.abc import Callable

from harness.browser import FakeMicrophone
from harness.endpoint import ProxyEndpoint
from harness.mock_openai import MockRealtime, tone_pcm16
from tests.deepgram_agent import DeepgramAgentPage

RATE = FakeMicrophone.RATE
TOKEN = "browser-agent-token"
IDLE_MS = 3000


def silence(ms: int) -> bytes:
    return bytes(2 * RATE * ms // 1000)


def test_a_spoken_turn_is_answered_and_the_idle_component_then_closes(
    deepgram_agent_page: DeepgramAgentPage,
    mock_openai: MockRealtime,
    proxy_factory: Callable[..., ProxyEndpoint],
    fake_microphone: FakeMicrophone,
) -> None:
    mock_openai.on_user_speech().transcribe_as("what time is it").reply_with_audio(
        "It is noon.", chunks=5, chunk_ms=100
    ).once()
    proxy: ProxyEndpoint = proxy_factory(client_token=TOKEN)
    # Heard from when the page opens the microphone, before the socket is open: a lead of
    # silence so no speech is lost, then 800 ms of "speech" for the mock's energy VAD.
    fake_microphone.load(silence(500) + tone_pcm16(800, rate=RATE))
    agent = deepgram_agent_page.open(
        proxy.url.replace("/openai", "/v1/agent/converse"), idle_ms=IDLE_MS, token=TOKEN
    )
    input_rate = agent.start()

    agent.wait_for_message("SettingsApplied")
    agent.wait_for_message("ConversationText", role="user", content="what time is it")
    agent.wait_for_message("ConversationText", role="assistant", content="It is noon.")
    done = agent.wait_for_message("AgentAudioDone")
    assert done == {"type": "AgentAudioDone"}
    heard = [m["type"] for m in agent.messages()]
    assert heard.index("UserStartedSpeaking") < heard.index("AgentAudioDone")
    sent = mock_openai.wait_for_sync("session.update")
    assert sent["session"]["audio"]["input"]["format"]["rate"] == 24000  # resampled upstream
    # It streams at its AudioContext's own rate (44100 in headless Chromium here), which
    # the page declared; the proxy resampled it for upstream.
    (settings,) = [e["message"] for e in agent.log() if e["event"] == "client message"]
    assert settings["audio"]["input"]["sample_rate"] == input_rate

    # Nothing more happens: the component's own idle timer closes the conversation.
    closed = agent.wait_for_event("socket close", timeout=IDLE_MS / 1000 + 7)
    assert (closed["code"], closed["reason"]) == (1000, "idle timeout")
    answered_at = next(
        e["at"] for e in agent.log() if e.get("message", {}).get("type") == "AgentAudioDone"
    )
    assert closed["at"] - answered_at >= IDLE_MS
    proxy.wait_idle_sync()  # and the proxy ended the session, upstream included
    deadline = time.monotonic() + 5
    while any(not c.closed for c in mock_openai.connections) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(c.closed for c in mock_openai.connections)


def test_speaking_over_the_agent_stops_its_playback(
    deepgram_agent_page: DeepgramAgentPage,
    mock_openai: MockRealtime,
    proxy_factory: Callable[..., ProxyEndpoint],
    fake_microphone: FakeMicrophone,
) -> None:
    proxy = proxy_factory()
    story = " ".join(f"word{i}" for i in range(40))
    first = mock_openai.on_user_speech().transcribe_as("tell me a story")
    first.reply_with_audio(story, chunks=40, chunk_ms=100, chunk_interval_ms=100).once()
    mock_openai.on_user_speech().transcribe_as("stop please").reply_with_text("Stopped.").once()
    # A question, then, while the four-second answer plays, the user talks over it.
    fake_microphone.load(
        silence(500) + tone_pcm16(800, rate=RATE) + silence(2700) + tone_pcm16(700, rate=RATE)
    )
    agent = deepgram_agent_page.open(proxy.url)
    agent.start()

    agent.wait_for_message("UserStartedSpeaking", count=2, timeout=15)
    agent.wait_for_message("ConversationText", role="assistant", content="Stopped.")
    log = agent.log()
    barge_in = [e for e in log if e.get("message", {}).get("type") == "UserStartedSpeaking"][1]
    next_answer = next(
        e["at"]
        for e in log
        if e["at"] > barge_in["at"] and e.get("message", {}).get("type") == "AgentStartedSpeaking"
    )
    samples = agent.speaker_samples()
    before = [n for t, n in samples if barge_in["at"] - 500 <= t < barge_in["at"]]
    between = [n for t, n in samples if barge_in["at"] < t < next_answer]
    assert before and max(before) > 0  # the agent was speaking
    assert barge_in["playing"] == 0  # the component stopped it on UserStartedSpeaking
    assert between and max(between) == 0  # nothing of the old answer played after it
    truncate = mock_openai.wait_for_sync("conversation.item.truncate")
    assert 0 < truncate["audio_end_ms"] < 4000  # upstream forgets what was not heard
