"""The whole Deepgram Voice Agent v1 API (docs/protocol-mapping.md), driven by Deepgram's own SDK.

A team on Deepgram's SDK switches to OpenAI by changing the agent URL: these tests point
the official Python SDK's agent client at the proxy and go through every v1 message.
"""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
from deepgram.agent.v1.types import (
    AgentV1InjectAgentMessage,
    AgentV1InjectUserMessage,
    AgentV1SendFunctionCallResponse,
    AgentV1Settings,
    AgentV1UpdateListen,
    AgentV1UpdatePrompt,
    AgentV1UpdateSpeak,
    AgentV1UpdateThink,
)

from harness.mock_openai import MockRealtime, silence_pcm16, tone_pcm16
from harness.pytest_plugin import ProxyEndpoint
from tests.deepgram_sdk import SdkAgent, sdk_agent

ProxyFactory = Callable[..., ProxyEndpoint]
TOKEN = "deepgram-style-key-123"
THINK = {"provider": {"type": "open_ai", "model": "gpt-realtime"}, "prompt": "You are terse."}


def settings(**agent: Any) -> AgentV1Settings:
    fields: dict[str, Any] = {
        "audio": {
            "input": {"encoding": "linear16", "sample_rate": 16000},
            "output": {"encoding": "linear16", "sample_rate": 24000},
        },
        "agent": {
            "language": "en",
            "listen": {"provider": {"type": "deepgram", "model": "nova-3", "version": "v1"}},
            "think": THINK,
            "speak": {"provider": {"type": "open_ai", "model": "tts-1", "voice": "coral"}},
            **agent,
        },
    }
    return AgentV1Settings.model_validate(fields)


def with_audio(
    input_format: dict[str, Any], output_format: dict[str, Any] | None = None
) -> AgentV1Settings:
    """The default Settings with these client audio formats."""
    fields = settings().model_dump(exclude_none=True)
    fields["audio"] = {"input": input_format}
    if output_format is not None:
        fields["audio"]["output"] = output_format
    return AgentV1Settings.model_validate(fields)


async def started(agent: SdkAgent, **agent_fields: Any) -> None:
    await agent.socket.send_settings(settings(**agent_fields))
    await agent.wait_for("SettingsApplied")


class _FunctionServer(http.server.ThreadingHTTPServer):
    requests: list[tuple[str, str, dict[str, str], bytes]]
    status: int
    drip: bool  # answer one byte every 0.3 s, for ever (a server that holds on)


@pytest.fixture
def function_server() -> Iterator[_FunctionServer]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            server: _FunctionServer = self.server  # type: ignore[assignment]
            server.requests.append(("POST", self.path, dict(self.headers), body))
            self.send_response(server.status)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            if server.drip:
                for _ in range(100):
                    self.wfile.write(b" ")
                    self.wfile.flush()
                    time.sleep(0.3)
            self.wfile.write(b'{"temperature": 21}')

        def log_message(self, *args: object) -> None:
            pass

    server = _FunctionServer(("127.0.0.1", 0), Handler)
    server.requests, server.status, server.drip = [], 200, False
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def endpoint(proxy_factory: ProxyFactory, function_server: _FunctionServer) -> ProxyEndpoint:
    """The proxy, allowed to call the local function server (that host and port only) with
    the definition's X-Api-Key header (no header is sent unless the operator allows it)."""
    port = function_server.server_address[1]
    return proxy_factory(
        client_token=TOKEN,
        function_hosts=frozenset({f"127.0.0.1:{port}"}),
        function_headers=frozenset({"x-api-key"}),
    )


# ------------------------------------------------------------------ the basics


async def test_the_sdk_connects_on_deepgrams_path_with_its_token_header(
    mock_openai: MockRealtime, endpoint: ProxyEndpoint
) -> None:
    async with sdk_agent(endpoint.url, TOKEN) as agent:
        welcome = await agent.wait_for("Welcome")
        assert welcome.request_id == mock_openai.sent("session.created")[0]["session"]["id"]
        await started(agent)
        assert not agent.received("Warning")  # a Realtime model and an OpenAI voice: all used
        update = (await mock_openai.wait_for("session.update"))["session"]
        assert update["instructions"] == "You are terse."
        assert update["audio"]["output"]["voice"] == "coral"
        assert update["audio"]["input"]["transcription"]["language"] == "en"


async def test_a_text_turn_and_its_latency_report(
    mock_openai: MockRealtime, endpoint: ProxyEndpoint
) -> None:
    async with sdk_agent(endpoint.url, TOKEN) as agent:
        await started(agent)
        await agent.socket.send_inject_user_message(AgentV1InjectUserMessage(content="hello"))
        reply = await agent.wait_for("ConversationText", where=lambda m: m.role == "assistant")
        assert reply.content == "You said: hello"
        report = await agent.wait_for("LatencyReport")
        assert report.total_latency is not None and report.total_latency >= 0
        assert agent.audio  # the answer was spoken
        await agent.socket.send_keep_alive()


async def test_settings_the_realtime_api_cannot_use_are_warned_about_not_refused(
    mock_openai: MockRealtime, endpoint: ProxyEndpoint
) -> None:
    async with sdk_agent(endpoint.url, TOKEN) as agent:
        await agent.socket.send_settings(
            settings(
                think={"provider": {"type": "open_ai", "model": "gpt-4o-mini", "temperature": 0.2}},
                speak={"provider": {"type": "deepgram", "model": "aura-2-thalia-en"}},
            )
        )
        warning = await agent.wait_for("Warning")
        assert warning.code == "setting_ignored"
        for ignored in ("gpt-4o-mini", "temperature", "aura-2-thalia-en"):
            assert ignored in warning.description
        await agent.wait_for("SettingsApplied")
        assert not agent.received("Error")


# ------------------------------------------------------------------ updates


async def test_update_think_listen_prompt_and_speak(
    mock_openai: MockRealtime, endpoint: ProxyEndpoint
) -> None:
    async with sdk_agent(endpoint.url, TOKEN) as agent:
        await started(agent)
        await agent.socket.send_update_think(
            AgentV1UpdateThink.model_validate(
                {
                    "think": {
                        "provider": {"type": "open_ai", "model": "gpt-realtime"},
                        "prompt": "Be brief.",
                        "functions": [{"name": "get_time", "description": "now"}],
                    }
                }
            )
        )
        await agent.wait_for("ThinkUpdated")
        think = (await mock_openai.wait_for("session.update", count=2))["session"]
        assert think["instructions"] == "Be brief." and think["tools"][0]["name"] == "get_time"

        await agent.socket.send_update_listen(
            AgentV1UpdateListen.model_validate(
                {
                    "listen": {
                        "provider": {
                            "type": "deepgram",
                            "version": "v1",
                            "language": "fr-FR",
                            "keyterms": ["Zubrowka", "Kazimierz"],
                        }
                    }
                }
            )
        )
        await agent.wait_for("ListenUpdated")
        listen = (await mock_openai.wait_for("session.update", count=3))["session"]
        transcription = listen["audio"]["input"]["transcription"]
        assert transcription["language"] == "fr" and "Zubrowka" in transcription["prompt"]

        await agent.socket.send_update_prompt(AgentV1UpdatePrompt(prompt="Be kind."))
        await agent.wait_for("PromptUpdated")
        await agent.socket.send_update_speak(
            AgentV1UpdateSpeak.model_validate(
                {"speak": {"provider": {"type": "open_ai", "model": "tts-1", "voice": "sage"}}}
            )
        )
        await agent.wait_for("SpeakUpdated")
        speak = (await mock_openai.wait_for("session.update", count=5))["session"]
        assert speak["audio"]["output"]["voice"] == "sage"


async def test_a_model_change_a_live_session_cannot_make_is_a_warning(
    mock_openai: MockRealtime, endpoint: ProxyEndpoint
) -> None:
    async with sdk_agent(endpoint.url, TOKEN) as agent:
        await started(agent)
        await agent.socket.send_update_think(
            AgentV1UpdateThink.model_validate(
                {"think": {"provider": {"type": "open_ai", "model": "gpt-realtime-mini"}}}
            )
        )
        warning = await agent.wait_for("Warning")
        assert (
            warning.code == "unsupported_by_backend" and "gpt-realtime-mini" in warning.description
        )
        await agent.wait_for("ThinkUpdated")  # the rest is applied


async def test_deepgram_only_features_are_warnings(
    mock_openai: MockRealtime, endpoint: ProxyEndpoint
) -> None:
    async with sdk_agent(endpoint.url, TOKEN) as agent:
        await started(agent)
        await agent.socket.send_raw({"type": "UpdateThink_Live", "think_live": {"provider": {}}})
        await agent.socket.send_raw({"type": "InjectAgentMessage", "is_dynamic": True})
        warnings = [await agent.wait_for("Warning", count=n) for n in (1, 2)]
        assert {w.code for w in warnings} == {"unsupported_by_backend"}
        assert not agent.received("Error")


# ------------------------------------------------------------------ the agent speaks


async def test_the_greeting_is_spoken_and_not_repeated_on_a_reconnect_with_context(
    mock_openai: MockRealtime, endpoint: ProxyEndpoint
) -> None:
    async with sdk_agent(endpoint.url, TOKEN) as agent:
        await started(agent, greeting="Welcome to the proxy.")
        text = await agent.wait_for("ConversationText")
        assert (text.role, text.content) == ("assistant", "Welcome to the proxy.")
        await agent.wait_for("AgentAudioDone")
        assert agent.audio
    history = [{"type": "History", "role": "assistant", "content": "Welcome to the proxy."}]
    async with sdk_agent(endpoint.url, TOKEN) as again:
        await started(again, greeting="Welcome to the proxy.", context={"messages": history})
        await again.socket.send_inject_user_message(AgentV1InjectUserMessage(content="hi"))
        await again.wait_for("ConversationText", where=lambda m: m.role == "assistant")
        assert [m.content for m in again.received("ConversationText")] == ["hi", "You said: hi"]


async def test_an_injected_agent_message_is_spoken_and_held_upstream(
    mock_openai: MockRealtime, endpoint: ProxyEndpoint
) -> None:
    async with sdk_agent(endpoint.url, TOKEN) as agent:
        await started(agent)
        await agent.socket.send_inject_agent_message(
            AgentV1InjectAgentMessage(message="Your order has shipped.")
        )
        text = await agent.wait_for("ConversationText")
        assert (text.role, text.content) == ("assistant", "Your order has shipped.")
        await agent.wait_for("AgentAudioDone")
        assert agent.audio
        held = await mock_openai.wait_for("conversation.item.create")
        assert held["item"]["content"] == [
            {"type": "output_text", "text": "Your order has shipped."}
        ]


async def test_injection_is_refused_while_the_agent_answers_unless_queued_or_interrupting(
    mock_openai: MockRealtime, endpoint: ProxyEndpoint
) -> None:
    mock_openai.on_user_text("story").reply_with_audio(
        "A long story.", chunks=6, chunk_ms=100, chunk_interval_ms=150
    )
    async with sdk_agent(endpoint.url, TOKEN) as agent:
        await started(agent)
        await agent.socket.send_inject_user_message(AgentV1InjectUserMessage(content="story"))
        await agent.wait_for("AgentStartedSpeaking")
        await agent.socket.send_inject_agent_message(AgentV1InjectAgentMessage(message="Hold on."))
        refused = await agent.wait_for("InjectionRefused")
        assert refused.message == "Hold on."
        await agent.socket.send_inject_agent_message(
            AgentV1InjectAgentMessage(message="After the story.", behavior="queue")
        )
        texts = []
        for n in (2, 3):  # the user's echo is the first
            texts.append((await agent.wait_for("ConversationText", count=n)).content)
        assert texts == ["A long story.", "After the story."]  # queued: said after

        await agent.socket.send_inject_user_message(AgentV1InjectUserMessage(content="story"))
        await agent.wait_for("AgentStartedSpeaking", count=3)
        await agent.socket.send_inject_agent_message(
            AgentV1InjectAgentMessage(message="Sorry to interrupt.", behavior="interrupt")
        )
        await agent.wait_for("ConversationText", where=lambda m: m.content == "Sorry to interrupt.")
        assert await mock_openai.wait_for("response.cancel")
        contents = [m.content for m in agent.received("ConversationText")]
        assert contents.count("A long story.") == 1  # the interrupted one never finished


# ------------------------------------------------------------------ turns


async def test_force_end_turn_commits_the_audio_and_gets_an_answer(
    mock_openai: MockRealtime, endpoint: ProxyEndpoint
) -> None:
    async with sdk_agent(endpoint.url, TOKEN) as agent:
        await started(agent)
        await agent.socket.send_media(tone_pcm16(400, rate=16000))  # speech, no silence after
        await agent.socket.send_force_end_turn()
        assert await mock_openai.wait_for("input_audio_buffer.commit")
        reply = await agent.wait_for("ConversationText", where=lambda m: m.role == "assistant")
        assert reply.content.startswith("I heard")


async def test_history_messages_when_asked_for(
    mock_openai: MockRealtime, endpoint: ProxyEndpoint
) -> None:
    mock_openai.on_user_text("time").call_function("get_time", {"tz": "UTC"})
    async with sdk_agent(endpoint.url, TOKEN) as agent:
        await agent.socket.send_settings(
            AgentV1Settings.model_validate(
                {**settings().model_dump(exclude_none=True), "flags": {"history": True}}
            )
        )
        await agent.wait_for("SettingsApplied")
        await agent.socket.send_inject_user_message(AgentV1InjectUserMessage(content="the time?"))
        request = await agent.wait_for("FunctionCallRequest")
        call = request.functions[0]
        await agent.socket.send_function_call_response(
            AgentV1SendFunctionCallResponse(id=call.id, name=call.name, content="12:00")
        )
        await agent.wait_for("ConversationText", count=2)
        history = [await agent.wait_for("History", count=n) for n in (1, 2, 3)]
        assert history[0].role == "user" and history[0].content == "the time?"
        assert history[1].function_calls[0].response == "12:00"
        assert history[2].role == "assistant"


async def test_a_pending_client_function_is_cancelled_when_the_user_barges_in(
    mock_openai: MockRealtime, endpoint: ProxyEndpoint
) -> None:
    mock_openai.on_user_text("weather").call_function("get_weather", {"city": "Paris"})
    async with sdk_agent(endpoint.url, TOKEN) as agent:
        await started(agent)
        await agent.socket.send_inject_user_message(AgentV1InjectUserMessage(content="weather"))
        request = await agent.wait_for("FunctionCallRequest")
        assert request.functions[0].client_side is True
        await agent.socket.send_media(tone_pcm16(300, rate=16000))  # the user speaks over it
        cancelled = await agent.wait_for("FunctionCallCancelled")
        assert [(f.id, f.name) for f in cancelled.functions] == [
            (request.functions[0].id, "get_weather")
        ]
        await agent.socket.send_media(silence_pcm16(800, rate=16000))


# ------------------------------------------------------------------ server-side functions


def _weather_function(
    port: int, host: str = "127.0.0.1", headers: dict[str, str] | None = None
) -> dict[str, Any]:
    return {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        "endpoint": {
            "url": f"http://{host}:{port}/weather",
            "method": "post",
            "headers": headers or {"X-Api-Key": "function-secret"},
        },
    }


async def test_a_server_side_function_is_called_by_the_proxy(
    mock_openai: MockRealtime, endpoint: ProxyEndpoint, function_server: _FunctionServer
) -> None:
    mock_openai.on_user_text("weather").call_function("get_weather", {"city": "Paris"})
    port = function_server.server_address[1]
    async with sdk_agent(endpoint.url, TOKEN) as agent:
        await started(agent, think={**THINK, "functions": [_weather_function(int(port))]})
        await agent.socket.send_inject_user_message(AgentV1InjectUserMessage(content="weather"))
        request = await agent.wait_for("FunctionCallRequest")
        assert request.functions[0].client_side is False
        result = await agent.wait_for("FunctionCallResponse")
        assert orjson.loads(result.content) == {"temperature": 21}
        reply = await agent.wait_for("ConversationText", where=lambda m: m.role == "assistant")
        assert "temperature" in reply.content
    (method, path, headers, body) = function_server.requests[0]
    assert (method, path, headers["X-Api-Key"]) == ("POST", "/weather", "function-secret")
    assert orjson.loads(body) == {"city": "Paris"}
    output = await mock_openai.wait_for(
        "conversation.item.create", where=lambda e: e["item"]["type"] == "function_call_output"
    )
    assert orjson.loads(output["item"]["output"]) == {"temperature": 21}


async def test_a_failing_server_side_function_is_an_error_and_the_model_is_told(
    mock_openai: MockRealtime, endpoint: ProxyEndpoint, function_server: _FunctionServer
) -> None:
    function_server.status = 500
    mock_openai.on_user_text("weather").call_function("get_weather", {"city": "Paris"})
    port = function_server.server_address[1]
    async with sdk_agent(endpoint.url, TOKEN) as agent:
        await started(agent, think={**THINK, "functions": [_weather_function(int(port))]})
        await agent.socket.send_inject_user_message(AgentV1InjectUserMessage(content="weather"))
        error = await agent.wait_for("Error")
        assert error.code == "function_endpoint_failed" and "HTTP 500" in error.description
        output = await mock_openai.wait_for(
            "conversation.item.create", where=lambda e: e["item"]["type"] == "function_call_output"
        )
        assert "HTTP 500" in output["item"]["output"]
        await agent.wait_for("ConversationText", where=lambda m: m.role == "assistant")


async def test_a_function_endpoint_on_a_host_not_allowed_goes_to_the_client(
    mock_openai: MockRealtime, endpoint: ProxyEndpoint, function_server: _FunctionServer
) -> None:
    mock_openai.on_user_text("weather").call_function("get_weather", {"city": "Paris"})
    port = function_server.server_address[1]
    async with sdk_agent(endpoint.url, TOKEN) as agent:
        await started(
            agent, think={**THINK, "functions": [_weather_function(int(port), "localhost")]}
        )
        await agent.socket.send_inject_user_message(AgentV1InjectUserMessage(content="weather"))
        warning = await agent.wait_for("Warning")
        assert warning.code == "function_endpoint_forbidden"
        request = await agent.wait_for("FunctionCallRequest")
        assert request.functions[0].client_side is True
    assert not function_server.requests  # the proxy never called it


# ------------------------------------------------------------------ audio formats


@pytest.mark.parametrize("rate", [8000, 16000, 24000, 32000, 44100, 48000])
async def test_linear16_at_every_rate_in_and_out(
    mock_openai: MockRealtime, endpoint: ProxyEndpoint, rate: int
) -> None:
    async with sdk_agent(endpoint.url, TOKEN) as agent:
        await agent.socket.send_settings(
            with_audio(
                {"encoding": "linear16", "sample_rate": rate},
                {"encoding": "linear16", "sample_rate": rate},
            )
        )
        await agent.wait_for("SettingsApplied")
        await agent.socket.send_media(tone_pcm16(400, rate=rate))
        await agent.socket.send_media(silence_pcm16(800, rate=rate))
        reply = await agent.wait_for("ConversationText", where=lambda m: m.role == "assistant")
        assert reply.content.startswith("I heard")
        await agent.wait_for("AgentAudioDone")
        # 300 ms of agent speech at the client's own rate (a few samples of filter delay).
        assert abs(len(agent.audio) - 300 * rate * 2 // 1000) <= 32


async def test_an_unsupported_format_is_refused_and_the_session_goes_on(
    mock_openai: MockRealtime, endpoint: ProxyEndpoint
) -> None:
    async with sdk_agent(endpoint.url, TOKEN) as agent:
        await agent.socket.send_settings(with_audio({"encoding": "opus", "sample_rate": 48000}))
        error = await agent.wait_for("Error")
        assert error.code == "unsupported_audio_format" and "mulaw" in error.description
        await started(agent)


def _g711(pcm: bytes, law: str) -> bytes:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import audioop
    return audioop.lin2ulaw(pcm, 2) if law == "mulaw" else audioop.lin2alaw(pcm, 2)


@pytest.mark.parametrize("law", ["mulaw", "alaw"])
async def test_telephony_g711_passes_straight_through_both_ways(
    mock_openai: MockRealtime, endpoint: ProxyEndpoint, law: str
) -> None:
    async with sdk_agent(endpoint.url, TOKEN) as agent:
        await agent.socket.send_settings(
            with_audio(
                {"encoding": law, "sample_rate": 8000}, {"encoding": law, "sample_rate": 8000}
            )
        )
        await agent.wait_for("SettingsApplied")
        update = (await mock_openai.wait_for("session.update"))["session"]
        upstream_type = "audio/pcmu" if law == "mulaw" else "audio/pcma"
        assert update["audio"]["input"]["format"] == {"type": upstream_type}
        assert update["audio"]["output"]["format"] == {"type": upstream_type}
        spoken = _g711(tone_pcm16(400, rate=8000), law) + _g711(silence_pcm16(800, rate=8000), law)
        for start in range(0, len(spoken), 160):  # 20 ms telephony frames
            await agent.socket.send_media(spoken[start : start + 160])
        reply = await agent.wait_for("ConversationText", where=lambda m: m.role == "assistant")
        assert reply.content.startswith("I heard")
        await agent.wait_for("AgentAudioDone")
        assert abs(len(agent.audio) - 300 * 8) <= 16  # 300 ms, one byte a sample at 8 kHz
    import base64

    appended = b"".join(
        base64.b64decode(e["audio"]) for e in mock_openai.received("input_audio_buffer.append")
    )
    assert appended == spoken  # not a byte transcoded on the way up


async def test_mulaw_in_and_linear16_out_are_converted(
    mock_openai: MockRealtime, endpoint: ProxyEndpoint
) -> None:
    async with sdk_agent(endpoint.url, TOKEN) as agent:
        await agent.socket.send_settings(
            with_audio(
                {"encoding": "mulaw", "sample_rate": 8000},
                {"encoding": "linear16", "sample_rate": 16000},
            )
        )
        await agent.wait_for("SettingsApplied")
        update = (await mock_openai.wait_for("session.update"))["session"]
        assert update["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
        await agent.socket.send_media(_g711(tone_pcm16(400, rate=8000), "mulaw"))
        await agent.socket.send_media(_g711(silence_pcm16(800, rate=8000), "mulaw"))
        reply = await agent.wait_for("ConversationText", where=lambda m: m.role == "assistant")
        assert reply.content.startswith("I heard")
        await agent.wait_for("AgentAudioDone")
        assert abs(len(agent.audio) - 300 * 32) <= 32  # linear16 at 16 kHz


async def test_a_function_endpoint_cannot_hold_the_call_past_its_deadline_or_steer_it(
    mock_openai: MockRealtime, proxy_factory: ProxyFactory, function_server: _FunctionServer
) -> None:
    function_server.drip = True  # answers, but one byte at a time, for ever
    mock_openai.on_user_text("weather").call_function("get_weather", {"city": "Paris"})
    port = int(function_server.server_address[1])
    endpoint = proxy_factory(
        client_token=TOKEN,
        function_hosts=frozenset({f"127.0.0.1:{port}"}),
        function_headers=frozenset({"x-api-key"}),
        function_timeout=1,
    )
    steer = {"Host": "admin.internal", "Content-Length": "0", "X-Api-Key": "k"}
    async with sdk_agent(endpoint.url, TOKEN) as agent:
        await started(agent, think={**THINK, "functions": [_weather_function(port, headers=steer)]})
        begun = time.monotonic()
        await agent.socket.send_inject_user_message(AgentV1InjectUserMessage(content="weather"))
        error = await agent.wait_for("Error", timeout=5)
        assert error.code == "function_endpoint_failed" and "within 1 s" in error.description
        assert time.monotonic() - begun < 3  # one deadline for the whole exchange
    (_, _, headers, _) = function_server.requests[0]
    assert headers["Host"] == f"127.0.0.1:{port}" and headers["X-Api-Key"] == "k"


async def test_only_the_allowed_port_of_an_allowed_host_is_called(
    mock_openai: MockRealtime, proxy_factory: ProxyFactory, function_server: _FunctionServer
) -> None:
    mock_openai.on_user_text("weather").call_function("get_weather", {"city": "Paris"})
    port = int(function_server.server_address[1])
    endpoint = proxy_factory(client_token=TOKEN, function_hosts=frozenset({"127.0.0.1"}))
    async with sdk_agent(endpoint.url, TOKEN) as agent:
        await started(agent, think={**THINK, "functions": [_weather_function(port)]})
        await agent.socket.send_inject_user_message(AgentV1InjectUserMessage(content="weather"))
        warning = await agent.wait_for("Warning")
        assert warning.code == "function_endpoint_forbidden"
    assert not function_server.requests
