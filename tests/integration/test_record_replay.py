"""Record a session through the relay, replay it from the mock, catch a divergence.

Without a key the upstream recorded here is the mock itself; with one, the same
`cassette_recorder` records the real API (docs/how-to/replay-a-cassette.md).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import connect

from harness.cassette import Cassette
from harness.client import ComponentClient
from harness.mock_openai import MockRealtime, silence_pcm16, tone_pcm16
from harness.pytest_plugin import MOCK_API_KEY
from harness.recorder import Recording
from tests.docs_examples import PROJECT_INI
from tests.processes import clean_env, running

Connect = Callable[..., Awaitable[ComponentClient]]
Recorder = Callable[..., Recording]

FUNCTIONS = [
    {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
]


def speech_16k() -> bytes:
    return (
        silence_pcm16(200, rate=16000)
        + tone_pcm16(700, rate=16000)
        + silence_pcm16(800, rate=16000)
    )


async def converse(client: ComponentClient, city: str = "Paris") -> list[Any]:
    """A typed turn with a function call, then a spoken turn; what the client saw."""
    await client.start(think={"provider": {"type": "open_ai"}, "functions": FUNCTIONS})
    await client.inject(f"What is the weather in {city}?")
    request = await client.wait_for("FunctionCallRequest")
    (call,) = request["functions"]
    await client.answer_function(call["id"], call["name"], '{"temp": 21}')
    await client.wait_for_reply()
    await client.send_audio(speech_16k())
    await client.wait_for_reply(count=2)
    return [m for m in client.messages if m["type"] in ("ConversationText", "FunctionCallRequest")]


def script_the_mock(mock: MockRealtime) -> None:
    mock.on_user_text("weather").call_function("get_weather", {"city": "Paris"}).once()
    mock.on_function_output("get_weather").reply_with_audio("It is 21 degrees.").once()
    mock.on_user_speech().transcribe_as("thank you").reply_with_audio("You are welcome.").once()


async def record(mock: MockRealtime, recorder: Recorder, path: Path, **options: Any) -> list[Any]:
    script_the_mock(mock)
    recording = recorder(path, **options)
    async with await ComponentClient.connect(recording.url) as client:
        seen = await converse(client)
    await recording.finish()
    mock.verify()  # the recording really went through the scripted turns
    mock.reset()  # nothing scripted from here on: only the cassette can answer
    return seen


async def test_a_recorded_session_replays_without_its_upstream(
    mock_openai: MockRealtime,
    cassette_recorder: Recorder,
    connect_component: Connect,
    tmp_path: Path,
) -> None:
    cassette = tmp_path / "weather.jsonl"
    recorded = await record(mock_openai, cassette_recorder, cassette)

    mock_openai.replay(cassette, speed=0)
    replayed = await converse(await connect_component())

    assert replayed == recorded
    assert [m.get("content") for m in replayed if m["type"] == "ConversationText"] == [
        "What is the weather in Paris?",
        "It is 21 degrees.",
        "thank you",
        "You are welcome.",
    ]
    # Both directions, with times, and the audio in full.
    entries = Cassette.load(cassette).entries
    assert {e.origin for e in entries if e.kind == "frame"} == {"client", "server"}
    assert entries[-1].t > 0 and entries[-1].kind == "close"
    assert sum(e.audio_bytes for e in entries if e.type == "response.output_audio.delta") == (
        2 * 3 * 4800
    )


async def test_a_cassette_never_holds_the_api_key(
    mock_openai: MockRealtime, cassette_recorder: Recorder, tmp_path: Path
) -> None:
    mock_openai.on_user_text("key").send_error(
        "invalid_api_key", f"Incorrect API key provided: {MOCK_API_KEY}."
    )
    cassette = tmp_path / "key.jsonl"
    recording = cassette_recorder(cassette)
    async with await ComponentClient.connect(recording.url) as client:
        await client.start()
        await client.inject("show me the key")
        await client.wait_for("Error")
    await recording.finish()
    text = cassette.read_text()
    assert "Incorrect API key provided: sk-REDACTED." in text
    assert MOCK_API_KEY not in text and "mock-key" not in text
    assert "authorization" not in text.lower()


async def test_trimmed_audio_replays_as_silence_of_the_same_length(
    mock_openai: MockRealtime,
    cassette_recorder: Recorder,
    connect_component: Connect,
    tmp_path: Path,
) -> None:
    cassette = tmp_path / "trimmed.jsonl"
    await record(mock_openai, cassette_recorder, cassette, trim_audio=True)
    lines = [orjson.loads(line) for line in cassette.read_text().splitlines()[1:]]
    audio = [
        line for line in lines if line.get("event", {}).get("type") == "response.output_audio.delta"
    ]
    assert audio and all(line["event"]["delta"] == "" and line["audio_bytes"] for line in audio)

    mock_openai.replay(cassette, speed=0)
    client = await connect_component()
    await converse(client)
    assert len(client.audio) == 2 * 3 * 4800 and not any(client.audio)


async def test_a_refused_handshake_is_recorded_and_replayed(
    mock_openai: MockRealtime,
    cassette_recorder: Recorder,
    connect_component: Connect,
    tmp_path: Path,
) -> None:
    mock_openai.on_connect().reject_handshake(401).once()
    cassette = tmp_path / "refused.jsonl"
    recording = cassette_recorder(cassette)
    async with await ComponentClient.connect(recording.url) as client:
        recorded = await client.wait_for("Error")
    await recording.finish()
    mock_openai.reset()

    mock_openai.replay(cassette, speed=0)
    replayed = await (await connect_component()).wait_for("Error")
    assert replayed == recorded and replayed["code"] == "upstream_auth_failed"


CONVERSATION_IMPORTS = """
from typing import Any

from harness.client import ComponentClient
from harness.mock_openai import silence_pcm16, tone_pcm16

"""
DIVERGING_PROJECT = """
from harness.client import ComponentClient
from conversation import FUNCTIONS, converse

CASSETTE = {cassette!r}


async def test_the_same_conversation_passes(mock_openai, proxy):
    mock_openai.replay(CASSETTE, speed=0)
    async with await ComponentClient.connect(proxy.url) as client:
        await converse(client)


async def test_another_city_diverges(mock_openai, proxy):
    mock_openai.replay(CASSETTE, speed=0)
    async with await ComponentClient.connect(proxy.url) as client:
        await converse(client, city="Rome")


async def test_stopping_halfway_is_not_enough(mock_openai, proxy):
    mock_openai.replay(CASSETTE, speed=0)
    async with await ComponentClient.connect(proxy.url) as client:
        await client.start(think={{"provider": {{"type": "open_ai"}}, "functions": FUNCTIONS}})
"""


async def test_replay_fails_a_diverging_test_with_a_readable_diff(
    mock_openai: MockRealtime,
    cassette_recorder: Recorder,
    tmp_path: Path,
    pytester: pytest.Pytester,
) -> None:
    cassette = tmp_path / "weather.jsonl"
    await record(mock_openai, cassette_recorder, cassette)
    pytester.makeini(PROJECT_INI)
    conversation = "\n\n".join(inspect.getsource(f) for f in (speech_16k, converse))
    pytester.makepyfile(
        conversation=CONVERSATION_IMPORTS + f"FUNCTIONS = {FUNCTIONS!r}\n\n" + conversation,
        test_replays=DIVERGING_PROJECT.format(cassette=str(cassette)),
    )

    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "test_replays.py")

    result.assert_outcomes(passed=1, failed=2)
    output = result.stdout.str()
    # What was expected, what came, where in the cassette, as a diff of the event.
    assert re.search(
        r"weather\.jsonl:\d+ \(recorded connection #0\): "
        r"client event #\d+ \('conversation\.item\.create'\) differs from the recording",
        output,
    )
    assert '-        "text": "What is the weather in Paris?",' in output
    assert '+        "text": "What is the weather in Rome?",' in output
    assert "the connection ended before the client sent 'conversation.item.create'" in output


async def test_the_recorder_runs_standalone(tmp_path: Path, mock_openai: MockRealtime) -> None:
    cassette = tmp_path / "cli.jsonl"
    command = ["-m", "harness.recorder", "--port", "0", "--cassette", str(cassette)]
    with running([*command, "--upstream", mock_openai.url], clean_env(), r"recording relay on") as (
        _,
        lines,
    ):
        relay_url = re.search(r"ws://\S+", lines[-1])
        assert relay_url is not None
        headers = {"Authorization": f"Bearer {MOCK_API_KEY}"}
        async with connect(relay_url.group(0), additional_headers=headers) as ws:
            created = orjson.loads(await ws.recv())
    assert created["type"] == "session.created"
    assert "recorded 1 connection(s)" in lines[-1]
    assert Cassette.load(cassette).entries[1].event == created


async def test_a_barge_in_truncate_need_not_happen_again(
    mock_openai: MockRealtime, tmp_path: Path
) -> None:
    def line(t: float, origin: str, event: dict[str, Any]) -> str:
        return orjson.dumps({"connection": 0, "t": t, "from": origin, "event": event}).decode()

    created = {"type": "session.created", "event_id": "e1", "session": {"type": "realtime"}}
    truncate = {"type": "conversation.item.truncate", "item_id": "item_a", "content_index": 0}
    truncated = {**truncate, "type": "conversation.item.truncated", "event_id": "e2"}
    cleared = {"type": "input_audio_buffer.cleared", "event_id": "e3"}
    cassette = tmp_path / "barge-in.jsonl"
    cassette.write_text(
        "\n".join(
            [
                '{"cassette": 1, "upstream": "ws://x", "audio": "full"}',
                '{"connection": 0, "t": 0, "open": "/v1/realtime"}',
                line(0.1, "server", created),
                line(0.2, "client", {**truncate, "audio_end_ms": 640}),  # then, the user spoke
                line(0.3, "server", {**truncated, "audio_end_ms": 640}),
                line(0.4, "client", {"type": "input_audio_buffer.clear"}),
                line(0.5, "server", cleared),
            ]
        )
    )
    mock_openai.replay(cassette, speed=0)
    headers = {"Authorization": f"Bearer {MOCK_API_KEY}"}
    async with connect(mock_openai.url, additional_headers=headers) as ws:
        assert orjson.loads(await ws.recv()) == created
        await ws.send(orjson.dumps({"type": "input_audio_buffer.clear"}).decode())  # no barge-in
        assert orjson.loads(await ws.recv()) == cleared
        await ws.send(orjson.dumps({**truncate, "audio_end_ms": 320}).decode())  # a late one
        answer = orjson.loads(await ws.recv())
    assert answer["type"] == "conversation.item.truncated" and answer["audio_end_ms"] == 320
